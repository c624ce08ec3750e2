// kiln inspect: describes a model: opset imports, inputs and outputs with
// their types and shapes, initializers, node count and an op histogram;
// --json writes the same facts as one JSON object.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "commands.h"
#include "core/error.h"
#include "ir/graph.h"
#include "onnx/importer.h"
#include "plan/plan_file.h"
#include "plan/profile.h"
#include "plan_report.h"

namespace kiln::cli {
namespace {

struct InspectArgs {
  std::string model;
  bool json = false;
};

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += fmt::format("\\u{:04x}", static_cast<int>(c));
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}


// The shape of a tensor (or of the tensor in a sequence/optional) as JSON:
// ints, symbol strings and null for unknown dims; null for an unknown rank.
std::string json_shape(const ir::ValueType& t) {
  const ir::ValueType* v = &t;
  while (v->elem && v->kind != ir::ValueType::Kind::kTensor) v = v->elem.get();
  if (v->kind != ir::ValueType::Kind::kTensor || !v->shape.rank_known()) return "null";
  std::vector<std::string> dims;
  for (const Dim& d : v->shape.dims()) {
    dims.push_back(d.known() ? std::to_string(d.value) : !d.symbol.empty() ? json_string(d.symbol) : "null");
  }
  return fmt::format("[{}]", fmt::join(dims, ", "));
}

std::string text_shape(const ir::ValueType& t) {
  const ir::ValueType* v = &t;
  while (v->elem && v->kind != ir::ValueType::Kind::kTensor) v = v->elem.get();
  return v->kind == ir::ValueType::Kind::kTensor ? v->shape.to_string() : "";
}

struct Facts {
  size_t nodes = 0;
  size_t subgraph_nodes = 0;
  std::map<std::string, size_t> ops;  // "Conv", "ai.onnx.ml:TreeEnsemble"
};

void count_nodes(const ir::Graph& g, bool top, Facts& facts) {
  for (const auto& node : g.nodes()) {
    (top ? facts.nodes : facts.subgraph_nodes) += 1;
    std::string key = node->domain().empty() || node->domain() == "ai.onnx"
                          ? node->op_type()
                          : node->domain() + ":" + node->op_type();
    facts.ops[key] += 1;
    for (const ir::Graph* sub : node->subgraphs()) count_nodes(*sub, false, facts);
  }
}

std::string domain_name(const std::string& d) { return d.empty() ? "ai.onnx" : d; }

void print_text(const InspectArgs& args, const ir::Model& model, const Facts& facts, size_t initializers,
                int64_t parameters) {
  const ir::Graph& g = *model.graph;
  std::printf("model: %s\n", args.model.c_str());
  std::printf("ir_version: %lld", static_cast<long long>(model.ir_version));
  if (!model.producer_name.empty()) {
    std::printf("  producer: %s %s", model.producer_name.c_str(), model.producer_version.c_str());
  }
  std::printf("\nopset imports:");
  for (const auto& [domain, version] : g.opset_imports()) {
    std::printf(" %s %lld", domain_name(domain).c_str(), static_cast<long long>(version));
  }
  std::printf("\ninputs:\n");
  for (const ir::Value* v : g.inputs()) {
    std::printf("  %-24s %-22s %s%s\n", v->name().c_str(), v->type().ort_type_name().c_str(),
                text_shape(v->type()).c_str(), v->is_constant() ? "  (has a default)" : "");
  }
  std::printf("outputs:\n");
  for (const ir::Value* v : g.outputs()) {
    std::printf("  %-24s %-22s %s\n", v->name().c_str(), v->type().ort_type_name().c_str(), text_shape(v->type()).c_str());
  }
  std::printf("initializers: %zu (%lld elements)\n", initializers, static_cast<long long>(parameters));
  std::printf("nodes: %zu", facts.nodes);
  if (facts.subgraph_nodes > 0) std::printf(" (+%zu in subgraphs)", facts.subgraph_nodes);
  std::printf("\nops:\n");
  std::vector<std::pair<std::string, size_t>> ops(facts.ops.begin(), facts.ops.end());
  std::stable_sort(ops.begin(), ops.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  for (const auto& [op, count] : ops) std::printf("  %-28s %zu\n", op.c_str(), count);
}

std::string json_io(const ir::Value* v) {
  return fmt::format("{{\"name\": {}, \"type\": {}, \"shape\": {}, \"has_default\": {}}}", json_string(v->name()),
                     json_string(v->type().ort_type_name()), json_shape(v->type()), v->is_constant() ? "true" : "false");
}

void print_json(const InspectArgs& args, const ir::Model& model, const Facts& facts, size_t initializers,
                int64_t parameters) {
  const ir::Graph& g = *model.graph;
  std::vector<std::string> opsets;
  for (const auto& [domain, version] : g.opset_imports()) {
    opsets.push_back(fmt::format("{}: {}", json_string(domain_name(domain)), version));
  }
  std::vector<std::string> inputs;
  for (const ir::Value* v : g.inputs()) inputs.push_back(json_io(v));
  std::vector<std::string> outputs;
  for (const ir::Value* v : g.outputs()) outputs.push_back(json_io(v));
  std::vector<std::string> ops;
  for (const auto& [op, count] : facts.ops) ops.push_back(fmt::format("{}: {}", json_string(op), count));
  std::printf(
      "{\"model\": %s, \"ir_version\": %lld, \"producer_name\": %s, \"producer_version\": %s, "
      "\"opset_imports\": {%s}, \"inputs\": [%s], \"outputs\": [%s], \"initializers\": %zu, "
      "\"initializer_elements\": %lld, \"nodes\": %zu, \"subgraph_nodes\": %zu, \"op_histogram\": {%s}}\n",
      json_string(args.model).c_str(), static_cast<long long>(model.ir_version),
      json_string(model.producer_name).c_str(), json_string(model.producer_version).c_str(),
      fmt::format("{}", fmt::join(opsets, ", ")).c_str(), fmt::format("{}", fmt::join(inputs, ", ")).c_str(),
      fmt::format("{}", fmt::join(outputs, ", ")).c_str(), initializers, static_cast<long long>(parameters),
      facts.nodes, facts.subgraph_nodes, fmt::format("{}", fmt::join(ops, ", ")).c_str());
}

// A plan file: what it was built for, its layers and memory.
Status inspect_plan(const InspectArgs& args) {
  plan::LoadOptions lo;
  lo.check_target = false;  // describing a plan built elsewhere is fine
  KILN_ASSIGN_OR_RETURN(plan::Plan p, plan::load_plan(args.model, lo));
  if (args.json) {
    std::printf("%s\n", plan_json(p, args.model).c_str());
    return Status::ok();
  }
  std::printf("plan: %s\nformat: %u  kiln: %s  precision: %s  threads: %d\n", args.model.c_str(),
              plan::kFormatVersion, p.kiln_version.c_str(), p.precision.c_str(), p.threads);
  std::printf("target: %s [%s]; needs [%s]\n", p.target.arch.c_str(),
              fmt::format("{}", fmt::join(p.target.isa, " ")).c_str(),
              fmt::format("{}", fmt::join(p.target.required, " ")).c_str());
  for (const auto& prof : p.profiles) {
    std::printf("profile %s: min %s opt %s max %s\n", prof.name.c_str(), plan::format_dims(prof.min).c_str(),
                plan::format_dims(prof.opt).c_str(), plan::format_dims(prof.max).c_str());
  }
  std::printf("onnx nodes: %lld  layers: %zu\n", static_cast<long long>(p.onnx_nodes), p.layers.size());
  print_layers(layer_rows(p));
  print_memory(p);
  return Status::ok();
}

Status inspect(const InspectArgs& args) {
  if (plan::is_plan_file(args.model)) return inspect_plan(args);
  // Inspecting needs no kernels: keep operators Kiln does not know.
  onnx::ImportOptions options;
  options.allow_unknown_ops = true;
  auto imported = onnx::import_model_file(args.model, options);
  if (!imported.is_ok()) return imported.status();
  const ir::Model& model = imported.value();
  if (!model.graph) return invalid_argument("{}: the model has no graph", args.model);
  Facts facts;
  count_nodes(*model.graph, true, facts);
  size_t initializers = 0;
  int64_t parameters = 0;
  auto count = [&](const ir::Value* v) {
    ++initializers;
    parameters += v->constant().numel();
  };
  for (const ir::Value* v : model.graph->constants()) count(v);
  for (const ir::Value* v : model.graph->inputs()) {
    if (v->is_constant()) count(v);
  }
  if (args.json) {
    print_json(args, model, facts, initializers, parameters);
  } else {
    print_text(args, model, facts, initializers, parameters);
  }
  return Status::ok();
}

}  // namespace

void add_inspect_command(CLI::App& app, int* exit_code) {
  auto args = std::make_shared<InspectArgs>();
  CLI::App* sub = app.add_subcommand("inspect", "Describe a model (opsets, inputs, outputs, nodes, ops) or a plan (target, layers, tactics, memory)");
  sub->add_option("model", args->model, "the .onnx model or .plan file")->required();
  sub->add_flag("--json", args->json, "print one JSON object instead of text");
  sub->footer("");
  sub->callback([args, exit_code] {
    try {
      Status s = inspect(*args);
      if (!s.is_ok()) {
        std::fprintf(stderr, "kiln inspect: error: %s\n", s.message().c_str());
        *exit_code = 1;
      }
    } catch (const std::exception& e) {
      std::fprintf(stderr, "kiln inspect: internal error: %s\n", e.what());
      *exit_code = 1;
    }
  });
}

}  // namespace kiln::cli
