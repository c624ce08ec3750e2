#include "ops/shape_inference.h"

#include "core/error.h"
#include "core/logging.h"
#include "ops/registry.h"

namespace kiln::ops {
namespace {

using Kind = ir::ValueType::Kind;

// One dim from a declaration and from inference; conflict when both are known and differ.
Dim merge_dim(const Dim& declared, const Dim& inferred, bool& conflict) {
  if (declared.known() && inferred.known()) {
    if (declared.value != inferred.value) conflict = true;
    return declared;
  }
  if (inferred.known()) return inferred;
  if (declared.known() || !declared.symbol.empty()) return declared;
  return inferred;
}

Shape merge_shapes(const Shape& declared, const Shape& inferred, bool& conflict) {
  if (!inferred.rank_known()) return declared;
  if (!declared.rank_known()) return inferred;
  if (declared.rank() != inferred.rank()) {
    conflict = true;
    return declared;
  }
  std::vector<Dim> dims;
  for (int64_t i = 0; i < declared.rank(); ++i) dims.push_back(merge_dim(declared[i], inferred[i], conflict));
  return Shape(std::move(dims));
}

// The type of the value `name` in the graphs enclosing `g`, or nullptr.
const ir::ValueType* outer_type(const ir::Graph& g, const std::string& name) {
  for (const ir::Graph* p = g.parent(); p != nullptr; p = p->parent()) {
    if (const ir::Value* v = p->find_value(name)) return &v->type();
  }
  return nullptr;
}

// Prefixes the node's description unless the message names it already.
Status name_node(Status s, const ir::Node& node) {
  if (s.message().find(node.describe()) != std::string::npos) return s;
  return std::move(s).with_context(node.describe());
}

}  // namespace

ir::ValueType merge_types(const ir::ValueType& declared, const ir::ValueType& inferred, bool& conflict) {
  if (inferred.kind == Kind::kUnknown) return declared;
  if (declared.kind == Kind::kUnknown) return inferred;
  if (declared.kind != inferred.kind) {
    conflict = true;
    return declared;
  }
  ir::ValueType out = declared;
  if (declared.dtype == DataType::kUndefined) {
    out.dtype = inferred.dtype;
  } else if (inferred.dtype != DataType::kUndefined && inferred.dtype != declared.dtype) {
    conflict = true;
    return declared;
  }
  if (declared.kind == Kind::kTensor || declared.kind == Kind::kSparseTensor) {
    bool shape_conflict = false;
    Shape shape = merge_shapes(declared.shape, inferred.shape, shape_conflict);
    if (shape_conflict) {
      conflict = true;
      return declared;
    }
    out.shape = std::move(shape);
    return out;
  }
  // Sequences, optionals and maps: merge what they hold.
  if (!declared.elem) {
    out.elem = inferred.elem;
  } else if (inferred.elem) {
    bool inner_conflict = false;
    ir::ValueType elem = merge_types(*declared.elem, *inferred.elem, inner_conflict);
    if (inner_conflict) {
      conflict = true;
      return declared;
    }
    out.elem = std::make_shared<const ir::ValueType>(std::move(elem));
  }
  return out;
}

Status infer_shapes(ir::Graph& g) {
  const Registry& registry = Registry::global();
  for (const auto& owned : g.nodes()) {
    ir::Node& node = *owned;
    for (ir::Graph* sub : node.subgraphs()) {
      for (ir::Value* cap : sub->captures()) {
        const ir::ValueType* t = outer_type(*sub, cap->name());
        if (t != nullptr && t->kind != Kind::kUnknown) cap->set_type(*t);
      }
      Status s = infer_shapes(*sub);
      if (!s.is_ok()) return name_node(std::move(s), node);
    }
    const OpDef* def = registry.find(node.domain(), node.op_type(), node.opset());
    if (def == nullptr || def->infer == nullptr) continue;
    KILN_RETURN_IF_ERROR(check_arity(*def, node));
    std::vector<ir::ValueType> declared;
    declared.reserve(node.num_outputs());
    for (const ir::Value* out : node.outputs()) declared.push_back(out ? out->type() : ir::ValueType{});
    InferContext ctx(node);
    Status s = def->infer(ctx);
    if (!s.is_ok()) return name_node(std::move(s), node);
    for (size_t i = 0; i < node.num_outputs(); ++i) {
      ir::Value* out = node.output(i);
      if (out == nullptr) continue;
      bool conflict = false;
      ir::ValueType merged = merge_types(declared[i], out->type(), conflict);
      if (conflict) {
        KILN_LOG_DEBUG("{}: output '{}' is declared {} but inferred {}; keeping the declared type", node.describe(),
                       out->name(), declared[i].to_string(), out->type().to_string());
      }
      out->set_type(std::move(merged));
    }
  }
  return Status::ok();
}

}  // namespace kiln::ops
