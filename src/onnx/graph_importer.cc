#include "onnx/graph_importer.h"

#include <algorithm>
#include <functional>
#include <queue>

#include "core/error.h"
#include "ops/registry.h"

namespace kiln::onnx {

std::string describe_node(const NodeItem& item) {
  const auto domain = ops::canonical_domain(item.node->domain());
  const std::string& op = item.node->op_type();
  return fmt::format("node '{}' ({})", item.name, domain.empty() ? op : fmt::format("{}.{}", domain, op));
}

Status GraphImporter::import(const pb::GraphProto& proto) {
  KILN_RETURN_IF_ERROR(inline_functions(proto, ctx_.functions, ctx_.inline_budget, nodes_));
  KILN_RETURN_IF_ERROR(declare_inputs(proto));
  KILN_RETURN_IF_ERROR(declare_initializers(proto));
  KILN_RETURN_IF_ERROR(declare_node_outputs());
  KILN_RETURN_IF_ERROR(apply_declared_types(proto));
  KILN_ASSIGN_OR_RETURN(std::vector<size_t> order, topological_order());
  for (size_t i : order) KILN_RETURN_IF_ERROR(build_node(nodes_.nodes[i]));
  KILN_RETURN_IF_ERROR(set_outputs(proto));
  // The nodes were added in topological order already; this only confirms it.
  return graph_.topo_sort();
}

Result<ir::Value*> GraphImporter::resolve(const std::string& name) {
  if (ir::Value* v = graph_.find_value(name)) return v;
  if (parent_ == nullptr) return static_cast<ir::Value*>(nullptr);
  KILN_ASSIGN_OR_RETURN(ir::Value * outer, parent_->resolve(name));
  if (outer == nullptr) return static_cast<ir::Value*>(nullptr);
  return graph_.add_capture(name, outer->type());
}

Status GraphImporter::declare_inputs(const pb::GraphProto& proto) {
  for (int i = 0; i < proto.input_size(); ++i) {
    const auto& in = proto.input(i);
    if (in.name().empty()) return invalid_argument("graph '{}': input {} has an empty name", graph_.name(), i);
    ir::ValueType type;
    if (in.has_type()) {
      auto t = value_type_from_proto(in.type());
      if (!t.is_ok()) return t.status().with_context(fmt::format("graph input '{}'", in.name()));
      type = std::move(t).value();
    }
    if (graph_.find_value(in.name()) != nullptr) {
      return invalid_argument("graph '{}': input '{}' is listed twice", graph_.name(), in.name());
    }
    KILN_ASSIGN_OR_RETURN(ir::Value * v, graph_.add_value(in.name(), std::move(type)));
    graph_.add_input(v);
  }
  return Status::ok();
}

Status GraphImporter::declare_initializers(const pb::GraphProto& proto) {
  // An initializer that is also a graph input is that input's default value.
  auto add = [&](const std::string& name, Tensor t) -> Status {
    if (name.empty()) return invalid_argument("graph '{}': an initializer has an empty name", graph_.name());
    ir::Value* v = graph_.find_value(name);
    if (v == nullptr) return graph_.add_constant(name, std::move(t)).status();
    if (!v->is_graph_input() || v->is_constant()) {
      return invalid_argument("graph '{}': initializer '{}' is defined twice", graph_.name(), name);
    }
    if (v->type().kind == ir::ValueType::Kind::kUnknown) {
      v->set_type(ir::ValueType::tensor(t.dtype(), Shape::of(t.dims())));
    }
    v->set_constant(std::move(t));
    return Status::ok();
  };
  for (const auto& init : proto.initializer()) {
    KILN_ASSIGN_OR_RETURN(Tensor t, tensor_from_proto(init, ctx_.source, fmt::format("initializer '{}'", init.name())));
    KILN_RETURN_IF_ERROR(add(init.name(), std::move(t)));
  }
  for (const auto& sparse : proto.sparse_initializer()) {
    const std::string& name = sparse.values().name();
    KILN_ASSIGN_OR_RETURN(Tensor t,
                          sparse_tensor_from_proto(sparse, ctx_.source, fmt::format("sparse initializer '{}'", name)));
    KILN_RETURN_IF_ERROR(add(name, std::move(t)));
  }
  return Status::ok();
}

Status GraphImporter::declare_node_outputs() {
  for (size_t i = 0; i < nodes_.nodes.size(); ++i) {
    const NodeItem& item = nodes_.nodes[i];
    for (const auto& name : item.node->output()) {
      if (name.empty()) continue;
      if (ir::Value* existing = graph_.find_value(name)) {
        auto p = producer_.find(name);
        if (p != producer_.end()) {
          return invalid_argument("value '{}' is produced twice: by {} and by {}", name,
                                  describe_node(nodes_.nodes[p->second]), describe_node(item));
        }
        return invalid_argument("{}: output '{}' has the same name as {}", describe_node(item), name,
                                existing->is_graph_input() ? "a graph input" : "an initializer");
      }
      KILN_RETURN_IF_ERROR(graph_.add_value(name).status());
      producer_[name] = i;
    }
  }
  return Status::ok();
}

Status GraphImporter::apply_declared_types(const pb::GraphProto& proto) {
  // value_info and output declarations type the values nodes produce; graph
  // inputs keep their own declarations.
  auto apply = [&](const pb::ValueInfoProto& info, std::string_view kind) -> Status {
    if (!info.has_type()) return Status::ok();
    ir::Value* v = graph_.find_value(info.name());
    if (v == nullptr || v->is_graph_input() || v->is_constant()) return Status::ok();
    auto t = value_type_from_proto(info.type());
    if (!t.is_ok()) return t.status().with_context(fmt::format("{} '{}'", kind, info.name()));
    v->set_type(std::move(t).value());
    return Status::ok();
  };
  for (const auto& info : proto.value_info()) KILN_RETURN_IF_ERROR(apply(info, "value_info"));
  for (const auto& info : nodes_.value_info) KILN_RETURN_IF_ERROR(apply(info, "value_info"));
  for (const auto& info : proto.output()) KILN_RETURN_IF_ERROR(apply(info, "graph output"));
  return Status::ok();
}

Result<std::vector<size_t>> GraphImporter::topological_order() const {
  // Kahn's algorithm, taking the earliest ready node first so that a graph
  // already in order keeps its order. A node depends on the producers of its
  // inputs and of the outer values its subgraphs read.
  const size_t n = nodes_.nodes.size();
  std::vector<std::vector<size_t>> consumers(n);
  std::vector<size_t> pending(n, 0);
  for (size_t i = 0; i < n; ++i) {
    const pb::NodeProto& node = *nodes_.nodes[i].node;
    auto depend = [&](const std::string& name) {
      auto it = producer_.find(name);
      if (it == producer_.end()) return;
      consumers[it->second].push_back(i);
      ++pending[i];
    };
    for (const auto& in : node.input()) depend(in);
    for (const auto& a : node.attribute()) {
      if (a.has_g()) {
        for (const auto& name : free_names(a.g())) depend(name);
      }
      for (const auto& g : a.graphs()) {
        for (const auto& name : free_names(g)) depend(name);
      }
    }
  }
  std::priority_queue<size_t, std::vector<size_t>, std::greater<>> ready;
  for (size_t i = 0; i < n; ++i) {
    if (pending[i] == 0) ready.push(i);
  }
  std::vector<size_t> order;
  order.reserve(n);
  while (!ready.empty()) {
    size_t i = ready.top();
    ready.pop();
    order.push_back(i);
    for (size_t c : consumers[i]) {
      if (--pending[c] == 0) ready.push(c);
    }
  }
  if (order.size() != n) {
    for (size_t i = 0; i < n; ++i) {
      if (pending[i] != 0) {
        return invalid_argument("graph '{}' has a cycle through {}", graph_.name(), describe_node(nodes_.nodes[i]));
      }
    }
  }
  return order;
}

Result<std::shared_ptr<ir::Graph>> GraphImporter::import_subgraph(const pb::GraphProto& proto,
                                                                  const std::string& owner) {
  auto g = std::make_shared<ir::Graph>(proto.name().empty() ? owner : proto.name(), &graph_);
  GraphImporter child(ctx_, *g, this);
  KILN_RETURN_IF_ERROR(child.import(proto));
  return g;
}

Status GraphImporter::build_node(const NodeItem& item) {
  const pb::NodeProto& proto = *item.node;
  const std::string desc = describe_node(item);
  const std::string domain(ops::canonical_domain(proto.domain()));
  if (proto.op_type().empty()) return invalid_argument("{}: the node has no op_type", desc);
  if (!ctx_.options.allow_unknown_ops && !ops::Registry::global().knows(domain, proto.op_type())) {
    return unimplemented("{}: unknown operator '{}' (domain '{}')", desc, proto.op_type(), proto.domain());
  }
  int64_t opset = item.opset;
  if (opset == 0) {
    auto it = ctx_.opsets.find(domain);
    if (it == ctx_.opsets.end()) {
      return invalid_argument("{}: the model has no opset_import for domain '{}'", desc,
                              domain.empty() ? "ai.onnx" : domain);
    }
    opset = it->second;
  } else if (domain.empty() && (opset < kMinOpset || opset > kMaxOpset)) {
    return unimplemented("{}: its function imports unsupported opset {} (Kiln supports {} to {})", desc, opset,
                         kMinOpset, kMaxOpset);
  }

  std::vector<ir::Value*> inputs;
  inputs.reserve(static_cast<size_t>(proto.input_size()));
  for (const auto& name : proto.input()) {
    if (name.empty()) {
      inputs.push_back(nullptr);
      continue;
    }
    KILN_ASSIGN_OR_RETURN(ir::Value * v, resolve(name));
    if (v == nullptr) return invalid_argument("{}: input '{}' is not defined (missing initializer?)", desc, name);
    inputs.push_back(v);
  }
  std::vector<ir::Value*> outputs;
  outputs.reserve(static_cast<size_t>(proto.output_size()));
  for (const auto& name : proto.output()) outputs.push_back(name.empty() ? nullptr : graph_.find_value(name));

  ir::Node* node = graph_.add_node(proto.op_type(), std::move(inputs), std::move(outputs), item.name, domain);
  node->set_opset(opset);
  for (const auto& a : proto.attribute()) {
    if (node->has_attr(a.name())) return invalid_argument("{}: attribute '{}' is given twice", desc, a.name());
    auto import_graph = [&](const pb::GraphProto& g, const std::string& attr) -> Result<std::shared_ptr<ir::Graph>> {
      auto r = import_subgraph(g, fmt::format("{}/{}", item.name, attr));
      if (!r.is_ok()) return r.status().with_context(fmt::format("attribute '{}'", attr));
      return r;
    };
    auto attr = attribute_from_proto(a, ctx_.source, import_graph);
    if (!attr.is_ok()) return attr.status().with_context(desc);
    node->set_attr(std::move(attr).value());
  }
  return Status::ok();
}

Status GraphImporter::set_outputs(const pb::GraphProto& proto) {
  for (int i = 0; i < proto.output_size(); ++i) {
    const auto& out = proto.output(i);
    if (out.name().empty()) return invalid_argument("graph '{}': output {} has an empty name", graph_.name(), i);
    KILN_ASSIGN_OR_RETURN(ir::Value * v, resolve(out.name()));
    if (v == nullptr) return invalid_argument("graph '{}': output '{}' is not defined", graph_.name(), out.name());
    if (v->type().kind == ir::ValueType::Kind::kUnknown && out.has_type()) {
      auto t = value_type_from_proto(out.type());
      if (!t.is_ok()) return t.status().with_context(fmt::format("graph output '{}'", out.name()));
      v->set_type(std::move(t).value());
    }
    graph_.add_output(v);
  }
  return Status::ok();
}

}  // namespace kiln::onnx
