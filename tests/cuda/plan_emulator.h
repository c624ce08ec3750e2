// Test-only: runs an fp32 GPU plan on the CPU, step by step, with the same
// arena offsets, strides and parameters the GPU engine uses (plain loops in
// the semantics kernels.h and the cuDNN/cuBLASLt steps document). Lets the
// plan's lowering (layouts, fusion, strides, aliasing, memory plan) be
// checked against the reference interpreter on machines without a GPU.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "backends/cuda/plan.h"
#include "backends/cuda/plan_builder.h"
#include "core/error.h"

namespace kiln::backends::cuda::test {

inline float emulate_op(kernels::EwOp op, float a, float b, float p0, float p1) {
  using kernels::EwOp;
  switch (op) {
    case EwOp::kIdentity:
      return a;
    case EwOp::kRelu:
      return a > 0.0f ? a : 0.0f;
    case EwOp::kSigmoid:
      return 1.0f / (1.0f + std::exp(-a));
    case EwOp::kTanh:
      return std::tanh(a);
    case EwOp::kErf:
      return std::erf(a);
    case EwOp::kSqrt:
      return std::sqrt(a);
    case EwOp::kExp:
      return std::exp(a);
    case EwOp::kLog:
      return std::log(a);
    case EwOp::kAbs:
      return std::fabs(a);
    case EwOp::kNeg:
      return -a;
    case EwOp::kReciprocal:
      return 1.0f / a;
    case EwOp::kClip:
      return std::fmin(std::fmax(a, p0), p1);
    case EwOp::kLeakyRelu:
      return a >= 0.0f ? a : p0 * a;
    case EwOp::kHardSigmoid:
      return std::fmax(0.0f, std::fmin(1.0f, p0 * a + p1));
    case EwOp::kHardSwish:
      return a * std::fmax(0.0f, std::fmin(1.0f, a / 6.0f + 0.5f));
    case EwOp::kSilu:
      return a / (1.0f + std::exp(-a));
    case EwOp::kGelu:
      return 0.5f * a * (1.0f + std::erf(a * 0.70710678118654752f));
    case EwOp::kGeluTanh:
      return 0.5f * a * (1.0f + std::tanh(0.79788456080286536f * (a + 0.044715f * a * a * a)));
    case EwOp::kFloor:
      return std::floor(a);
    case EwOp::kCeil:
      return std::ceil(a);
    case EwOp::kAdd:
      return a + b;
    case EwOp::kSub:
      return a - b;
    case EwOp::kMul:
      return a * b;
    case EwOp::kDiv:
      return a / b;
    case EwOp::kPow:
      return std::pow(a, b);
    case EwOp::kMax:
      return std::fmax(a, b);
    case EwOp::kMin:
      return std::fmin(a, b);
  }
  return a;
}

// Runs an fp32 plan; inputs in graph-input order.
inline Result<std::vector<Tensor>> emulate_plan(const Plan& plan, const std::vector<Tensor>& inputs) {
  if (plan.act_dtype != DataType::kFloat32) return unimplemented("the emulator runs fp32 plans");
  std::vector<uint8_t> arena(static_cast<size_t>(plan.arena_bytes) + 1);
  std::vector<void*> ptr(plan.values.size(), nullptr);
  for (size_t v = 0; v < plan.values.size(); ++v) {
    const PlanValue& pv = plan.values[v];
    if (pv.persistent) {
      ptr[v] = const_cast<void*>(pv.host.raw_data());
    } else if (!pv.on_host && pv.buffer >= 0) {
      ptr[v] = arena.data() + plan.buffer_offsets[static_cast<size_t>(pv.buffer)];
    }
  }
  auto numel = [](const Dims& d) {
    int64_t n = 1;
    for (int64_t x : d) n *= x;
    return n;
  };
  auto F = [&](int v) { return v < 0 ? nullptr : static_cast<float*>(ptr[static_cast<size_t>(v)]); };
  auto V = [&](int v) -> const PlanValue& { return plan.values[static_cast<size_t>(v)]; };
  std::vector<Tensor> outs(plan.output_values.size());
  for (const Step& s : plan.steps) {
    const PlanValue* ov = s.outputs.empty() ? nullptr : &V(s.outputs[0]);
    float* y = s.outputs.empty() ? nullptr : F(s.outputs[0]);
    int64_t n = ov != nullptr ? numel(ov->dims) : 0;
    switch (s.kind) {
      case StepKind::kUpload:
        std::memcpy(ptr[static_cast<size_t>(s.outputs[0])], inputs[static_cast<size_t>(s.io)].raw_data(),
                    inputs[static_cast<size_t>(s.io)].nbytes());
        break;
      case StepKind::kDownload: {
        const PlanValue& iv = V(s.inputs[0]);
        Tensor t = Tensor::empty(iv.dtype, iv.dims);
        std::memcpy(t.raw_data(), ptr[static_cast<size_t>(s.inputs[0])], t.nbytes());
        outs[static_cast<size_t>(s.io)] = t;
        break;
      }
      case StepKind::kCast: {
        const PlanValue& iv = V(s.inputs[0]);
        Tensor src = Tensor::borrow(iv.dtype, iv.dims, ptr[static_cast<size_t>(s.inputs[0])]);
        KILN_ASSIGN_OR_RETURN(Tensor c, convert_tensor(src, ov->dtype));
        std::memcpy(ptr[static_cast<size_t>(s.outputs[0])], c.raw_data(), c.nbytes());
        break;
      }
      case StepKind::kCopy: {
        size_t es = element_size(ov->dtype);
        const auto* src = static_cast<const uint8_t*>(ptr[static_cast<size_t>(s.inputs[0])]);
        auto* dst = static_cast<uint8_t*>(ptr[static_cast<size_t>(s.outputs[0])]);
        for (int64_t i = 0; i < n; ++i) {
          int64_t rem = i, o = s.copy.offset;
          for (int d = s.copy.rank - 1; d >= 0; --d) {
            o += (rem % s.copy.dims[d]) * s.copy.strides[d];
            rem /= s.copy.dims[d];
          }
          std::memcpy(dst + i * static_cast<int64_t>(es), src + o * static_cast<int64_t>(es), es);
        }
        break;
      }
      case StepKind::kElementwise: {
        const float* a = F(s.inputs[0]);
        const float* b = s.inputs.size() > 1 ? F(s.inputs[1]) : nullptr;
        for (int64_t i = 0; i < n; ++i) {
          int64_t oa = i, ob = i;
          if (s.flat) {
            oa = s.a_scalar ? 0 : i;
            ob = s.b_scalar ? 0 : i;
          } else {
            int64_t rem = i;
            oa = ob = 0;
            for (int d = s.ew.rank - 1; d >= 0; --d) {
              int64_t idx = rem % s.ew.dims[d];
              rem /= s.ew.dims[d];
              oa += idx * s.ew.a_strides[d];
              ob += idx * s.ew.b_strides[d];
            }
          }
          y[i] = emulate_op(s.op, a[oa], b != nullptr ? b[ob] : 0.0f, s.p0, s.p1);
        }
        break;
      }
      case StepKind::kEpilogue: {
        const float* x = F(s.inputs[0]);
        for (int64_t i = 0; i < n; ++i) {
          int64_t c = (i / s.inner) % s.channels;
          y[i] = x[i] * F(s.inputs[1])[c] + F(s.inputs[2])[c];
        }
        break;
      }
      case StepKind::kConv: {
        const PlanValue& xv = V(s.inputs[0]);
        const PlanValue& wv = V(s.inputs[1]);
        const float* x = F(s.inputs[0]);
        const float* w = F(s.inputs[1]);
        const float* bias = F(s.inputs[2]);
        const float* z = F(s.inputs[3]);
        bool nhwc = plan.options.channels_last;
        int64_t N = xv.dims[0], C = xv.dims[1], H = xv.dims[2], W = xv.dims[3];
        int64_t K = ov->dims[1], OH = ov->dims[2], OW = ov->dims[3];
        int64_t R = wv.dims[2], S = wv.dims[3], G = s.conv.group, CG = C / G, KG = K / G;
        auto xi = [&](int64_t nn, int64_t c, int64_t h, int64_t ww) {
          return nhwc ? ((nn * H + h) * W + ww) * C + c : ((nn * C + c) * H + h) * W + ww;
        };
        auto yi = [&](int64_t nn, int64_t k, int64_t h, int64_t ww) {
          return nhwc ? ((nn * OH + h) * OW + ww) * K + k : ((nn * K + k) * OH + h) * OW + ww;
        };
        auto wi = [&](int64_t k, int64_t c, int64_t r, int64_t q) {
          return nhwc ? ((k * R + r) * S + q) * CG + c : ((k * CG + c) * R + r) * S + q;
        };
        for (int64_t nn = 0; nn < N; ++nn)
          for (int64_t k = 0; k < K; ++k)
            for (int64_t oh = 0; oh < OH; ++oh)
              for (int64_t ow = 0; ow < OW; ++ow) {
                double acc = 0.0;
                int64_t g = k / KG;
                for (int64_t c = 0; c < CG; ++c)
                  for (int64_t r = 0; r < R; ++r)
                    for (int64_t q = 0; q < S; ++q) {
                      int64_t ih = oh * s.conv.strides[0] - s.conv.pads[0] + r * s.conv.dilations[0];
                      int64_t iw = ow * s.conv.strides[1] - s.conv.pads[1] + q * s.conv.dilations[1];
                      if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                      acc += static_cast<double>(x[xi(nn, g * CG + c, ih, iw)]) * w[wi(k, c, r, q)];
                    }
                float v = static_cast<float>(acc) + (bias != nullptr ? bias[k] : 0.0f);
                int64_t o = yi(nn, k, oh, ow);
                if (z != nullptr && !s.epilogue.residual_after_activation) v += z[o];
                v = s.epilogue.activate(v);
                if (z != nullptr && s.epilogue.residual_after_activation) v += z[o];
                y[o] = v;
              }
        break;
      }
      case StepKind::kGemm: {
        const GemmParams& g = s.gemm;
        if (g.int8) {  // int8 x int8 in int32 exactly, then the dequantizing epilogue
          const auto* a = static_cast<const int8_t*>(ptr[static_cast<size_t>(s.inputs[0])]);
          const auto* w = static_cast<const int8_t*>(ptr[static_cast<size_t>(s.inputs[1])]);
          const float* scale = F(s.inputs[2]);
          const float* bias = F(s.inputs[3]);
          const float* z = F(s.inputs[4]);
          auto* acc = static_cast<int32_t*>(ptr[static_cast<size_t>(s.outputs[1])]);
          for (int64_t i = 0; i < g.m; ++i)
            for (int64_t j = 0; j < g.n; ++j) {
              int32_t sum = 0;
              for (int64_t kk = 0; kk < g.k; ++kk) sum += int32_t{a[i * g.k + kk]} * int32_t{w[j * g.k + kk]};
              acc[i * g.n + j] = sum;
            }
          if (ov->dtype == DataType::kInt8 || ov->dtype == DataType::kUInt8) {  // requantize (kiln.QGemm)
            const auto* offset = static_cast<const double*>(ptr[static_cast<size_t>(s.inputs[2])]);
            const auto* mult = static_cast<const double*>(ptr[static_cast<size_t>(s.inputs[3])]);
            bool u8 = ov->dtype == DataType::kUInt8;
            double lo = u8 ? 0.0 : -128.0, hi = u8 ? 255.0 : 127.0, zp = s.p0;
            if (s.epilogue.activation == ops::Activation::kRelu) lo = std::max(lo, zp);
            for (int64_t o = 0; o < g.m * g.n; ++o) {
              int64_t j = o % g.n;
              double v = std::clamp(std::nearbyint((acc[o] + offset[j]) * mult[j]) + zp, lo, hi);
              if (u8) {
                static_cast<uint8_t*>(ptr[static_cast<size_t>(s.outputs[0])])[o] = static_cast<uint8_t>(v);
              } else {
                static_cast<int8_t*>(ptr[static_cast<size_t>(s.outputs[0])])[o] = static_cast<int8_t>(v);
              }
            }
            break;
          }
          for (int64_t o = 0; o < g.m * g.n; ++o) {
            int64_t j = o % g.n;
            float v = static_cast<float>(acc[o]) * scale[j];
            if (bias != nullptr) v += bias[j];
            if (z != nullptr && !s.epilogue.residual_after_activation) v += z[o];
            v = s.epilogue.activate(v);
            if (z != nullptr && s.epilogue.residual_after_activation) v += z[o];
            y[o] = v;
          }
          break;
        }
        const float* a = F(s.inputs[0]);
        const float* b = F(s.inputs[1]);
        const float* c = F(s.inputs[2]);
        const float* bias = F(s.inputs[3]);
        const float* z = F(s.inputs[4]);
        for (int64_t bt = 0; bt < g.batch; ++bt)
          for (int64_t i = 0; i < g.m; ++i)
            for (int64_t j = 0; j < g.n; ++j) {
              double acc = 0.0;
              for (int64_t kk = 0; kk < g.k; ++kk) {
                float av = a[bt * g.stride_a + (g.trans_a ? kk * g.m + i : i * g.k + kk)];
                float bv = b[bt * g.stride_b + (g.trans_b ? j * g.k + kk : kk * g.n + j)];
                acc += static_cast<double>(av) * bv;
              }
              int64_t o = bt * g.stride_c + i * g.n + j;
              if (g.batch == 1) o = i * g.n + j;
              float v = g.alpha * static_cast<float>(acc);
              if (c != nullptr) v += g.beta * c[o];
              if (bias != nullptr) v += bias[j];
              if (z != nullptr && !s.epilogue.residual_after_activation) v += z[o];
              v = s.epilogue.activate(v);
              if (z != nullptr && s.epilogue.residual_after_activation) v += z[o];
              y[o] = v;
            }
        break;
      }
      case StepKind::kGather: {
        size_t es = element_size(ov->dtype);
        const auto* data = static_cast<const uint8_t*>(ptr[static_cast<size_t>(s.inputs[0])]);
        const auto* idx = static_cast<const int64_t*>(ptr[static_cast<size_t>(s.inputs[1])]);
        int64_t ni = numel(V(s.inputs[1]).dims);
        auto* out = static_cast<uint8_t*>(ptr[static_cast<size_t>(s.outputs[0])]);
        for (int64_t i = 0; i < n; ++i) {
          int64_t k = i % s.inner, j = (i / s.inner) % ni, o = i / (s.inner * ni);
          int64_t id = idx[j] < 0 ? idx[j] + s.axis_dim : idx[j];
          id = std::clamp<int64_t>(id, 0, s.axis_dim - 1);
          std::memcpy(out + i * static_cast<int64_t>(es),
                      data + ((o * s.axis_dim + id) * s.inner + k) * static_cast<int64_t>(es), es);
        }
        break;
      }
      case StepKind::kSoftmax:
      case StepKind::kLayerNorm: {
        const float* x = F(s.inputs[0]);
        for (int64_t r = 0; r < s.rows; ++r) {
          const float* xr = x + r * s.cols;
          float* yr = y + r * s.cols;
          if (s.kind == StepKind::kSoftmax) {
            float m = *std::max_element(xr, xr + s.cols);
            double sum = 0.0;
            for (int64_t j = 0; j < s.cols; ++j) sum += std::exp(xr[j] - m);
            for (int64_t j = 0; j < s.cols; ++j) yr[j] = static_cast<float>(std::exp(xr[j] - m) / sum);
          } else {
            double mean = 0.0, var = 0.0;
            for (int64_t j = 0; j < s.cols; ++j) mean += xr[j];
            mean /= static_cast<double>(s.cols);
            for (int64_t j = 0; j < s.cols; ++j) var += (xr[j] - mean) * (xr[j] - mean);
            var /= static_cast<double>(s.cols);
            double inv = 1.0 / std::sqrt(var + s.epsilon);
            const float* gm = F(s.inputs[1]);
            const float* bt = F(s.inputs[2]);
            for (int64_t j = 0; j < s.cols; ++j) {
              yr[j] = static_cast<float>((xr[j] - mean) * inv * gm[j] + (bt != nullptr ? bt[j] : 0.0f));
            }
          }
        }
        break;
      }
      case StepKind::kPool: {
        const kernels::PoolParams& p = s.pool;
        const float* x = F(s.inputs[0]);
        for (int64_t i = 0; i < n; ++i) {
          int64_t c, ow, oh, nn;
          if (p.channels_last) {
            c = i % p.c;
            ow = (i / p.c) % p.ow;
            oh = (i / (p.c * p.ow)) % p.oh;
            nn = i / (p.c * p.ow * p.oh);
          } else {
            ow = i % p.ow;
            oh = (i / p.ow) % p.oh;
            c = (i / (p.ow * p.oh)) % p.c;
            nn = i / (p.ow * p.oh * p.c);
          }
          float acc = p.is_max ? -INFINITY : 0.0f;
          int64_t count = 0;
          for (int64_t ky = 0; ky < p.kh; ++ky)
            for (int64_t kx = 0; kx < p.kw; ++kx) {
              int64_t iy = oh * p.sh - p.pad_top + ky * p.dh, ix = ow * p.sw - p.pad_left + kx * p.dw;
              if (iy >= 0 && iy < p.h && ix >= 0 && ix < p.w) {
                float v = x[p.channels_last ? ((nn * p.h + iy) * p.w + ix) * p.c + c
                                            : ((nn * p.c + c) * p.h + iy) * p.w + ix];
                acc = p.is_max ? std::fmax(acc, v) : acc + v;
                ++count;
              } else if (p.count_include_pad && iy < p.h + p.pad_bottom && ix < p.w + p.pad_right) {
                ++count;
              }
            }
          y[i] = p.is_max ? acc : (count > 0 ? acc / static_cast<float>(count) : 0.0f);
        }
        break;
      }
      case StepKind::kGlobalAvgPool: {
        const float* x = F(s.inputs[0]);
        int64_t hw = s.pool.h * s.pool.w;
        for (int64_t i = 0; i < s.pool.n * s.pool.c; ++i) {
          int64_t ch = i % s.pool.c, b = i / s.pool.c;
          double sum = 0.0;
          for (int64_t k = 0; k < hw; ++k) {
            sum += s.pool.channels_last ? x[(b * hw + k) * s.pool.c + ch] : x[(b * s.pool.c + ch) * hw + k];
          }
          y[i] = static_cast<float>(sum / static_cast<double>(hw));
        }
        break;
      }
      case StepKind::kPointwise: {
        // The step's program on the host, with the kernel's index arithmetic.
        const PlanValue& xv = V(s.inputs[0]);
        KILN_ASSIGN_OR_RETURN(Tensor xf,
                              convert_tensor(Tensor::borrow(xv.dtype, xv.dims, ptr[static_cast<size_t>(s.inputs[0])]),
                                             DataType::kFloat32));
        const std::vector<int64_t>& args = s.pw_args;
        const size_t k = s.inputs.size() - 1;
        const size_t r = k == 0 ? 0 : (args.size() - 1) / (k + 1);
        std::vector<float> tv(k);
        for (int64_t i = 0; i < args[0]; ++i) {
          for (size_t t = 0; t < k; ++t) {
            int64_t rem = i, o = 0;
            for (size_t d = r; d-- > 0;) {
              o += (rem % args[1 + d]) * args[1 + r + t * r + d];
              rem /= args[1 + d];
            }
            tv[t] = F(s.inputs[1 + t])[o];
          }
          y[i] = evaluate_pointwise(s.pointwise->program, xf.data<float>()[i], tv.data());
        }
        break;
      }
      case StepKind::kMaskedSoftmax: {
        // softmax(x + mask) per row, the mask read at the kernel's offsets.
        const float* x = F(s.inputs[0]);
        const float* mask = F(s.inputs[1]);
        const std::vector<int64_t>& a = s.pw_args;
        const size_t r = mask == nullptr ? 0 : (a.size() - 3) / 2;
        for (int64_t row = 0; row < s.rows; ++row) {
          int64_t moff = 0, rem = row;
          for (size_t d = r; d-- > 0;) {
            moff += (rem % a[2 + d]) * a[2 + r + d];
            rem /= a[2 + d];
          }
          std::vector<float> v(static_cast<size_t>(s.cols));
          for (int64_t j = 0; j < s.cols; ++j) {
            v[static_cast<size_t>(j)] = x[row * s.cols + j] + (mask != nullptr ? mask[moff + j * a[2 + 2 * r]] : 0.0f);
          }
          float m = *std::max_element(v.begin(), v.end());
          double sum = 0.0;
          for (float e : v) sum += std::exp(e - m);
          for (int64_t j = 0; j < s.cols; ++j) {
            y[row * s.cols + j] = static_cast<float>(std::exp(v[static_cast<size_t>(j)] - m) / sum);
          }
        }
        break;
      }
      case StepKind::kQuantize:
      case StepKind::kDequantize: {
        const PlanValue& xv = V(s.inputs[0]);
        const void* x = ptr[static_cast<size_t>(s.inputs[0])];
        const float* scale = F(s.inputs[1]);
        const auto* zp = static_cast<const int32_t*>(ptr[static_cast<size_t>(s.inputs[2])]);
        void* out = ptr[static_cast<size_t>(s.outputs[0])];
        if (s.channels < 1 || s.inner < 1) {
          return internal_error("{}: channels {} inner {}", s.label, s.channels, s.inner);
        }
        for (int64_t i = 0; i < n; ++i) {
          int64_t c = s.channels == 1 ? 0 : (i / s.inner) % s.channels;
          if (s.kind == StepKind::kQuantize) {
            float r = std::nearbyint(static_cast<const float*>(x)[i] / scale[c]);
            bool u8 = ov->dtype == DataType::kUInt8;
            float lo = u8 ? 0.0f : -128.0f, hi = u8 ? 255.0f : 127.0f;
            float q = std::isnan(r) ? static_cast<float>(zp[c]) : std::clamp(r + static_cast<float>(zp[c]), lo, hi);
            if (u8) {
              static_cast<uint8_t*>(out)[i] = static_cast<uint8_t>(q);
            } else {
              static_cast<int8_t*>(out)[i] = static_cast<int8_t>(q);
            }
          } else {
            int32_t q = xv.dtype == DataType::kInt8    ? int32_t{static_cast<const int8_t*>(x)[i]}
                        : xv.dtype == DataType::kUInt8 ? int32_t{static_cast<const uint8_t*>(x)[i]}
                                                       : static_cast<const int32_t*>(x)[i];
            y[i] = static_cast<float>(q - zp[c]) * scale[c];
          }
        }
        break;
      }
      case StepKind::kConcat: {
        size_t es = element_size(ov->dtype);
        size_t axis = static_cast<size_t>(s.axis_dim);
        int64_t outer = numel(Dims(ov->dims.begin(), ov->dims.begin() + static_cast<std::ptrdiff_t>(axis)));
        int64_t out_row = numel(Dims(ov->dims.begin() + static_cast<std::ptrdiff_t>(axis), ov->dims.end())) *
                          static_cast<int64_t>(es);
        int64_t off = 0;
        auto* dst = static_cast<uint8_t*>(ptr[static_cast<size_t>(s.outputs[0])]);
        for (int v : s.inputs) {
          const Dims& d = V(v).dims;
          int64_t row = numel(Dims(d.begin() + static_cast<std::ptrdiff_t>(axis), d.end())) * static_cast<int64_t>(es);
          const auto* src = static_cast<const uint8_t*>(ptr[static_cast<size_t>(v)]);
          for (int64_t o = 0; o < outer; ++o)
            std::memcpy(dst + o * out_row + off, src + o * row, static_cast<size_t>(row));
          off += row;
        }
        break;
      }
    }
  }
  for (size_t j = 0; j < plan.output_values.size(); ++j) {
    const PlanValue& v = plan.values[static_cast<size_t>(plan.output_values[j])];
    if (v.on_host) outs[j] = v.host.clone();
  }
  return outs;
}

}  // namespace kiln::backends::cuda::test
