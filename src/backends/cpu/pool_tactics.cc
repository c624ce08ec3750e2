// 2-D pooling tactics on NCHW float32: MaxPool (Y only), AveragePool,
// GlobalMaxPool and GlobalAveragePool.
//
// Windows are separable, so each output row is two passes over contiguous
// memory: first the window's input rows are reduced into one row buffer
// (max or sum of whole rows, which the compiler vectorizes), then each
// output column reduces its taps of that buffer. Planes (N*C) are split over
// the context's pool. Tap ranges along each axis are computed once per run
// with the same rules as the reference kernel (ops/pool.cc): taps outside
// the input are skipped and, with count_include_pad, taps in the explicit
// padding still count toward the divisor.
//
// Inputs holding NaN go to the reference kernel, which defines which tap
// wins; so do other ranks, dtypes, the Indices output and any attribute the
// reference would reject (it reports the error).
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "backends/cpu/tactics.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "ops/conv_window.h"

namespace kiln::backends::cpu {

namespace {
constexpr PoolKind kPoolKinds[] = {PoolKind::kMax, PoolKind::kAverage, PoolKind::kGlobalMax,
                                   PoolKind::kGlobalAverage};
}  // namespace

const char* pool_op_name(PoolKind kind) {
  switch (kind) {
    case PoolKind::kMax: return "MaxPool";
    case PoolKind::kAverage: return "AveragePool";
    case PoolKind::kGlobalMax: return "GlobalMaxPool";
    case PoolKind::kGlobalAverage: return "GlobalAveragePool";
  }
  return "";
}

std::optional<PoolKind> pool_kind(const ir::Node& node) {
  if (!node.domain().empty()) return std::nullopt;
  for (PoolKind k : kPoolKinds) {
    if (node.op_type() == pool_op_name(k)) return k;
  }
  return std::nullopt;
}

namespace {

bool is_max(PoolKind k) { return k == PoolKind::kMax || k == PoolKind::kGlobalMax; }

// The valid taps of every window position along one axis.
struct Taps {
  std::vector<int64_t> first;   // first valid input index (unused when count is 0)
  std::vector<int64_t> count;   // number of valid taps, `dilation` apart
  std::vector<int64_t> padded;  // taps inside [-pad_begin, in + pad_end)
  int64_t dilation = 1;
};

Taps axis_taps(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t dilation, int64_t pad_begin,
               int64_t pad_end) {
  Taps t;
  t.dilation = dilation;
  t.first.resize(static_cast<size_t>(out));
  t.count.resize(static_cast<size_t>(out));
  t.padded.resize(static_cast<size_t>(out));
  for (int64_t o = 0; o < out; ++o) {
    const int64_t start = o * stride - pad_begin;
    int64_t first = 0, count = 0, padded = 0;
    for (int64_t j = 0; j < kernel; ++j) {
      const int64_t p = start + j * dilation;
      if (p >= -pad_begin && p < in + pad_end) ++padded;
      if (p < 0 || p >= in) continue;
      if (count == 0) first = p;
      ++count;
    }
    const size_t i = static_cast<size_t>(o);
    t.first[i] = first;
    t.count[i] = count;
    t.padded[i] = padded;
  }
  return t;
}

// True if any of the n floats is a NaN: on the bits (exponent all ones,
// mantissa not zero), branch-free so that it vectorizes.
bool has_nan(const float* p, int64_t n) {
  uint32_t nan = 0;
  int64_t i = 0;
#if defined(__SSE2__)
  __m128 acc = _mm_setzero_ps();
  for (; i + 4 <= n; i += 4) {
    const __m128 v = _mm_loadu_ps(p + i);
    acc = _mm_or_ps(acc, _mm_cmpunord_ps(v, v));
  }
  nan = static_cast<uint32_t>(_mm_movemask_ps(acc));
#endif
  for (; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, p + i, sizeof(bits));
    nan |= (0x7f800000u - (bits & 0x7fffffffu)) >> 31;
  }
  return nan != 0;
}

// row[i] = max(row[i], r[i]) and row[i] += r[i] for i < n, four lanes at a
// time where SSE2 is there (x86-64's baseline; the build is not vectorized).
void row_max(float* row, const float* r, int64_t n) {
  int64_t i = 0;
#if defined(__SSE2__)
  for (; i + 4 <= n; i += 4) _mm_storeu_ps(row + i, _mm_max_ps(_mm_loadu_ps(r + i), _mm_loadu_ps(row + i)));
#endif
  for (; i < n; ++i) row[i] = r[i] > row[i] ? r[i] : row[i];
}

void row_add(float* row, const float* r, int64_t n) {
  int64_t i = 0;
#if defined(__SSE2__)
  for (; i + 4 <= n; i += 4) _mm_storeu_ps(row + i, _mm_add_ps(_mm_loadu_ps(row + i), _mm_loadu_ps(r + i)));
#endif
  for (; i < n; ++i) row[i] += r[i];
}

// Reduces the plane `x` [H, W] into `y` [OH, OW] with the window described by the taps.
template <bool kMaxPool>
void pool_plane(const float* x, float* y, int64_t w, const Taps& th, const Taps& tw, bool count_pad, float* row) {
  const int64_t oh_n = static_cast<int64_t>(th.first.size());
  const int64_t ow_n = static_cast<int64_t>(tw.first.size());
  for (int64_t oh = 0; oh < oh_n; ++oh) {
    const size_t hi = static_cast<size_t>(oh);
    float* yr = y + oh * ow_n;
    const int64_t nh = th.count[hi];
    if (nh == 0) {
      for (int64_t ow = 0; ow < ow_n; ++ow) {
        if (kMaxPool) {
          yr[ow] = -std::numeric_limits<float>::infinity();
        } else {
          const int64_t n = count_pad ? th.padded[hi] * tw.padded[static_cast<size_t>(ow)] : 0;
          yr[ow] = n > 0 ? 0.0f : std::numeric_limits<float>::quiet_NaN();
        }
      }
      continue;
    }
    // Pass 1: the window's rows reduced into one row.
    const float* r0 = x + th.first[hi] * w;
    const float* src = r0;
    if (nh > 1) {
      std::copy(r0, r0 + w, row);
      for (int64_t j = 1; j < nh; ++j) {
        const float* r = r0 + j * th.dilation * w;
        if (kMaxPool) {
          row_max(row, r, w);
        } else {
          row_add(row, r, w);
        }
      }
      src = row;
    }
    // Pass 2: each output column's taps of that row.
    if (kMaxPool && tw.dilation == 1) {
      for (int64_t ow = 0; ow < ow_n; ++ow) {
        const size_t wi = static_cast<size_t>(ow);
        const float* t = src + tw.first[wi];
        switch (tw.count[wi]) {
          case 3: yr[ow] = std::max(std::max(t[0], t[1]), t[2]); break;
          case 2: yr[ow] = std::max(t[0], t[1]); break;
          default: {
            float m = -std::numeric_limits<float>::infinity();
            for (int64_t j = 0; j < tw.count[wi]; ++j) m = std::max(m, t[j]);
            yr[ow] = m;
          }
        }
      }
      continue;
    }
    for (int64_t ow = 0; ow < ow_n; ++ow) {
      const size_t wi = static_cast<size_t>(ow);
      const int64_t nw = tw.count[wi];
      const float* s = src + tw.first[wi];
      if (kMaxPool) {
        float m = -std::numeric_limits<float>::infinity();
        for (int64_t j = 0; j < nw; ++j) m = s[j * tw.dilation] > m ? s[j * tw.dilation] : m;
        yr[ow] = m;
      } else {
        float acc = 0.0f;
        for (int64_t j = 0; j < nw; ++j) acc += s[j * tw.dilation];
        const int64_t n = count_pad ? th.padded[hi] * tw.padded[wi] : nh * nw;
        yr[ow] = n > 0 ? acc / static_cast<float>(n) : std::numeric_limits<float>::quiet_NaN();
      }
    }
  }
}

// The reduction of each whole plane: GlobalMaxPool / GlobalAveragePool.
void pool_global(const float* x, float* y, int64_t planes, int64_t plane, bool max, ThreadPool* pool) {
  auto run = [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p) {
      const float* s = x + p * plane;
      if (max) {
        float m = s[0];
        for (int64_t i = 1; i < plane; ++i) m = s[i] > m ? s[i] : m;
        y[p] = m;
      } else {
        // Eight partial sums: vectorizable and closer to the reference's double sum.
        float acc[8] = {};
        int64_t i = 0;
        for (; i + 8 <= plane; i += 8) {
          for (int k = 0; k < 8; ++k) acc[k] += s[i + k];
        }
        double total = 0;
        for (float a : acc) total += a;
        for (; i < plane; ++i) total += s[i];
        y[p] = static_cast<float>(total / static_cast<double>(plane));
      }
    }
  };
  if (pool != nullptr && pool->threads() > 1 && planes > 1 && planes * plane >= 16384) {
    pool->parallel_for(planes, 1, run);
  } else {
    run(0, planes);
  }
}

class PoolKernel final : public Kernel {
 public:
  explicit PoolKernel(PoolKind kind) : kind_(kind) {}

  bool fills_outputs() const override { return true; }
  Status run(ops::KernelContext& ctx) const override {
    if (!ctx.has_input(0) || !ctx.datum(0).is_tensor()) return run_reference(ctx);
    const Tensor& x = ctx.input(0);
    if (x.dtype() != DataType::kFloat32 || x.rank() != 4 || ctx.wants_output(1)) return run_reference(ctx);
    const int64_t n = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3);
    const int64_t planes = n * c;
    if (x.numel() == 0) return run_reference(ctx);
    if (kind_ == PoolKind::kGlobalMax || kind_ == PoolKind::kGlobalAverage) {
      if (has_nan(x.data<float>(), x.numel())) return run_reference(ctx);
      KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.allocate_output(0, DataType::kFloat32, Dims{n, c, 1, 1}));
      pool_global(x.data<float>(), y->data<float>(), planes, h * w, kind_ == PoolKind::kGlobalMax, ctx.pool());
      return Status::ok();
    }
    const ir::Node& node = ctx.node();
    const std::vector<int64_t> kernel = node.attr_ints("kernel_shape");
    if (kernel.size() != 2) return run_reference(ctx);
    auto win = ops::read_window(node, kernel, /*with_dilations=*/true);
    if (!win.is_ok()) return run_reference(ctx);
    ops::Window& wd = *win;
    const bool ceil_mode = node.attr_int("ceil_mode", 0) != 0;
    auto oh = ops::window_output_dim(h, 0, wd, ceil_mode);
    auto ow = ops::window_output_dim(w, 1, wd, ceil_mode);
    if (!oh.is_ok() || !ow.is_ok()) return run_reference(ctx);
    if (kind_ == PoolKind::kMax && node.attr_int("storage_order", 0) != 0 &&
        node.attr_int("storage_order", 0) != 1) {
      return run_reference(ctx);
    }
    const Taps th = axis_taps(h, *oh, wd.kernel[0], wd.strides[0], wd.dilations[0], wd.pad_begin(0), wd.pad_end(0));
    const Taps tw = axis_taps(w, *ow, wd.kernel[1], wd.strides[1], wd.dilations[1], wd.pad_begin(1), wd.pad_end(1));
    const bool count_pad = kind_ == PoolKind::kAverage && node.attr_int("count_include_pad", 0) != 0;
    KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.allocate_output(0, DataType::kFloat32, Dims{n, c, *oh, *ow}));
    const float* xp = x.data<float>();
    float* yp = y->data<float>();
    const int64_t in_plane = h * w, out_plane = *oh * *ow;
    std::atomic<bool> nan{false};
    auto run = [&](int64_t b, int64_t e) {
      std::vector<float> row(static_cast<size_t>(w));
      for (int64_t p = b; p < e; ++p) {
        if (has_nan(xp + p * in_plane, in_plane)) {
          nan = true;
          return;
        }
        if (is_max(kind_)) {
          pool_plane<true>(xp + p * in_plane, yp + p * out_plane, w, th, tw, false, row.data());
        } else {
          pool_plane<false>(xp + p * in_plane, yp + p * out_plane, w, th, tw, count_pad, row.data());
        }
      }
    };
    ThreadPool* pool = ctx.pool();
    if (pool != nullptr && pool->threads() > 1 && planes > 1 && planes * in_plane >= 16384) {
      pool->parallel_for(planes, 1, run);
    } else {
      run(0, planes);
    }
    return nan ? run_reference(ctx) : Status::ok();
  }

 private:
  PoolKind kind_;
};

class PoolTactic final : public Tactic {
 public:
  explicit PoolTactic(PoolKind kind) : kind_(kind) {
    static const char* names[] = {"own.maxpool", "own.averagepool", "own.global_maxpool", "own.global_averagepool"};
    name_ = names[static_cast<int>(kind)];
  }
  std::string_view name() const override { return name_; }
  std::string_view source() const override { return "own"; }
  bool supports(const ir::Node& node) const override {
    if (pool_kind(node) != kind_ || !is_f32(node.input(0))) return false;
    if (kind_ == PoolKind::kMax && node.output(1) != nullptr) return false;
    const ir::ValueType& t = node.input(0)->type();
    if (t.shape.rank_known() && t.shape.rank() != 4) return false;
    if (kind_ == PoolKind::kMax || kind_ == PoolKind::kAverage) return node.attr_ints("kernel_shape").size() == 2;
    return true;
  }
  Result<std::unique_ptr<Kernel>> prepare(const ir::Node& node) const override {
    if (!supports(node)) return invalid_argument("{}: not supported by {}", node.describe(), name_);
    return std::unique_ptr<Kernel>(new PoolKernel(kind_));
  }

 private:
  PoolKind kind_;
  std::string name_;
};

}  // namespace

std::unique_ptr<Tactic> make_pool_tactic(std::string_view op) {
  for (PoolKind k : kPoolKinds) {
    if (op == pool_op_name(k)) return std::make_unique<PoolTactic>(k);
  }
  return nullptr;
}

}  // namespace kiln::backends::cpu
