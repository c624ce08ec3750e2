// Op family: the optimizers of ai.onnx.preview.training (opset 1): Adagrad,
// Momentum (standard and Nesterov) and Adam.
//
// Each takes a learning rate R and an update count T (scalars), then n
// tensors to optimize followed by as many tensors of each per-tensor state,
// and returns the new tensors followed by the new states:
//   Adagrad   X.. G.. H..     -> X_new.. H_new..
//   Momentum  X.. G.. V..     -> X_new.. V_new..
//   Adam      X.. G.. V.. H.. -> X_new.. V_new.. H_new..
// Kernels compute in double and round once to the tensor's type.
//
// Gradient (automatic differentiation of the graph) is not implemented: it
// needs a differentiation pass over the graph, not a kernel.
#include <cmath>
#include <string>

#include "core/error.h"
#include "ops/families.h"
#include "ops/op_util.h"
#include "ops/registry.h"

namespace kiln::ops {
namespace {

constexpr char kTrainingDomain[] = "ai.onnx.preview.training";

enum class Optimizer { kAdagrad, kMomentum, kAdam };

// Inputs per optimized tensor (X, G and the states).
constexpr int64_t groups_of(Optimizer o) { return o == Optimizer::kAdam ? 4 : 3; }

// Attributes of all three optimizers, read and validated once per run.
struct Hyper {
  double norm_coefficient = 0;
  double decay_factor = 0;  // Adagrad
  double epsilon = 1e-6;    // Adagrad, Adam
  double alpha = 0;         // Momentum, Adam
  double beta = 0;          // Momentum, Adam
  double norm_coefficient_post = 0;  // Adam
  bool nesterov = false;    // Momentum
};

Result<double> required_float(const ir::Node& node, const std::string& name) {
  if (!node.has_attr(name)) return invalid_argument("attribute '{}' is required", name);
  return static_cast<double>(node.attr_float(name, 0.0f));
}

Result<Hyper> hyper_of(const ir::Node& node, Optimizer o) {
  Hyper h;
  switch (o) {
    case Optimizer::kAdagrad:
      h.norm_coefficient = node.attr_float("norm_coefficient", 0.0f);
      h.decay_factor = node.attr_float("decay_factor", 0.0f);
      h.epsilon = node.attr_float("epsilon", 1e-6f);
      break;
    case Optimizer::kMomentum: {
      KILN_ASSIGN_OR_RETURN(h.norm_coefficient, required_float(node, "norm_coefficient"));
      KILN_ASSIGN_OR_RETURN(h.alpha, required_float(node, "alpha"));
      KILN_ASSIGN_OR_RETURN(h.beta, required_float(node, "beta"));
      if (!node.has_attr("mode")) return invalid_argument("attribute 'mode' is required");
      std::string mode = node.attr_string("mode");
      if (mode != "standard" && mode != "nesterov") {
        return invalid_argument("mode must be 'standard' or 'nesterov', got '{}'", mode);
      }
      h.nesterov = mode == "nesterov";
      break;
    }
    case Optimizer::kAdam:
      h.norm_coefficient = node.attr_float("norm_coefficient", 0.0f);
      h.norm_coefficient_post = node.attr_float("norm_coefficient_post", 0.0f);
      h.epsilon = node.attr_float("epsilon", 1e-6f);
      h.alpha = node.attr_float("alpha", 0.9f);
      h.beta = node.attr_float("beta", 0.999f);
      break;
  }
  return h;
}

// One element's update. in: x, g and the states; out: x_new and the new states.
void update(Optimizer o, const Hyper& h, double r, int64_t t, const double* in, double* out) {
  double x = in[0];
  double g = h.norm_coefficient * x + in[1];  // gradient of the L2 regularization added
  switch (o) {
    case Optimizer::kAdagrad: {
      double rate = r / (1 + static_cast<double>(t) * h.decay_factor);
      double h_new = in[2] + g * g;
      out[0] = x - rate * g / (std::sqrt(h_new) + h.epsilon);
      out[1] = h_new;
      break;
    }
    case Optimizer::kMomentum: {
      double beta = t > 0 ? h.beta : 1.0;  // the first update takes the whole gradient
      double v_new = h.alpha * in[2] + beta * g;
      out[0] = h.nesterov ? x - r * (g + h.alpha * v_new) : x - r * v_new;
      out[1] = v_new;
      break;
    }
    case Optimizer::kAdam: {
      double v_new = h.alpha * in[2] + (1 - h.alpha) * g;
      double h_new = h.beta * in[3] + (1 - h.beta) * g * g;
      double rate = r;
      if (t > 0) {  // bias correction of both moments
        auto tf = static_cast<double>(t);
        rate = r * std::sqrt(1 - std::pow(h.beta, tf)) / (1 - std::pow(h.alpha, tf));
      }
      double x_new = x - rate * v_new / (std::sqrt(h_new) + h.epsilon);
      out[0] = (1 - h.norm_coefficient_post) * x_new;
      out[1] = v_new;
      out[2] = h_new;
      break;
    }
  }
}

Result<double> scalar_input(const KernelContext& ctx, size_t i, const char* name, bool integer) {
  KILN_ASSIGN_OR_RETURN(const Tensor* t, ctx.tensor_input(i));
  bool ok = integer ? t->dtype() == DataType::kInt64
                    : t->dtype() == DataType::kFloat32 || t->dtype() == DataType::kFloat64;
  if (!ok || t->numel() != 1) {
    return invalid_argument("{} must be a {} scalar, got {}", name, integer ? "int64" : "float or double",
                            t->debug_string());
  }
  return to_scalar_double(*t);
}

template <Optimizer kOpt>
Status optimizer_kernel(KernelContext& ctx) {
  constexpr int64_t k = groups_of(kOpt);
  auto ni = static_cast<int64_t>(ctx.num_inputs()) - 2;
  if (ni <= 0 || ni % k != 0) {
    return ctx.error(invalid_argument("expected R, T and {} groups of n tensors, got {} inputs", k, ni + 2));
  }
  int64_t n = ni / k;
  if (static_cast<int64_t>(ctx.num_outputs()) > (k - 1) * n) {
    return ctx.error(invalid_argument("expected at most {} outputs for {} tensors, got {}", (k - 1) * n, n,
                                      ctx.num_outputs()));
  }
  auto hyper = hyper_of(ctx.node(), kOpt);
  if (!hyper.is_ok()) return ctx.error(hyper.status());
  auto r = scalar_input(ctx, 0, "R", false);
  if (!r.is_ok()) return ctx.error(r.status());
  auto t = scalar_input(ctx, 1, "T", true);
  if (!t.is_ok()) return ctx.error(t.status());
  auto count = static_cast<int64_t>(*t);
  for (int64_t i = 0; i < n; ++i) {
    // The inputs of tensor i as float64 (X, G, states) and its output values.
    std::vector<Tensor> in;
    KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(static_cast<size_t>(2 + i)));
    for (int64_t g = 0; g < k; ++g) {
      KILN_ASSIGN_OR_RETURN(const Tensor* v, ctx.tensor_input(static_cast<size_t>(2 + g * n + i)));
      if (v->dtype() != x->dtype() || v->dims() != x->dims() ||
          (x->dtype() != DataType::kFloat32 && x->dtype() != DataType::kFloat64)) {
        return ctx.error(invalid_argument("input {} is {}; the inputs of tensor {} must be float or double with "
                                          "the shape and type of X ({})",
                                          2 + g * n + i, v->debug_string(), i, x->debug_string()));
      }
      auto d = to_float64(*v);
      if (!d.is_ok()) return ctx.error(d.status());
      in.push_back(std::move(d).value());
    }
    std::vector<Tensor> out;
    for (int64_t g = 0; g + 1 < k; ++g) out.push_back(Tensor::empty(DataType::kFloat64, x->dims()));
    double in_e[4] = {};
    double out_e[3] = {};
    for (int64_t e = 0; e < x->numel(); ++e) {
      for (size_t g = 0; g < in.size(); ++g) in_e[g] = in[g].data<double>()[e];
      update(kOpt, *hyper, *r, count, in_e, out_e);
      for (size_t g = 0; g < out.size(); ++g) out[g].data<double>()[e] = out_e[g];
    }
    for (int64_t g = 0; g + 1 < k; ++g) {
      auto at = static_cast<size_t>(g * n + i);
      if (!ctx.wants_output(at)) continue;
      auto cast = cast_tensor(out[static_cast<size_t>(g)], x->dtype());
      if (!cast.is_ok()) return ctx.error(cast.status());
      ctx.set_output(at, std::move(cast).value());
    }
  }
  return Status::ok();
}

// Output group g has the type of input group g, skipping the gradients G.
template <Optimizer kOpt>
Status optimizer_infer(InferContext& ctx) {
  constexpr int64_t k = groups_of(kOpt);
  auto ni = static_cast<int64_t>(ctx.num_inputs()) - 2;
  if (ni <= 0 || ni % k != 0) return Status::ok();
  int64_t n = ni / k;
  for (size_t o = 0; o < ctx.num_outputs() && static_cast<int64_t>(o) < (k - 1) * n; ++o) {
    int64_t g = static_cast<int64_t>(o) / n;
    int64_t i = static_cast<int64_t>(o) % n;
    int64_t in_group = g == 0 ? 0 : g + 1;
    ctx.set_output_type(o, ctx.input_type(static_cast<size_t>(2 + in_group * n + i)));
  }
  return Status::ok();
}

}  // namespace

void register_training(Registry& r) {
  r.add({.name = "Adagrad", .domain = kTrainingDomain, .since_version = 1, .min_inputs = 5, .max_inputs = -1,
         .min_outputs = 2, .max_outputs = -1, .kernel = optimizer_kernel<Optimizer::kAdagrad>,
         .infer = optimizer_infer<Optimizer::kAdagrad>});
  r.add({.name = "Momentum", .domain = kTrainingDomain, .since_version = 1, .min_inputs = 5, .max_inputs = -1,
         .min_outputs = 2, .max_outputs = -1, .kernel = optimizer_kernel<Optimizer::kMomentum>,
         .infer = optimizer_infer<Optimizer::kMomentum>});
  r.add({.name = "Adam", .domain = kTrainingDomain, .since_version = 1, .min_inputs = 6, .max_inputs = -1,
         .min_outputs = 3, .max_outputs = -1, .kernel = optimizer_kernel<Optimizer::kAdam>,
         .infer = optimizer_infer<Optimizer::kAdam>});
}

}  // namespace kiln::ops
