// Shared by `kiln build` and `kiln inspect model.plan`: a plan's layers and
// memory as text tables and as one RapidJSON document.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "plan/plan.h"

namespace kiln::cli {

struct LayerRow {
  std::string name;
  std::string op;                  // "Conv", "kiln:FusedConv"
  std::vector<std::string> fused;  // source node names ("fused_from"), else the node's own name
  std::string precision;
  std::string tactic;
  double time_ms = -1;
  int candidates = 0;
};

std::vector<LayerRow> layer_rows(const plan::Plan& plan);
// Op -> count over the top-level nodes of `g`.
std::map<std::string, int64_t> op_histogram(const ir::Graph& g);
std::string op_key(const ir::Node& node);
std::string human_bytes(int64_t bytes);  // "12.3 MiB"

// Prints "ops before -> after" side by side and the layer counts.
void print_layer_table(const std::map<std::string, int64_t>& before, const std::map<std::string, int64_t>& after,
                       int64_t onnx_nodes, int64_t layers);
// Prints one line per layer: index, name, op, tactic, time, candidates, fused sources.
void print_layers(const std::vector<LayerRow>& rows);
void print_memory(const plan::Plan& plan);

// `kiln inspect model.plan --json`: one JSON object.
std::string plan_json(const plan::Plan& plan, const std::string& path);

}  // namespace kiln::cli
