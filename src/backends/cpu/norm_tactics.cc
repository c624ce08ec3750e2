// Softmax, LayerNormalization and BatchNormalization tactics: one row kernel
// call per row of contiguous floats (microkernel.h), rows split over the
// context's pool. Softmax takes the last axis (opset >= 13) or any axis of the
// pre-13 2-D coercion (rows are contiguous either way); LayerNormalization the
// last axis with only Y wanted. Inputs holding Inf or NaN, other dtypes and
// other axes go to the reference kernel. BatchNormalization (inference: the
// running statistics) is a per-channel affine y = x * k + b over each (n, c)
// row; the optimizer folds it into a preceding Conv when it can, this runs the
// rest (a BN after an Add or at the input, or after an int8 Conv's DQ).
#include <cmath>
#include <string>
#include <vector>

#include "backends/cpu/microkernel.h"
#include "backends/cpu/tactics.h"
#include "core/error.h"
#include "core/thread_pool.h"

namespace kiln::backends::cpu {
namespace {

bool all_finite(const Tensor& t) {
  const float* p = t.data<float>();
  bool ok = true;
  for (int64_t i = 0; i < t.numel(); ++i) ok &= std::isfinite(p[i]);
  return ok;
}

// Runs fn(row) for rows [0, rows) on the pool when there is enough work.
template <class F>
void for_rows(ThreadPool* pool, int64_t rows, int64_t n, F&& fn) {
  if (pool != nullptr && pool->threads() > 1 && rows > 1 && rows * n >= 16384) {
    pool->parallel_for(rows, 1, [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) fn(r);
    });
  } else {
    for (int64_t r = 0; r < rows; ++r) fn(r);
  }
}

// The last-axis normalization as (rows, n), or false if the node normalizes another axis.
bool rows_of(const ir::Node& node, const Dims& dims, bool legacy_softmax, int64_t& rows, int64_t& n) {
  const int64_t rank = static_cast<int64_t>(dims.size());
  if (rank == 0) return false;
  int64_t axis = node.attr_int("axis", legacy_softmax ? 1 : -1);
  if (axis < 0) axis += rank;
  if (axis < 0 || axis >= rank) return false;
  if (!legacy_softmax && axis != rank - 1) return false;
  rows = 1;
  n = 1;
  for (int64_t d = 0; d < rank; ++d) (d < axis ? rows : n) *= dims[static_cast<size_t>(d)];
  return true;
}

class SoftmaxKernel final : public Kernel {
 public:
  explicit SoftmaxKernel(SoftmaxRowFn row) : row_(row) {}
  bool fills_outputs() const override { return true; }
  Status run(ops::KernelContext& ctx) const override {
    if (!ctx.has_input(0) || !ctx.datum(0).is_tensor() || ctx.input(0).dtype() != DataType::kFloat32) {
      return run_reference(ctx);
    }
    const Tensor& x = ctx.input(0);
    int64_t rows = 0, n = 0;
    if (!rows_of(ctx.node(), x.dims(), ctx.opset() < 13, rows, n) || !all_finite(x)) return run_reference(ctx);
    KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.allocate_output(0, DataType::kFloat32, x.dims()));
    const float* xp = x.data<float>();
    float* yp = y->data<float>();
    for_rows(ctx.pool(), rows, n, [&](int64_t r) { row_(xp + r * n, yp + r * n, n); });
    return Status::ok();
  }

 private:
  SoftmaxRowFn row_;
};

class LayerNormKernel final : public Kernel {
 public:
  explicit LayerNormKernel(LayerNormRowFn row) : row_(row) {}
  bool fills_outputs() const override { return true; }
  Status run(ops::KernelContext& ctx) const override {
    for (size_t i = 0; i < ctx.num_inputs(); ++i) {
      if (ctx.has_input(i) && (!ctx.datum(i).is_tensor() || ctx.input(i).dtype() != DataType::kFloat32)) {
        return run_reference(ctx);
      }
    }
    if (!ctx.has_input(0) || !ctx.has_input(1) || ctx.wants_output(1) || ctx.wants_output(2)) {
      return run_reference(ctx);
    }
    const Tensor& x = ctx.input(0);
    int64_t rows = 0, n = 0;
    if (!rows_of(ctx.node(), x.dims(), false, rows, n) || !all_finite(x)) return run_reference(ctx);
    const Tensor& scale = ctx.input(1);
    if (scale.numel() != n || scale.rank() < 1 || scale.dims().back() != n) return run_reference(ctx);
    const float* bias = nullptr;
    if (ctx.has_input(2)) {
      const Tensor& b = ctx.input(2);
      if (b.numel() != n || b.rank() < 1 || b.dims().back() != n) return run_reference(ctx);
      bias = b.data<float>();
    }
    const float eps = ctx.node().attr_float("epsilon", 1e-5f);
    KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.allocate_output(0, DataType::kFloat32, x.dims()));
    const float* xp = x.data<float>();
    const float* sp = scale.data<float>();
    float* yp = y->data<float>();
    for_rows(ctx.pool(), rows, n, [&](int64_t r) { row_(xp + r * n, yp + r * n, sp, bias, n, eps); });
    return Status::ok();
  }

 private:
  LayerNormRowFn row_;
};

class BatchNormKernel final : public Kernel {
 public:
  bool fills_outputs() const override { return true; }
  Status run(ops::KernelContext& ctx) const override {
    for (size_t i = 0; i < 5; ++i) {
      if (!ctx.has_input(i) || !ctx.datum(i).is_tensor() || ctx.input(i).dtype() != DataType::kFloat32) {
        return run_reference(ctx);
      }
    }
    const Tensor& x = ctx.input(0);
    if (x.rank() < 2) return run_reference(ctx);  // the reference names the error
    const int64_t n = x.dim(0), c = x.dim(1);
    for (size_t i = 1; i < 5; ++i) {
      if (ctx.input(i).numel() != c) return run_reference(ctx);
    }
    const int64_t inner = n * c == 0 ? 0 : x.numel() / (n * c);
    // k and b in double, as the reference computes (x - mean) / sqrt(var + eps) * scale + B.
    const double eps = ctx.node().attr_float("epsilon", 1e-5f);
    const float* scale = ctx.input(1).data<float>();
    const float* bias = ctx.input(2).data<float>();
    const float* mean = ctx.input(3).data<float>();
    const float* var = ctx.input(4).data<float>();
    std::vector<float> k(static_cast<size_t>(c)), b(static_cast<size_t>(c));
    for (int64_t j = 0; j < c; ++j) {
      const double kj = static_cast<double>(scale[j]) / std::sqrt(static_cast<double>(var[j]) + eps);
      k[static_cast<size_t>(j)] = static_cast<float>(kj);
      b[static_cast<size_t>(j)] = static_cast<float>(static_cast<double>(bias[j]) - static_cast<double>(mean[j]) * kj);
    }
    KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.allocate_output(0, DataType::kFloat32, x.dims()));
    const float* xp = x.data<float>();
    float* yp = y->data<float>();
    for_rows(ctx.pool(), n * c, inner, [&](int64_t r) {
      const float kr = k[static_cast<size_t>(r % c)], br = b[static_cast<size_t>(r % c)];
      const float* in = xp + r * inner;
      float* out = yp + r * inner;
      for (int64_t i = 0; i < inner; ++i) out[i] = in[i] * kr + br;
    });
    return Status::ok();
  }
};

// "own.batchnorm": inference-mode BatchNormalization of float32 with
// per-channel parameters (spatial; not the pre-opset-9 spatial=0 form).
class BatchNormTactic final : public Tactic {
 public:
  std::string_view name() const override { return "own.batchnorm"; }
  std::string_view source() const override { return "own"; }
  bool supports(const ir::Node& node) const override {
    if (node.op_type() != "BatchNormalization" || node.num_inputs() != 5) return false;
    for (size_t i = 0; i < 5; ++i) {
      if (!is_f32(node.input(i))) return false;
    }
    for (size_t i = 1; i < node.num_outputs(); ++i) {
      if (node.output(i) != nullptr) return false;  // running statistics: training mode
    }
    if (node.opset() >= 14 && node.attr_int("training_mode", 0) != 0) return false;
    if (node.opset() < 9 && node.attr_int("spatial", 1) == 0) return false;
    return true;
  }
  Result<std::unique_ptr<Kernel>> prepare(const ir::Node& node) const override {
    if (!supports(node)) return invalid_argument("{}: not supported by own.batchnorm", node.describe());
    return std::unique_ptr<Kernel>(new BatchNormKernel());
  }
};

class RowTactic final : public Tactic {
 public:
  RowTactic(std::string op, Isa isa) : op_(std::move(op)), isa_(isa) {
    name_ = std::string(op_ == "Softmax" ? "own.softmax." : "own.layernorm.") + std::string(isa_name(isa));
  }
  std::string_view name() const override { return name_; }
  std::string_view source() const override { return "own"; }
  bool supports(const ir::Node& node) const override {
    if (node.op_type() != op_ || !is_f32(node.input(0))) return false;
    if (op_ == "LayerNormalization") {
      if (!is_f32(node.input(1)) || (node.input(2) != nullptr && !is_f32(node.input(2)))) return false;
      if (node.output(1) != nullptr || node.output(2) != nullptr) return false;
    }
    // The axis must be the last one where the rank is known; else the kernel decides at run time.
    const ir::ValueType& t = node.input(0)->type();
    const int64_t axis = node.attr_int("axis", op_ == "Softmax" && node.opset() < 13 ? 1 : -1);
    if (op_ == "LayerNormalization" || node.opset() >= 13) {
      if (axis != -1 && (!t.shape.rank_known() || axis != t.shape.rank() - 1)) return false;
    }
    return true;
  }
  Result<std::unique_ptr<Kernel>> prepare(const ir::Node& node) const override {
    if (!supports(node)) return invalid_argument("{}: not supported by {}", node.describe(), name_);
    const bool avx2 = isa_ != Isa::kGeneric;
    if (op_ == "Softmax") {
      return std::unique_ptr<Kernel>(new SoftmaxKernel(avx2 ? softmax_row_avx2 : softmax_row_generic));
    }
    return std::unique_ptr<Kernel>(new LayerNormKernel(avx2 ? layernorm_row_avx2 : layernorm_row_generic));
  }

 private:
  std::string op_;
  Isa isa_;
  std::string name_;
};

}  // namespace

std::unique_ptr<Tactic> make_softmax_tactic(Isa isa) { return std::make_unique<RowTactic>("Softmax", isa); }
std::unique_ptr<Tactic> make_layernorm_tactic(Isa isa) {
  return std::make_unique<RowTactic>("LayerNormalization", isa);
}
std::unique_ptr<Tactic> make_batchnorm_tactic() { return std::make_unique<BatchNormTactic>(); }

}  // namespace kiln::backends::cpu
