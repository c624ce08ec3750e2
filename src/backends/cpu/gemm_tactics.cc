// Tactics for MatMul, Gemm, kiln.FusedMatMul and kiln.FusedGemm on the packed
// SGEMM (gemm.h). A constant B is packed once in prepare() (and stored in
// plans through serialize()/load()); a B computed at run time is packed
// while the product runs. Inputs outside what the kernel handles (other
// dtypes at run time, odd bias shapes) go to the reference kernel. The bf16
// variants run the same driver on the AVX-512 BF16 microkernel with both
// operands packed as bfloat16 pairs (gemm.h), only where the graph
// guarantees both hold bfloat16 values (tactics.h). The fp16 variants store
// a constant B of half values at half the bytes and widen it block by
// block onto the fp32 microkernel (gemm.h WeightFormat::kFp16).
#include <algorithm>
#include <optional>
#include <string>

#include "backends/cpu/gemm.h"
#include "backends/cpu/tactics.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "ops/op_util.h"

namespace kiln::backends::cpu {
namespace {

// The epilogue attributes of a fused node; the identity for plain ops.
Result<ops::Epilogue> node_epilogue(const ir::Node& node, bool fused) {
  if (!fused) return ops::Epilogue{};
  return ops::Epilogue::from_node(node);
}

// Optional input i as a float32 tensor, or nullptr when absent.
const Tensor* optional_f32(ops::KernelContext& ctx, size_t i) {
  return ctx.has_input(i) && ctx.datum(i).is_tensor() ? &ctx.input(i) : nullptr;
}

// Every input float32; input 0 may also be float16 where the kernel widens it (`half_a`).
bool all_f32(ops::KernelContext& ctx, bool half_a) {
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    if (!ctx.has_input(i)) continue;
    if (!ctx.datum(i).is_tensor()) return false;
    const DataType t = ctx.input(i).dtype();
    if (t != DataType::kFloat32 && !(i == 0 && half_a && t == DataType::kFloat16)) return false;
  }
  return true;
}

// The values of A as floats: its own data, or a float16 A widened.
const float* floats_of(const Tensor& a) {
  if (a.dtype() == DataType::kFloat32) return a.data<float>();
  return widen_halves_to_thread_buffer(static_cast<const uint16_t*>(a.raw_data()), a.numel());
}

// Input 0 of a node a tactic of `packing` takes: float32, or float16 for
// the fp16 tactics (passes/half_inputs.cc).
bool a_served(const ir::Node& node, const GemmPacking& packing) {
  return is_f32(node.input(0)) || (packing.fp16() && is_f16(node.input(0)));
}

// ---- MatMul / kiln.FusedMatMul ------------------------------------------------

class MatMulKernel final : public Kernel {
 public:
  MatMulKernel(GemmConfig cfg, GemmPacking packing, ops::Epilogue epi, std::optional<PackedMatrix> b)
      : cfg_(cfg), packing_(packing), epi_(epi), b_(std::move(b)) {}

  bool fills_outputs() const override { return true; }
  Status run(ops::KernelContext& ctx) const override {
    if (!ctx.has_input(0) || !ctx.has_input(1) || !all_f32(ctx, packing_.fp16())) return run_reference(ctx);
    const Tensor& a = ctx.input(0);
    const Tensor& b = ctx.input(1);
    if (a.rank() < 1 || b.rank() < 2) return run_reference(ctx);
    const int64_t k = a.dim(a.rank() - 1);
    const int64_t n = b.dim(b.rank() - 1);
    if (b.dim(b.rank() - 2) != k) return run_reference(ctx);  // reports the mismatch
    const Tensor* bias = optional_f32(ctx, 2);
    if (bias != nullptr && (bias->numel() != n || bias->rank() != 1)) return run_reference(ctx);
    if (b.rank() == 2) return run_folded(ctx, a, b, k, n, bias);
    if (packing_.format != WeightFormat::kFp32 || a.dtype() != DataType::kFloat32) {
      return run_reference(ctx);  // they take a constant matrix B only
    }
    return run_batched(ctx, a, b, k, n, bias);
  }

  std::vector<uint8_t> serialize() const override { return b_ ? b_->serialize() : std::vector<uint8_t>{}; }

 private:
  // B is one matrix: every leading dim of A folds into the rows.
  Status run_folded(ops::KernelContext& ctx, const Tensor& a, const Tensor& b, int64_t k, int64_t n,
                    const Tensor* bias) const {
    Dims ydims(a.dims().begin(), a.dims().end() - 1);
    ydims.push_back(n);
    const Tensor* z = optional_f32(ctx, 3);
    if (z != nullptr && z->dims() != ydims) return run_reference(ctx);
    const int64_t rows = k > 0 ? a.numel() / k : [&] {
      int64_t r = 1;
      for (size_t i = 0; i + 1 < a.dims().size(); ++i) r *= a.dims()[i];
      return r;
    }();
    KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.allocate_output(0, DataType::kFloat32, ydims));
    GemmEpilogue e;
    e.bias_col = bias != nullptr ? bias->data<float>() : nullptr;
    e.residual = z != nullptr ? z->data<float>() : nullptr;
    e.ldr = n;
    e.residual_after_activation = epi_.residual_after_activation;
    e.activation = epi_;
    std::optional<PackedMatrix> runtime_b;
    const PackedMatrix* pb = b_ ? &*b_ : nullptr;
    if (pb == nullptr || pb->depth != packing_.depth(k) || pb->rows != n) {
      runtime_b = packing_.pack({b.data<float>(), 1, n}, n, k, cfg_.kernel.nr, ctx.pool());
      pb = &*runtime_b;
    }
    gemm(cfg_, rows, n, packing_.depth(k), packing_.operand({floats_of(a), k, 1}, k), GemmPacking::weights(*pb),
         y->data<float>(), n, e, ctx.pool());
    return Status::ok();
  }

  // Batched product with numpy broadcasting of the batch dims.
  Status run_batched(ops::KernelContext& ctx, const Tensor& a, const Tensor& b, int64_t k, int64_t n,
                     const Tensor* bias) const {
    if (a.rank() < 2) return run_reference(ctx);
    const int64_t m = a.dim(a.rank() - 2);
    const Dims batch_a(a.dims().begin(), a.dims().end() - 2);
    const Dims batch_b(b.dims().begin(), b.dims().end() - 2);
    auto batch = ops::broadcast_dims(batch_a, batch_b);
    if (!batch.is_ok()) return run_reference(ctx);
    Dims ydims = *batch;
    ydims.push_back(m);
    ydims.push_back(n);
    const Tensor* z = optional_f32(ctx, 3);
    if (z != nullptr && z->dims() != ydims) return run_reference(ctx);
    KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.allocate_output(0, DataType::kFloat32, ydims));
    KILN_ASSIGN_OR_RETURN(int64_t batches, checked_numel(*batch));
    std::vector<int64_t> a_off, b_off;
    ops::BroadcastIterator it(*batch, {batch_a, batch_b});
    for (int64_t i = 0; i < batches; ++i) {
      a_off.push_back(it.offset(0) * m * k);
      b_off.push_back(it.offset(1) * k * n);
      if (i + 1 < batches) it.next();
    }
    auto one = [&](int64_t i, ThreadPool* pool) {
      GemmEpilogue e;
      e.bias_col = bias != nullptr ? bias->data<float>() : nullptr;
      e.residual = z != nullptr ? z->data<float>() + i * m * n : nullptr;
      e.ldr = n;
      e.residual_after_activation = epi_.residual_after_activation;
      e.activation = epi_;
      const size_t s = static_cast<size_t>(i);
      gemm(cfg_, m, n, k, GemmOperand::strided({a.data<float>() + a_off[s], k, 1}),
           GemmOperand::strided({b.data<float>() + b_off[s], 1, n}), y->data<float>() + i * m * n, n, e, pool);
    };
    ThreadPool* pool = ctx.pool();
    if (pool != nullptr && pool->threads() > 1 && batches >= pool->threads()) {
      pool->parallel_for(batches, 1, [&](int64_t b0, int64_t b1) {
        for (int64_t i = b0; i < b1; ++i) one(i, nullptr);
      });
    } else {
      for (int64_t i = 0; i < batches; ++i) one(i, pool);
    }
    return Status::ok();
  }

  GemmConfig cfg_;
  GemmPacking packing_;
  ops::Epilogue epi_;
  std::optional<PackedMatrix> b_;
};

class MatMulTactic final : public OwnFusableTactic {
 public:
  MatMulTactic(Isa isa, bool fused, WeightFormat format)
      : OwnFusableTactic(std::string("matmul") + GemmPacking{format}.suffix(), "MatMul", isa, fused),
        packing_{format} {}

  bool supports(const ir::Node& node) const override {
    if (!serves(node)) return false;
    if (!a_served(node, packing_) || !is_f32(node.input(1))) return false;
    const ir::Value* b = node.input(1);
    if (b->is_constant() && b->constant().rank() < 2) return false;
    return weights_served(node, packing_.format, constant_b(node) != nullptr);
  }

  Result<std::unique_ptr<Kernel>> prepare(const ir::Node& node) const override {
    KILN_ASSIGN_OR_RETURN(ops::Epilogue epi, node_epilogue(node, fused_));
    const GemmConfig cfg = packing_.config(isa_);
    std::optional<PackedMatrix> packed;
    if (const Tensor* b = constant_b(node)) {
      const int64_t k = b->dim(0), n = b->dim(1);
      packed = packing_.pack({b->data<float>(), 1, n}, n, k, cfg.kernel.nr, nullptr);
    }
    return std::unique_ptr<Kernel>(new MatMulKernel(cfg, packing_, epi, std::move(packed)));
  }

  bool takes_float16_input(const ir::Node& node) const override { return packing_.fp16() && supports(node); }

  Result<std::unique_ptr<Kernel>> load(const ir::Node& node, std::span<const uint8_t> state) const override {
    const Tensor* b = constant_b(node);
    if (b == nullptr || state.empty()) return prepare(node);
    KILN_ASSIGN_OR_RETURN(ops::Epilogue epi, node_epilogue(node, fused_));
    const GemmConfig cfg = packing_.config(isa_);
    auto packed = packing_.unpack(state, b->dim(1), b->dim(0), cfg.kernel.nr);
    if (!packed.is_ok()) return packed.status().with_context(node.describe());
    return std::unique_ptr<Kernel>(new MatMulKernel(cfg, packing_, epi, std::move(packed).value()));
  }

 private:
  // B when it is a constant float32 matrix (packed ahead of time), else nullptr.
  static const Tensor* constant_b(const ir::Node& node) {
    const ir::Value* b = node.input(1);
    if (b == nullptr || !b->is_constant()) return nullptr;
    const Tensor& t = b->constant();
    return t.rank() == 2 && t.dtype() == DataType::kFloat32 ? &t : nullptr;
  }

  GemmPacking packing_;
};

// ---- Gemm / kiln.FusedGemm ------------------------------------------------------

class GemmKernel final : public Kernel {
 public:
  GemmKernel(GemmConfig cfg, GemmPacking packing, ops::Epilogue epi, std::optional<PackedMatrix> b)
      : cfg_(cfg), packing_(packing), epi_(epi), b_(std::move(b)) {}

  bool fills_outputs() const override { return true; }
  Status run(ops::KernelContext& ctx) const override {
    if (!ctx.has_input(0) || !ctx.has_input(1) || !all_f32(ctx, packing_.fp16())) return run_reference(ctx);
    const ir::Node& node = ctx.node();
    const Tensor& a = ctx.input(0);
    const Tensor& b = ctx.input(1);
    if (a.rank() != 2 || b.rank() != 2) return run_reference(ctx);
    if (!ctx.has_input(2) && ctx.opset() < 11) return run_reference(ctx);
    const bool trans_a = node.attr_int("transA", 0) != 0;
    const bool trans_b = node.attr_int("transB", 0) != 0;
    const int64_t m = trans_a ? a.dim(1) : a.dim(0);
    const int64_t k = trans_a ? a.dim(0) : a.dim(1);
    const int64_t kb = trans_b ? b.dim(1) : b.dim(0);
    const int64_t n = trans_b ? b.dim(0) : b.dim(1);
    if (k != kb) return run_reference(ctx);
    const float alpha = node.attr_float("alpha", 1.0f);
    const float beta = node.attr_float("beta", 1.0f);

    GemmEpilogue e;
    e.scale = alpha;
    std::vector<float> bias_scratch;
    std::vector<float> addend_scratch;
    if (const Tensor* c = optional_f32(ctx, 2); c != nullptr && beta != 0.0f) {
      const float* cp = c->data<float>();
      const Dims& cd = c->dims();
      if (c->rank() > 2) return run_reference(ctx);
      if (c->numel() == 1) {
        bias_scratch.assign(static_cast<size_t>(n), beta * cp[0]);
        e.bias_col = bias_scratch.data();
      } else if (cd.back() == n && (c->rank() == 1 || cd[0] == 1)) {
        bias_scratch.assign(cp, cp + n);
        for (float& v : bias_scratch) v *= beta;
        e.bias_col = bias_scratch.data();
      } else if (c->rank() == 2 && cd[0] == m && cd[1] == 1) {
        bias_scratch.assign(cp, cp + m);
        for (float& v : bias_scratch) v *= beta;
        e.bias_row = bias_scratch.data();
      } else if (c->rank() == 2 && cd[0] == m && cd[1] == n) {
        if (beta == 1.0f) {
          e.addend = cp;
        } else {
          addend_scratch.assign(cp, cp + m * n);
          for (float& v : addend_scratch) v *= beta;
          e.addend = addend_scratch.data();
        }
        e.lda = n;
      } else {
        return run_reference(ctx);  // reports C's shape
      }
    }
    const Tensor* z = optional_f32(ctx, 3);
    if (z != nullptr && z->dims() != Dims{m, n}) return run_reference(ctx);
    e.residual = z != nullptr ? z->data<float>() : nullptr;
    e.ldr = n;
    e.residual_after_activation = epi_.residual_after_activation;
    e.activation = epi_;

    KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.allocate_output(0, DataType::kFloat32, {m, n}));
    const float* ap = floats_of(a);
    const StridedMatrix am = trans_a ? StridedMatrix{ap, 1, m} : StridedMatrix{ap, k, 1};
    std::optional<PackedMatrix> runtime_b;
    const PackedMatrix* pb = b_ ? &*b_ : nullptr;
    if (pb == nullptr || pb->depth != packing_.depth(k) || pb->rows != n) {
      const StridedMatrix bm = trans_b ? StridedMatrix{b.data<float>(), k, 1} : StridedMatrix{b.data<float>(), 1, n};
      runtime_b = packing_.pack(bm, n, k, cfg_.kernel.nr, ctx.pool());
      pb = &*runtime_b;
    }
    gemm(cfg_, m, n, packing_.depth(k), packing_.operand(am, k), GemmPacking::weights(*pb), y->data<float>(), n, e,
         ctx.pool());
    return Status::ok();
  }

  std::vector<uint8_t> serialize() const override { return b_ ? b_->serialize() : std::vector<uint8_t>{}; }

 private:
  GemmConfig cfg_;
  GemmPacking packing_;
  ops::Epilogue epi_;
  std::optional<PackedMatrix> b_;
};

class GemmTactic final : public OwnFusableTactic {
 public:
  GemmTactic(Isa isa, bool fused, WeightFormat format)
      : OwnFusableTactic(std::string("gemm") + GemmPacking{format}.suffix(), "Gemm", isa, fused), packing_{format} {}

  bool supports(const ir::Node& node) const override {
    if (!serves(node)) return false;
    if (!a_served(node, packing_) || !is_f32(node.input(1))) return false;
    if (node.input(2) != nullptr && !is_f32(node.input(2))) return false;
    const ir::Value* b = node.input(1);
    if (b->is_constant() && b->constant().rank() != 2) return false;
    return weights_served(node, packing_.format, constant_b(node) != nullptr);
  }

  Result<std::unique_ptr<Kernel>> prepare(const ir::Node& node) const override {
    KILN_ASSIGN_OR_RETURN(ops::Epilogue epi, node_epilogue(node, fused_));
    const GemmConfig cfg = packing_.config(isa_);
    std::optional<PackedMatrix> packed;
    if (const Tensor* b = constant_b(node)) {
      const bool trans_b = node.attr_int("transB", 0) != 0;
      const int64_t k = trans_b ? b->dim(1) : b->dim(0);
      const int64_t n = trans_b ? b->dim(0) : b->dim(1);
      const StridedMatrix bm = trans_b ? StridedMatrix{b->data<float>(), k, 1} : StridedMatrix{b->data<float>(), 1, n};
      packed = packing_.pack(bm, n, k, cfg.kernel.nr, nullptr);
    }
    return std::unique_ptr<Kernel>(new GemmKernel(cfg, packing_, epi, std::move(packed)));
  }

  bool takes_float16_input(const ir::Node& node) const override { return packing_.fp16() && supports(node); }

  Result<std::unique_ptr<Kernel>> load(const ir::Node& node, std::span<const uint8_t> state) const override {
    const Tensor* b = constant_b(node);
    if (b == nullptr || state.empty()) return prepare(node);
    KILN_ASSIGN_OR_RETURN(ops::Epilogue epi, node_epilogue(node, fused_));
    const GemmConfig cfg = packing_.config(isa_);
    const bool trans_b = node.attr_int("transB", 0) != 0;
    const int64_t k = trans_b ? b->dim(1) : b->dim(0);
    const int64_t n = trans_b ? b->dim(0) : b->dim(1);
    auto packed = packing_.unpack(state, n, k, cfg.kernel.nr);
    if (!packed.is_ok()) return packed.status().with_context(node.describe());
    return std::unique_ptr<Kernel>(new GemmKernel(cfg, packing_, epi, std::move(packed).value()));
  }

 private:
  static const Tensor* constant_b(const ir::Node& node) {
    const ir::Value* b = node.input(1);
    if (b == nullptr || !b->is_constant()) return nullptr;
    const Tensor& t = b->constant();
    return t.rank() == 2 && t.dtype() == DataType::kFloat32 ? &t : nullptr;
  }

  GemmPacking packing_;
};

}  // namespace

std::unique_ptr<Tactic> make_matmul_tactic(Isa isa, bool fused) {
  return std::make_unique<MatMulTactic>(isa, fused, WeightFormat::kFp32);
}
std::unique_ptr<Tactic> make_gemm_tactic(Isa isa, bool fused) {
  return std::make_unique<GemmTactic>(isa, fused, WeightFormat::kFp32);
}
std::unique_ptr<Tactic> make_matmul_bf16_tactic(bool fused) {
  return std::make_unique<MatMulTactic>(Isa::kAvx512, fused, WeightFormat::kBf16);
}
std::unique_ptr<Tactic> make_gemm_bf16_tactic(bool fused) {
  return std::make_unique<GemmTactic>(Isa::kAvx512, fused, WeightFormat::kBf16);
}
std::unique_ptr<Tactic> make_matmul_fp16_tactic(Isa isa, bool fused) {
  return std::make_unique<MatMulTactic>(isa, fused, WeightFormat::kFp16);
}
std::unique_ptr<Tactic> make_gemm_fp16_tactic(Isa isa, bool fused) {
  return std::make_unique<GemmTactic>(isa, fused, WeightFormat::kFp16);
}

}  // namespace kiln::backends::cpu
