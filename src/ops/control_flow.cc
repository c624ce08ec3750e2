// Op family: control flow. If and Loop here; Scan in control_flow_scan.cc.
//
// Bodies are ir::Graphs held in node attributes; kernels run them through
// KernelContext::runner(), which binds the values a body captures from
// enclosing graphs by name. Values flowing in and out of bodies are Datums,
// so loop-carried values and branch outputs may be sequences or optionals.
#include "core/error.h"
#include "ops/control_flow_util.h"
#include "ops/families.h"
#include "ops/op_util.h"
#include "ops/registry.h"

namespace kiln::ops {
namespace {

Status run_error(const KernelContext& ctx, const std::string& what, const Status& s) {
  return ctx.error(s.with_context(what));
}

// ---- If ----------------------------------------------------------------------

// Checks one branch against the node: no inputs, one output per node output.
Status check_branch(const ir::Node& node, const std::string& name, const ir::Graph& g) {
  if (!g.inputs().empty()) {
    return invalid_argument("{}: {} declares {} inputs; If branches take none", node.describe(), name,
                            g.inputs().size());
  }
  if (g.outputs().size() != node.num_outputs()) {
    return invalid_argument("{}: {} has {} outputs but the node has {}", node.describe(), name, g.outputs().size(),
                            node.num_outputs());
  }
  return Status::ok();
}

Status if_kernel(KernelContext& ctx) {
  const ir::Node& node = ctx.node();
  KILN_ASSIGN_OR_RETURN(const ir::Graph* then_branch, graph_attr(node, "then_branch"));
  KILN_ASSIGN_OR_RETURN(const ir::Graph* else_branch, graph_attr(node, "else_branch"));
  KILN_RETURN_IF_ERROR(check_branch(node, "then_branch", *then_branch));
  KILN_RETURN_IF_ERROR(check_branch(node, "else_branch", *else_branch));
  KILN_ASSIGN_OR_RETURN(bool cond, read_condition(ctx.datum(0), node, "input 'cond'"));
  if (ctx.runner() == nullptr) return internal_error("{}: no subgraph runner", node.describe());
  const char* name = cond ? "then_branch" : "else_branch";
  auto out = ctx.runner()->run(cond ? *then_branch : *else_branch, {});
  if (!out.is_ok()) return run_error(ctx, name, out.status());
  for (size_t i = 0; i < out->size() && i < ctx.num_outputs(); ++i) {
    if ((*out)[i].is_none() && ctx.wants_output(i)) {
      return invalid_argument("{}: {} output {} '{}' has no value", node.describe(), name, i,
                              (cond ? then_branch : else_branch)->outputs()[i]->name());
    }
    ctx.set_output(i, std::move((*out)[i]));
  }
  return Status::ok();
}

Status if_infer(InferContext& ctx) {
  const ir::Graph* then_branch = ctx.node().attr_graph("then_branch");
  const ir::Graph* else_branch = ctx.node().attr_graph("else_branch");
  if (then_branch == nullptr || else_branch == nullptr) return Status::ok();
  for (size_t i = 0; i < ctx.num_outputs(); ++i) {
    if (i >= then_branch->outputs().size() || i >= else_branch->outputs().size()) break;
    ctx.set_output_type(i, merge_value_types(then_branch->outputs()[i]->type(), else_branch->outputs()[i]->type()));
  }
  return Status::ok();
}

// ---- Loop --------------------------------------------------------------------

// Loop's inputs are (M, cond, v_initial...); its body takes (iter_num, cond_in,
// v...) and returns (cond_out, v..., scan_outputs...); the node returns
// (v_final..., scan_outputs...).
struct LoopArity {
  size_t carried = 0;  // N
  size_t scans = 0;    // K
};

Result<LoopArity> loop_arity(const ir::Node& node, const ir::Graph& body) {
  LoopArity a;
  a.carried = node.num_inputs() > 2 ? node.num_inputs() - 2 : 0;
  if (body.inputs().size() != a.carried + 2) {
    return invalid_argument(
        "{}: body takes {} inputs but the loop carries {} values; the body must take (iter_num, cond, {} values)",
        node.describe(), body.inputs().size(), a.carried, a.carried);
  }
  if (body.outputs().size() < a.carried + 1) {
    return invalid_argument("{}: body returns {} outputs; it must return cond and the {} loop-carried values",
                            node.describe(), body.outputs().size(), a.carried);
  }
  a.scans = body.outputs().size() - 1 - a.carried;
  if (node.num_outputs() != a.carried + a.scans) {
    return invalid_argument("{}: the node has {} outputs but the body gives {} loop-carried and {} scan outputs",
                            node.describe(), node.num_outputs(), a.carried, a.scans);
  }
  return a;
}

Status loop_kernel(KernelContext& ctx) {
  const ir::Node& node = ctx.node();
  KILN_ASSIGN_OR_RETURN(const ir::Graph* body, graph_attr(node, "body"));
  KILN_ASSIGN_OR_RETURN(LoopArity arity, loop_arity(node, *body));
  if (ctx.runner() == nullptr) return internal_error("{}: no subgraph runner", node.describe());

  bool has_trip_count = ctx.has_input(0);
  bool has_cond = ctx.has_input(1);
  if (!has_trip_count && !has_cond) {
    return invalid_argument("{}: inputs M and cond are both absent; the loop would never end", node.describe());
  }
  int64_t trip_count = 0;
  if (has_trip_count) {
    const Datum& m = ctx.datum(0);
    if (!m.is_tensor() || (m.tensor().dtype() != DataType::kInt64 && m.tensor().dtype() != DataType::kInt32) ||
        m.tensor().numel() != 1) {
      return invalid_argument("{}: input 'M' must be a one-element int64 tensor, got {}", node.describe(),
                              m.is_tensor() ? m.tensor().debug_string() : datum_kind_name(m));
    }
    KILN_ASSIGN_OR_RETURN(auto values, to_int64_vector(m.tensor()));
    trip_count = values[0];
  }
  bool keep_going = true;
  if (has_cond) {
    KILN_ASSIGN_OR_RETURN(keep_going, read_condition(ctx.datum(1), node, "input 'cond'"));
  }

  std::vector<Datum> carried;
  for (size_t j = 0; j < arity.carried; ++j) carried.push_back(ctx.datum(2 + j));
  std::vector<std::vector<Tensor>> scans(arity.scans);
  std::vector<Datum> body_in(2 + arity.carried);
  int64_t iter = 0;
  while ((!has_trip_count || iter < trip_count) && keep_going) {
    body_in[0] = Datum(Tensor::scalar<int64_t>(DataType::kInt64, iter));
    body_in[1] = Datum(Tensor::scalar<bool>(DataType::kBool, keep_going));
    for (size_t j = 0; j < arity.carried; ++j) body_in[2 + j] = std::move(carried[j]);
    auto out = ctx.runner()->run(*body, body_in);
    if (!out.is_ok()) return run_error(ctx, fmt::format("body (iteration {})", iter), out.status());
    // Without a cond input the body's cond_out is ignored (ONNX's "for loop" form).
    if (has_cond) {
      KILN_ASSIGN_OR_RETURN(keep_going, read_condition((*out)[0], node, "body output 0 (cond)"));
    }
    for (size_t j = 0; j < arity.carried; ++j) carried[j] = std::move((*out)[1 + j]);
    for (size_t k = 0; k < arity.scans; ++k) {
      const Datum& item = (*out)[1 + arity.carried + k];
      std::string what = fmt::format("scan output {} (body output {})", k, 1 + arity.carried + k);
      KILN_RETURN_IF_ERROR(check_scan_item(item, scans[k].empty() ? nullptr : &scans[k].front(), node, what));
      scans[k].push_back(item.tensor());
    }
    ++iter;
  }

  for (size_t j = 0; j < arity.carried; ++j) {
    if (ctx.wants_output(j)) ctx.set_output(j, std::move(carried[j]));
  }
  for (size_t k = 0; k < arity.scans; ++k) {
    size_t o = arity.carried + k;
    if (!ctx.wants_output(o)) continue;
    if (scans[k].empty()) {
      // No iteration ran: an empty stack shaped after the body's static type.
      const ir::ValueType& type = body->outputs()[1 + o]->type();
      Dims dims;
      if (!static_dims(type, dims)) dims.clear();
      dims.insert(dims.begin(), 0);
      KILN_RETURN_IF_ERROR(ctx.allocate_output(o, static_dtype(type), dims));
      continue;
    }
    std::vector<int64_t> positions(scans[k].size());
    for (size_t i = 0; i < positions.size(); ++i) positions[i] = static_cast<int64_t>(i);
    auto stacked = stack_along_axis(scans[k], 0, positions);
    if (!stacked.is_ok()) return ctx.error(stacked.status());
    ctx.set_output(o, std::move(stacked).value());
  }
  return Status::ok();
}

Status loop_infer(InferContext& ctx) {
  const ir::Graph* body = ctx.node().attr_graph("body");
  if (body == nullptr) return Status::ok();
  size_t carried = ctx.num_inputs() > 2 ? ctx.num_inputs() - 2 : 0;
  if (body->inputs().size() != carried + 2 || body->outputs().size() < carried + 1) return Status::ok();
  for (size_t i = 0; i < ctx.num_outputs() && 1 + i < body->outputs().size(); ++i) {
    const ir::ValueType& from_body = body->outputs()[1 + i]->type();
    if (i < carried) {
      ctx.set_output_type(i, merge_value_types(ctx.input_type(2 + i), from_body));
    } else {
      ctx.set_output_type(i, scan_output_type(from_body, 0, -1));
    }
  }
  return Status::ok();
}

}  // namespace

void register_control_flow(Registry& r) {
  r.add({.name = "If", .domain = "", .since_version = 1, .min_inputs = 1, .max_inputs = 1, .min_outputs = 1,
         .max_outputs = -1, .kernel = if_kernel, .infer = if_infer});
  // M and cond are optional but positional, so no input is required by count.
  r.add({.name = "Loop", .domain = "", .since_version = 1, .min_inputs = 0, .max_inputs = -1, .min_outputs = 0,
         .max_outputs = -1, .kernel = loop_kernel, .infer = loop_infer});
  register_scan(r);
}

}  // namespace kiln::ops
