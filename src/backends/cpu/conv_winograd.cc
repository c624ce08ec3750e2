// Winograd F(2x2, 3x3) and F(4x4, 3x3) convolution for 3x3, stride-1,
// undilated, ungrouped 2-D Conv / kiln.FusedConv (Lavin & Gray 2015). Each
// m x m output tile comes from an a x a input tile (a = m + 2): with
// U = G g G^T (weights, transformed and packed once in prepare) and
// V = B^T d B (input tiles, transformed per run), the a*a element-wise
// products summed over channels are a*a GEMMs
//   M_xi[M, tiles] = U_xi[M, C] x V_xi[C, tiles]
// on the packed SGEMM, and Y = A^T M A gives the outputs: 2.25x (F2) or 4x
// (F4) fewer multiplications than direct 3x3; F4's larger coefficients cost
// some precision (a few 1e-6 relative to the products' magnitude in fp32).
// Bias, residual and activation are applied in the output transform.
#include <algorithm>
#include <array>
#include <cstring>
#include <string>

#include "backends/cpu/conv_geometry.h"
#include "backends/cpu/gemm.h"
#include "backends/cpu/tactics.h"
#include "core/error.h"
#include "core/thread_pool.h"

namespace kiln::backends::cpu {
namespace {

constexpr int kMaxA = 6;  // the largest input tile (F4)

// The transform matrices of one variant: G [a x 3], B^T [a x a], A^T [m x a], row-major.
struct WinogradSpec {
  int m = 2;  // output tile
  int a = 4;  // input tile
  std::array<float, kMaxA * 3> g{};
  std::array<float, kMaxA * kMaxA> bt{};
  std::array<float, 4 * kMaxA> at{};
  int taps() const { return a * a; }
};

const WinogradSpec& spec_f2() {
  static const WinogradSpec s = [] {
    WinogradSpec w;
    w.m = 2;
    w.a = 4;
    w.g = {1, 0, 0, .5f, .5f, .5f, .5f, -.5f, .5f, 0, 0, 1};
    w.bt = {1, 0, -1, 0, 0, 1, 1, 0, 0, -1, 1, 0, 0, 1, 0, -1};
    w.at = {1, 1, 1, 0, 0, 1, -1, -1};
    return w;
  }();
  return s;
}

const WinogradSpec& spec_f4() {
  static const WinogradSpec s = [] {
    WinogradSpec w;
    w.m = 4;
    w.a = 6;
    w.g = {1.0f / 4,  0,          0,         -1.0f / 6, -1.0f / 6, -1.0f / 6, -1.0f / 6, 1.0f / 6, -1.0f / 6,
           1.0f / 24, 1.0f / 12,  1.0f / 6,  1.0f / 24, -1.0f / 12, 1.0f / 6, 0,         0,        1};
    w.bt = {4, 0, -5, 0, 1, 0,   //
            0, -4, -4, 1, 1, 0,  //
            0, 4, -4, -1, 1, 0,  //
            0, -2, -1, 2, 1, 0,  //
            0, 2, -1, -2, 1, 0,  //
            0, 4, 0, -5, 0, 1};
    w.at = {1, 1, 1, 1, 1, 0,    //
            0, 1, -1, 2, -2, 0,  //
            0, 1, 1, 4, 4, 0,    //
            0, 1, -1, 8, -8, 1};
    return w;
  }();
  return s;
}

// U = G g G^T for one 3x3 kernel g (row-major) into u [a x a].
void transform_kernel(const WinogradSpec& w, const float* g, float* u) {
  float t[kMaxA][3];
  for (int i = 0; i < w.a; ++i) {
    for (int j = 0; j < 3; ++j) {
      t[i][j] = w.g[i * 3 + 0] * g[j] + w.g[i * 3 + 1] * g[3 + j] + w.g[i * 3 + 2] * g[6 + j];
    }
  }
  for (int i = 0; i < w.a; ++i) {
    for (int j = 0; j < w.a; ++j) {
      u[i * w.a + j] = t[i][0] * w.g[j * 3 + 0] + t[i][1] * w.g[j * 3 + 1] + t[i][2] * w.g[j * 3 + 2];
    }
  }
}

// V = B^T d B for one a x a input tile d into v [a x a].
template <int A>
void transform_input(const float* bt, const float d[A][A], float* v) {
  float t[A][A];
  for (int i = 0; i < A; ++i) {
    for (int j = 0; j < A; ++j) {
      float acc = 0;
      for (int k = 0; k < A; ++k) acc += bt[i * A + k] * d[k][j];
      t[i][j] = acc;
    }
  }
  for (int i = 0; i < A; ++i) {
    for (int j = 0; j < A; ++j) {
      float acc = 0;
      for (int k = 0; k < A; ++k) acc += t[i][k] * bt[j * A + k];
      v[i * A + j] = acc;
    }
  }
}

// Y = A^T m A for one transformed a x a product into y [m x m].
template <int A>
void transform_output(const float* at, const float* mv, float y[4][4]) {
  constexpr int M = A - 2;
  float t[M][A];
  for (int i = 0; i < M; ++i) {
    for (int j = 0; j < A; ++j) {
      float acc = 0;
      for (int k = 0; k < A; ++k) acc += at[i * A + k] * mv[k * A + j];
      t[i][j] = acc;
    }
  }
  for (int i = 0; i < M; ++i) {
    for (int j = 0; j < M; ++j) {
      float acc = 0;
      for (int k = 0; k < A; ++k) acc += t[i][k] * at[j * A + k];
      y[i][j] = acc;
    }
  }
}

struct WinogradScratch {
  AlignedFloats v;  // taps x [C, tiles]
  AlignedFloats m;  // taps x [M, tiles]
};

class WinogradKernel final : public Kernel {
 public:
  WinogradKernel(const WinogradSpec& spec, GemmConfig cfg, ops::Epilogue epi, std::vector<PackedMatrix> u, int64_t m,
                 int64_t c)
      : spec_(spec), cfg_(cfg), epi_(epi), u_(std::move(u)), m_(m), c_(c) {}

  bool fills_outputs() const override { return true; }
  Status run(ops::KernelContext& ctx) const override { return spec_.a == 6 ? run_tiles<6>(ctx) : run_tiles<4>(ctx); }

 private:
  template <int A>
  Status run_tiles(ops::KernelContext& ctx) const {
    constexpr int T = A - 2;       // output tile
    constexpr int kTaps = A * A;
    for (size_t i = 0; i < ctx.num_inputs(); ++i) {
      if (ctx.has_input(i) && (!ctx.datum(i).is_tensor() || ctx.input(i).dtype() != DataType::kFloat32)) {
        return run_reference(ctx);
      }
    }
    if (!ctx.has_input(0) || !ctx.has_input(1)) return run_reference(ctx);
    const Tensor& x = ctx.input(0);
    auto geom = conv2d_geometry(ctx.node(), x.dims(), ctx.input(1).dims());
    if (!geom.is_ok() || x.rank() != 4) return run_reference(ctx);
    const Conv2dGeom& g = *geom;
    if (g.c != c_ || g.m != m_ || g.group != 1 || g.kh != 3 || g.kw != 3 || g.sh != 1 || g.sw != 1 || g.dh != 1 ||
        g.dw != 1) {
      return run_reference(ctx);
    }
    const float* bias = nullptr;
    if (ctx.has_input(2)) {
      if (ctx.input(2).rank() != 1 || ctx.input(2).dim(0) != g.m) return run_reference(ctx);
      bias = ctx.input(2).data<float>();
    }
    const Dims ydims = g.output_dims(4);
    const float* z = nullptr;
    if (ctx.has_input(3)) {
      if (ctx.input(3).dims() != ydims) return run_reference(ctx);
      z = ctx.input(3).data<float>();
    }
    KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.allocate_output(0, DataType::kFloat32, ydims));
    if (g.oh <= 0 || g.ow <= 0) return Status::ok();
    const int64_t th = (g.oh + T - 1) / T, tw = (g.ow + T - 1) / T, tiles = th * tw;
    thread_local WinogradScratch scratch;
    scratch.v.reserve_discard(kTaps * g.c * tiles);
    scratch.m.reserve_discard(kTaps * g.m * tiles);
    float* vbuf = scratch.v.data();
    float* mbuf = scratch.m.data();
    ThreadPool* pool = ctx.pool();
    auto parallel = [pool](int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
      if (pool != nullptr && pool->threads() > 1 && n > 1) {
        pool->parallel_for(n, 1, fn);
      } else {
        fn(0, n);
      }
    };
    for (int64_t img = 0; img < g.n; ++img) {
      const float* xi = x.data<float>() + img * g.c * g.h * g.w;
      // Input transform, one channel per task.
      parallel(g.c, [&](int64_t c0, int64_t c1) {
        for (int64_t c = c0; c < c1; ++c) {
          const float* xc = xi + c * g.h * g.w;
          for (int64_t ty = 0; ty < th; ++ty) {
            for (int64_t tx = 0; tx < tw; ++tx) {
              float d[A][A];
              const int64_t y0 = ty * T - g.pt, x0 = tx * T - g.pl;
              for (int i = 0; i < A; ++i) {
                const int64_t iy = y0 + i;
                for (int j = 0; j < A; ++j) {
                  const int64_t ix = x0 + j;
                  d[i][j] = iy >= 0 && iy < g.h && ix >= 0 && ix < g.w ? xc[iy * g.w + ix] : 0.0f;
                }
              }
              float v[kTaps];
              transform_input<A>(spec_.bt.data(), d, v);
              const int64_t t = ty * tw + tx;
              for (int e = 0; e < kTaps; ++e) vbuf[(e * g.c + c) * tiles + t] = v[e];
            }
          }
        }
      });
      // One GEMM per tap: across taps when each is small, else each on all threads.
      const bool small = g.m * tiles * g.c < (int64_t{1} << 21);
      auto tap_gemm = [&](int64_t e, ThreadPool* inner) {
        gemm(cfg_, g.m, tiles, g.c, GemmOperand::prepacked(u_[static_cast<size_t>(e)]),
             GemmOperand::strided({vbuf + e * g.c * tiles, 1, tiles}), mbuf + e * g.m * tiles, tiles, GemmEpilogue{},
             inner);
      };
      if (small) {
        parallel(kTaps, [&](int64_t e0, int64_t e1) {
          for (int64_t e = e0; e < e1; ++e) tap_gemm(e, nullptr);
        });
      } else {
        for (int64_t e = 0; e < kTaps; ++e) tap_gemm(e, pool);
      }
      // Output transform and epilogue, one output channel per task.
      float* yi = y->data<float>() + img * g.m * g.oh * g.ow;
      const float* zi = z != nullptr ? z + img * g.m * g.oh * g.ow : nullptr;
      parallel(g.m, [&](int64_t m0, int64_t m1) {
        for (int64_t oc = m0; oc < m1; ++oc) {
          const float b = bias != nullptr ? bias[oc] : 0.0f;
          float* yc = yi + oc * g.oh * g.ow;
          const float* zc = zi != nullptr ? zi + oc * g.oh * g.ow : nullptr;
          for (int64_t t = 0; t < tiles; ++t) {
            float mv[kTaps];
            for (int e = 0; e < kTaps; ++e) mv[e] = mbuf[(e * g.m + oc) * tiles + t];
            float out[4][4];
            transform_output<A>(spec_.at.data(), mv, out);
            const int64_t oy0 = (t / tw) * T, ox0 = (t % tw) * T;
            for (int i = 0; i < T; ++i) {
              if (oy0 + i >= g.oh) break;
              for (int j = 0; j < T; ++j) {
                if (ox0 + j >= g.ow) break;
                const int64_t pos = (oy0 + i) * g.ow + ox0 + j;
                float v = out[i][j] + b;
                if (zc != nullptr && !epi_.residual_after_activation) v += zc[pos];
                v = epi_.activate(v);
                if (zc != nullptr && epi_.residual_after_activation) v += zc[pos];
                yc[pos] = v;
              }
            }
          }
        }
      });
    }
    return Status::ok();
  }

  const WinogradSpec& spec_;
  GemmConfig cfg_;
  ops::Epilogue epi_;
  std::vector<PackedMatrix> u_;  // one matrix [M, C] per tap, in MR panels
  int64_t m_, c_;
};

class WinogradTactic final : public OwnFusableTactic {
 public:
  WinogradTactic(Isa isa, bool fused, int out_tile)
      : OwnFusableTactic(out_tile == 4 ? "conv_winograd_f4x3" : "conv_winograd_f2x3", "Conv", isa, fused),
        spec_(out_tile == 4 ? spec_f4() : spec_f2()) {}

  bool supports(const ir::Node& node) const override {
    if (!serves(node)) return false;
    if (!conv_node_supported(node)) return false;
    const Tensor& w = node.input(1)->constant();
    if (w.rank() != 4 || w.dim(2) != 3 || w.dim(3) != 3 || node.attr_int("group", 1) != 1) return false;
    for (int64_t s : node.attr_ints("strides", {1, 1})) {
      if (s != 1) return false;
    }
    for (int64_t d : node.attr_ints("dilations", {1, 1})) {
      if (d != 1) return false;
    }
    return true;
  }

  Result<std::unique_ptr<Kernel>> prepare(const ir::Node& node) const override {
    if (!supports(node)) return invalid_argument("{}: not supported by {}", node.describe(), name());
    ops::Epilogue epi;
    if (fused_) {
      KILN_ASSIGN_OR_RETURN(epi, ops::Epilogue::from_node(node));
    }
    const GemmConfig cfg = gemm_config(isa_);
    const Tensor& w = node.input(1)->constant();
    const int64_t m = w.dim(0), c = w.dim(1);
    const int taps = spec_.taps();
    std::vector<float> u(static_cast<size_t>(taps * m * c));  // [tap][m][c]
    for (int64_t oc = 0; oc < m; ++oc) {
      for (int64_t ic = 0; ic < c; ++ic) {
        float t[kMaxA * kMaxA];
        transform_kernel(spec_, w.data<float>() + (oc * c + ic) * 9, t);
        for (int e = 0; e < taps; ++e) u[static_cast<size_t>((e * m + oc) * c + ic)] = t[e];
      }
    }
    std::vector<PackedMatrix> packed;
    for (int e = 0; e < taps; ++e) {
      packed.push_back(pack_matrix({u.data() + e * m * c, c, 1}, m, c, cfg.kernel.mr, nullptr));
    }
    return std::unique_ptr<Kernel>(new WinogradKernel(spec_, cfg, epi, std::move(packed), m, c));
  }

 private:
  const WinogradSpec& spec_;
};

}  // namespace

std::unique_ptr<Tactic> make_conv_winograd_tactic(Isa isa, bool fused, int out_tile) {
  return std::make_unique<WinogradTactic>(isa, fused, out_tile);
}

}  // namespace kiln::backends::cpu
