#include "ops/epilogue.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"

namespace kiln::ops {
namespace {

constexpr std::array<std::pair<Activation, std::string_view>, 11> kNames = {{
    {Activation::kNone, ""},
    {Activation::kRelu, "Relu"},
    {Activation::kClip, "Clip"},
    {Activation::kSigmoid, "Sigmoid"},
    {Activation::kHardSigmoid, "HardSigmoid"},
    {Activation::kHardSwish, "HardSwish"},
    {Activation::kLeakyRelu, "LeakyRelu"},
    {Activation::kTanh, "Tanh"},
    {Activation::kSilu, "Silu"},
    {Activation::kGelu, "Gelu"},
    {Activation::kGeluTanh, "GeluTanh"},
}};

// How many entries "activation_params" must have for each activation.
size_t param_count(Activation a) {
  switch (a) {
    case Activation::kClip:
    case Activation::kHardSigmoid:
      return 2;
    case Activation::kLeakyRelu:
      return 1;
    default:
      return 0;
  }
}

}  // namespace

Result<Activation> parse_activation(std::string_view name) {
  for (const auto& [a, n] : kNames) {
    if (n == name) return a;
  }
  return invalid_argument("unknown fused activation '{}'", name);
}

std::string_view activation_name(Activation a) {
  for (const auto& [act, n] : kNames) {
    if (act == a) return n;
  }
  return "?";
}

Result<Epilogue> Epilogue::from_node(const ir::Node& node) {
  Epilogue e;
  auto act = parse_activation(node.attr_string("activation", ""));
  if (!act.is_ok()) return act.status().with_context(node.describe());
  e.activation = *act;
  std::vector<float> params = node.attr_floats("activation_params");
  if (params.size() != param_count(e.activation)) {
    return invalid_argument("{}: activation {} takes {} activation_params, got {}", node.describe(),
                            activation_name(e.activation), param_count(e.activation), params.size());
  }
  if (params.size() > 0) e.alpha = params[0];
  if (params.size() > 1) e.beta = params[1];
  e.residual_after_activation = node.attr_int("residual_after_activation", 0) != 0;
  return e;
}

void Epilogue::to_node(ir::Node& node) const {
  node.set_attr(ir::Attribute::make_string("activation", std::string(activation_name(activation))));
  std::vector<float> params;
  if (param_count(activation) > 0) params.push_back(alpha);
  if (param_count(activation) > 1) params.push_back(beta);
  node.set_attr(ir::Attribute::make_floats("activation_params", params));
  node.set_attr(ir::Attribute::make_int("residual_after_activation", residual_after_activation ? 1 : 0));
}

float Epilogue::activate(float x) const {
  switch (activation) {
    case Activation::kNone:
      return x;
    case Activation::kRelu:
      return x > 0.0f ? x : 0.0f;
    case Activation::kClip:
      return std::min(std::max(x, alpha), beta);
    case Activation::kSigmoid:
      return 1.0f / (1.0f + std::exp(-x));
    case Activation::kHardSigmoid:
      return std::max(0.0f, std::min(1.0f, alpha * x + beta));
    case Activation::kHardSwish:
      return x * std::max(0.0f, std::min(1.0f, x / 6.0f + 0.5f));
    case Activation::kLeakyRelu:
      return x >= 0.0f ? x : alpha * x;
    case Activation::kTanh:
      return std::tanh(x);
    case Activation::kSilu:
      return x / (1.0f + std::exp(-x));
    case Activation::kGelu:
      return 0.5f * x * (1.0f + std::erf(x * 0.70710678118654752f));
    case Activation::kGeluTanh:
      return 0.5f * x * (1.0f + std::tanh(0.79788456080286536f * (x + 0.044715f * x * x * x)));
  }
  return x;
}

}  // namespace kiln::ops
