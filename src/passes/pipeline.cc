#include "passes/pipeline.h"

#include <algorithm>

#include "core/error.h"
#include "passes/pass_manager.h"

namespace kiln::passes {
namespace {

// The default pipeline. Ordering constraints:
// - Q/DQ lowering before everything: constant folding would turn the
//   weights' DequantizeLinear into float constants and lose the int8 layers;
// - constant folding first: later patterns look for constant weights,
//   scales and shapes, and folding turns Shape/Gather/Concat chains into the
//   constants that make Reshape/Expand/Slice provably no-ops;
// - layer elimination after folding (a Reshape to its own static shape is only
//   visible once its shape input is constant) and before every fusion (an
//   Identity or Dropout between a Conv and its activation hides the pattern);
// - BatchNormalization folding before vertical fusion (the folded Conv is
//   what takes the bias and activation);
// - LayerNorm, GELU and attention fusion before vertical fusion: they consume
//   the primitive Add/Mul/Div nodes that vertical fusion would otherwise
//   swallow as bias or residual adds;
// - horizontal fusion after vertical fusion: siblings are merged with their
//   bias and activation already in the epilogue (Q/K/V projections become one
//   FusedMatMul whose bias is the three biases side by side);
// - pointwise fusion last: it takes whatever elementwise chains are left;
// - half inputs after pointwise fusion: it shortens the chains that end in
//   a 16-bit round trip before matrix layers (and converts the layers);
// - dead-code elimination at the end drops what the rewrites left unused.
std::vector<std::unique_ptr<Pass>> default_passes(const PipelineOptions& options = {}) {
  std::vector<std::unique_ptr<Pass>> p;
  p.push_back(make_qdq_lowering());
  p.push_back(make_constant_folding());
  p.push_back(make_layer_elimination());
  p.push_back(make_batchnorm_folding());
  p.push_back(make_layernorm_fusion());
  p.push_back(make_gelu_fusion());
  p.push_back(make_attention_fusion());
  p.push_back(make_vertical_fusion());
  p.push_back(make_horizontal_fusion());
  p.push_back(make_pointwise_fusion());
  p.push_back(make_half_inputs(options.half_inputs));
  p.push_back(make_dead_code_elimination());
  return p;
}

}  // namespace

Result<std::vector<PassReport>> optimize(ir::Graph& graph, const PipelineOptions& options) {
  const std::vector<std::string> names = pipeline_pass_names();
  auto known = [&](const std::string& n) { return std::find(names.begin(), names.end(), n) != names.end(); };
  if (!options.stop_after.empty() && !known(options.stop_after)) {
    return invalid_argument("no optimizer pass is named '{}' (passes: {})", options.stop_after, fmt::join(names, ", "));
  }
  for (const auto& d : options.disabled) {
    if (!known(d)) return invalid_argument("no optimizer pass is named '{}' (passes: {})", d, fmt::join(names, ", "));
  }
  if (!options.dump_after.empty() && !known(options.dump_after)) {
    return invalid_argument("no optimizer pass is named '{}' (passes: {})", options.dump_after, fmt::join(names, ", "));
  }
  PassManager manager(options);
  for (auto& p : default_passes(options)) manager.add(std::move(p));
  return manager.run(graph);
}

std::vector<std::string> pipeline_pass_names() {
  std::vector<std::string> names;
  for (const auto& p : default_passes()) names.emplace_back(p->name());
  return names;
}

}  // namespace kiln::passes
