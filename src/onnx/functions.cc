// Inlining of model-local functions, and the proto-level scope analysis
// (defined and free names) the importer also uses to order nodes.
#include "onnx/functions.h"

#include <unordered_set>

#include "core/error.h"
#include "ops/registry.h"

namespace kiln::onnx {
namespace {

template <class Fn>
void for_each_subgraph(const pb::NodeProto& node, Fn&& fn) {
  for (const auto& a : node.attribute()) {
    if (a.has_g()) fn(a.g());
    for (const auto& g : a.graphs()) fn(g);
  }
}

// Every name mentioned anywhere in `graph` and the graphs nested in it.
void collect_names(const pb::GraphProto& graph, std::unordered_set<std::string>& names) {
  for (const auto& v : graph.input()) names.insert(v.name());
  for (const auto& v : graph.output()) names.insert(v.name());
  for (const auto& t : graph.initializer()) names.insert(t.name());
  for (const auto& node : graph.node()) {
    names.insert(node.input().begin(), node.input().end());
    names.insert(node.output().begin(), node.output().end());
    for_each_subgraph(node, [&](const pb::GraphProto& g) { collect_names(g, names); });
  }
}

// What a call binds: the caller's attributes and the function's defaults.
struct Binding {
  const pb::NodeProto* call;
  const pb::FunctionProto* fn;

  const pb::AttributeProto* lookup(const std::string& name) const {
    for (const auto& a : call->attribute()) {
      if (a.name() == name) return &a;
    }
    for (const auto& a : fn->attribute_proto()) {
      if (a.name() == name) return &a;
    }
    return nullptr;
  }
};

using RenameMap = std::map<std::string, std::string>;

Status bind_node(pb::NodeProto& node, const Binding& binding, const RenameMap& rename,
                 const std::set<std::string>& shadowed);

// Renames the names `graph` reads from the function's scope, and binds the
// attribute references of its nodes. Names the graph (or an enclosing
// subgraph) defines itself shadow the function's.
Status bind_subgraph(pb::GraphProto& graph, const Binding& binding, const RenameMap& rename,
                     std::set<std::string> shadowed) {
  for (const auto& name : defined_names(graph)) shadowed.insert(name);
  auto map_name = [&](std::string* name) {
    if (shadowed.count(*name)) return;
    auto it = rename.find(*name);
    if (it != rename.end()) *name = it->second;
  };
  for (auto& node : *graph.mutable_node()) {
    for (auto& in : *node.mutable_input()) map_name(&in);
    KILN_RETURN_IF_ERROR(bind_node(node, binding, rename, shadowed));
  }
  for (auto& out : *graph.mutable_output()) map_name(out.mutable_name());
  return Status::ok();
}

// Replaces attributes with ref_attr_name by the caller's (or the default)
// value, drops those bound to nothing, and recurses into subgraphs.
Status bind_node(pb::NodeProto& node, const Binding& binding, const RenameMap& rename,
                 const std::set<std::string>& shadowed) {
  google::protobuf::RepeatedPtrField<pb::AttributeProto> bound;
  for (auto& a : *node.mutable_attribute()) {
    if (!a.ref_attr_name().empty()) {
      const pb::AttributeProto* value = binding.lookup(a.ref_attr_name());
      if (value == nullptr) continue;  // optional attribute the caller did not set
      if (!value->ref_attr_name().empty()) {
        return internal_error("function '{}': attribute '{}' is bound to an unbound reference", binding.fn->name(),
                              a.name());
      }
      pb::AttributeProto* copy = bound.Add();
      *copy = *value;
      copy->set_name(a.name());
      continue;
    }
    pb::AttributeProto* copy = bound.Add();
    *copy = std::move(a);
    if (copy->has_g()) KILN_RETURN_IF_ERROR(bind_subgraph(*copy->mutable_g(), binding, rename, shadowed));
    for (auto& g : *copy->mutable_graphs()) KILN_RETURN_IF_ERROR(bind_subgraph(g, binding, rename, shadowed));
  }
  *node.mutable_attribute() = std::move(bound);
  return Status::ok();
}

class Inliner {
 public:
  Inliner(const pb::GraphProto& graph, const FunctionLibrary& library, int64_t& budget, InlinedGraph& out)
      : library_(library), budget_(budget), initial_budget_(budget), out_(out) {
    collect_names(graph, names_);
  }

  // Emits `node` (named `name`), expanding it if it calls a local function.
  Status emit(const pb::NodeProto& node, std::string name, int64_t opset) {
    const pb::FunctionProto* fn = library_.find(node.domain(), node.op_type(), node.overload());
    if (fn == nullptr) {
      out_.nodes.push_back({&node, std::move(name), opset});
      return Status::ok();
    }
    for (const pb::FunctionProto* active : active_) {
      if (active == fn) {
        return invalid_argument("node '{}' ({}): local function '{}' calls itself recursively", name,
                                node.op_type(), fn->name());
      }
    }
    // Refuse a call whose full expansion exceeds the budget before copying anything.
    KILN_ASSIGN_OR_RETURN(int64_t size, expanded_size(fn, name, node.op_type(), 0));
    if (size > budget_) {
      return resource_exhausted("node '{}' ({}): inlining local function '{}' creates {} nodes, more than the {} "
                                "allowed for this model (nested calls multiply)", name, node.op_type(), fn->name(),
                                size >= kSaturated ? std::string("billions of") : std::to_string(size), budget_);
    }
    active_.push_back(fn);
    Status s = expand(node, name, *fn);
    active_.pop_back();
    return s;
  }

 private:
  static constexpr int64_t kSaturated = int64_t{1} << 40;
  // Calls nested deeper than this are refused (each level is a native stack frame).
  static constexpr int kMaxCallDepth = 64;

  // Nodes a call of `fn` expands to, counting nested calls (saturating at
  // kSaturated); fails on recursion.
  Result<int64_t> expanded_size(const pb::FunctionProto* fn, const std::string& call, const std::string& op,
                                int depth) {
    if (depth > kMaxCallDepth) {
      return unimplemented("node '{}' ({}): local functions nest more than {} calls deep", call, op, kMaxCallDepth);
    }
    if (auto it = sizes_.find(fn); it != sizes_.end()) {
      if (it->second < 0) {
        return invalid_argument("node '{}' ({}): local function '{}' calls itself recursively", call, op, fn->name());
      }
      return it->second;
    }
    sizes_[fn] = -1;  // in progress
    int64_t total = 0;
    for (const auto& node : fn->node()) {
      const pb::FunctionProto* callee = library_.find(node.domain(), node.op_type(), node.overload());
      int64_t n = 1;
      if (callee != nullptr) {
        KILN_ASSIGN_OR_RETURN(n, expanded_size(callee, call, op, depth + 1));
      }
      total = std::min(kSaturated, total + n);
    }
    sizes_[fn] = total;
    return total;
  }

  // A name not used anywhere in the graph yet.
  std::string fresh(const std::string& base) {
    std::string name = base;
    for (int64_t k = 1; names_.count(name); ++k) name = fmt::format("{}_{}", base, k);
    names_.insert(name);
    return name;
  }

  Status expand(const pb::NodeProto& call, const std::string& call_name, const pb::FunctionProto& fn) {
    const std::string what = fmt::format("node '{}' ({}): function '{}'", call_name, call.op_type(), fn.name());
    if (call.input_size() > fn.input_size() || call.output_size() > fn.output_size()) {
      return invalid_argument("{} takes {} inputs and {} outputs; the call has {} and {}", what, fn.input_size(),
                              fn.output_size(), call.input_size(), call.output_size());
    }
    // Formal parameters map to the caller's names (an omitted one to "");
    // values the body defines get fresh names.
    RenameMap rename;
    for (int i = 0; i < fn.input_size(); ++i) rename[fn.input(i)] = i < call.input_size() ? call.input(i) : "";
    const std::set<std::string> formal_inputs(fn.input().begin(), fn.input().end());
    std::set<std::string> produced;
    for (const auto& node : fn.node()) {
      for (const auto& out : node.output()) {
        if (out.empty()) continue;
        if (formal_inputs.count(out)) {
          return invalid_argument("{}: a node of the body redefines the function input '{}'", what, out);
        }
        produced.insert(out);
      }
    }
    auto caller_output = [&](int i) {
      const bool given = i < call.output_size() && !call.output(i).empty();
      return given ? call.output(i) : fresh(call_name + "/" + fn.output(i));
    };
    // Outputs the body produces take the caller's names; internal values get
    // fresh ones. An output that is a formal input passes the caller's value
    // through (an Identity node below).
    std::vector<std::pair<std::string, std::string>> passthrough;  // (caller's input, caller's output)
    for (int i = 0; i < fn.output_size(); ++i) {
      const std::string& out = fn.output(i);
      if (produced.count(out)) {
        if (!rename.count(out)) rename[out] = caller_output(i);
      } else if (formal_inputs.count(out)) {
        passthrough.emplace_back(rename[out], caller_output(i));
      } else {
        return invalid_argument("{}: the body never produces output '{}'", what, out);
      }
    }
    for (const auto& out : produced) {
      if (!rename.count(out)) rename[out] = fresh(call_name + "/" + out);
    }
    std::map<std::string, int64_t> fn_opsets;
    for (const auto& o : fn.opset_import()) fn_opsets[std::string(ops::canonical_domain(o.domain()))] = o.version();

    const Binding binding{&call, &fn};
    for (int j = 0; j < fn.node_size(); ++j) {
      if (--budget_ < 0) {
        return resource_exhausted("{}: inlining local functions creates too many nodes (nested calls multiply; the "
                                  "limit for this model is {})", what, initial_budget_);
      }
      pb::NodeProto& node = out_.storage.emplace_back(fn.node(j));
      for (auto& in : *node.mutable_input()) {
        if (in.empty()) continue;
        auto it = rename.find(in);
        if (it == rename.end()) {
          return invalid_argument("{}: body node '{}' reads '{}', which the function does not define", what,
                                  fn.node(j).name(), in);
        }
        in = it->second;
      }
      for (auto& out : *node.mutable_output()) {
        if (!out.empty()) out = rename[out];
      }
      KILN_RETURN_IF_ERROR(bind_node(node, binding, rename, {}));
      std::string inner = fn.node(j).name().empty() ? fmt::format("{}_{}", node.op_type(), j) : fn.node(j).name();
      node.set_name(call_name + "/" + inner);
      auto it = fn_opsets.find(std::string(ops::canonical_domain(node.domain())));
      KILN_RETURN_IF_ERROR(emit(node, node.name(), it == fn_opsets.end() ? 0 : it->second));
    }
    for (size_t i = 0; i < passthrough.size(); ++i) {
      pb::NodeProto& id = out_.storage.emplace_back();
      id.set_op_type("Identity");
      id.add_input(passthrough[i].first);
      id.add_output(passthrough[i].second);
      id.set_name(fmt::format("{}/passthrough_{}", call_name, i));
      out_.nodes.push_back({&id, id.name(), 0});
    }
    for (const auto& vi : fn.value_info()) {
      auto it = rename.find(vi.name());
      if (it == rename.end() || it->second.empty()) continue;
      pb::ValueInfoProto& copy = out_.value_info.emplace_back(vi);
      copy.set_name(it->second);
    }
    return Status::ok();
  }

  const FunctionLibrary& library_;
  int64_t& budget_;
  const int64_t initial_budget_;
  InlinedGraph& out_;
  std::unordered_set<std::string> names_;
  std::vector<const pb::FunctionProto*> active_;
  std::map<const pb::FunctionProto*, int64_t> sizes_;  // expanded sizes; -1 while being computed
};

}  // namespace

std::set<std::string> defined_names(const pb::GraphProto& graph) {
  std::set<std::string> names;
  for (const auto& v : graph.input()) names.insert(v.name());
  for (const auto& t : graph.initializer()) names.insert(t.name());
  for (const auto& s : graph.sparse_initializer()) names.insert(s.values().name());
  for (const auto& node : graph.node()) names.insert(node.output().begin(), node.output().end());
  names.erase("");
  return names;
}

std::set<std::string> free_names(const pb::GraphProto& graph) {
  const std::set<std::string> defined = defined_names(graph);
  std::set<std::string> free;
  auto use = [&](const std::string& name) {
    if (!name.empty() && !defined.count(name)) free.insert(name);
  };
  for (const auto& node : graph.node()) {
    for (const auto& in : node.input()) use(in);
    for_each_subgraph(node, [&](const pb::GraphProto& g) {
      for (const auto& name : free_names(g)) use(name);
    });
  }
  for (const auto& out : graph.output()) use(out.name());
  return free;
}

Status FunctionLibrary::add(const pb::FunctionProto& fn) {
  if (fn.name().empty()) return invalid_argument("a local function has no name");
  auto key = std::make_tuple(std::string(ops::canonical_domain(fn.domain())), fn.name(), fn.overload());
  if (!functions_.emplace(key, &fn).second) {
    return invalid_argument("local function '{}' (domain '{}') is defined twice", fn.name(), fn.domain());
  }
  return Status::ok();
}

const pb::FunctionProto* FunctionLibrary::find(const std::string& domain, const std::string& op_type,
                                               const std::string& overload) const {
  auto it = functions_.find(std::make_tuple(std::string(ops::canonical_domain(domain)), op_type, overload));
  return it == functions_.end() ? nullptr : it->second;
}

Status inline_functions(const pb::GraphProto& graph, const FunctionLibrary& library, int64_t& budget,
                        InlinedGraph& out) {
  if (library.empty()) {
    for (int i = 0; i < graph.node_size(); ++i) {
      const auto& node = graph.node(i);
      out.nodes.push_back({&node, node.name().empty() ? fmt::format("{}_{}", node.op_type(), i) : node.name(), 0});
    }
    return Status::ok();
  }
  Inliner inliner(graph, library, budget, out);
  for (int i = 0; i < graph.node_size(); ++i) {
    const auto& node = graph.node(i);
    KILN_RETURN_IF_ERROR(
        inliner.emit(node, node.name().empty() ? fmt::format("{}_{}", node.op_type(), i) : node.name(), 0));
  }
  return Status::ok();
}

}  // namespace kiln::onnx
