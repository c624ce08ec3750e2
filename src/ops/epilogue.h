// The epilogue of Kiln's fused compute ops (kiln.FusedConv, kiln.FusedGemm,
// kiln.FusedMatMul): what happens to each accumulator value after the
// product, in this order:
//
//   y = acc + bias                       (bias: per output channel / column)
//   y = y + residual                     (unless residual_after_activation)
//   y = activation(y)
//   y = y + residual                     (if residual_after_activation)
//
// Node attributes: "activation" (string, "" for none, else one of the names
// below), "activation_params" (floats: Clip [min, max], LeakyRelu [alpha],
// HardSigmoid [alpha, beta]; none for the others) and
// "residual_after_activation" (int, default 0). Reference kernels and fast
// kernels read them through Epilogue::from_node so the two agree.
#pragma once

#include <string_view>

#include "ir/graph.h"
#include "kiln/status.h"

namespace kiln::ops {

// Every node a fusion pass makes carries this attribute: the names of the
// nodes it replaced (provenance for reports, never part of the math: timing
// cache keys and horizontal fusion ignore it).
inline constexpr const char* kFusedFromAttr = "fused_from";

enum class Activation {
  kNone,
  kRelu,
  kClip,         // min(max(x, alpha), beta)
  kSigmoid,
  kHardSigmoid,  // max(0, min(1, alpha * x + beta))
  kHardSwish,    // x * max(0, min(1, x / 6 + 0.5))
  kLeakyRelu,    // x >= 0 ? x : alpha * x
  kTanh,
  kSilu,         // x * sigmoid(x)
  kGelu,         // 0.5 x (1 + erf(x / sqrt 2))
  kGeluTanh,     // 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))
};

// "" -> kNone, "Relu" -> kRelu, ... ; an error for an unknown name.
Result<Activation> parse_activation(std::string_view name);
std::string_view activation_name(Activation a);

struct Epilogue {
  Activation activation = Activation::kNone;
  float alpha = 0.0f;  // first activation parameter (Clip min, LeakyRelu/HardSigmoid alpha)
  float beta = 0.0f;   // second activation parameter (Clip max, HardSigmoid beta)
  bool residual_after_activation = false;

  // Reads the epilogue attributes of a fused node; errors name the node.
  static Result<Epilogue> from_node(const ir::Node& node);
  // Writes them onto `node` (used by the fusion passes).
  void to_node(ir::Node& node) const;

  // The activation applied to one value.
  float activate(float x) const;
};

}  // namespace kiln::ops
