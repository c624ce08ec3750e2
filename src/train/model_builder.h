// Builds small sequential models as ONNX-style inference graphs (opset 17)
// from layer specs, with seeded He-uniform weights and zero biases.
//
// Layer specs (fields separated by ':'):
//   conv:OUT:K[:STRIDE[:PAD]]   Conv, K x K kernel, bias
//   linear:OUT                  Gemm with transB=1 over [N, F] input
//   bn                          BatchNormalization (scale 1, bias 0, mean 0, var 1)
//   layernorm                   LayerNormalization over the last dim
//   relu | gelu | tanh | sigmoid
//   maxpool:K[:STRIDE] | avgpool:K[:STRIDE] | gap (GlobalAveragePool)
//   flatten                     Flatten(axis=1)
//   dropout:RATIO
// The graph input is "input" [N, sample_dims...], the output "output".
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "kiln/status.h"

namespace kiln::train {

Result<ir::Model> build_sequential(const Dims& sample_dims, const std::vector<std::string>& layers, uint64_t seed);

}  // namespace kiln::train
