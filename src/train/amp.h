// AMP levels and the precision plan each one gives a graph.
//
//   O0  fp32 everywhere (the baseline).
//   O1  per-op lists (train/grad_rule.h OpClass): GEMM/MatMul/Conv compute in
//       the low precision; softmax, reductions, pooling averages and
//       normalization in fp32; everything else in the widest precision of its
//       inputs. Weights stay fp32. Dynamic loss scaling for fp16.
//   O2  the whole model in the low precision (weights too, rounded from fp32
//       master weights before each forward) except normalization layers,
//       which keep fp32 parameters and compute. Dynamic loss scaling for fp16.
//   O3  pure low precision, normalization included, and the weights
//       themselves stored in it (no master copy); static scale 1. For comparison.
// A "-bf16" suffix (O1-bf16, O2-bf16, O3-bf16) uses bfloat16 instead of fp16;
// bf16 keeps fp32's exponent range, so its loss scale is static 1.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "ir/graph.h"
#include "kiln/status.h"
#include "train/loss_scaler.h"
#include "train/tape.h"

namespace kiln::train {

enum class AmpLevel { kO0, kO1, kO2, kO3 };

struct AmpConfig {
  AmpLevel level = AmpLevel::kO0;
  Precision low = Precision::kFp16;
  bool master_weights = true;  // false only for O3
  LossScalerConfig scaler;     // defaults per level; dynamic off where not needed
  std::string name() const;    // "O1", "O2-bf16", ...
};

// Parses "O0".."O3" with an optional "-bf16"/"-fp16" suffix ("_" also accepted).
Result<AmpConfig> parse_amp_level(std::string_view text);

// The per-node and per-value precisions of `config` for `graph`; `params`
// are the trainable constants.
PrecisionPlan make_precision_plan(const ir::Graph& graph, const AmpConfig& config,
                                  const std::vector<const ir::Value*>& params);

}  // namespace kiln::train
