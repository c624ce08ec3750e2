// Op family: random generators. RandomUniform, RandomNormal,
// RandomUniformLike, RandomNormalLike, Bernoulli, Multinomial.
//
// Numbers come from RandomSource (ops/random_util.h): with a `seed`
// attribute every run of a node gives the same output; without one the output
// is nondeterministic. Values are drawn in double and rounded to the output type.
#include <cmath>
#include <limits>
#include <optional>
#include <string>

#include "core/error.h"
#include "ops/families.h"
#include "ops/op_util.h"
#include "ops/random_util.h"
#include "ops/registry.h"

namespace kiln::ops {
namespace {

bool is_random_float(DataType t) {
  return t == DataType::kFloat32 || t == DataType::kFloat64 || t == DataType::kFloat16 || t == DataType::kBFloat16;
}

// The output type named by the `dtype` attribute, `fallback` when absent
// (kUndefined fallback: the attribute is required in effect).
Result<DataType> dtype_attr(const ir::Node& node, DataType fallback) {
  if (!node.has_attr("dtype")) {
    if (fallback == DataType::kUndefined) return invalid_argument("attribute 'dtype' is needed here");
    return fallback;
  }
  int64_t v = node.attr_int("dtype", 0);
  auto t = data_type_from_int(v);
  if (!t) return invalid_argument("attribute 'dtype' = {} is not a data type", v);
  return *t;
}

Result<DataType> float_dtype_attr(const ir::Node& node, DataType fallback) {
  KILN_ASSIGN_OR_RETURN(DataType t, dtype_attr(node, fallback));
  if (!is_random_float(t)) {
    return invalid_argument("output type must be float16, bfloat16, float or double, got {}", data_type_name(t));
  }
  return t;
}

// Fills a float64 tensor of `dims` with `draw()` and converts it to `dtype`.
template <class F>
Status fill_random(KernelContext& ctx, DataType dtype, const Dims& dims, F&& draw) {
  auto values = Tensor::allocate(DataType::kFloat64, dims);
  if (!values.is_ok()) return ctx.error(values.status());
  for (double& v : values->span<double>()) v = draw();
  auto cast = cast_tensor(*values, dtype);
  if (!cast.is_ok()) return ctx.error(cast.status());
  ctx.set_output(0, std::move(cast).value());
  return Status::ok();
}

// ---- RandomUniform(Like) / RandomNormal(Like) --------------------------------

// The output type and dims of a generator: from attributes (`like` false) or
// from input 0 (`like` true; dtype defaults to the input's).
Result<std::pair<DataType, Dims>> generator_output(const KernelContext& ctx, bool like) {
  if (!like) {
    if (!ctx.node().has_attr("shape")) return invalid_argument("attribute 'shape' is required");
    Dims dims = ctx.node().attr_ints("shape");
    KILN_RETURN_IF_ERROR(checked_numel(dims).status());
    KILN_ASSIGN_OR_RETURN(DataType t, float_dtype_attr(ctx.node(), DataType::kFloat32));
    return std::make_pair(t, dims);
  }
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  KILN_ASSIGN_OR_RETURN(DataType t, float_dtype_attr(ctx.node(), x->dtype()));
  return std::make_pair(t, x->dims());
}

template <bool kNormal, bool kLike>
Status generator_kernel(KernelContext& ctx) {
  auto out = generator_output(ctx, kLike);
  if (!out.is_ok()) return ctx.error(out.status());
  RandomSource rng = RandomSource::for_node(ctx.node());
  if constexpr (kNormal) {
    double mean = ctx.node().attr_float("mean", 0.0f);
    double scale = ctx.node().attr_float("scale", 1.0f);
    return fill_random(ctx, out->first, out->second, [&] { return mean + scale * rng.normal(); });
  } else {
    double low = ctx.node().attr_float("low", 0.0f);
    double high = ctx.node().attr_float("high", 1.0f);
    if (!(low <= high)) return ctx.error(invalid_argument("low ({}) must not exceed high ({})", low, high));
    return fill_random(ctx, out->first, out->second, [&] { return low + (high - low) * rng.uniform(); });
  }
}

Status generator_infer(InferContext& ctx) {
  if (!ctx.node().has_attr("shape")) return invalid_argument("attribute 'shape' is required");
  KILN_ASSIGN_OR_RETURN(DataType t, float_dtype_attr(ctx.node(), DataType::kFloat32));
  Dims dims = ctx.node().attr_ints("shape");
  for (int64_t d : dims) {
    if (d < 0) return invalid_argument("shape {} has a negative dim", dims_to_string(dims));
  }
  ctx.set_output_type(0, ir::ValueType::tensor(t, Shape::of(dims)));
  return Status::ok();
}

// The *Like generators and Bernoulli: input 0's shape, the dtype attribute or
// input 0's type.
Status like_infer(InferContext& ctx) {
  const ir::ValueType& x = ctx.input_type(0);
  DataType in = x.is_tensor() ? x.dtype : DataType::kUndefined;
  DataType t = in;
  if (ctx.node().has_attr("dtype")) {
    KILN_ASSIGN_OR_RETURN(t, dtype_attr(ctx.node(), in));
  }
  ctx.set_output_type(0, ir::ValueType::tensor(t, x.is_tensor() ? x.shape : Shape()));
  return Status::ok();
}

// ---- Bernoulli ---------------------------------------------------------------

// 1 with probability p, else 0: drawn as uniform() < p, so p = 0 always gives 0
// and p = 1 always gives 1.
Status bernoulli_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* p, ctx.tensor_input(0));
  if (!is_random_float(p->dtype())) {
    return ctx.error(invalid_argument("input must hold float probabilities, got {}", data_type_name(p->dtype())));
  }
  auto t = dtype_attr(ctx.node(), p->dtype());
  if (!t.is_ok()) return ctx.error(t.status());
  if (*t != DataType::kBool && !is_random_float(*t) && !(is_integer(*t) && bits_per_element(*t) >= 8)) {
    return ctx.error(invalid_argument("output type {} is not supported", data_type_name(*t)));
  }
  auto pd = to_float64(*p);
  if (!pd.is_ok()) return ctx.error(pd.status());
  const double* prob = pd->data<double>();
  for (int64_t i = 0; i < pd->numel(); ++i) {
    if (!(prob[i] >= 0 && prob[i] <= 1)) {
      return ctx.error(invalid_argument("probability {} at element {} is outside [0, 1]", prob[i], i));
    }
  }
  RandomSource rng = RandomSource::for_node(ctx.node());
  int64_t i = 0;
  return fill_random(ctx, *t, p->dims(), [&] { return rng.uniform() < prob[i++] ? 1.0 : 0.0; });
}

// ---- Multinomial -------------------------------------------------------------

// For each row of unnormalized log-probabilities (batch, classes), draws
// sample_size class indices with probabilities softmax(row).
Status multinomial_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  if (!is_random_float(x->dtype()) || x->rank() != 2) {
    return ctx.error(invalid_argument("input must be float of shape (batch, classes), got {}", x->debug_string()));
  }
  int64_t samples = ctx.node().attr_int("sample_size", 1);
  if (samples < 0) return ctx.error(invalid_argument("sample_size must not be negative, got {}", samples));
  auto t = dtype_attr(ctx.node(), DataType::kInt32);
  if (!t.is_ok()) return ctx.error(t.status());
  if (*t != DataType::kInt32 && *t != DataType::kInt64) {
    return ctx.error(invalid_argument("dtype must be int32 or int64, got {}", data_type_name(*t)));
  }
  int64_t batch = x->dim(0);
  int64_t classes = x->dim(1);
  if (classes == 0 && samples > 0 && batch > 0) return ctx.error(invalid_argument("cannot sample from 0 classes"));
  auto xd = to_float64(*x);
  if (!xd.is_ok()) return ctx.error(xd.status());
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.allocate_output(0, *t, {batch, samples}));
  RandomSource rng = RandomSource::for_node(ctx.node());
  std::vector<double> cumulative(static_cast<size_t>(classes));
  for (int64_t b = 0; b < batch; ++b) {
    const double* row = xd->data<double>() + b * classes;
    double mx = -std::numeric_limits<double>::infinity();
    for (int64_t c = 0; c < classes; ++c) {
      if (std::isnan(row[c]) || row[c] == std::numeric_limits<double>::infinity()) {
        return ctx.error(invalid_argument("row {} has a NaN or +inf log-probability", b));
      }
      mx = std::max(mx, row[c]);
    }
    if (mx == -std::numeric_limits<double>::infinity()) {
      return ctx.error(invalid_argument("row {} has no class with non-zero probability", b));
    }
    double total = 0;
    for (int64_t c = 0; c < classes; ++c) {
      total += std::exp(row[c] - mx);
      cumulative[static_cast<size_t>(c)] = total;
    }
    for (int64_t s = 0; s < samples; ++s) {
      double u = rng.uniform() * total;
      int64_t pick = classes - 1;
      for (int64_t c = 0; c < classes; ++c) {
        if (u < cumulative[static_cast<size_t>(c)]) {
          pick = c;
          break;
        }
      }
      if (*t == DataType::kInt32) {
        out->data<int32_t>()[b * samples + s] = static_cast<int32_t>(pick);
      } else {
        out->data<int64_t>()[b * samples + s] = pick;
      }
    }
  }
  return Status::ok();
}

Status multinomial_infer(InferContext& ctx) {
  KILN_ASSIGN_OR_RETURN(DataType t, dtype_attr(ctx.node(), DataType::kInt32));
  const ir::ValueType& x = ctx.input_type(0);
  Dim batch;
  if (x.is_tensor() && x.shape.rank_known()) {
    if (x.shape.rank() != 2) return invalid_argument("Multinomial input must have rank 2, got {}", x.to_string());
    batch = x.shape[0];
  }
  int64_t samples = ctx.node().attr_int("sample_size", 1);
  if (samples < 0) return invalid_argument("sample_size must not be negative, got {}", samples);
  ctx.set_output_type(0, ir::ValueType::tensor(t, Shape(std::vector<Dim>{batch, Dim(samples)})));
  return Status::ok();
}

}  // namespace

void register_random(Registry& r) {
  r.add({.name = "RandomUniform", .domain = "", .since_version = 1, .min_inputs = 0, .max_inputs = 0,
         .kernel = generator_kernel<false, false>, .infer = generator_infer, .nondeterministic = true});
  r.add({.name = "RandomNormal", .domain = "", .since_version = 1, .min_inputs = 0, .max_inputs = 0,
         .kernel = generator_kernel<true, false>, .infer = generator_infer, .nondeterministic = true});
  r.add({.name = "RandomUniformLike", .domain = "", .since_version = 1, .min_inputs = 1, .max_inputs = 1,
         .kernel = generator_kernel<false, true>, .infer = like_infer, .nondeterministic = true});
  r.add({.name = "RandomNormalLike", .domain = "", .since_version = 1, .min_inputs = 1, .max_inputs = 1,
         .kernel = generator_kernel<true, true>, .infer = like_infer, .nondeterministic = true});
  r.add({.name = "Bernoulli", .domain = "", .since_version = 15, .min_inputs = 1, .max_inputs = 1,
         .kernel = bernoulli_kernel, .infer = like_infer, .nondeterministic = true});
  r.add({.name = "Multinomial", .domain = "", .since_version = 7, .min_inputs = 1, .max_inputs = 1,
         .kernel = multinomial_kernel, .infer = multinomial_infer, .nondeterministic = true});
}

}  // namespace kiln::ops
