// Shared parts of the recurrent ops (RNN, GRU, LSTM): attribute parsing,
// input validation and the layout-aware indexing of inputs and outputs.
//
// Shapes (layout 0; layout 1, opset 14+, swaps the batch and seq/direction
// axes of X, initial_h/c, Y, Y_h/c as noted):
//   X [seq, batch, input]                (layout 1: [batch, seq, input])
//   W [dirs, gates*hidden, input]   R [dirs, gates*hidden, hidden]
//   B [dirs, 2*gates*hidden]        sequence_lens [batch]
//   initial_h, initial_c, Y_h, Y_c [dirs, batch, hidden]   (layout 1: [batch, dirs, hidden])
//   P [dirs, 3*hidden] (LSTM)       Y [seq, dirs, batch, hidden] (layout 1: [batch, seq, dirs, hidden])
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ops/op_def.h"

namespace kiln::ops {

enum class RnnKind { kRnn, kGru, kLstm };

// One activation function with its alpha and beta (defaults filled in).
struct Activation {
  enum class Fn {
    kRelu, kTanh, kSigmoid, kAffine, kLeakyRelu, kThresholdedRelu, kScaledTanh, kHardSigmoid, kElu,
    kSoftsign, kSoftplus,
  };
  Fn fn = Fn::kTanh;
  float alpha = 0;
  float beta = 0;

  template <class C>
  C operator()(C x) const {
    const C a = static_cast<C>(alpha);
    const C b = static_cast<C>(beta);
    switch (fn) {
      case Fn::kRelu: return x > C(0) ? x : C(0);
      case Fn::kTanh: return std::tanh(x);
      case Fn::kSigmoid: return C(1) / (C(1) + std::exp(-x));
      case Fn::kAffine: return a * x + b;
      case Fn::kLeakyRelu: return x >= C(0) ? x : a * x;
      case Fn::kThresholdedRelu: return x > a ? x : C(0);
      case Fn::kScaledTanh: return a * std::tanh(b * x);
      case Fn::kHardSigmoid: return std::max(C(0), std::min(C(1), a * x + b));
      case Fn::kElu: return x >= C(0) ? x : a * (std::exp(x) - C(1));
      case Fn::kSoftsign: return x / (C(1) + std::abs(x));
      // log(1 + e^x), written to stay finite for large |x|.
      case Fn::kSoftplus: return x > C(0) ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
    }
    return x;
  }
};

// Everything a recurrent kernel needs besides the tensor data.
struct RnnSpec {
  RnnKind kind = RnnKind::kRnn;
  int64_t gates = 1;  // 1 (RNN), 3 (GRU: z, r, h), 4 (LSTM: i, o, f, c)
  int64_t seq = 0;
  int64_t batch = 0;
  int64_t input = 0;
  int64_t hidden = 0;
  int64_t dirs = 1;
  bool layout1 = false;
  std::vector<bool> reverse;               // per direction index
  std::vector<std::vector<Activation>> f;  // per direction: 1 (RNN), 2 (GRU), 3 (LSTM)
  std::optional<float> clip;
  std::vector<int64_t> lengths;      // per batch entry, in [0, seq]
  bool input_forget = false;         // LSTM
  bool linear_before_reset = false;  // GRU

  // Element offsets into the layout-dependent tensors.
  int64_t x_at(int64_t t, int64_t b) const { return (layout1 ? b * seq + t : t * batch + b) * input; }
  int64_t state_at(int64_t d, int64_t b) const { return (layout1 ? b * dirs + d : d * batch + b) * hidden; }
  int64_t y_at(int64_t t, int64_t d, int64_t b) const {
    return (layout1 ? (b * seq + t) * dirs + d : (t * dirs + d) * batch + b) * hidden;
  }
  Dims state_dims() const { return layout1 ? Dims{batch, dirs, hidden} : Dims{dirs, batch, hidden}; }
  Dims y_dims() const { return layout1 ? Dims{batch, seq, dirs, hidden} : Dims{seq, dirs, batch, hidden}; }
};

// Reads the attributes and checks every input's dtype and shape against X, W
// and R; errors name the node, the input and the expected shape.
Result<RnnSpec> make_rnn_spec(const KernelContext& ctx, RnnKind kind);

// Shape inference shared by the three ops: Y, Y_h (and Y_c) from X, R and the attributes.
Status rnn_infer(InferContext& ctx);

}  // namespace kiln::ops
