// Conv and kiln.FusedConv tactics (fp32, constant weights, 1-D and 2-D):
//
// - conv_gemm: per (image, group), Y_g[M/g, OH*OW] = W_g[M/g, C/g*KH*KW] x
//   im2col(X_g). W_g is packed into microkernel panels once in prepare();
//   the im2col matrix is never materialized: the GEMM's B packer gathers
//   each KC x NC block straight from X (a 1x1 stride-1 unpadded conv reads X
//   as the matrix). Bias (per output channel = per GEMM row), the residual
//   and the activation run in the microkernel's store. The bf16 variant
//   (bf16 builds on AVX-512 BF16) packs W as bfloat16 pairs and pairs the
//   im2col rows while packing them.
// - conv_depthwise: group == C == M, direct: with stride 1 each output row's
//   interior is computed by the ISA's row kernel (outputs held in registers
//   across all taps), the padded border columns by scalar loops; then the
//   epilogue.
#include <algorithm>
#include <cstring>
#include <string>

#include "backends/cpu/conv_geometry.h"
#include "backends/cpu/gemm.h"
#include "backends/cpu/tactics.h"
#include "core/error.h"
#include "core/thread_pool.h"

namespace kiln::backends::cpu {
namespace {

Result<ops::Epilogue> node_epilogue(const ir::Node& node, bool fused) {
  if (!fused) return ops::Epilogue{};
  return ops::Epilogue::from_node(node);
}

// The inputs a conv kernel needs at run time, or false to fall back to the
// reference kernel (which reports any error). X may be float16 where the
// kernel widens it (`half_x`).
struct ConvInputs {
  const Tensor* x = nullptr;
  const Tensor* w = nullptr;
  const float* bias = nullptr;
  const float* z = nullptr;
  Conv2dGeom g;
};

bool read_conv_inputs(ops::KernelContext& ctx, ConvInputs& in, bool half_x = false) {
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    if (!ctx.has_input(i)) continue;
    if (!ctx.datum(i).is_tensor()) return false;
    const DataType t = ctx.input(i).dtype();
    if (t != DataType::kFloat32 && !(i == 0 && half_x && t == DataType::kFloat16)) return false;
  }
  if (!ctx.has_input(0) || !ctx.has_input(1)) return false;
  in.x = &ctx.input(0);
  in.w = &ctx.input(1);
  auto g = conv2d_geometry(ctx.node(), in.x->dims(), in.w->dims());
  if (!g.is_ok()) return false;
  in.g = *g;
  if (ctx.has_input(2)) {
    const Tensor& b = ctx.input(2);
    if (b.rank() != 1 || b.dim(0) != in.g.m) return false;
    in.bias = b.data<float>();
  }
  if (ctx.has_input(3)) {
    const Tensor& z = ctx.input(3);
    if (z.dims() != in.g.output_dims(static_cast<size_t>(in.x->rank()))) return false;
    in.z = z.data<float>();
  }
  return true;
}

// Packs columns [r0, r0 + n) (output pixels) x depth [k0, k0 + kc) (input
// channel, kernel row, kernel column) of the im2col matrix of one image and
// group into panels of `width` columns. A panel's columns are split into
// segments lying on one output row; along a segment the input column
// advances by the stride, so each depth row of a segment is one strided
// (for stride 1, contiguous) run of an input row, clipped to the padding.
void pack_im2col(const float* x, const Conv2dGeom& g, int64_t r0, int64_t n, int64_t k0, int64_t kc, int width,
                 float* dst) {
  struct Segment {
    int64_t begin, len, iy, ix;  // first column in the panel, length, input row and column of its first pixel
  };
  constexpr int kMaxWidth = 64;
  Segment segs[kMaxWidth];
  const int64_t taps = g.kh * g.kw;
  for (int64_t p0 = 0; p0 < n; p0 += width) {
    const int64_t cols = std::min<int64_t>(width, n - p0);
    int nseg = 0;
    for (int64_t jj = 0; jj < cols;) {
      const int64_t j = r0 + p0 + jj;
      const int64_t oy = j / g.ow, ox = j % g.ow;
      const int64_t len = std::min(cols - jj, g.ow - ox);
      segs[nseg++] = {jj, len, oy * g.sh - g.pt, ox * g.sw - g.pl};
      jj += len;
    }
    float* d = dst + (p0 / width) * kc * width;
    for (int64_t kk = 0; kk < kc; ++kk) {
      const int64_t k = k0 + kk;
      const int64_t c = k / taps, t = k % taps;
      const int64_t dy = (t / g.kw) * g.dh, dx = (t % g.kw) * g.dw;
      const float* xc = x + c * g.h * g.w;
      float* dk = d + kk * width;
      for (int s = 0; s < nseg; ++s) {
        const Segment& sg = segs[s];
        float* out = dk + sg.begin;
        const int64_t iy = sg.iy + dy;
        if (iy < 0 || iy >= g.h) {
          std::fill(out, out + sg.len, 0.0f);
          continue;
        }
        const float* row = xc + iy * g.w;
        const int64_t ix0 = sg.ix + dx;
        // Columns q of the segment with 0 <= ix0 + q * sw < W.
        const int64_t lo = ix0 >= 0 ? 0 : std::min(sg.len, (-ix0 + g.sw - 1) / g.sw);
        const int64_t hi = g.w - 1 - ix0 < 0 ? 0 : std::min(sg.len, (g.w - 1 - ix0) / g.sw + 1);
        std::fill(out, out + lo, 0.0f);
        if (hi > lo) {
          if (g.sw == 1) {
            std::memcpy(out + lo, row + ix0 + lo, static_cast<size_t>(hi - lo) * sizeof(float));
          } else {
            for (int64_t q = lo; q < hi; ++q) out[q] = row[ix0 + q * g.sw];
          }
          std::fill(out + hi, out + sg.len, 0.0f);
        } else {
          std::fill(out + lo, out + sg.len, 0.0f);
        }
      }
      for (int64_t jj = cols; jj < width; ++jj) dk[jj] = 0.0f;
    }
  }
}

// pack_im2col for the bf16 GEMM: slots [s0, s0 + sc) of the columns, each
// the bfloat16 pair of two depth rows (zero past the depth), through one
// fp32 block in per-thread scratch.
void pack_im2col_bf16(const float* x, const Conv2dGeom& g, int64_t r0, int64_t n, int64_t s0, int64_t sc, int width,
                      float* dst) {
  const int64_t depth = g.depth();
  const int64_t k0 = 2 * s0, kc = std::min(2 * sc, depth - k0);
  const int64_t panels = (n + width - 1) / width;
  thread_local std::vector<float> block;
  block.resize(static_cast<size_t>(panels * kc * width));
  pack_im2col(x, g, r0, n, k0, kc, width, block.data());
  for (int64_t p = 0; p < panels; ++p) {
    pair_slots_bf16(block.data() + p * kc * width, width, kc, sc, width, dst + p * sc * width);
  }
}

// ---- conv_gemm ------------------------------------------------------------------

class ConvGemmKernel final : public Kernel {
 public:
  ConvGemmKernel(GemmConfig cfg, GemmPacking packing, ops::Epilogue epi, std::vector<PackedMatrix> w)
      : cfg_(cfg), packing_(packing), epi_(epi), w_(std::move(w)) {}

  bool fills_outputs() const override { return true; }
  Status run(ops::KernelContext& ctx) const override {
    ConvInputs in;
    if (!read_conv_inputs(ctx, in, packing_.fp16())) return run_reference(ctx);
    const Conv2dGeom& g = in.g;
    const int64_t depth = packing_.depth(g.depth());
    const bool half_x = in.x->dtype() == DataType::kFloat16;
    if (static_cast<int64_t>(w_.size()) != g.group || w_[0].rows != g.mg() || w_[0].depth != depth) {
      return run_reference(ctx);
    }
    KILN_ASSIGN_OR_RETURN(Tensor * y,
                          ctx.allocate_output(0, DataType::kFloat32, g.output_dims(static_cast<size_t>(in.x->rank()))));
    const int64_t out_size = g.oh * g.ow;
    const int64_t in_size = g.h * g.w;
    const bool pointwise = g.pointwise();
    auto one = [&](int64_t t, ThreadPool* pool) {
      const int64_t img = t / g.group, gi = t % g.group;
      const int64_t x_off = (img * g.c + gi * g.cg()) * in_size;
      // This image's channels; of a float16 X, widened.
      const auto* x16 = static_cast<const uint16_t*>(in.x->raw_data());
      const float* xg = half_x ? widen_halves_to_thread_buffer(x16 + x_off, g.cg() * in_size) : in.x->data<float>() + x_off;
      const int64_t y_off = (img * g.m + gi * g.mg()) * out_size;
      GemmEpilogue e;
      e.bias_row = in.bias != nullptr ? in.bias + gi * g.mg() : nullptr;
      e.residual = in.z != nullptr ? in.z + y_off : nullptr;
      e.ldr = out_size;
      e.residual_after_activation = epi_.residual_after_activation;
      e.activation = epi_;
      GemmOperand b;
      if (pointwise) {
        b = packing_.operand({xg, 1, in_size}, g.depth());
      } else if (packing_.bf16()) {
        b = GemmOperand::custom([xg, &g](int64_t r0, int64_t n, int64_t s0, int64_t sc, int width, float* dst) {
          pack_im2col_bf16(xg, g, r0, n, s0, sc, width, dst);
        });
      } else {
        b = GemmOperand::custom([xg, &g](int64_t r0, int64_t n, int64_t k0, int64_t kc, int width, float* dst) {
          pack_im2col(xg, g, r0, n, k0, kc, width, dst);
        });
      }
      gemm(cfg_, g.mg(), out_size, depth, GemmPacking::weights(w_[static_cast<size_t>(gi)]), b,
           y->data<float>() + y_off, out_size, e, pool, GemmSplit::kColumns);
    };
    const int64_t tasks = g.n * g.group;
    ThreadPool* pool = ctx.pool();
    // Many small products (grouped convs, batches of small images): one per thread.
    const bool per_task = pool != nullptr && pool->threads() > 1 && tasks >= 2 * pool->threads() &&
                          g.mg() * out_size * g.depth() < (int64_t{1} << 22);
    if (per_task) {
      pool->parallel_for(tasks, 1, [&](int64_t b0, int64_t b1) {
        for (int64_t t = b0; t < b1; ++t) one(t, nullptr);
      });
    } else {
      for (int64_t t = 0; t < tasks; ++t) one(t, pool);
    }
    return Status::ok();
  }

  std::vector<uint8_t> serialize() const override {
    std::vector<uint8_t> out;
    for (const PackedMatrix& p : w_) {
      std::vector<uint8_t> b = p.serialize();
      const uint64_t size = b.size();
      const auto* sp = reinterpret_cast<const uint8_t*>(&size);
      out.insert(out.end(), sp, sp + sizeof(size));
      out.insert(out.end(), b.begin(), b.end());
    }
    return out;
  }

 private:
  GemmConfig cfg_;
  GemmPacking packing_;
  ops::Epilogue epi_;
  std::vector<PackedMatrix> w_;  // one per group: [M/g rows, C/g*KH*KW depth (bf16: slots)] in MR panels (fp16: halves)
};

class ConvGemmTactic final : public OwnFusableTactic {
 public:
  ConvGemmTactic(Isa isa, bool fused, WeightFormat format)
      : OwnFusableTactic(std::string("conv_gemm") + GemmPacking{format}.suffix(), "Conv", isa, fused),
        packing_{format} {}

  bool supports(const ir::Node& node) const override {
    if (!serves(node) || !conv_node_supported(node, packing_.fp16())) return false;
    return weights_served(node, packing_.format, true);
  }

  Result<std::unique_ptr<Kernel>> prepare(const ir::Node& node) const override {
    if (!supports(node)) return invalid_argument("{}: not supported by {}", node.describe(), name());
    KILN_ASSIGN_OR_RETURN(ops::Epilogue epi, node_epilogue(node, fused_));
    const GemmConfig cfg = packing_.config(isa_);
    const Tensor& w = node.input(1)->constant();
    const int64_t group = node.attr_int("group", 1);
    const int64_t mg = w.dim(0) / group;
    const int64_t depth = w.numel() / std::max<int64_t>(w.dim(0), 1);
    std::vector<PackedMatrix> packed;
    for (int64_t gi = 0; gi < group; ++gi) {
      packed.push_back(packing_.pack({w.data<float>() + gi * mg * depth, depth, 1}, mg, depth, cfg.kernel.mr, nullptr));
    }
    return std::unique_ptr<Kernel>(new ConvGemmKernel(cfg, packing_, epi, std::move(packed)));
  }

  bool takes_float16_input(const ir::Node& node) const override { return packing_.fp16() && supports(node); }

  Result<std::unique_ptr<Kernel>> load(const ir::Node& node, std::span<const uint8_t> state) const override {
    // The weights' values were checked when the plan was built: the packed
    // state is what runs, and the initializer's pages stay untouched.
    if (state.empty() || !serves(node) || !conv_node_supported(node, packing_.fp16())) return prepare(node);
    KILN_ASSIGN_OR_RETURN(ops::Epilogue epi, node_epilogue(node, fused_));
    const GemmConfig cfg = packing_.config(isa_);
    const Tensor& w = node.input(1)->constant();
    const int64_t group = node.attr_int("group", 1);
    const int64_t mg = w.dim(0) / group;
    const int64_t depth = w.numel() / std::max<int64_t>(w.dim(0), 1);
    std::vector<PackedMatrix> packed;
    size_t pos = 0;
    for (int64_t gi = 0; gi < group; ++gi) {
      uint64_t size = 0;
      if (state.size() - pos < sizeof(size))
        return invalid_argument("{}: packed weights are truncated", node.describe());
      std::memcpy(&size, state.data() + pos, sizeof(size));
      pos += sizeof(size);
      if (state.size() - pos < size) return invalid_argument("{}: packed weights are truncated", node.describe());
      auto p = packing_.unpack(state.subspan(pos, size), mg, depth, cfg.kernel.mr);
      if (!p.is_ok()) return p.status().with_context(node.describe());
      packed.push_back(std::move(p).value());
      pos += size;
    }
    if (pos != state.size()) return invalid_argument("{}: packed weights have trailing bytes", node.describe());
    return std::unique_ptr<Kernel>(new ConvGemmKernel(cfg, packing_, epi, std::move(packed)));
  }

 private:
  GemmPacking packing_;
};

// ---- conv_depthwise -----------------------------------------------------------

DepthwiseRowFn depthwise_row_for(Isa isa) {
  switch (isa) {
    case Isa::kAvx512:
      return depthwise_row_avx512;
    case Isa::kAvx2:
      return depthwise_row_avx2;
    case Isa::kGeneric:
      return depthwise_row_generic;
  }
  return depthwise_row_generic;
}

// Output (oy, ox) of one channel plane with bounds checks: the border path.
float depthwise_point(const float* xc, const float* wc, const Conv2dGeom& g, int64_t oy, int64_t ox) {
  float s = 0.0f;
  for (int64_t ky = 0; ky < g.kh; ++ky) {
    const int64_t iy = oy * g.sh - g.pt + ky * g.dh;
    if (iy < 0 || iy >= g.h) continue;
    for (int64_t kx = 0; kx < g.kw; ++kx) {
      const int64_t ix = ox * g.sw - g.pl + kx * g.dw;
      if (ix >= 0 && ix < g.w) s += wc[ky * g.kw + kx] * xc[iy * g.w + ix];
    }
  }
  return s;
}

class DepthwiseKernel final : public Kernel {
 public:
  DepthwiseKernel(DepthwiseRowFn row, ops::Epilogue epi) : row_(row), epi_(epi) {}

  bool fills_outputs() const override { return true; }
  Status run(ops::KernelContext& ctx) const override {
    ConvInputs in;
    if (!read_conv_inputs(ctx, in)) return run_reference(ctx);
    const Conv2dGeom& g = in.g;
    if (g.group != g.c || g.m != g.c) return run_reference(ctx);
    KILN_ASSIGN_OR_RETURN(Tensor * y,
                          ctx.allocate_output(0, DataType::kFloat32, g.output_dims(static_cast<size_t>(in.x->rank()))));
    const int64_t out_size = g.oh * g.ow;
    const int64_t in_size = g.h * g.w;
    const float* x = in.x->data<float>();
    const float* w = in.w->data<float>();
    float* yp = y->data<float>();
    // Interior columns [lo, hi): every tap of the row lies inside the input
    // (ox * sw - pl >= 0 and ox * sw - pl + (kw - 1) * dw <= W - 1).
    const int64_t lo = std::min((g.pl + g.sw - 1) / g.sw, g.ow);
    const int64_t last = g.w - 1 + g.pl - (g.kw - 1) * g.dw;
    const int64_t hi = last < 0 ? lo : std::max(lo, std::min(g.ow, last / g.sw + 1));
    auto plane = [&](int64_t t) {
      const int64_t ch = t % g.c;
      const float* xc = x + t * in_size;
      const float* wc = w + ch * g.kh * g.kw;
      float* yc = yp + t * out_size;
      std::vector<const float*> rows(static_cast<size_t>(g.kh));
      for (int64_t oy = 0; oy < g.oh; ++oy) {
        float* yrow = yc + oy * g.ow;
        for (int64_t ox = 0; ox < lo; ++ox) yrow[ox] = depthwise_point(xc, wc, g, oy, ox);
        for (int64_t ox = hi; ox < g.ow; ++ox) yrow[ox] = depthwise_point(xc, wc, g, oy, ox);
        if (lo >= hi) continue;
        for (int64_t ky = 0; ky < g.kh; ++ky) {
          const int64_t iy = oy * g.sh - g.pt + ky * g.dh;
          rows[static_cast<size_t>(ky)] = iy >= 0 && iy < g.h ? xc + iy * g.w : nullptr;
        }
        if (g.sw == 1) {
          // Shifted by pl so that the kernel's indices start at the row's first column.
          row_(yrow + g.pl, rows.data(), wc, g.kh, g.kw, g.dw, lo - g.pl, hi - g.pl);
          continue;
        }
        for (int64_t ox = lo; ox < hi; ++ox) {
          const int64_t ix0 = ox * g.sw - g.pl;
          float acc = 0.0f;
          for (int64_t ky = 0; ky < g.kh; ++ky) {
            const float* r = rows[static_cast<size_t>(ky)];
            if (r == nullptr) continue;
            for (int64_t kx = 0; kx < g.kw; ++kx) acc += wc[ky * g.kw + kx] * r[ix0 + kx * g.dw];
          }
          yrow[ox] = acc;
        }
      }
      const float bias = in.bias != nullptr ? in.bias[ch] : 0.0f;
      const float* z = in.z != nullptr ? in.z + t * out_size : nullptr;
      const bool post = epi_.residual_after_activation;
      for (int64_t i = 0; i < out_size; ++i) {
        float v = yc[i] + bias;
        if (z != nullptr && !post) v += z[i];
        v = epi_.activate(v);
        if (z != nullptr && post) v += z[i];
        yc[i] = v;
      }
    };
    const int64_t planes = g.n * g.c;
    ThreadPool* pool = ctx.pool();
    if (pool != nullptr && pool->threads() > 1 && planes > 1) {
      pool->parallel_for(planes, 1, [&](int64_t b0, int64_t b1) {
        for (int64_t t = b0; t < b1; ++t) plane(t);
      });
    } else {
      for (int64_t t = 0; t < planes; ++t) plane(t);
    }
    return Status::ok();
  }

 private:
  DepthwiseRowFn row_;
  ops::Epilogue epi_;
};

class DepthwiseTactic final : public OwnFusableTactic {
 public:
  DepthwiseTactic(Isa isa, bool fused) : OwnFusableTactic("conv_depthwise", "Conv", isa, fused) {}

  bool supports(const ir::Node& node) const override {
    if (!serves(node)) return false;
    if (!conv_node_supported(node)) return false;
    const Tensor& w = node.input(1)->constant();
    return w.dim(1) == 1 && node.attr_int("group", 1) == w.dim(0);
  }

  Result<std::unique_ptr<Kernel>> prepare(const ir::Node& node) const override {
    if (!supports(node)) return invalid_argument("{}: not supported by {}", node.describe(), name());
    KILN_ASSIGN_OR_RETURN(ops::Epilogue epi, node_epilogue(node, fused_));
    return std::unique_ptr<Kernel>(new DepthwiseKernel(depthwise_row_for(isa_), epi));
  }

};

}  // namespace

std::unique_ptr<Tactic> make_conv_gemm_tactic(Isa isa, bool fused) {
  return std::make_unique<ConvGemmTactic>(isa, fused, WeightFormat::kFp32);
}
std::unique_ptr<Tactic> make_conv_gemm_bf16_tactic(bool fused) {
  return std::make_unique<ConvGemmTactic>(Isa::kAvx512, fused, WeightFormat::kBf16);
}
std::unique_ptr<Tactic> make_conv_gemm_fp16_tactic(Isa isa, bool fused) {
  return std::make_unique<ConvGemmTactic>(isa, fused, WeightFormat::kFp16);
}
std::unique_ptr<Tactic> make_conv_depthwise_tactic(Isa isa, bool fused) {
  return std::make_unique<DepthwiseTactic>(isa, fused);
}

}  // namespace kiln::backends::cpu
