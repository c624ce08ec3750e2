// Scan (part of the control-flow family, registered by register_control_flow).
//
// Opset 9+: inputs (state..., scan_input...) with num_scan_inputs scan
// inputs, each iterated along scan_input_axes[i] in scan_input_directions[i];
// the body maps (state..., slice...) to (state..., scan_item...); the items
// are stacked along scan_output_axes[k], in reverse when
// scan_output_directions[k] is 1.
//
// Opset 8: the first input is the optional sequence_lens [batch]; every state
// and scan input has a leading batch axis and the scan inputs iterate along
// axis 1, each batch entry for its own length (reverse directions walk the
// valid part backwards). Scan outputs are [batch, max_length, ...], zero past
// an entry's length.
#include <optional>

#include "core/error.h"
#include "ops/control_flow_util.h"
#include "ops/op_util.h"
#include "ops/registry.h"

namespace kiln::ops {
namespace {

// Per-iteration sizes shared by both versions.
struct ScanArity {
  size_t states = 0;   // N
  size_t inputs = 0;   // M
  size_t outputs = 0;  // K
};

// `first_input`: 1 at opset 8 (sequence_lens), 0 after.
Result<ScanArity> scan_arity(const KernelContext& ctx, const ir::Graph& body, size_t first_input) {
  const ir::Node& node = ctx.node();
  int64_t m = node.attr_int("num_scan_inputs", -1);
  size_t given = ctx.num_inputs() > first_input ? ctx.num_inputs() - first_input : 0;
  if (m < 1 || static_cast<size_t>(m) > given) {
    return invalid_argument(
        "{}: attribute num_scan_inputs is {}; it must be between 1 and the {} state and scan inputs", node.describe(),
        m, given);
  }
  ScanArity a;
  a.inputs = static_cast<size_t>(m);
  a.states = given - a.inputs;
  if (body.inputs().size() != a.states + a.inputs) {
    return invalid_argument("{}: body takes {} inputs but the node gives {} states and {} scan inputs", node.describe(),
                            body.inputs().size(), a.states, a.inputs);
  }
  if (body.outputs().size() < a.states) {
    return invalid_argument("{}: body returns {} outputs, fewer than the {} states", node.describe(),
                            body.outputs().size(), a.states);
  }
  a.outputs = body.outputs().size() - a.states;
  if (node.num_outputs() != a.states + a.outputs) {
    return invalid_argument("{}: the node has {} outputs but the body gives {} states and {} scan outputs",
                            node.describe(), node.num_outputs(), a.states, a.outputs);
  }
  for (size_t i = first_input; i < ctx.num_inputs(); ++i) {
    if (!ctx.has_input(i)) return invalid_argument("{}: input {} is missing", node.describe(), i);
  }
  return a;
}

// An attribute list that must hold `count` values; absent: `fallback` each.
Result<std::vector<int64_t>> scan_attr(const ir::Node& node, const std::string& name, size_t count, int64_t fallback) {
  std::vector<int64_t> v = node.attr_ints(name, std::vector<int64_t>(count, fallback));
  if (v.size() != count) {
    return invalid_argument("{}: attribute {} has {} entries, expected {}", node.describe(), name, v.size(), count);
  }
  return v;
}

Status check_directions(const ir::Node& node, const std::string& name, const std::vector<int64_t>& v) {
  for (int64_t d : v) {
    if (d != 0 && d != 1) {
      return invalid_argument("{}: attribute {} holds {}; directions are 0 (forward) or 1 (reverse)", node.describe(),
                              name, d);
    }
  }
  return Status::ok();
}

// The stacked scan output `o` of the node from its per-iteration items, or an
// empty one from the body's static type when no iteration ran.
Status set_scan_output(KernelContext& ctx, size_t o, const ir::ValueType& item_type, std::vector<Tensor>& items,
                       int64_t axis, bool reverse, const std::string& what) {
  if (!ctx.wants_output(o)) return Status::ok();
  if (items.empty()) {
    Dims dims;
    if (!static_dims(item_type, dims)) dims.clear();
    auto rank = static_cast<int64_t>(dims.size()) + 1;
    KILN_ASSIGN_OR_RETURN(int64_t a, normalize_axis(axis, rank));
    dims.insert(dims.begin() + a, 0);
    return ctx.allocate_output(o, static_dtype(item_type), dims).status();
  }
  auto a = normalize_axis(axis, items.front().rank() + 1);
  if (!a.is_ok()) return ctx.error(a.status().with_context(what));
  auto n = static_cast<int64_t>(items.size());
  std::vector<int64_t> positions(items.size());
  for (int64_t i = 0; i < n; ++i) positions[static_cast<size_t>(i)] = reverse ? n - 1 - i : i;
  auto stacked = stack_along_axis(items, *a, positions);
  if (!stacked.is_ok()) return ctx.error(stacked.status());
  ctx.set_output(o, std::move(stacked).value());
  return Status::ok();
}

// ---- Scan, opset 9+ -----------------------------------------------------------

Status scan9_kernel(KernelContext& ctx) {
  const ir::Node& node = ctx.node();
  KILN_ASSIGN_OR_RETURN(const ir::Graph* body, graph_attr(node, "body"));
  KILN_ASSIGN_OR_RETURN(ScanArity arity, scan_arity(ctx, *body, 0));
  if (ctx.runner() == nullptr) return internal_error("{}: no subgraph runner", node.describe());
  KILN_ASSIGN_OR_RETURN(auto in_axes, scan_attr(node, "scan_input_axes", arity.inputs, 0));
  KILN_ASSIGN_OR_RETURN(auto in_dirs, scan_attr(node, "scan_input_directions", arity.inputs, 0));
  KILN_ASSIGN_OR_RETURN(auto out_axes, scan_attr(node, "scan_output_axes", arity.outputs, 0));
  KILN_ASSIGN_OR_RETURN(auto out_dirs, scan_attr(node, "scan_output_directions", arity.outputs, 0));
  KILN_RETURN_IF_ERROR(check_directions(node, "scan_input_directions", in_dirs));
  KILN_RETURN_IF_ERROR(check_directions(node, "scan_output_directions", out_dirs));

  // Normalize the input axes and find the common length.
  std::vector<const Tensor*> scan_in;
  int64_t length = -1;
  for (size_t j = 0; j < arity.inputs; ++j) {
    const Datum& d = ctx.datum(arity.states + j);
    if (!d.is_tensor()) {
      return invalid_argument("{}: scan input {} must be a tensor, got {}", node.describe(), j, datum_kind_name(d));
    }
    const Tensor& t = d.tensor();
    if (t.rank() < 1)
      return invalid_argument("{}: scan input {} is a scalar; it needs an axis to scan", node.describe(), j);
    auto axis = normalize_axis(in_axes[j], t.rank());
    if (!axis.is_ok()) return ctx.error(axis.status().with_context(fmt::format("scan_input_axes[{}]", j)));
    in_axes[j] = *axis;
    if (length >= 0 && t.dim(*axis) != length) {
      return invalid_argument("{}: scan input {} has length {} along axis {} but scan input 0 has length {}",
                              node.describe(), j, t.dim(*axis), *axis, length);
    }
    length = t.dim(*axis);
    scan_in.push_back(&t);
  }

  std::vector<Datum> body_in(arity.states + arity.inputs);
  for (size_t i = 0; i < arity.states; ++i) body_in[i] = ctx.datum(i);
  std::vector<std::vector<Tensor>> items(arity.outputs);
  for (int64_t t = 0; t < length; ++t) {
    for (size_t j = 0; j < arity.inputs; ++j) {
      int64_t index = in_dirs[j] == 1 ? length - 1 - t : t;
      KILN_ASSIGN_OR_RETURN(Tensor slice, slice_along_axis(*scan_in[j], in_axes[j], index));
      body_in[arity.states + j] = Datum(std::move(slice));
    }
    auto out = ctx.runner()->run(*body, body_in);
    if (!out.is_ok()) return ctx.error(out.status().with_context(fmt::format("body (iteration {})", t)));
    for (size_t i = 0; i < arity.states; ++i) body_in[i] = std::move((*out)[i]);
    for (size_t k = 0; k < arity.outputs; ++k) {
      const Datum& item = (*out)[arity.states + k];
      std::string what = fmt::format("scan output {} (body output {})", k, arity.states + k);
      KILN_RETURN_IF_ERROR(check_scan_item(item, items[k].empty() ? nullptr : &items[k].front(), node, what));
      items[k].push_back(item.tensor());
    }
  }
  for (size_t i = 0; i < arity.states; ++i) {
    if (ctx.wants_output(i)) ctx.set_output(i, std::move(body_in[i]));
  }
  for (size_t k = 0; k < arity.outputs; ++k) {
    KILN_RETURN_IF_ERROR(set_scan_output(ctx, arity.states + k, body->outputs()[arity.states + k]->type(), items[k],
                                         out_axes[k], out_dirs[k] == 1, fmt::format("scan_output_axes[{}]", k)));
  }
  return Status::ok();
}

// ---- Scan, opset 8 ------------------------------------------------------------

Status scan8_kernel(KernelContext& ctx) {
  const ir::Node& node = ctx.node();
  KILN_ASSIGN_OR_RETURN(const ir::Graph* body, graph_attr(node, "body"));
  KILN_ASSIGN_OR_RETURN(ScanArity arity, scan_arity(ctx, *body, 1));
  if (ctx.runner() == nullptr) return internal_error("{}: no subgraph runner", node.describe());
  KILN_ASSIGN_OR_RETURN(auto dirs, scan_attr(node, "directions", arity.inputs, 0));
  KILN_RETURN_IF_ERROR(check_directions(node, "directions", dirs));

  // Every state and scan input is a tensor with the same batch size; scan
  // inputs share the maximum length along axis 1.
  int64_t batch = -1;
  int64_t max_length = -1;
  for (size_t i = 1; i < ctx.num_inputs(); ++i) {
    const Datum& d = ctx.datum(i);
    bool is_scan = i > arity.states;
    if (!d.is_tensor())
      return invalid_argument("{}: input {} must be a tensor, got {}", node.describe(), i, datum_kind_name(d));
    const Tensor& t = d.tensor();
    if (t.rank() < (is_scan ? 2 : 1)) {
      return invalid_argument("{}: input {} is {}; opset-8 Scan needs a batch axis{}", node.describe(), i,
                              t.debug_string(), is_scan ? " and a sequence axis" : "");
    }
    if (batch >= 0 && t.dim(0) != batch) {
      return invalid_argument("{}: input {} has batch size {} but input 1 has {}", node.describe(), i, t.dim(0), batch);
    }
    batch = t.dim(0);
    if (is_scan) {
      if (max_length >= 0 && t.dim(1) != max_length) {
        return invalid_argument("{}: scan input {} has sequence length {} but the first has {}", node.describe(),
                                i - 1 - arity.states, t.dim(1), max_length);
      }
      max_length = t.dim(1);
    }
  }
  std::vector<int64_t> lengths(static_cast<size_t>(batch), max_length);
  if (ctx.has_input(0)) {
    const Datum& d = ctx.datum(0);
    bool ok = d.is_tensor() && (d.tensor().dtype() == DataType::kInt64 || d.tensor().dtype() == DataType::kInt32) &&
              d.tensor().rank() == 1 && d.tensor().dim(0) == batch;
    if (!ok) {
      return invalid_argument("{}: sequence_lens must be an int64 tensor of shape [{}], got {}", node.describe(), batch,
                              d.is_tensor() ? d.tensor().debug_string() : datum_kind_name(d));
    }
    KILN_ASSIGN_OR_RETURN(auto lens, to_int64_vector(d.tensor()));
    for (size_t b = 0; b < lengths.size(); ++b) {
      int64_t len = lens[b];
      if (len < 0 || len > max_length) {
        return invalid_argument("{}: sequence_lens[{}] is {}, outside [0, {}]", node.describe(), b, len, max_length);
      }
      lengths[b] = len;
    }
  }

  // Run each batch entry on its own; collect final states and scan items.
  std::vector<std::vector<Tensor>> final_states(arity.states);
  std::vector<std::vector<std::vector<Tensor>>> items(arity.outputs, std::vector<std::vector<Tensor>>(lengths.size()));
  std::vector<std::optional<Tensor>> first(arity.outputs);  // each scan output's first item
  std::vector<Datum> body_in(arity.states + arity.inputs);
  for (int64_t b = 0; b < batch; ++b) {
    for (size_t i = 0; i < arity.states; ++i) {
      KILN_ASSIGN_OR_RETURN(Tensor s, slice_along_axis(ctx.input(1 + i), 0, b));
      body_in[i] = Datum(std::move(s));
    }
    int64_t len = lengths[static_cast<size_t>(b)];
    for (int64_t t = 0; t < len; ++t) {
      for (size_t j = 0; j < arity.inputs; ++j) {
        KILN_ASSIGN_OR_RETURN(Tensor row, slice_along_axis(ctx.input(1 + arity.states + j), 0, b));
        KILN_ASSIGN_OR_RETURN(Tensor step, slice_along_axis(row, 0, dirs[j] == 1 ? len - 1 - t : t));
        body_in[arity.states + j] = Datum(std::move(step));
      }
      auto out = ctx.runner()->run(*body, body_in);
      if (!out.is_ok()) {
        return ctx.error(out.status().with_context(fmt::format("body (batch {}, iteration {})", b, t)));
      }
      for (size_t i = 0; i < arity.states; ++i) body_in[i] = std::move((*out)[i]);
      for (size_t k = 0; k < arity.outputs; ++k) {
        const Datum& item = (*out)[arity.states + k];
        std::string what = fmt::format("scan output {} (body output {})", k, arity.states + k);
        KILN_RETURN_IF_ERROR(check_scan_item(item, first[k] ? &*first[k] : nullptr, node, what));
        items[k][static_cast<size_t>(b)].push_back(item.tensor());
        if (!first[k]) first[k] = item.tensor();
      }
    }
    for (size_t i = 0; i < arity.states; ++i) {
      std::string what = fmt::format("final state {} (body output {})", i, i);
      KILN_RETURN_IF_ERROR(
          check_scan_item(body_in[i], final_states[i].empty() ? nullptr : &final_states[i].front(), node, what));
      final_states[i].push_back(body_in[i].tensor());
    }
  }

  std::vector<int64_t> order(static_cast<size_t>(batch));
  for (int64_t b = 0; b < batch; ++b) order[static_cast<size_t>(b)] = b;
  for (size_t i = 0; i < arity.states; ++i) {
    if (!ctx.wants_output(i)) continue;
    if (batch == 0) {
      ctx.set_output(i, ctx.datum(1 + i));
      continue;
    }
    auto stacked = stack_along_axis(final_states[i], 0, order);
    if (!stacked.is_ok()) return ctx.error(stacked.status());
    ctx.set_output(i, std::move(stacked).value());
  }
  for (size_t k = 0; k < arity.outputs; ++k) {
    size_t o = arity.states + k;
    if (!ctx.wants_output(o)) continue;
    // [batch, max_length, item dims...], zero past each entry's length.
    Dims item_dims;
    DataType dtype;
    if (first[k]) {
      item_dims = first[k]->dims();
      dtype = first[k]->dtype();
    } else {
      const ir::ValueType& type = body->outputs()[o]->type();
      if (!static_dims(type, item_dims)) item_dims.clear();
      dtype = static_dtype(type);
    }
    Dims dims = item_dims;
    dims.insert(dims.begin(), {batch, max_length});
    KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.allocate_output(o, dtype, dims));
    int64_t per_item = 1;
    for (int64_t d : item_dims) per_item *= d;
    for (int64_t b = 0; b < batch; ++b) {
      const auto& row = items[k][static_cast<size_t>(b)];
      for (size_t t = 0; t < row.size(); ++t) {
        copy_elements(row[t], 0, *out, (b * max_length + static_cast<int64_t>(t)) * per_item, per_item);
      }
    }
  }
  return Status::ok();
}

Status scan_infer(InferContext& ctx) {
  const ir::Node& node = ctx.node();
  const ir::Graph* body = node.attr_graph("body");
  int64_t m = node.attr_int("num_scan_inputs", -1);
  size_t first_input = ctx.opset() < 9 ? 1 : 0;
  if (body == nullptr || m < 1 || ctx.num_inputs() < first_input + static_cast<size_t>(m)) return Status::ok();
  size_t states = ctx.num_inputs() - first_input - static_cast<size_t>(m);
  if (body->outputs().size() < states || body->outputs().size() != ctx.num_outputs()) return Status::ok();
  for (size_t i = 0; i < states; ++i) {
    ctx.set_output_type(i, merge_value_types(ctx.input_type(first_input + i), body->outputs()[i]->type()));
  }
  // The scan length: the first scan input's dim along its axis, when known.
  int64_t length = -1;
  const ir::ValueType& in0 = ctx.input_type(first_input + states);
  int64_t in_axis = ctx.opset() < 9 ? 1 : node.attr_ints("scan_input_axes", {0}).front();
  if (in0.is_tensor() && in0.shape.rank_known() && in_axis >= -in0.shape.rank() && in_axis < in0.shape.rank()) {
    const Dim& d = in0.shape[in_axis < 0 ? in_axis + in0.shape.rank() : in_axis];
    if (d.known()) length = d.value;
  }
  std::vector<int64_t> out_axes = node.attr_ints("scan_output_axes");
  for (size_t k = 0; states + k < ctx.num_outputs(); ++k) {
    const ir::ValueType& item = body->outputs()[states + k]->type();
    if (ctx.opset() < 9) {
      // [batch, max_length, item...]: the batch dim is unknown here unless the input says so.
      ir::ValueType t = scan_output_type(item, 0, length);
      Dim batch_dim;
      if (in0.is_tensor() && in0.shape.rank_known() && in0.shape.rank() >= 1) batch_dim = in0.shape[0];
      if (t.is_tensor() && t.shape.rank_known()) t.shape.dims().insert(t.shape.dims().begin(), batch_dim);
      ctx.set_output_type(states + k, t);
    } else {
      int64_t axis = k < out_axes.size() ? out_axes[k] : 0;
      ctx.set_output_type(states + k, scan_output_type(item, axis, length));
    }
  }
  return Status::ok();
}

}  // namespace

void register_scan(Registry& r) {
  // Opset 8's first input (sequence_lens) is optional but positional: no input is required by count.
  r.add({.name = "Scan", .domain = "", .since_version = 8, .until_version = 8, .min_inputs = 0, .max_inputs = -1,
         .min_outputs = 1, .max_outputs = -1, .kernel = scan8_kernel, .infer = scan_infer});
  r.add({.name = "Scan", .domain = "", .since_version = 9, .min_inputs = 1, .max_inputs = -1, .min_outputs = 1,
         .max_outputs = -1, .kernel = scan9_kernel, .infer = scan_infer});
}

}  // namespace kiln::ops
