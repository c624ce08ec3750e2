// kiln.Attention tactic ("own.attention.<isa>"), float32:
//   Y = softmax(scale * (Q @ Kt) + mask) @ V over the last axis.
//
// Work is split over the pool in units of (batch index, block of query
// rows). Each unit computes its block's scores S = scale * Q_blk @ Kt + mask
// with the packed SGEMM (gemm.h; the scale and a mask that is contiguous
// along Skv are applied in the microkernel's store), normalizes each row in
// place with the softmax row kernel (microkernel.h), then Y_blk = S @ V with
// a second SGEMM. A unit holds at most `rows x Skv` scores in a per-thread
// buffer, with `rows` sized to keep them in L2, so the full score matrix is
// never materialized and long sequences work.
//
// Handled: Q [..., Sq, D], Kt [..., D, Skv], V [..., Skv, Dv] of one rank
// >= 2 whose batch dims are each equal to the output's or 1; an optional
// mask that numpy-broadcasts to the scores [..., Sq, Skv]; all extents
// nonzero; Q, Kt, V finite and the mask finite or -Inf. Anything else
// (other dtypes, ranks that differ, Inf or NaN inputs, which the reference
// defines through its own exp) goes to the reference kernel, which also
// reports malformed inputs.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "backends/cpu/gemm.h"
#include "backends/cpu/microkernel.h"
#include "backends/cpu/tactics.h"
#include "core/error.h"
#include "core/thread_pool.h"

namespace kiln::backends::cpu {
namespace {

// Scores per unit: 16K floats (64 KB) stay in L2 between the two products.
constexpr int64_t kScoreFloats = 16384;
constexpr float kInf = std::numeric_limits<float>::infinity();

// Which non-finite values a tensor holds. Integer adds on the float bits,
// four lanes at a time in SSE2 registers (a plain isfinite loop is not
// vectorized without -ffast-math and took 10% of BERT's attention): the
// exponent bits are all ones only for Inf and NaN, where adding kCarry
// sets bit 31.
struct NonFinite {
  bool any = false;    // some Inf or NaN
  bool other = false;  // some +Inf or NaN (any && !other: only -Inf)
};

NonFinite non_finite(const Tensor& t) {
  using U32x4 = uint32_t __attribute__((vector_size(16)));
  constexpr uint32_t kExp = 0x7f800000u;
  constexpr uint32_t kCarry = 0x00800000u;
  constexpr uint32_t kNegInf = 0xff800000u;
  const float* p = t.data<float>();
  const int64_t n = t.numel();
  U32x4 any = {0, 0, 0, 0};    // bit 31: Inf or NaN
  U32x4 other = {0, 0, 0, 0};  // bit 31: Inf or NaN other than -Inf
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    U32x4 b;
    std::memcpy(&b, p + i, sizeof(b));
    const U32x4 bad = (b & kExp) + kCarry;
    any |= bad;
    other |= bad & reinterpret_cast<U32x4>(b != kNegInf);
  }
  uint32_t a = any[0] | any[1] | any[2] | any[3];
  uint32_t o = other[0] | other[1] | other[2] | other[3];
  for (; i < n; ++i) {
    const uint32_t b = std::bit_cast<uint32_t>(p[i]);
    const uint32_t bad = (b & kExp) + kCarry;
    a |= bad;
    if (b != kNegInf) o |= bad;
  }
  NonFinite r;
  r.any = (a & 0x80000000u) != 0;
  r.other = (o & 0x80000000u) != 0;
  return r;
}

// The product's layout: output batch dims, matrix extents and, per operand,
// the element stride of each batch dim (0 where the operand broadcasts).
struct Geometry {
  Dims batch;
  int64_t batches = 1;
  int64_t sq = 0, d = 0, skv = 0, dv = 0;
  std::vector<int64_t> q_bs, k_bs, v_bs, m_bs;
  bool has_mask = false;
  int64_t m_row = 0;          // mask stride along Sq (0: broadcast)
  int64_t m_col = 0;          // mask stride along Skv: 1, or 0 when broadcast
  bool mask_neg_inf = false;  // the mask holds -Inf: a row of scores may be all -Inf
};

// Element strides of `dims` right-aligned against `target`, 0 where a dim
// is 1 or absent; false if some dim is neither 1 nor the target's.
bool broadcast_strides(const Dims& dims, const Dims& target, std::vector<int64_t>& strides) {
  const size_t rank = target.size();
  if (dims.size() > rank) return false;
  strides.assign(rank, 0);
  const size_t off = rank - dims.size();
  int64_t s = 1;
  for (size_t i = dims.size(); i-- > 0;) {
    const int64_t e = dims[i];
    if (e != target[off + i] && e != 1) return false;
    if (e != 1) strides[off + i] = s;
    s *= e;
  }
  return true;
}

// Fills `g` from the run-time inputs, or returns false for a case the
// kernel leaves to the reference.
bool geometry(const ops::KernelContext& ctx, Geometry& g) {
  const Tensor& q = ctx.input(0);
  const Tensor& k = ctx.input(1);
  const Tensor& v = ctx.input(2);
  const int64_t r = q.rank();
  if (r < 2 || k.rank() != r || v.rank() != r) return false;
  g.sq = q.dim(r - 2);
  g.d = q.dim(r - 1);
  g.skv = k.dim(r - 1);
  g.dv = v.dim(r - 1);
  if (k.dim(r - 2) != g.d || v.dim(r - 2) != g.skv) return false;
  if (g.sq <= 0 || g.d <= 0 || g.skv <= 0 || g.dv <= 0) return false;
  Dims scores_batch;
  g.batch.clear();
  for (int64_t i = 0; i < r - 2; ++i) {
    const int64_t a = q.dim(i), b = k.dim(i), c = v.dim(i);
    const int64_t qk = std::max(a, b), out = std::max(qk, c);
    for (int64_t e : {a, b, c}) {
      if (e != out && e != 1) return false;
    }
    if (out <= 0) return false;
    scores_batch.push_back(qk);
    g.batch.push_back(out);
  }
  g.batches = 1;
  for (int64_t e : g.batch) g.batches *= e;
  auto batch_strides = [&](const Tensor& t, std::vector<int64_t>& bs) {
    bs.assign(static_cast<size_t>(r - 2), 0);
    int64_t s = t.dim(r - 2) * t.dim(r - 1);
    for (int64_t i = r - 3; i >= 0; --i) {
      if (t.dim(i) != 1) bs[static_cast<size_t>(i)] = s;
      s *= t.dim(i);
    }
  };
  batch_strides(q, g.q_bs);
  batch_strides(k, g.k_bs);
  batch_strides(v, g.v_bs);
  g.has_mask = ctx.has_input(3);
  if (g.has_mask) {
    const Tensor& m = ctx.input(3);
    // The reference broadcasts the mask to the scores, whose batch dims are Q's and Kt's.
    Dims scores = scores_batch;
    scores.push_back(g.sq);
    scores.push_back(g.skv);
    std::vector<int64_t> unused;
    if (!broadcast_strides(m.dims(), scores, unused)) return false;
    // Against the output's batch dims: a mask dim equals the scores' dim, which is the output's or 1.
    Dims out = g.batch;
    out.push_back(g.sq);
    out.push_back(g.skv);
    std::vector<int64_t> ms;
    if (!broadcast_strides(m.dims(), out, ms)) return false;
    g.m_bs.assign(ms.begin(), ms.end() - 2);
    g.m_row = ms[static_cast<size_t>(r - 2)];
    g.m_col = ms[static_cast<size_t>(r - 1)];
  }
  return true;
}

class AttentionKernel final : public Kernel {
 public:
  AttentionKernel(Isa isa, SoftmaxRowFn softmax) : cfg_(gemm_config(isa)), softmax_(softmax) {}

  bool fills_outputs() const override { return true; }
  Status run(ops::KernelContext& ctx) const override {
    if (ctx.num_inputs() < 3) return run_reference(ctx);
    for (size_t i = 0; i < ctx.num_inputs(); ++i) {
      if (i < 3 && !ctx.has_input(i)) return run_reference(ctx);
      if (ctx.has_input(i) && (!ctx.datum(i).is_tensor() || ctx.input(i).dtype() != DataType::kFloat32)) {
        return run_reference(ctx);
      }
    }
    Geometry g;
    if (!geometry(ctx, g)) return run_reference(ctx);
    const float scale = ctx.node().attr_float("scale", 1.0f);
    if (!std::isfinite(scale)) return run_reference(ctx);
    for (size_t i = 0; i < 3; ++i) {
      if (non_finite(ctx.input(i)).any) return run_reference(ctx);
    }
    if (g.has_mask) {
      // -Inf in the mask (masked keys) is handled; +Inf and NaN are the reference's.
      const NonFinite m = non_finite(ctx.input(3));
      if (m.other) return run_reference(ctx);
      g.mask_neg_inf = m.any;
    }
    Dims out_dims = g.batch;
    out_dims.push_back(g.sq);
    out_dims.push_back(g.dv);
    KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.allocate_output(0, DataType::kFloat32, out_dims));

    ThreadPool* pool = ctx.pool();
    const int64_t threads = pool != nullptr ? pool->threads() : 1;
    const int64_t rows = block_rows(g, threads);
    const int64_t blocks = (g.sq + rows - 1) / rows;
    const int64_t units = g.batches * blocks;
    auto run_units = [&](int64_t begin, int64_t end) {
      for (int64_t u = begin; u < end; ++u) run_unit(ctx, g, scale, u / blocks, (u % blocks) * rows, rows, y);
    };
    const double flops = 2.0 * static_cast<double>(g.batches * g.sq * g.skv) * static_cast<double>(g.d + g.dv);
    if (threads > 1 && units > 1 && flops >= 2e5) {
      pool->parallel_for(units, 1, run_units);
    } else {
      run_units(0, units);
    }
    return Status::ok();
  }

 private:
  // Query rows per unit: blocks of equal size (a multiple of the
  // microkernel's MR) whose scores fit about kScoreFloats, split further
  // while there are too few units to keep every thread busy.
  int64_t block_rows(const Geometry& g, int64_t threads) const {
    const int64_t mr = cfg_.kernel.mr;
    const int64_t max_rows = std::max(mr, kScoreFloats / g.skv);
    auto rows_for = [&](int64_t blocks) {
      const int64_t per = (g.sq + blocks - 1) / blocks;
      return std::min(g.sq, (per + mr - 1) / mr * mr);
    };
    int64_t blocks = (g.sq + max_rows - 1) / max_rows;
    while (threads > 1 && g.batches * blocks < 2 * threads && rows_for(blocks + 1) < rows_for(blocks) &&
           rows_for(blocks + 1) >= mr) {
      ++blocks;
    }
    return rows_for(blocks);
  }

  // Rows [r0, r0 + rows) of batch index b (clipped to Sq).
  void run_unit(const ops::KernelContext& ctx, const Geometry& g, float scale, int64_t b, int64_t r0, int64_t rows,
                Tensor* y) const {
    const int64_t n = std::min(rows, g.sq - r0);
    int64_t q_off = 0, k_off = 0, v_off = 0, m_off = 0;
    int64_t rem = b;
    for (size_t i = g.batch.size(); i-- > 0;) {
      const int64_t idx = rem % g.batch[i];
      rem /= g.batch[i];
      q_off += idx * g.q_bs[i];
      k_off += idx * g.k_bs[i];
      v_off += idx * g.v_bs[i];
      if (g.has_mask) m_off += idx * g.m_bs[i];
    }
    thread_local AlignedFloats buffer;
    buffer.reserve_discard(n * g.skv);
    float* s = buffer.data();

    GemmEpilogue qk;
    qk.scale = scale;
    const float* mask = g.has_mask ? ctx.input(3).data<float>() + m_off : nullptr;
    if (mask != nullptr && g.m_col == 1) {
      qk.residual = mask + r0 * g.m_row;
      qk.ldr = g.m_row;
    }
    const float* q = ctx.input(0).data<float>() + q_off + r0 * g.d;
    const float* kt = ctx.input(1).data<float>() + k_off;
    gemm(cfg_, n, g.skv, g.d, GemmOperand::strided({q, g.d, 1}), GemmOperand::strided({kt, 1, g.skv}), s, g.skv, qk,
         nullptr);
    if (mask != nullptr && g.m_col == 0) {
      // One mask value per row (or one for all): the mask's last dim is 1.
      for (int64_t i = 0; i < n; ++i) {
        const float m = mask[(r0 + i) * g.m_row];
        float* row = s + i * g.skv;
        for (int64_t j = 0; j < g.skv; ++j) row[j] += m;
      }
    }
    for (int64_t i = 0; i < n; ++i) {
      float* row = s + i * g.skv;
      // A row masked entirely: the reference's exp(-Inf - -Inf) makes it NaN.
      if (g.mask_neg_inf && std::all_of(row, row + g.skv, [](float x) { return x == -kInf; })) {
        std::fill(row, row + g.skv, std::numeric_limits<float>::quiet_NaN());
        continue;
      }
      // Other -Inf scores come out of the row kernel as 0 (generic) or below 1e-38 (AVX2's clamped exp).
      softmax_(row, row, g.skv);
    }
    const float* v = ctx.input(2).data<float>() + v_off;
    float* out = y->data<float>() + b * g.sq * g.dv + r0 * g.dv;
    gemm(cfg_, n, g.dv, g.skv, GemmOperand::strided({s, g.skv, 1}), GemmOperand::strided({v, 1, g.dv}), out, g.dv,
         GemmEpilogue{}, nullptr);
  }

  GemmConfig cfg_;
  SoftmaxRowFn softmax_;
};

class AttentionTactic final : public Tactic {
 public:
  explicit AttentionTactic(Isa isa) : isa_(isa), name_("own.attention." + std::string(isa_name(isa))) {}
  std::string_view name() const override { return name_; }
  std::string_view source() const override { return "own"; }
  bool supports(const ir::Node& node) const override {
    if (node.op_type() != "Attention" || node.domain() != "kiln" || node.num_inputs() < 3) return false;
    for (size_t i = 0; i < node.num_inputs(); ++i) {
      if ((i < 3 || node.input(i) != nullptr) && !is_f32(node.input(i))) return false;
    }
    return true;
  }
  Result<std::unique_ptr<Kernel>> prepare(const ir::Node& node) const override {
    if (!supports(node)) return invalid_argument("{}: not supported by {}", node.describe(), name_);
    // The softmax row kernel exists for generic and AVX2; AVX-512 machines use the AVX2 one.
    const SoftmaxRowFn softmax = isa_ == Isa::kGeneric ? softmax_row_generic : softmax_row_avx2;
    return std::unique_ptr<Kernel>(new AttentionKernel(isa_, softmax));
  }

 private:
  Isa isa_;
  std::string name_;
};

}  // namespace

std::unique_ptr<Tactic> make_attention_tactic(Isa isa) { return std::make_unique<AttentionTactic>(isa); }

}  // namespace kiln::backends::cpu
