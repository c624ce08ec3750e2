// Op family: signal processing. DFT, STFT, HannWindow, HammingWindow,
// BlackmanWindow, MelWeightMatrix.
//
// Complex values are stored as a trailing axis of size 2 (real, imaginary);
// real signals have a trailing axis of size 1. Kernels compute in double and
// cast the result to the output type (fp16/bf16 inputs included). The
// transform is a radix-2 FFT for power-of-two lengths and the plain O(n^2)
// sum otherwise; both use a twiddle table indexed by (k * t) mod n so that
// the angles are exact multiples of 2*pi/n.
#include <algorithm>
#include <cmath>
#include <complex>
#include <numbers>
#include <optional>
#include <vector>

#include "core/error.h"
#include "ops/families.h"
#include "ops/op_util.h"
#include "ops/registry.h"

namespace kiln::ops {
namespace {

using Complex = std::complex<double>;

const Shape* known_rank_shape(const InferContext& ctx, size_t i) {
  const ir::ValueType& t = ctx.input_type(i);
  return t.is_tensor() && t.shape.rank_known() ? &t.shape : nullptr;
}

DataType input_dtype(const InferContext& ctx, size_t i) {
  const ir::ValueType& t = ctx.input_type(i);
  return t.is_tensor() ? t.dtype : DataType::kUndefined;
}

bool is_signal_type(DataType t) {
  return t == DataType::kFloat32 || t == DataType::kFloat64 || t == DataType::kFloat16 || t == DataType::kBFloat16;
}

// A constant scalar integer input at build time, if known.
std::optional<int64_t> constant_int(const InferContext& ctx, size_t i) {
  const Tensor* t = ctx.input_constant(i);
  if (t == nullptr) return std::nullopt;
  auto v = to_int64_scalar(*t);
  return v.is_ok() ? std::optional<int64_t>(*v) : std::nullopt;
}

// w[j] = exp(sign * 2*pi*i * j / n) for j in [0, n).
std::vector<Complex> twiddles(int64_t n, double sign) {
  std::vector<Complex> w(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j) {
    double angle = sign * 2.0 * std::numbers::pi * static_cast<double>(j) / static_cast<double>(n);
    w[static_cast<size_t>(j)] = Complex(std::cos(angle), std::sin(angle));
  }
  return w;
}

bool is_power_of_two(int64_t n) { return n > 0 && (n & (n - 1)) == 0; }

// In-place iterative radix-2 FFT. Precondition: a.size() is a power of two
// and w = twiddles(a.size(), sign).
void fft_pow2(std::vector<Complex>& a, const std::vector<Complex>& w) {
  size_t n = a.size();
  for (size_t i = 1, j = 0; i < n; ++i) {
    size_t bit = n >> 1;
    for (; (j & bit) != 0; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) std::swap(a[i], a[j]);
  }
  for (size_t len = 2; len <= n; len <<= 1) {
    size_t step = n / len;
    for (size_t i = 0; i < n; i += len) {
      for (size_t k = 0; k < len / 2; ++k) {
        Complex u = a[i + k];
        Complex v = a[i + k + len / 2] * w[k * step];
        a[i + k] = u + v;
        a[i + k + len / 2] = u - v;
      }
    }
  }
}

// y[k] = sum_t x[t] * w[(k * t) mod n] for k in [0, y.size()), where n =
// x.size() = w.size() and y.size() <= n.
void transform(std::vector<Complex>& x, const std::vector<Complex>& w, std::vector<Complex>& y) {
  int64_t n = static_cast<int64_t>(x.size());
  if (is_power_of_two(n)) {
    fft_pow2(x, w);
    for (size_t k = 0; k < y.size(); ++k) y[k] = x[k];
    return;
  }
  for (size_t k = 0; k < y.size(); ++k) {
    Complex sum = 0;
    for (int64_t t = 0; t < n; ++t) sum += x[static_cast<size_t>(t)] * w[static_cast<size_t>((static_cast<int64_t>(k) * t) % n)];
    y[k] = sum;
  }
}

// ---- DFT ---------------------------------------------------------------------

struct DftParams {
  int64_t axis = 0;    // normalized, in [0, rank - 2]
  int64_t length = 0;  // dft_length: the transform size n
  bool inverse = false;
  bool onesided = false;
};

// The normalized DFT axis: attribute (default 1) before opset 20, input 2
// (default -2) from 20. Accepted: [-r, -2] and [0, r - 2].
Result<int64_t> dft_axis(int64_t axis, int64_t rank) {
  if (rank < 2) return invalid_argument("input has rank {}, expected at least 2 ([..., signal, 1 or 2])", rank);
  int64_t a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a > rank - 2) {
    return invalid_argument("axis {} is out of range for rank {} (the last axis holds the complex parts)", axis, rank);
  }
  return a;
}

// The output dims of DFT for input dims `in`.
Dims dft_output_dims(const Dims& in, const DftParams& p) {
  Dims out = in;
  out[static_cast<size_t>(p.axis)] = (p.onesided && !p.inverse) ? p.length / 2 + 1 : p.length;
  out.back() = (p.onesided && p.inverse) ? 1 : 2;
  return out;
}

// Transforms the complex signal x (layout [outer, len, inner, comps]) along
// its len axis. Forward: first min(len, n) samples, zero-padded to n.
// Inverse: normalized by 1/n; with onesided, x holds the half spectrum of a
// real signal (IRFFT), completed by conjugate symmetry, and the output is real.
Result<Tensor> dft_compute(const Tensor& x, const DftParams& p) {
  const Dims& in = x.dims();
  int64_t comps = in.back();
  if (comps != 1 && comps != 2) {
    return invalid_argument("input's last dim is {}, expected 1 (real) or 2 (complex)", comps);
  }
  if (p.length <= 0) return invalid_argument("dft_length {} must be positive", p.length);
  Dims out_dims = dft_output_dims(in, p);
  KILN_ASSIGN_OR_RETURN(Tensor out, Tensor::allocate(DataType::kFloat64, out_dims));
  KILN_ASSIGN_OR_RETURN(Tensor xd, to_float64(x));
  const double* src = xd.data<double>();
  double* dst = out.data<double>();
  size_t axis = static_cast<size_t>(p.axis);
  int64_t outer = 1, inner = 1;
  for (size_t d = 0; d < axis; ++d) outer *= in[d];
  for (size_t d = axis + 1; d + 1 < in.size(); ++d) inner *= in[d];
  int64_t len = in[axis];
  int64_t n = p.length;
  int64_t out_len = out_dims[axis];
  int64_t out_comps = out_dims.back();
  std::vector<Complex> w = twiddles(n, p.inverse ? 1.0 : -1.0);
  std::vector<Complex> line(static_cast<size_t>(n));
  std::vector<Complex> result(static_cast<size_t>(p.inverse ? n : out_len));
  double scale = p.inverse ? 1.0 / static_cast<double>(n) : 1.0;
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < inner; ++i) {
      auto at = [&](int64_t t) {
        const double* e = src + ((o * len + t) * inner + i) * comps;
        return Complex(e[0], comps == 2 ? e[1] : 0.0);
      };
      std::fill(line.begin(), line.end(), Complex(0));
      if (p.inverse && p.onesided) {
        int64_t bins = std::min(len, n / 2 + 1);
        for (int64_t k = 0; k < bins; ++k) {
          line[static_cast<size_t>(k)] = at(k);
          if (k > 0 && n - k > n / 2) line[static_cast<size_t>(n - k)] = std::conj(at(k));
        }
      } else {
        for (int64_t t = 0; t < std::min(len, n); ++t) line[static_cast<size_t>(t)] = at(t);
      }
      transform(line, w, result);
      for (int64_t k = 0; k < out_len; ++k) {
        double* e = dst + ((o * out_len + k) * inner + i) * out_comps;
        Complex v = result[static_cast<size_t>(k)] * scale;
        e[0] = v.real();
        if (out_comps == 2) e[1] = v.imag();
      }
    }
  }
  return out;
}

Status dft_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  if (!is_signal_type(x->dtype())) {
    return unimplemented("input type {} is not supported", data_type_name(x->dtype()));
  }
  DftParams p;
  p.inverse = ctx.node().attr_int("inverse", 0) != 0;
  p.onesided = ctx.node().attr_int("onesided", 0) != 0;
  int64_t axis = ctx.opset() >= 20 ? -2 : ctx.node().attr_int("axis", 1);
  if (ctx.opset() >= 20 && ctx.has_input(2)) {
    KILN_ASSIGN_OR_RETURN(const Tensor* a, ctx.tensor_input(2));
    auto v = to_int64_scalar(*a);
    if (!v.is_ok()) return v.status().with_context("axis");
    axis = *v;
  }
  KILN_ASSIGN_OR_RETURN(p.axis, dft_axis(axis, x->rank()));
  int64_t dim = x->dim(p.axis);
  p.length = (p.inverse && p.onesided) ? 2 * (dim - 1) : dim;
  if (ctx.has_input(1)) {
    KILN_ASSIGN_OR_RETURN(const Tensor* l, ctx.tensor_input(1));
    auto v = to_int64_scalar(*l);
    if (!v.is_ok()) return v.status().with_context("dft_length");
    p.length = *v;
  }
  if (p.onesided && !p.inverse && x->dims().back() == 2) {
    return invalid_argument("onesided forward DFT needs a real input (last dim 1), got {}", x->debug_string());
  }
  if (p.onesided && p.inverse && x->dims().back() == 1) {
    return invalid_argument("onesided inverse DFT needs a complex input (last dim 2), got {}", x->debug_string());
  }
  KILN_ASSIGN_OR_RETURN(Tensor out, dft_compute(*x, p));
  KILN_ASSIGN_OR_RETURN(Tensor cast, cast_tensor(out, x->dtype()));
  ctx.set_output(0, std::move(cast));
  return Status::ok();
}

Status dft_infer(InferContext& ctx) {
  DataType dtype = input_dtype(ctx, 0);
  const Shape* in = known_rank_shape(ctx, 0);
  if (in == nullptr) {
    ctx.set_output_type(0, ir::ValueType::tensor(dtype));
    return Status::ok();
  }
  bool inverse = ctx.node().attr_int("inverse", 0) != 0;
  bool onesided = ctx.node().attr_int("onesided", 0) != 0;
  Shape out = *in;
  if (in->rank() >= 1) out[in->rank() - 1] = Dim(onesided && inverse ? 1 : 2);
  std::optional<int64_t> axis = ctx.node().attr_int("axis", 1);
  if (ctx.opset() >= 20) axis = ctx.has_input(2) ? constant_int(ctx, 2) : std::optional<int64_t>(-2);
  if (!axis.has_value()) {
    // The axis is a run-time value: every signal dim may change.
    for (int64_t d = 0; d + 1 < in->rank(); ++d) out[d] = Dim();
    ctx.set_output_type(0, ir::ValueType::tensor(dtype, out));
    return Status::ok();
  }
  KILN_ASSIGN_OR_RETURN(int64_t a, dft_axis(*axis, in->rank()));
  std::optional<int64_t> length;
  if (ctx.has_input(1)) {
    length = constant_int(ctx, 1);
  } else if ((*in)[a].known()) {
    length = (inverse && onesided) ? 2 * ((*in)[a].value - 1) : (*in)[a].value;
  }
  out[a] = Dim();
  if (length.has_value() && *length > 0) out[a] = Dim((onesided && !inverse) ? *length / 2 + 1 : *length);
  ctx.set_output_type(0, ir::ValueType::tensor(dtype, out));
  return Status::ok();
}

// ---- STFT --------------------------------------------------------------------

struct StftParams {
  int64_t step = 0;
  int64_t frame_length = 0;
  int64_t frames = 0;
  bool onesided = true;
};

Result<StftParams> stft_params(const KernelContext& ctx, const Tensor& signal) {
  if (signal.rank() != 3 || (signal.dim(2) != 1 && signal.dim(2) != 2)) {
    return invalid_argument("signal {} must have shape [batch, length, 1 or 2]", signal.debug_string());
  }
  StftParams p;
  p.onesided = ctx.node().attr_int("onesided", 1) != 0;
  KILN_ASSIGN_OR_RETURN(const Tensor* step_t, ctx.tensor_input(1));
  auto step = to_int64_scalar(*step_t);
  if (!step.is_ok()) return step.status().with_context("frame_step");
  p.step = *step;
  if (p.step <= 0) return invalid_argument("frame_step {} must be positive", p.step);
  int64_t signal_length = signal.dim(1);
  p.frame_length = signal_length;
  if (ctx.has_input(2)) {
    const Tensor& window = ctx.input(2);
    if (window.rank() != 1) return invalid_argument("window {} must be 1-D", window.debug_string());
    p.frame_length = window.dim(0);
  }
  if (ctx.has_input(3)) {
    KILN_ASSIGN_OR_RETURN(const Tensor* fl_t, ctx.tensor_input(3));
    auto fl = to_int64_scalar(*fl_t);
    if (!fl.is_ok()) return fl.status().with_context("frame_length");
    if (ctx.has_input(2) && *fl != p.frame_length) {
      return invalid_argument("frame_length {} differs from the window's length {}", *fl, p.frame_length);
    }
    p.frame_length = *fl;
  }
  if (p.frame_length <= 0 || p.frame_length > signal_length) {
    return invalid_argument("frame_length {} must be in [1, signal length {}]", p.frame_length, signal_length);
  }
  if (p.onesided && signal.dim(2) == 2) {
    return invalid_argument("onesided STFT needs a real signal (last dim 1), got {}", signal.debug_string());
  }
  p.frames = (signal_length - p.frame_length) / p.step + 1;
  return p;
}

Status stft_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* signal, ctx.tensor_input(0));
  if (!is_signal_type(signal->dtype())) {
    return unimplemented("signal type {} is not supported", data_type_name(signal->dtype()));
  }
  KILN_ASSIGN_OR_RETURN(StftParams p, stft_params(ctx, *signal));
  std::vector<double> window(static_cast<size_t>(p.frame_length), 1.0);
  if (ctx.has_input(2)) {
    KILN_ASSIGN_OR_RETURN(Tensor wd, to_float64(ctx.input(2)));
    std::copy_n(wd.data<double>(), p.frame_length, window.begin());
  }
  // Frames as a [batch, frames, frame_length, comps] signal, windowed, then
  // one DFT along axis 2.
  int64_t batch = signal->dim(0);
  int64_t comps = signal->dim(2);
  KILN_ASSIGN_OR_RETURN(Tensor frames, Tensor::allocate(DataType::kFloat64, {batch, p.frames, p.frame_length, comps}));
  KILN_ASSIGN_OR_RETURN(Tensor sd, to_float64(*signal));
  const double* src = sd.data<double>();
  double* dst = frames.data<double>();
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t f = 0; f < p.frames; ++f) {
      for (int64_t t = 0; t < p.frame_length; ++t) {
        for (int64_t c = 0; c < comps; ++c) {
          dst[((b * p.frames + f) * p.frame_length + t) * comps + c] =
              src[(b * signal->dim(1) + f * p.step + t) * comps + c] * window[static_cast<size_t>(t)];
        }
      }
    }
  }
  DftParams dp{.axis = 2, .length = p.frame_length, .inverse = false, .onesided = p.onesided};
  KILN_ASSIGN_OR_RETURN(Tensor out, dft_compute(frames, dp));
  KILN_ASSIGN_OR_RETURN(Tensor cast, cast_tensor(out, signal->dtype()));
  ctx.set_output(0, std::move(cast));
  return Status::ok();
}

Status stft_infer(InferContext& ctx) {
  DataType dtype = input_dtype(ctx, 0);
  const Shape* in = known_rank_shape(ctx, 0);
  std::vector<Dim> out(4);
  out[3] = Dim(2);
  if (in != nullptr) {
    if (in->rank() != 3) return invalid_argument("signal has rank {}, expected 3", in->rank());
    out[0] = (*in)[0];
  }
  std::optional<int64_t> frame_length;
  if (ctx.has_input(3)) {
    frame_length = constant_int(ctx, 3);
  } else if (const Shape* w = known_rank_shape(ctx, 2); ctx.has_input(2) && w != nullptr && w->rank() == 1) {
    if ((*w)[0].known()) frame_length = (*w)[0].value;
  } else if (!ctx.has_input(2) && in != nullptr && (*in)[1].known()) {
    frame_length = (*in)[1].value;
  }
  std::optional<int64_t> step = constant_int(ctx, 1);
  if (frame_length.has_value() && *frame_length > 0) {
    bool onesided = ctx.node().attr_int("onesided", 1) != 0;
    out[2] = Dim(onesided ? *frame_length / 2 + 1 : *frame_length);
    if (step.has_value() && *step > 0 && in != nullptr && (*in)[1].known() && (*in)[1].value >= *frame_length) {
      out[1] = Dim(((*in)[1].value - *frame_length) / *step + 1);
    }
  }
  ctx.set_output_type(0, ir::ValueType::tensor(dtype, Shape(out)));
  return Status::ok();
}

// ---- Windows -----------------------------------------------------------------

enum class WindowKind { kHann, kHamming, kBlackman };

// The output type of a generator op: output_datatype (default float).
Result<DataType> output_datatype(const ir::Node& node) {
  int64_t v = node.attr_int("output_datatype", 1);
  auto t = data_type_from_int(v);
  Status supported = t.has_value() ? visit_numeric(*t, "", [](auto) { return Status::ok(); }) : Status::ok();
  if (!t.has_value() || !supported.is_ok()) {
    return invalid_argument("output_datatype {} is not a supported numeric type", v);
  }
  return *t;
}

// w[n] for n in [0, size): the window over N = size (periodic) or size - 1
// (symmetric) intervals. A symmetric window of size 1 is [1].
template <WindowKind kKind>
Status window_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* size_t_, ctx.tensor_input(0));
  auto size = to_int64_scalar(*size_t_);
  if (!size.is_ok()) return size.status().with_context("size");
  if (*size < 0) return invalid_argument("size {} must not be negative", *size);
  KILN_ASSIGN_OR_RETURN(DataType dtype, output_datatype(ctx.node()));
  bool periodic = ctx.node().attr_int("periodic", 1) != 0;
  KILN_ASSIGN_OR_RETURN(Tensor w, Tensor::allocate(DataType::kFloat64, {*size}));
  double intervals = static_cast<double>(periodic ? *size : *size - 1);
  for (int64_t n = 0; n < *size; ++n) {
    double x = intervals > 0 ? 2.0 * std::numbers::pi * static_cast<double>(n) / intervals : 0.0;
    double v = 1.0;
    if (intervals == 0) {
      v = 1.0;
    } else if constexpr (kKind == WindowKind::kHann) {
      v = std::pow(std::sin(x / 2), 2);
    } else if constexpr (kKind == WindowKind::kHamming) {
      constexpr double kAlpha = 25.0 / 46.0;
      v = kAlpha - (1 - kAlpha) * std::cos(x);
    } else {
      v = 0.42 - 0.5 * std::cos(x) + 0.08 * std::cos(2 * x);
    }
    w.data<double>()[n] = v;
  }
  KILN_ASSIGN_OR_RETURN(Tensor cast, cast_tensor(w, dtype));
  ctx.set_output(0, std::move(cast));
  return Status::ok();
}

Status window_infer(InferContext& ctx) {
  KILN_ASSIGN_OR_RETURN(DataType dtype, output_datatype(ctx.node()));
  std::optional<int64_t> size = constant_int(ctx, 0);
  Shape out = size.has_value() && *size >= 0 ? Shape::of({*size}) : Shape::unknown_dims(1);
  ctx.set_output_type(0, ir::ValueType::tensor(dtype, out));
  return Status::ok();
}

// ---- MelWeightMatrix ---------------------------------------------------------

// Follows ONNX's reference: num_mel_bins + 2 points equally spaced on the
// mel scale over [lower, upper] (the step divides by num_mel_bins + 2), each
// mapped to the spectrogram bin floor((dft_length + 1) * hz / sample_rate);
// filter i is a triangle rising from point i to point i + 1 (peak 1) and
// falling to point i + 2. The hertz-to-mel step runs in the edges' own float
// type, as the reference does.
template <class C>
double hz_to_mel(double hz) {
  C ratio = static_cast<C>(static_cast<C>(hz) / static_cast<C>(700));
  C scaled = static_cast<C>(static_cast<C>(2595) * static_cast<C>(std::log1p(ratio)));
  return static_cast<double>(scaled) / std::log(10.0);
}

Status mel_weight_matrix_kernel(KernelContext& ctx) {
  int64_t ints[3] = {0, 0, 0};
  const char* names[3] = {"num_mel_bins", "dft_length", "sample_rate"};
  for (size_t i = 0; i < 3; ++i) {
    KILN_ASSIGN_OR_RETURN(const Tensor* t, ctx.tensor_input(i));
    auto v = to_int64_scalar(*t);
    if (!v.is_ok()) return v.status().with_context(names[i]);
    if (*v <= 0) return invalid_argument("{} is {}, expected a positive value", names[i], *v);
    ints[i] = *v;
  }
  int64_t mel_bins = ints[0], dft_length = ints[1], sample_rate = ints[2];
  if (mel_bins > kMaxTensorElements || dft_length > kMaxTensorElements) {
    return invalid_argument("num_mel_bins {} or dft_length {} is too large", mel_bins, dft_length);
  }
  KILN_ASSIGN_OR_RETURN(const Tensor* lower_t, ctx.tensor_input(3));
  KILN_ASSIGN_OR_RETURN(const Tensor* upper_t, ctx.tensor_input(4));
  if (!is_floating(lower_t->dtype()) || lower_t->numel() != 1 || upper_t->numel() != 1) {
    return invalid_argument("lower_edge_hertz and upper_edge_hertz must be float scalars");
  }
  KILN_ASSIGN_OR_RETURN(double lower, to_scalar_double(*lower_t));
  KILN_ASSIGN_OR_RETURN(double upper, to_scalar_double(*upper_t));
  KILN_ASSIGN_OR_RETURN(DataType dtype, output_datatype(ctx.node()));
  bool wide = lower_t->dtype() == DataType::kFloat64;
  double lower_mel = wide ? hz_to_mel<double>(lower) : hz_to_mel<float>(lower);
  double upper_mel = wide ? hz_to_mel<double>(upper) : hz_to_mel<float>(upper);
  int64_t spectrogram_bins = dft_length / 2 + 1;
  double mel_step = (upper_mel - lower_mel) / static_cast<double>(mel_bins + 2);
  std::vector<int64_t> points(static_cast<size_t>(mel_bins + 2));
  for (int64_t i = 0; i < mel_bins + 2; ++i) {
    double mel = static_cast<double>(i) * mel_step + lower_mel;
    double hz = 700.0 * std::expm1(mel / 2595.0 * std::log(10.0));
    double bin = std::floor(static_cast<double>(dft_length + 1) * hz / static_cast<double>(sample_rate));
    // Every point but the last is a row of the matrix; the last only bounds a loop.
    double limit = static_cast<double>(i == mel_bins + 1 ? spectrogram_bins : spectrogram_bins - 1);
    if (!(bin >= 0) || bin > limit) {
      return invalid_argument("the edge frequencies [{}, {}] Hz map outside the {} spectrogram bins", lower, upper,
                              spectrogram_bins);
    }
    points[static_cast<size_t>(i)] = static_cast<int64_t>(bin);
  }
  KILN_ASSIGN_OR_RETURN(Tensor m, Tensor::allocate(DataType::kFloat64, {spectrogram_bins, mel_bins}));
  double* out = m.data<double>();
  for (int64_t i = 0; i < mel_bins; ++i) {
    int64_t left = points[static_cast<size_t>(i)];
    int64_t center = points[static_cast<size_t>(i) + 1];
    int64_t right = points[static_cast<size_t>(i) + 2];
    if (center == left) {
      out[center * mel_bins + i] = 1;
    } else {
      for (int64_t j = left; j <= center; ++j) {
        out[j * mel_bins + i] = static_cast<double>(j - left) / static_cast<double>(center - left);
      }
    }
    for (int64_t j = center; j < right; ++j) {
      out[j * mel_bins + i] = static_cast<double>(right - j) / static_cast<double>(right - center);
    }
  }
  KILN_ASSIGN_OR_RETURN(Tensor cast, cast_tensor(m, dtype));
  ctx.set_output(0, std::move(cast));
  return Status::ok();
}

Status mel_weight_matrix_infer(InferContext& ctx) {
  KILN_ASSIGN_OR_RETURN(DataType dtype, output_datatype(ctx.node()));
  std::vector<Dim> out(2);
  if (auto dft_length = constant_int(ctx, 1); dft_length.has_value() && *dft_length > 0) {
    out[0] = Dim(*dft_length / 2 + 1);
  }
  if (auto bins = constant_int(ctx, 0); bins.has_value() && *bins > 0) out[1] = Dim(*bins);
  ctx.set_output_type(0, ir::ValueType::tensor(dtype, Shape(out)));
  return Status::ok();
}

}  // namespace

void register_signal(Registry& r) {
  // DFT-17 takes the axis as an attribute (default 1); DFT-20 as input 2
  // (default -2) and adds the IRFFT output shape; one kernel serves both.
  r.add({.name = "DFT", .domain = "", .since_version = 17, .min_inputs = 1, .max_inputs = 3, .kernel = dft_kernel,
         .infer = dft_infer});
  r.add({.name = "STFT", .domain = "", .since_version = 17, .min_inputs = 2, .max_inputs = 4, .kernel = stft_kernel,
         .infer = stft_infer});
  r.add({.name = "HannWindow", .domain = "", .since_version = 17, .min_inputs = 1, .max_inputs = 1,
         .kernel = window_kernel<WindowKind::kHann>, .infer = window_infer});
  r.add({.name = "HammingWindow", .domain = "", .since_version = 17, .min_inputs = 1, .max_inputs = 1,
         .kernel = window_kernel<WindowKind::kHamming>, .infer = window_infer});
  r.add({.name = "BlackmanWindow", .domain = "", .since_version = 17, .min_inputs = 1, .max_inputs = 1,
         .kernel = window_kernel<WindowKind::kBlackman>, .infer = window_infer});
  r.add({.name = "MelWeightMatrix", .domain = "", .since_version = 17, .min_inputs = 5, .max_inputs = 5,
         .kernel = mel_weight_matrix_kernel, .infer = mel_weight_matrix_infer});
}

}  // namespace kiln::ops
