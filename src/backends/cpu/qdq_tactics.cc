// Per-tensor QuantizeLinear (float32 -> uint8/int8) and DequantizeLinear
// (uint8/int8 -> float32) with constant scalar scale and zero point: the Q/DQ
// pairs left around ops without an int8 form (pooling, residual adds) and at
// a model's inputs and outputs. Same arithmetic as the reference kernels
// (src/ops/quantization.cc), so results are bit-exact:
//   Q:  saturate(nearbyint(float32(x / scale)) + zero_point), NaN -> zero_point
//   DQ: float32(x - zero_point) * scale
// Other forms (per-axis, blocked, float8, int32, output_dtype/precision
// attributes) are declined at build time and stay on the reference tactic.
#include <algorithm>
#include <cmath>
#include <string>

#include "backends/cpu/isa.h"
#include "backends/cpu/qdq_avx2.h"
#include "backends/cpu/tactics.h"
#include "core/error.h"
#include "core/thread_pool.h"

namespace kiln::backends::cpu {
namespace {

bool is_8bit(DataType t) { return t == DataType::kUInt8 || t == DataType::kInt8; }

}  // namespace

// The constant scalar scale (float32) and zero point (8-bit, or absent) of a Q/DQ node.
bool qdq_scalar_params(const ir::Node& n, float& scale, int32_t& zp, DataType& q_type) {
  const ir::Value* s = n.input(1);
  if (s == nullptr || !s->is_constant() || s->constant().dtype() != DataType::kFloat32 || s->constant().numel() != 1) {
    return false;
  }
  scale = s->constant().data<float>()[0];
  q_type = DataType::kUInt8;
  zp = 0;
  if (const ir::Value* z = n.input(2); z != nullptr) {
    if (!z->is_constant() || !is_8bit(z->constant().dtype()) || z->constant().numel() != 1) return false;
    q_type = z->constant().dtype();
    zp = q_type == DataType::kInt8 ? int32_t{z->constant().data<int8_t>()[0]}
                                   : int32_t{z->constant().data<uint8_t>()[0]};
  }
  for (const char* a : {"output_dtype", "precision", "block_size"}) {
    if (n.has_attr(a) && n.attr_int(a, 0) != 0) return false;
  }
  return true;
}

namespace {

template <typename Fn>
void parallel_elements(int64_t n, ThreadPool* pool, const Fn& fn) {
  if (pool != nullptr && pool->threads() > 1 && n >= (1 << 16)) {
    pool->parallel_for(n, 1 << 14, fn);
  } else {
    fn(0, n);
  }
}

// saturate(nearbyint(x / scale) + zp) over [0, n), NaN -> zp, without a libm
// call or a branch per element, so that the compiler vectorizes it: clamp to
// [clo, chi] = [lo - zp - 1, hi - zp + 1] (integer bounds; rounding is
// monotone), round half to even by adding and subtracting 1.5 * 2^23 (exact
// for |v| < 2^22), then saturate. The min/max are written as the compares that
// map onto minps/maxps (std::clamp's references do not vectorize).
template <bool Signed>
void quantize_span(const float* __restrict in, uint8_t* __restrict out, int64_t n, float scale, float zp, float lo,
                   float hi, float clo, float chi) {
  constexpr float kMagic = 12582912.0f;
  auto mn = [](float a, float b) { return a < b ? a : b; };
  auto mx = [](float a, float b) { return a > b ? a : b; };
  for (int64_t i = 0; i < n; ++i) {
    const float x_over_s = in[i] / scale;
    const bool nan = x_over_s != x_over_s;
    const float r = (mn(mx(x_over_s, clo), chi) + kMagic) - kMagic;
    const float v = nan ? zp : mn(mx(r + zp, lo), hi);
    const auto q = static_cast<int32_t>(v);
    out[i] = Signed ? static_cast<uint8_t>(static_cast<int8_t>(q)) : static_cast<uint8_t>(q);
  }
}

}  // namespace

void quantize_floats(const float* in, uint8_t* out, int64_t n, float scale, int32_t zero_point, DataType q_type) {
  const bool is_signed = q_type == DataType::kInt8;
  const float lo = is_signed ? -128.0f : 0.0f, hi = is_signed ? 127.0f : 255.0f;
  const float zp = static_cast<float>(zero_point), clo = lo - zp - 1.0f, chi = hi - zp + 1.0f;
  int64_t b = 0;
  if (detect_isa() >= Isa::kAvx2) b = quantize_span_avx2(in, out, n, scale, zp, lo, hi, clo, chi, is_signed);
  if (is_signed) {
    quantize_span<true>(in + b, out + b, n - b, scale, zp, lo, hi, clo, chi);
  } else {
    quantize_span<false>(in + b, out + b, n - b, scale, zp, lo, hi, clo, chi);
  }
}

void dequantize_bytes(const uint8_t* in, float* out, int64_t n, float scale, int32_t zp, DataType q_type) {
  const bool is_signed = q_type == DataType::kInt8;
  int64_t b = 0;
  if (detect_isa() >= Isa::kAvx2) b = dequantize_span_avx2(in, out, n, zp, scale, is_signed);
  for (int64_t i = b; i < n; ++i) {
    const int32_t q = is_signed ? int32_t{static_cast<int8_t>(in[i])} : int32_t{in[i]};
    out[i] = static_cast<float>(q - zp) * scale;
  }
}

namespace {

class QdqKernel final : public Kernel {
 public:
  QdqKernel(bool quantize, float scale, int32_t zp, DataType q_type)
      : quantize_(quantize), scale_(scale), zp_(zp), q_type_(q_type) {}

  bool fills_outputs() const override { return true; }
  Status run(ops::KernelContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    if (x.dtype() != (quantize_ ? DataType::kFloat32 : q_type_)) return run_reference(ctx);
    KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.allocate_output(0, quantize_ ? q_type_ : DataType::kFloat32, x.dims()));
    if (quantize_) {
      const float* in = x.data<float>();
      auto* out = static_cast<uint8_t*>(y->raw_data());
      parallel_elements(x.numel(), ctx.pool(), [&](int64_t b, int64_t e) {
        quantize_floats(in + b, out + b, e - b, scale_, zp_, q_type_);
      });
    } else {
      float* out = y->data<float>();
      const auto* in = static_cast<const uint8_t*>(x.raw_data());
      parallel_elements(x.numel(), ctx.pool(), [&](int64_t b, int64_t e) {
        dequantize_bytes(in + b, out + b, e - b, scale_, zp_, q_type_);
      });
    }
    return Status::ok();
  }

 private:
  bool quantize_;
  float scale_;
  int32_t zp_;
  DataType q_type_;
};

class QdqTactic final : public Tactic {
 public:
  explicit QdqTactic(bool quantize)
      : quantize_(quantize), name_(quantize ? "own.quantize_linear" : "own.dequantize_linear") {}
  std::string_view name() const override { return name_; }
  std::string_view source() const override { return "own"; }

  bool supports(const ir::Node& node) const override {
    if (node.op_type() != (quantize_ ? "QuantizeLinear" : "DequantizeLinear")) return false;
    float scale = 0;
    int32_t zp = 0;
    DataType q = DataType::kUndefined;
    if (!qdq_scalar_params(node, scale, zp, q) || !(scale > 0) || !std::isfinite(scale)) return false;
    const ir::Value* x = node.input(0);
    if (x == nullptr || !x->type().is_tensor()) return false;
    return quantize_ ? x->type().dtype == DataType::kFloat32 : x->type().dtype == q;
  }

  Result<std::unique_ptr<Kernel>> prepare(const ir::Node& node) const override {
    if (!supports(node)) return invalid_argument("{}: not supported by {}", node.describe(), name_);
    float scale = 0;
    int32_t zp = 0;
    DataType q = DataType::kUndefined;
    qdq_scalar_params(node, scale, zp, q);
    return std::unique_ptr<Kernel>(new QdqKernel(quantize_, scale, zp, q));
  }

 private:
  bool quantize_;
  std::string name_;
};

}  // namespace

std::unique_ptr<Tactic> make_qdq_tactic(bool quantize) { return std::make_unique<QdqTactic>(quantize); }

}  // namespace kiln::backends::cpu
