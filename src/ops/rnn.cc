// Op family: recurrent networks. RNN, GRU and LSTM reference kernels.
//
// One kernel serves every opset (1 to 22): opset 14 adds `layout`, older
// opsets only differ in attributes that do not change the math
// (output_sequence) or in the element types allowed. Equations (ONNX
// notation; * is a matrix product with the transposed weight, (.) is
// elementwise, clip bounds each activation's input to [-clip, clip]):
//   RNN:  Ht = f(Xt*Wi + Ht-1*Ri + Wbi + Rbi)
//   GRU:  zt = f(Xt*Wz + Ht-1*Rz + Wbz + Rbz);  rt = f(Xt*Wr + Ht-1*Rr + Wbr + Rbr)
//         ht = g(Xt*Wh + (rt (.) Ht-1)*Rh + Rbh + Wbh)          linear_before_reset = 0
//         ht = g(Xt*Wh + (rt (.) (Ht-1*Rh + Rbh)) + Wbh)        linear_before_reset = 1
//         Ht = (1 - zt) (.) ht + zt (.) Ht-1
//   LSTM: it = f(Xt*Wi + Ht-1*Ri + Pi (.) Ct-1 + Wbi + Rbi)
//         ft = f(Xt*Wf + Ht-1*Rf + Pf (.) Ct-1 + Wbf + Rbf)     (1 - it with input_forget)
//         ct = g(Xt*Wc + Ht-1*Rc + Wbc + Rbc);  Ct = ft (.) Ct-1 + it (.) ct
//         ot = f(Xt*Wo + Ht-1*Ro + Po (.) Ct + Wbo + Rbo);  Ht = ot (.) h(Ct)
// With sequence_lens, batch entry b runs its first lengths[b] steps (a reverse
// direction walks them backwards); Y is zero past the length, and Y_h/Y_c
// hold the state after the last step run (zero when the length is 0, as in
// onnxruntime).
#include "core/error.h"
#include "ops/families.h"
#include "ops/op_util.h"
#include "ops/registry.h"
#include "ops/rnn_common.h"

namespace kiln::ops {
namespace {

// An optional input as a flat vector in the compute type; empty when absent.
template <class T, class C = compute_type_t<T>>
std::vector<C> load(const KernelContext& ctx, size_t i) {
  if (!ctx.has_input(i)) return {};
  const Tensor& t = ctx.input(i);
  std::vector<C> out(static_cast<size_t>(t.numel()));
  for (int64_t k = 0; k < t.numel(); ++k) out[static_cast<size_t>(k)] = static_cast<C>(t.data<T>()[k]);
  return out;
}

template <class T>
Status store(KernelContext& ctx, size_t i, const Dims& dims, const std::vector<compute_type_t<T>>& values) {
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.allocate_output(i, data_type_of<T>(), dims));
  for (size_t k = 0; k < values.size(); ++k) out->data<T>()[k] = static_cast<T>(values[k]);
  return Status::ok();
}

template <class T>
Status recurrent_kernel(KernelContext& ctx, const RnnSpec& s) {
  using C = compute_type_t<T>;
  const std::vector<C> x = load<T>(ctx, 0);
  const std::vector<C> w = load<T>(ctx, 1);
  const std::vector<C> r = load<T>(ctx, 2);
  const std::vector<C> bias = load<T>(ctx, 3);
  const std::vector<C> h0 = load<T>(ctx, 5);
  const std::vector<C> c0 = s.kind == RnnKind::kLstm ? load<T>(ctx, 6) : std::vector<C>();
  const std::vector<C> peep = s.kind == RnnKind::kLstm ? load<T>(ctx, 7) : std::vector<C>();

  const int64_t hidden = s.hidden;
  const int64_t gh = s.gates * hidden;
  auto state_size = static_cast<size_t>(s.dirs * s.batch * hidden);
  std::vector<C> y(static_cast<size_t>(s.seq) * state_size, C(0));
  std::vector<C> y_h(state_size, C(0));
  std::vector<C> y_c(state_size, C(0));

  auto clip = [&](C v) {
    if (!s.clip) return v;
    C c = static_cast<C>(*s.clip);
    return std::max(-c, std::min(c, v));
  };
  auto at = [](const std::vector<C>& v, int64_t i) { return v[static_cast<size_t>(i)]; };

  std::vector<C> h(static_cast<size_t>(hidden));
  std::vector<C> c(static_cast<size_t>(hidden));
  std::vector<C> h_next(static_cast<size_t>(hidden));
  std::vector<C> xw(static_cast<size_t>(gh));  // Xt * W, per gate row
  std::vector<C> hr(static_cast<size_t>(gh));  // Ht-1 * R, per gate row
  std::vector<C> wb(static_cast<size_t>(gh));
  std::vector<C> rb(static_cast<size_t>(gh));
  std::vector<C> gate(static_cast<size_t>(gh));       // xw + hr + wb + rb
  std::vector<C> z(static_cast<size_t>(hidden));      // GRU update gate
  std::vector<C> reset(static_cast<size_t>(hidden));  // GRU reset gate
  for (int64_t d = 0; d < s.dirs; ++d) {
    const std::vector<Activation>& f = s.f[static_cast<size_t>(d)];
    const int64_t w_off = d * gh * s.input;
    const int64_t r_off = d * gh * hidden;
    for (int64_t g = 0; g < gh; ++g) {
      wb[static_cast<size_t>(g)] = bias.empty() ? C(0) : at(bias, d * 2 * gh + g);
      rb[static_cast<size_t>(g)] = bias.empty() ? C(0) : at(bias, d * 2 * gh + gh + g);
    }
    // Peephole weight of gate `which` (0: input, 1: output, 2: forget) for unit j.
    auto peephole = [&](int64_t which, int64_t j) {
      return peep.empty() ? C(0) : at(peep, (d * 3 + which) * hidden + j);
    };

    for (int64_t b = 0; b < s.batch; ++b) {
      const int64_t st = s.state_at(d, b);
      for (int64_t j = 0; j < hidden; ++j) {
        h[static_cast<size_t>(j)] = h0.empty() ? C(0) : at(h0, st + j);
        c[static_cast<size_t>(j)] = c0.empty() ? C(0) : at(c0, st + j);
      }
      const int64_t len = s.lengths[static_cast<size_t>(b)];
      for (int64_t step = 0; step < len; ++step) {
        const int64_t t = s.reverse[static_cast<size_t>(d)] ? len - 1 - step : step;
        const int64_t xo = s.x_at(t, b);
        for (int64_t g = 0; g < gh; ++g) {
          C sx = 0;
          for (int64_t k = 0; k < s.input; ++k) sx += at(x, xo + k) * at(w, w_off + g * s.input + k);
          C sh = 0;
          for (int64_t k = 0; k < hidden; ++k) sh += h[static_cast<size_t>(k)] * at(r, r_off + g * hidden + k);
          xw[static_cast<size_t>(g)] = sx;
          hr[static_cast<size_t>(g)] = sh;
          gate[static_cast<size_t>(g)] = sx + sh + wb[static_cast<size_t>(g)] + rb[static_cast<size_t>(g)];
        }
        if (s.kind == RnnKind::kRnn) {
          for (size_t u = 0; u < h.size(); ++u) h_next[u] = f[0](clip(gate[u]));
        } else if (s.kind == RnnKind::kGru) {
          // Gate rows: z in [0, H), r in [H, 2H), h in [2H, 3H).
          for (size_t u = 0; u < h.size(); ++u) {
            z[u] = f[0](clip(gate[u]));
            reset[u] = f[0](clip(gate[h.size() + u]));
          }
          for (int64_t j = 0; j < hidden; ++j) {
            auto u = static_cast<size_t>(j);
            auto hi = static_cast<size_t>(2 * hidden + j);
            C pre;
            if (s.linear_before_reset) {
              pre = xw[hi] + reset[u] * (hr[hi] + rb[hi]) + wb[hi];
            } else {
              C sh = 0;  // (rt (.) Ht-1) * Rh: the reset gate applies before the product
              for (int64_t k = 0; k < hidden; ++k) {
                sh += reset[static_cast<size_t>(k)] * h[static_cast<size_t>(k)] *
                      at(r, r_off + (2 * hidden + j) * hidden + k);
              }
              pre = xw[hi] + sh + rb[hi] + wb[hi];
            }
            C hh = f[1](clip(pre));
            h_next[u] = (C(1) - z[u]) * hh + z[u] * h[u];
          }
        } else {
          // Gate rows: i in [0, H), o in [H, 2H), f in [2H, 3H), c in [3H, 4H).
          for (int64_t j = 0; j < hidden; ++j) {
            auto u = static_cast<size_t>(j);
            C in_gate = f[0](clip(gate[u] + peephole(0, j) * c[u]));
            C forget = s.input_forget ? C(1) - in_gate
                                      : f[0](clip(gate[static_cast<size_t>(2 * hidden + j)] + peephole(2, j) * c[u]));
            C cell = f[1](clip(gate[static_cast<size_t>(3 * hidden + j)]));
            C c_next = forget * c[u] + in_gate * cell;
            C out_gate = f[0](clip(gate[static_cast<size_t>(hidden + j)] + peephole(1, j) * c_next));
            h_next[u] = out_gate * f[2](c_next);
            c[u] = c_next;  // unit j's cell state is not read again in this step
          }
        }
        h.swap(h_next);
        const int64_t yo = s.y_at(t, d, b);
        for (int64_t j = 0; j < hidden; ++j) y[static_cast<size_t>(yo + j)] = h[static_cast<size_t>(j)];
      }
      if (len > 0) {
        for (int64_t j = 0; j < hidden; ++j) {
          y_h[static_cast<size_t>(st + j)] = h[static_cast<size_t>(j)];
          y_c[static_cast<size_t>(st + j)] = c[static_cast<size_t>(j)];
        }
      }
    }
  }
  if (ctx.wants_output(0)) KILN_RETURN_IF_ERROR(store<T>(ctx, 0, s.y_dims(), y));
  if (ctx.wants_output(1)) KILN_RETURN_IF_ERROR(store<T>(ctx, 1, s.state_dims(), y_h));
  if (s.kind == RnnKind::kLstm && ctx.wants_output(2)) KILN_RETURN_IF_ERROR(store<T>(ctx, 2, s.state_dims(), y_c));
  return Status::ok();
}

template <RnnKind kKind>
Status rnn_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(RnnSpec spec, make_rnn_spec(ctx, kKind));
  switch (ctx.input(0).dtype()) {
    case DataType::kFloat32: return recurrent_kernel<float>(ctx, spec);
    case DataType::kFloat64: return recurrent_kernel<double>(ctx, spec);
    case DataType::kFloat16: return recurrent_kernel<Float16>(ctx, spec);
    case DataType::kBFloat16: return recurrent_kernel<BFloat16>(ctx, spec);
    default: break;
  }
  return internal_error("{}: unexpected element type", ctx.node().describe());
}

}  // namespace

void register_rnn(Registry& r) {
  r.add({.name = "RNN", .domain = "", .since_version = 1, .min_inputs = 3, .max_inputs = 6, .min_outputs = 0,
         .max_outputs = 2, .kernel = rnn_kernel<RnnKind::kRnn>, .infer = rnn_infer});
  r.add({.name = "GRU", .domain = "", .since_version = 1, .min_inputs = 3, .max_inputs = 6, .min_outputs = 0,
         .max_outputs = 2, .kernel = rnn_kernel<RnnKind::kGru>, .infer = rnn_infer});
  r.add({.name = "LSTM", .domain = "", .since_version = 1, .min_inputs = 3, .max_inputs = 8, .min_outputs = 0,
         .max_outputs = 3, .kernel = rnn_kernel<RnnKind::kLstm>, .infer = rnn_infer});
}

}  // namespace kiln::ops
