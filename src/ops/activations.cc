// Activation functions: Relu, LeakyRelu, PRelu, Elu, Selu, Celu, Sigmoid,
// HardSigmoid, HardSwish, Softplus, Softsign, Tanh, ThresholdedRelu, Gelu,
// Mish, Swish, and Clip. Part of register_elementwise.
//
// Formulas are the ONNX spec's; where the literal formula overflows
// (Sigmoid, Softplus) an equivalent stable form is used. Attributes are read
// as float and used in the compute type (float for fp16/bf16/float32).
#include <cmath>
#include <limits>

#include "ops/activation_math.h"
#include "ops/elementwise_util.h"

namespace kiln::ops::ew {
namespace {

// Runs f over a float-typed input 0 into output 0. f(V x) -> V for the
// compute type V.
template <uint64_t Mask = kFloatTypes, class MakeFn>
Status activation(KernelContext& ctx, MakeFn make) {
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  return dispatch<Mask>(x->dtype(), ctx.node().op_type(), [&](auto tag) -> Status {
    using T = decltype(tag);
    using V = compute_type_t<T>;
    return unary_kernel<T, T>(ctx, *x, make(V{}));
  });
}

float attr(const KernelContext& ctx, const char* name, float fallback) {
  return ctx.node().attr_float(name, fallback);
}

Status relu_kernel(KernelContext& ctx) {
  return activation<kFloatTypes | kSignedIntTypes>(ctx, [](auto v) {
    using V = decltype(v);
    return [](V x) { return x < V(0) ? V(0) : x; };  // NaN stays NaN
  });
}

Status leaky_relu_kernel(KernelContext& ctx) {
  float alpha = attr(ctx, "alpha", 0.01f);
  return activation(ctx, [alpha](auto v) {
    using V = decltype(v);
    return [a = V(alpha)](V x) { return x < V(0) ? a * x : x; };
  });
}

Status elu_kernel(KernelContext& ctx) {
  float alpha = attr(ctx, "alpha", 1.0f);
  return activation(ctx, [alpha](auto v) {
    using V = decltype(v);
    return [a = V(alpha)](V x) { return x < V(0) ? a * std::expm1(x) : x; };
  });
}

Status selu_kernel(KernelContext& ctx) {
  float alpha = attr(ctx, "alpha", 1.67326319217681884765625f);
  float gamma = attr(ctx, "gamma", 1.05070102214813232421875f);
  return activation(ctx, [alpha, gamma](auto v) {
    using V = decltype(v);
    return [a = V(alpha), g = V(gamma)](V x) { return x > V(0) ? g * x : g * (a * std::exp(x) - a); };
  });
}

Status celu_kernel(KernelContext& ctx) {
  float alpha = attr(ctx, "alpha", 1.0f);
  KILN_CHECK_ARG(alpha != 0, "{}: attribute alpha must be nonzero", ctx.node().describe());
  return activation(ctx, [alpha](auto v) {
    using V = decltype(v);
    return [a = V(alpha)](V x) {
      return std::max(V(0), x) + std::min(V(0), a * std::expm1(x / a));
    };
  });
}

Status sigmoid_kernel(KernelContext& ctx) {
  return activation(ctx, [](auto v) {
    using V = decltype(v);
    return [](V x) { return stable_sigmoid(x); };
  });
}

Status hard_sigmoid_kernel(KernelContext& ctx) {
  float alpha = attr(ctx, "alpha", 0.2f);
  float beta = attr(ctx, "beta", 0.5f);
  return activation(ctx, [alpha, beta](auto v) {
    using V = decltype(v);
    return [a = V(alpha), b = V(beta)](V x) { return std::max(V(0), std::min(V(1), a * x + b)); };
  });
}

Status hard_swish_kernel(KernelContext& ctx) {
  return activation(ctx, [](auto v) {
    using V = decltype(v);
    return [](V x) { return x * std::max(V(0), std::min(V(1), x / V(6) + V(0.5))); };
  });
}

Status softplus_kernel(KernelContext& ctx) {
  return activation(ctx, [](auto v) {
    using V = decltype(v);
    return [](V x) { return stable_softplus(x); };
  });
}

Status softsign_kernel(KernelContext& ctx) {
  return activation(ctx, [](auto v) {
    using V = decltype(v);
    return [](V x) { return x / (V(1) + std::abs(x)); };
  });
}

Status tanh_kernel(KernelContext& ctx) {
  return activation(ctx, [](auto v) {
    using V = decltype(v);
    return [](V x) { return std::tanh(x); };
  });
}

Status thresholded_relu_kernel(KernelContext& ctx) {
  float alpha = attr(ctx, "alpha", 1.0f);
  return activation(ctx, [alpha](auto v) {
    using V = decltype(v);
    return [a = V(alpha)](V x) { return x > a ? x : V(0); };
  });
}

Status gelu_kernel(KernelContext& ctx) {
  std::string approximate = ctx.node().attr_string("approximate", "none");
  if (approximate == "none") {
    return activation(ctx, [](auto v) {
      using V = decltype(v);
      return [](V x) { return V(0.5) * x * (V(1) + std::erf(x * V(0.70710678118654752440))); };
    });
  }
  KILN_CHECK_ARG(approximate == "tanh", "{}: attribute approximate must be 'none' or 'tanh', got '{}'",
                 ctx.node().describe(), approximate);
  return activation(ctx, [](auto v) {
    using V = decltype(v);
    return [](V x) {
      const V k = V(0.79788456080286535588);  // sqrt(2 / pi)
      return V(0.5) * x * (V(1) + std::tanh(k * (x + V(0.044715) * x * x * x)));
    };
  });
}

Status mish_kernel(KernelContext& ctx) {
  return activation(ctx, [](auto v) {
    using V = decltype(v);
    return [](V x) { return x * std::tanh(stable_softplus(x)); };
  });
}

Status swish_kernel(KernelContext& ctx) {
  float alpha = attr(ctx, "alpha", 1.0f);
  return activation(ctx, [alpha](auto v) {
    using V = decltype(v);
    return [a = V(alpha)](V x) { return x * stable_sigmoid(a * x); };
  });
}

// ---- PRelu ----------------------------------------------------------------------

// y = x < 0 ? slope * x : x, slope broadcast to X's shape (unidirectionally).
Status prelu_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  KILN_ASSIGN_OR_RETURN(const Tensor* slope, ctx.tensor_input(1));
  KILN_RETURN_IF_ERROR(check_same_type(ctx, *x, *slope));
  auto dims = broadcast_dims(x->dims(), slope->dims());
  KILN_CHECK_ARG(dims.is_ok() && dims.value() == x->dims(), "{}: slope {} does not broadcast to X {}",
                 ctx.node().describe(), dims_to_string(slope->dims()), dims_to_string(x->dims()));
  constexpr uint64_t kTypes = kFloatTypes | type_bit(DataType::kInt32) | type_bit(DataType::kInt64) |
                              type_bit(DataType::kUInt32) | type_bit(DataType::kUInt64);
  return dispatch<kTypes>(x->dtype(), "PRelu", [&](auto tag) -> Status {
    using T = decltype(tag);
    using V = compute_type_t<T>;
    return binary_kernel<T, T, T>(ctx, *x, *slope, [](V a, V s) -> V {
      if constexpr (std::is_unsigned_v<V>) {
        return a;
      } else {
        return a < V(0) ? static_cast<V>(s * a) : a;
      }
    });
  });
}

// ---- Clip -----------------------------------------------------------------------

// Reads an optional bound input (opset >= 11): a one-element tensor of T.
template <class T>
Status read_bound(KernelContext& ctx, size_t i, const Tensor& x, compute_type_t<T>& bound) {
  if (!ctx.has_input(i)) return Status::ok();
  KILN_ASSIGN_OR_RETURN(const Tensor* b, ctx.tensor_input(i));
  KILN_CHECK_ARG(b->dtype() == x.dtype(), "{}: input {} has type {}, expected {}", ctx.node().describe(),
                 i == 1 ? "min" : "max", data_type_name(b->dtype()), data_type_name(x.dtype()));
  KILN_CHECK_ARG(b->numel() == 1, "{}: input {} must be a scalar, got shape {}", ctx.node().describe(),
                 i == 1 ? "min" : "max", dims_to_string(b->dims()));
  bound = load(b->data<T>()[0]);
  return Status::ok();
}

// min(max(x, lo), hi): NaN stays NaN, and lo > hi gives hi everywhere.
Status clip_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  return dispatch<kNumericTypes>(x->dtype(), "Clip", [&](auto tag) -> Status {
    using T = decltype(tag);
    using V = compute_type_t<T>;
    V lo = std::numeric_limits<V>::lowest();
    V hi = std::numeric_limits<V>::max();
    if constexpr (std::is_floating_point_v<V>) {
      lo = -std::numeric_limits<V>::infinity();
      hi = std::numeric_limits<V>::infinity();
    }
    if (ctx.opset() < 11) {
      KILN_CHECK_ARG(!ctx.has_input(1) && !ctx.has_input(2),
                     "{}: Clip takes min/max as attributes before opset 11, not inputs", ctx.node().describe());
      if (ctx.node().has_attr("min")) lo = static_cast<V>(ctx.node().attr_float("min", 0));
      if (ctx.node().has_attr("max")) hi = static_cast<V>(ctx.node().attr_float("max", 0));
    } else {
      KILN_RETURN_IF_ERROR(read_bound<T>(ctx, 1, *x, lo));
      KILN_RETURN_IF_ERROR(read_bound<T>(ctx, 2, *x, hi));
    }
    return unary_kernel<T, T>(ctx, *x, [lo, hi](V v) {
      V r = v < lo ? lo : v;
      return r > hi ? hi : r;
    });
  });
}

Status same_infer(InferContext& ctx) { return infer_same_as_input(ctx); }

}  // namespace

void register_activations(Registry& r) {
  auto add = [&](std::string_view name, int since, KernelFn kernel, int max_inputs = 1) {
    r.add({.name = name, .domain = "", .since_version = since, .min_inputs = 1, .max_inputs = max_inputs,
           .kernel = kernel, .infer = same_infer});
  };
  add("Relu", 1, relu_kernel);
  add("LeakyRelu", 1, leaky_relu_kernel);
  add("Elu", 1, elu_kernel);
  add("Selu", 1, selu_kernel);
  add("Celu", 12, celu_kernel);
  add("Sigmoid", 1, sigmoid_kernel);
  add("HardSigmoid", 1, hard_sigmoid_kernel);
  add("HardSwish", 14, hard_swish_kernel);
  add("Softplus", 1, softplus_kernel);
  add("Softsign", 1, softsign_kernel);
  add("Tanh", 1, tanh_kernel);
  add("ThresholdedRelu", 10, thresholded_relu_kernel);
  add("Gelu", 20, gelu_kernel);
  add("Mish", 18, mish_kernel);
  add("Swish", 24, swish_kernel);
  add("Clip", 1, clip_kernel, 3);
  r.add({.name = "PRelu", .domain = "", .since_version = 1, .min_inputs = 2, .max_inputs = 2,
         .kernel = prelu_kernel, .infer = same_infer});
}

}  // namespace kiln::ops::ew
