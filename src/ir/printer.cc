// Graph::to_string: a readable listing, one line per node, for --verbose and tests.
#include <fmt/format.h>

#include "ir/graph.h"

namespace kiln::ir {
namespace {

std::string value_ref(const Value* v) { return v ? "%" + v->name() : std::string("_"); }

std::string attribute_to_string(const Attribute& a) {
  switch (a.kind) {
    case Attribute::Kind::kInt: return std::to_string(a.i);
    case Attribute::Kind::kFloat: return fmt::format("{}", a.f);
    case Attribute::Kind::kString: return fmt::format("\"{}\"", a.s.size() > 40 ? a.s.substr(0, 40) + "..." : a.s);
    case Attribute::Kind::kInts: return fmt::format("[{}]", fmt::join(a.ints, ","));
    case Attribute::Kind::kFloats: return fmt::format("[{}]", fmt::join(a.floats, ","));
    case Attribute::Kind::kTensor: return a.t.debug_string();
    case Attribute::Kind::kGraph: return fmt::format("graph({})", a.g ? a.g->name() : "");
    default: return attribute_kind_name(a.kind);
  }
}

void print_graph(const Graph& g, int indent, std::string& out) {
  std::string pad(static_cast<size_t>(indent), ' ');
  out += fmt::format("{}graph {} (\n", pad, g.name());
  for (const Value* v : g.inputs()) out += fmt::format("{}  in  %{}: {}\n", pad, v->name(), v->type().to_string());
  for (const Value* v : g.captures()) out += fmt::format("{}  outer %{}\n", pad, v->name());
  for (const Value* v : g.constants()) {
    out += fmt::format("{}  const %{}: {}\n", pad, v->name(), v->constant().debug_string());
  }
  out += pad + ") {\n";
  for (const auto& n : g.nodes()) {
    std::vector<std::string> outs, ins, attrs;
    for (const Value* v : n->outputs()) outs.push_back(value_ref(v));
    for (const Value* v : n->inputs()) ins.push_back(value_ref(v));
    for (const auto& [name, a] : n->attributes()) attrs.push_back(name + "=" + attribute_to_string(a));
    std::string op = n->domain().empty() ? n->op_type() : n->domain() + "." + n->op_type();
    out += fmt::format("{}  {} = {}({}){}{}  # {}\n", pad, fmt::join(outs, ", "), op, fmt::join(ins, ", "),
                       attrs.empty() ? "" : " ", attrs.empty() ? "" : "{" + fmt::format("{}", fmt::join(attrs, ", ")) + "}",
                       n->name());
    for (const Graph* sub : n->subgraphs()) print_graph(*sub, indent + 4, out);
  }
  std::vector<std::string> outs;
  for (const Value* v : g.outputs()) outs.push_back(value_ref(v) + ": " + v->type().to_string());
  out += fmt::format("{}  return {}\n{}}}\n", pad, fmt::join(outs, ", "), pad);
}

}  // namespace

std::string Graph::to_string() const {
  std::string out;
  print_graph(*this, 0, out);
  return out;
}

}  // namespace kiln::ir
