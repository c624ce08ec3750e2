// SequenceMap: runs a body graph once per element of a sequence (part of the
// sequence family, see sequence.cc).
//
// Inputs: input_sequence, then additional inputs that are tensors (passed
// whole to every iteration) or sequences (element i passed to iteration i;
// they must be as long as input_sequence). The body takes one input per node
// input and returns M tensors; the node returns M sequences, output k holding
// the body's output k of every iteration.
#include "core/error.h"
#include "ops/op_util.h"
#include "ops/registry.h"
#include "ops/sequence_internal.h"

namespace kiln::ops {
namespace {

// The element type output k gets when no iteration ran: from the node's
// declared type, else the body's output type; undefined when neither knows.
DataType empty_output_dtype(const ir::Node& node, const ir::Graph& body, size_t k) {
  if (const ir::Value* v = node.output(k)) {
    ir::ValueType elem = sequence_elem(v->type());
    if (elem.is_tensor() && elem.dtype != DataType::kUndefined) return elem.dtype;
  }
  const ir::ValueType& t = body.outputs()[k]->type();
  return t.is_tensor() ? t.dtype : DataType::kUndefined;
}

Status sequence_map_kernel(KernelContext& ctx) {
  const ir::Node& node = ctx.node();
  const ir::Graph* body = node.attr_graph("body");
  KILN_CHECK_ARG(body != nullptr, "{}: graph attribute 'body' is missing", node.describe());
  KILN_CHECK_ARG(body->inputs().size() == ctx.num_inputs(),
                 "{}: body takes {} inputs but the node has {}; they must match one to one", node.describe(),
                 body->inputs().size(), ctx.num_inputs());
  KILN_CHECK_ARG(body->outputs().size() == ctx.num_outputs(),
                 "{}: body returns {} outputs but the node has {}; they must match one to one", node.describe(),
                 body->outputs().size(), ctx.num_outputs());
  if (ctx.runner() == nullptr) return internal_error("{}: no subgraph runner", node.describe());
  KILN_ASSIGN_OR_RETURN(const Datum* seq, sequence_input(ctx, 0, "input_sequence"));
  const size_t n = seq->items().size();
  for (size_t j = 1; j < ctx.num_inputs(); ++j) {
    KILN_CHECK_ARG(ctx.has_input(j), "{}: additional input {} is missing", node.describe(), j);
    const Datum& d = ctx.datum(j);
    KILN_CHECK_ARG(d.is_tensor() || d.is_sequence(), "{}: additional input {} must be a tensor or a sequence",
                   node.describe(), j);
    KILN_CHECK_ARG(!d.is_sequence() || d.items().size() == n,
                   "{}: additional input {} is a sequence of {} tensors but input_sequence has {}", node.describe(),
                   j, d.items().size(), n);
  }

  std::vector<std::vector<Tensor>> results(ctx.num_outputs());
  std::vector<Datum> body_in(ctx.num_inputs());
  for (size_t i = 0; i < n; ++i) {
    body_in[0] = Datum(seq->items()[i]);
    for (size_t j = 1; j < ctx.num_inputs(); ++j) {
      const Datum& d = ctx.datum(j);
      body_in[j] = d.is_sequence() ? Datum(d.items()[i]) : d;
    }
    auto out = ctx.runner()->run(*body, body_in);
    if (!out.is_ok()) return ctx.error(out.status().with_context(fmt::format("body (element {})", i)));
    for (size_t k = 0; k < results.size(); ++k) {
      const Datum& r = (*out)[k];
      KILN_CHECK_ARG(r.is_tensor(), "{}: body output {} must be a tensor (element {})", node.describe(), k, i);
      KILN_CHECK_ARG(results[k].empty() || results[k].front().dtype() == r.tensor().dtype(),
                     "{}: body output {} has type {} for element {} but {} for element 0", node.describe(), k,
                     data_type_name(r.tensor().dtype()), i, data_type_name(results[k].front().dtype()));
      results[k].push_back(r.tensor());
    }
  }
  for (size_t k = 0; k < results.size(); ++k) {
    DataType dtype = items_dtype(results[k], empty_output_dtype(node, *body, k));
    ctx.set_output(k, Datum::sequence(std::move(results[k]), dtype));
  }
  return Status::ok();
}

Status sequence_map_infer(InferContext& ctx) {
  const ir::Graph* body = ctx.node().attr_graph("body");
  if (body == nullptr) return Status::ok();
  for (size_t k = 0; k < ctx.num_outputs() && k < body->outputs().size(); ++k) {
    const ir::ValueType& t = body->outputs()[k]->type();
    // Each body output's shape may differ from one element to the next.
    ctx.set_output_type(k, sequence_type(t.is_tensor() ? ir::ValueType::tensor(t.dtype) : ir::ValueType{}));
  }
  return Status::ok();
}

}  // namespace

void register_sequence_map(Registry& r) {
  r.add({.name = "SequenceMap", .domain = "", .since_version = 17, .min_inputs = 1, .max_inputs = -1,
         .min_outputs = 1, .max_outputs = -1, .kernel = sequence_map_kernel, .infer = sequence_map_infer});
}

}  // namespace kiln::ops
