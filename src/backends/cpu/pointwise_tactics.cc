// kiln.Pointwise in one pass: the body's chain of elementwise ops (see
// passes/pointwise_fusion.cc) is compiled at prepare into a list of steps,
// and each thread runs every step over a block of the tensor that stays in
// L1, where the reference kernel runs the body as a subgraph, one pass over
// the whole tensor per op.
//
// The formulas are the reference kernels' (ops/activations.cc,
// ops/elementwise_unary.cc, ops/elementwise_binary.cc,
// ops/elementwise_variadic.cc), written the same way in float, so results
// match them bit for bit; a Cast to bfloat16/float16 and back rounds as
// core/float_types.h does. The values between are float32; X may be 8-bit
// behind a per-tensor DequantizeLinear and Y behind a QuantizeLinear (the
// Q/DQ tactics' arithmetic, also bit-exact), with BatchNormalization as
// own.batchnorm computes it, and a second 8-bit input only as
// Q(steps(DQ(a) + DQ(b))); Y may be float16 behind a final Cast to float16
// (passes/half_inputs.cc; F16C, bit-exact with core/float_types.h). A body with any other op, type or a constant
// that does not broadcast into X is left to the reference.
#include <algorithm>
#include <immintrin.h>
#include <memory>
#include <mutex>
#include <map>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "backends/cpu/gemm.h"
#include "backends/cpu/microkernel.h"
#include "backends/cpu/tactics.h"
#include "core/error.h"
#include "core/float_types.h"
#include "core/thread_pool.h"
#include "ops/activation_math.h"

namespace kiln::backends::cpu {
namespace {

enum class Code : uint8_t {
  // unary
  kRelu, kLeakyRelu, kElu, kSelu, kCelu, kSigmoid, kHardSigmoid, kHardSwish, kSoftplus, kSoftsign, kTanh,
  kThresholdedRelu, kGelu, kGeluTanh, kMish, kClip, kSqrt, kExp, kLog, kReciprocal, kFloor, kCeil, kRound,
  kSin, kCos, kErf, kNeg, kAbs, kSign, kIdentity,
  kRoundBf16, kRoundF16,  // a Cast to bfloat16 / float16 and straight back to float32
  // binary, with a constant operand
  kAdd, kSub, kMul, kDiv, kPow, kMax, kMin, kPRelu,
};

bool is_binary(Code c) { return c >= Code::kAdd; }

// One op of the chain. Binary ops combine the running value x with constant
// `operand` as (x op c), or (c op x) when `operand_first`.
struct Step {
  Code code = Code::kIdentity;
  float a = 0.0f;  // alpha, Clip's lower bound
  float b = 0.0f;  // beta / gamma, Clip's upper bound
  int operand = -1;
  bool operand_first = false;
};

// A per-tensor DequantizeLinear at the head or QuantizeLinear at the tail of
// a chain: X or Y is 8-bit and the steps run on the float values between.
struct QuantEnd {
  bool on = false;
  float scale = 1.0f;
  int32_t zero_point = 0;
  DataType type = DataType::kUInt8;
};

struct Program {
  std::vector<Step> steps;
  std::vector<Tensor> operands;  // float32 constants broadcast into X
  QuantEnd in, out;
  // A second 8-bit input B of X's dims, dequantized and added to X's values
  // before the steps (a Q/DQ model's residual add).
  QuantEnd in2;
  // Y is float16: the body ends with a Cast to float16.
  bool half_out = false;
};

const std::vector<std::pair<const char*, Code>> kUnary = {
    {"Relu", Code::kRelu},         {"LeakyRelu", Code::kLeakyRelu},
    {"Elu", Code::kElu},           {"Selu", Code::kSelu},
    {"Celu", Code::kCelu},         {"Sigmoid", Code::kSigmoid},
    {"HardSigmoid", Code::kHardSigmoid}, {"HardSwish", Code::kHardSwish},
    {"Softplus", Code::kSoftplus}, {"Softsign", Code::kSoftsign},
    {"Tanh", Code::kTanh},         {"ThresholdedRelu", Code::kThresholdedRelu},
    {"Mish", Code::kMish},         {"Sqrt", Code::kSqrt},
    {"Exp", Code::kExp},           {"Log", Code::kLog},
    {"Reciprocal", Code::kReciprocal}, {"Floor", Code::kFloor},
    {"Ceil", Code::kCeil},         {"Round", Code::kRound},
    {"Sin", Code::kSin},           {"Cos", Code::kCos},
    {"Erf", Code::kErf},           {"Neg", Code::kNeg},
    {"Abs", Code::kAbs},           {"Sign", Code::kSign},
};
const std::vector<std::pair<const char*, Code>> kBinary = {
    {"Add", Code::kAdd}, {"Sub", Code::kSub}, {"Mul", Code::kMul}, {"Div", Code::kDiv},
    {"Pow", Code::kPow}, {"Max", Code::kMax}, {"Min", Code::kMin}, {"PRelu", Code::kPRelu},
};

template <class Table>
bool lookup(const Table& table, const std::string& op, Code& code) {
  for (const auto& [name, c] : table) {
    if (op == name) {
      code = c;
      return true;
    }
  }
  return false;
}

// A one-element float32 constant input i of n (Clip's bounds), or false.
bool scalar_constant(const ir::Node& n, size_t i, float& value) {
  const ir::Value* v = n.input(i);
  if (v == nullptr) return true;  // absent: the default bound stays
  if (!v->is_constant() || v->constant().dtype() != DataType::kFloat32 || v->constant().numel() != 1) return false;
  value = v->constant().data<float>()[0];
  return true;
}

// Inference-mode BatchNormalization of `x` as own.batchnorm computes it: y =
// x * k + b per channel (axis 1), k and b from the statistics in double and
// rounded to float, so a fused chain gives own.batchnorm's values. Two steps
// with [C, 1, ...] operands.
bool batchnorm_steps(const ir::Node& n, const ir::Value* x, Program& prog) {
  if (n.input(0) != x || n.num_inputs() != 5 || n.attr_int("training_mode", 0) != 0 || n.opset() < 9) return false;
  if (!x->type().is_tensor() || !x->type().shape.rank_known() || x->type().shape.rank() < 2) return false;
  const int64_t rank = x->type().shape.rank();
  const float* p[4];
  int64_t c = -1;
  for (size_t i = 1; i < 5; ++i) {
    const ir::Value* v = n.input(i);
    if (v == nullptr || !v->is_constant() || v->constant().dtype() != DataType::kFloat32) return false;
    if (c < 0) c = v->constant().numel();
    if (v->constant().numel() != c) return false;
    p[i - 1] = v->constant().data<float>();
  }
  const Dim& xc = x->type().shape[1];
  if (!xc.known() || xc.value != c) return false;
  Dims dims(static_cast<size_t>(rank - 1), 1);
  dims[0] = c;
  Tensor k = Tensor::empty(DataType::kFloat32, dims), b = Tensor::empty(DataType::kFloat32, dims);
  const double eps = n.attr_float("epsilon", 1e-5f);
  for (int64_t j = 0; j < c; ++j) {
    const double kj = static_cast<double>(p[0][j]) / std::sqrt(static_cast<double>(p[3][j]) + eps);
    k.data<float>()[j] = static_cast<float>(kj);
    b.data<float>()[j] = static_cast<float>(static_cast<double>(p[1][j]) - static_cast<double>(p[2][j]) * kj);
  }
  prog.steps.push_back({Code::kMul, 0.0f, 0.0f, static_cast<int>(prog.operands.size()), false});
  prog.operands.push_back(std::move(k));
  prog.steps.push_back({Code::kAdd, 0.0f, 0.0f, static_cast<int>(prog.operands.size()), false});
  prog.operands.push_back(std::move(b));
  return true;
}

// A per-tensor QuantizeLinear / DequantizeLinear node as a chain end.
bool quant_end(const ir::Node& n, const char* op, QuantEnd& end) {
  if (!n.domain().empty() || n.op_type() != op || n.num_outputs() != 1) return false;
  if (!qdq_scalar_params(n, end.scale, end.zero_point, end.type)) return false;
  if (!(end.scale > 0.0f) || !std::isfinite(end.scale)) return false;
  end.on = true;
  return true;
}

// The step for one body node, whose data input is `x`; false if this tactic
// does not compute it.
bool compile_step(const ir::Node& n, const ir::Value* x, Program& prog) {
  Step s;
  const std::string& op = n.op_type();
  if (n.num_outputs() != 1 || n.output(0) == nullptr || !n.subgraphs().empty()) return false;
  const bool kiln_gelu = n.domain() == "kiln" && op == "Gelu";
  if (!n.domain().empty() && !kiln_gelu) return false;
  if (op == "Gelu") {
    const std::string approx = n.attr_string("approximate", "none");
    if (approx != "none" && approx != "tanh") return false;
    s.code = approx == "none" ? Code::kGelu : Code::kGeluTanh;
  } else if (op == "BatchNormalization") {
    return batchnorm_steps(n, x, prog);
  } else if (op == "Cast") {
    if (n.attr_int("to", 0) != static_cast<int64_t>(DataType::kFloat32)) return false;
    s.code = Code::kIdentity;
  } else if (op == "Clip") {
    s.code = Code::kClip;
    s.a = -std::numeric_limits<float>::infinity();
    s.b = std::numeric_limits<float>::infinity();
    if (n.opset() < 11) {
      if (n.num_inputs() > 1) return false;
      if (n.has_attr("min")) s.a = n.attr_float("min", 0.0f);
      if (n.has_attr("max")) s.b = n.attr_float("max", 0.0f);
    } else if (!scalar_constant(n, 1, s.a) || !scalar_constant(n, 2, s.b)) {
      return false;
    }
  } else if (lookup(kUnary, op, s.code)) {
    switch (s.code) {
      case Code::kLeakyRelu: s.a = n.attr_float("alpha", 0.01f); break;
      case Code::kElu: s.a = n.attr_float("alpha", 1.0f); break;
      case Code::kSelu:
        s.a = n.attr_float("alpha", 1.67326319217681884765625f);
        s.b = n.attr_float("gamma", 1.05070102214813232421875f);
        break;
      case Code::kCelu:
        s.a = n.attr_float("alpha", 1.0f);
        if (s.a == 0.0f) return false;  // the reference reports it
        break;
      case Code::kHardSigmoid:
        s.a = n.attr_float("alpha", 0.2f);
        s.b = n.attr_float("beta", 0.5f);
        break;
      case Code::kThresholdedRelu: s.a = n.attr_float("alpha", 1.0f); break;
      default: break;
    }
    if (n.num_inputs() != 1) return false;
  } else if (lookup(kBinary, op, s.code)) {
    // Numpy's broadcasting came with opset 7 (8 for Max and Min); before, an attribute ruled it.
    if (n.num_inputs() != 2 || n.opset() < ((op == "Max" || op == "Min") ? 8 : 7)) return false;
    const int xi = n.input(0) == x ? 0 : 1;
    const ir::Value* c = n.input(static_cast<size_t>(1 - xi));
    if (c == nullptr || !c->is_constant() || c->constant().dtype() != DataType::kFloat32) return false;
    if (s.code == Code::kPRelu && xi != 0) return false;
    s.operand = static_cast<int>(prog.operands.size());
    s.operand_first = xi == 1;
    prog.operands.push_back(c->constant());
  } else {
    return false;
  }
  if (n.input(0) != x && !(is_binary(s.code) && n.input(1) == x)) return false;
  prog.steps.push_back(s);
  return true;
}

bool cast_to_f16(const ir::Node& n) {
  return n.domain().empty() && n.op_type() == "Cast" && n.num_inputs() == 1 && n.num_outputs() == 1 &&
         n.attr_int("to", 0) == static_cast<int64_t>(DataType::kFloat16);
}

// `n` then `next` cast `x` to bfloat16 or float16 and back to float32: the
// rounding step `code`.
bool half_round_trip(const ir::Node& n, const ir::Node* next, const ir::Value* x, Code& code) {
  if (next == nullptr || !n.domain().empty() || n.op_type() != "Cast" || n.input(0) != x || n.num_outputs() != 1) {
    return false;
  }
  const int64_t to = n.attr_int("to", 0);
  if (to == static_cast<int64_t>(DataType::kBFloat16)) {
    code = Code::kRoundBf16;
  } else if (to == static_cast<int64_t>(DataType::kFloat16)) {
    code = Code::kRoundF16;
  } else {
    return false;
  }
  return next->domain().empty() && next->op_type() == "Cast" && next->num_inputs() == 1 &&
         next->input(0) == n.output(0) && next->num_outputs() == 1 &&
         next->attr_int("to", 0) == static_cast<int64_t>(DataType::kFloat32);
}

// Two inputs: DequantizeLinear of each, their Add, elementwise steps, a
// QuantizeLinear (what the pointwise fusion pass makes of a residual add).
bool compile_quantized_add(const ir::Node& node, const ir::Graph& body, Program& prog) {
  const auto& nodes = body.nodes();
  if (nodes.size() < 4 || body.inputs().size() != 2 || body.outputs().size() != 1) return false;
  auto it = nodes.begin();
  const ir::Node& da = **it++;
  const ir::Node& db = **it++;
  const ir::Node& add = **it++;
  if (!quant_end(da, "DequantizeLinear", prog.in) || da.input(0) != body.inputs()[0]) return false;
  if (!quant_end(db, "DequantizeLinear", prog.in2) || db.input(0) != body.inputs()[1]) return false;
  if (!add.domain().empty() || add.op_type() != "Add" || add.num_inputs() != 2 || add.num_outputs() != 1) return false;
  const bool operands = (add.input(0) == da.output(0) && add.input(1) == db.output(0)) ||
                        (add.input(0) == db.output(0) && add.input(1) == da.output(0));
  if (!operands) return false;
  if (!quant_end(*nodes.back(), "QuantizeLinear", prog.out)) return false;
  const ir::Value* cur = add.output(0);
  for (auto stop = std::prev(nodes.end()); it != stop; ++it) {
    if (!compile_step(**it, cur, prog)) return false;
    cur = (*it)->output(0);
  }
  if (nodes.back()->input(0) != cur || nodes.back()->output(0) != body.outputs()[0]) return false;
  const auto typed = [](const ir::Value* v, DataType t) {
    return v != nullptr && v->type().is_tensor() && v->type().dtype == t;
  };
  return typed(node.input(0), prog.in.type) && typed(node.input(1), prog.in2.type) &&
         typed(node.output(0), prog.out.type);
}

bool compile(const ir::Node& node, Program& prog) {
  if (node.domain() != "kiln" || node.op_type() != "Pointwise" || node.num_outputs() != 1) return false;
  if (node.num_inputs() == 2) {
    const ir::Graph* body = node.attr_graph("body");
    return body != nullptr && compile_quantized_add(node, *body, prog);
  }
  if (node.num_inputs() != 1) return false;
  const ir::Graph* body = node.attr_graph("body");
  if (body == nullptr || body->inputs().size() != 1 || body->outputs().size() != 1) return false;
  // X's and Y's types decide the 8-bit and float16 ends.
  const ir::Value* x = node.input(0);
  const ir::Value* y = node.output(0);
  const ir::Value* cur = body->inputs()[0];
  const auto& nodes = body->nodes();
  auto it = nodes.begin();
  // An 8-bit X: the body starts with its DequantizeLinear.
  if (it != nodes.end() && quant_end(**it, "DequantizeLinear", prog.in)) {
    if ((*it)->input(0) != cur) return false;
    cur = (*it)->output(0);
    ++it;
  }
  auto stop = nodes.end();
  const auto typed_as = [](const ir::Value* v, DataType t) {
    return v != nullptr && v->type().is_tensor() && v->type().dtype == t;
  };
  // An 8-bit Y: the body ends with a QuantizeLinear; a float16 Y: with a Cast to float16.
  if (it != stop && quant_end(*nodes.back(), "QuantizeLinear", prog.out)) {
    --stop;
  } else if (it != stop && cast_to_f16(*nodes.back()) && typed_as(y, DataType::kFloat16)) {
    prog.half_out = true;
    --stop;
  }
  const auto typed = [&](const ir::Value* v, const QuantEnd& q) { return q.on ? typed_as(v, q.type) : is_f32(v); };
  if (!typed(x, prog.in) || !(prog.half_out || typed(y, prog.out))) return false;
  for (; it != stop; ++it) {
    const auto after = std::next(it);
    const ir::Node* next = after != nodes.end() ? after->get() : nullptr;
    if (Step round; half_round_trip(**it, next, cur, round.code)) {
      prog.steps.push_back(round);
      cur = next->output(0);
      it = after;
      continue;
    }
    if (!compile_step(**it, cur, prog)) return false;
    cur = (*it)->output(0);
  }
  if (prog.out.on || prog.half_out) {
    const ir::Node& q = *nodes.back();
    if (q.input(0) != cur) return false;
    cur = q.output(0);
  }
  return cur == body->outputs()[0] && (!prog.steps.empty() || prog.in.on || prog.out.on || prog.half_out);
}

// Where a constant's element for flat element i of X is: (i / inner) % n.
struct Broadcast {
  const float* p = nullptr;
  int64_t inner = 1;
  int64_t n = 1;
};

// How `c` broadcasts into `x` (numpy rules, c never larger), or false. A
// constant whose non-1 dims are not adjacent is expanded into `scratch`
// over X's trailing dims from its first non-1 dim.
bool broadcast_of(const Tensor& c, const Dims& x, std::vector<float>& scratch, Broadcast& out) {
  const int64_t rc = c.rank(), rx = static_cast<int64_t>(x.size());
  if (rc > rx) return false;
  int64_t first = -1, last = -1;  // in X's axes
  for (int64_t i = 0; i < rc; ++i) {
    const int64_t d = c.dim(i), axis = rx - rc + i;
    if (d == 1) continue;
    if (d != x[static_cast<size_t>(axis)]) return false;
    if (first < 0) first = axis;
    last = axis;
  }
  out.p = c.data<float>();
  if (first < 0) return true;  // one element
  int64_t inner = 1;
  for (int64_t a = last + 1; a < rx; ++a) inner *= x[static_cast<size_t>(a)];
  int64_t span = 1;
  for (int64_t a = first; a <= last; ++a) span *= x[static_cast<size_t>(a)];
  out.inner = inner;
  out.n = span;
  if (span == c.numel()) return true;  // the non-1 dims are adjacent
  // Expand over X's dims [first, rx): element j there maps to c by its coordinates.
  const int64_t total = span * inner;
  scratch.resize(static_cast<size_t>(total));
  for (int64_t j = 0; j < total; ++j) {
    int64_t rem = j, ci = 0, cstride = 1;
    for (int64_t a = rx - 1; a >= first; --a) {
      const int64_t d = x[static_cast<size_t>(a)];
      const int64_t coord = rem % d;
      rem /= d;
      const int64_t caxis = a - (rx - rc);
      if (caxis >= 0) {
        const int64_t cd = c.dim(caxis);
        if (cd != 1) ci += coord * cstride;
        cstride *= cd;
      }
    }
    scratch[static_cast<size_t>(j)] = out.p[ci];
  }
  out.p = scratch.data();
  out.inner = 1;
  out.n = total;
  return true;
}

template <class F>
void each(float* v, int64_t len, F f) {
  for (int64_t j = 0; j < len; ++j) v[j] = f(v[j]);
}

// float(BFloat16(x)) without branches, so that the loop vectorizes: round
// to nearest even on the bits, or quiet a NaN (core/float_types.h).
void round_bf16(float* v, int64_t len) {
  for (int64_t j = 0; j < len; ++j) {
    const uint32_t x = std::bit_cast<uint32_t>(v[j]);
    const uint32_t rounded = (x + 0x7fffu + ((x >> 16) & 1u)) & 0xffff0000u;
    const uint32_t quiet = (x | 0x00400000u) & 0xffff0000u;
    v[j] = std::bit_cast<float>((x & 0x7fffffffu) > 0x7f800000u ? quiet : rounded);
  }
}

void apply_unary(const Step& s, float* v, int64_t len) {
  const float a = s.a, b = s.b;
  switch (s.code) {
    case Code::kRelu: return each(v, len, [](float x) { return x < 0.0f ? 0.0f : x; });
    case Code::kLeakyRelu: return each(v, len, [a](float x) { return x < 0.0f ? a * x : x; });
    case Code::kElu: return each(v, len, [a](float x) { return x < 0.0f ? a * std::expm1(x) : x; });
    case Code::kSelu:
      return each(v, len, [a, b](float x) { return x > 0.0f ? b * x : b * (a * std::exp(x) - a); });
    case Code::kCelu:
      return each(v, len, [a](float x) { return std::max(0.0f, x) + std::min(0.0f, a * std::expm1(x / a)); });
    case Code::kSigmoid: return each(v, len, [](float x) { return ops::stable_sigmoid(x); });
    case Code::kHardSigmoid:
      return each(v, len, [a, b](float x) { return std::max(0.0f, std::min(1.0f, a * x + b)); });
    case Code::kHardSwish:
      return each(v, len, [](float x) { return x * std::max(0.0f, std::min(1.0f, x / 6.0f + 0.5f)); });
    case Code::kSoftplus: return each(v, len, [](float x) { return ops::stable_softplus(x); });
    case Code::kSoftsign: return each(v, len, [](float x) { return x / (1.0f + std::abs(x)); });
    case Code::kTanh: return each(v, len, [](float x) { return std::tanh(x); });
    case Code::kThresholdedRelu: return each(v, len, [a](float x) { return x > a ? x : 0.0f; });
    case Code::kGelu:
      return each(v, len, [](float x) {
        return 0.5f * x * (1.0f + std::erf(x * static_cast<float>(0.70710678118654752440)));
      });
    case Code::kGeluTanh:
      return each(v, len, [](float x) {
        const float k = static_cast<float>(0.79788456080286535588);
        return 0.5f * x * (1.0f + std::tanh(k * (x + 0.044715f * x * x * x)));
      });
    case Code::kMish: return each(v, len, [](float x) { return x * std::tanh(ops::stable_softplus(x)); });
    case Code::kClip:
      return each(v, len, [a, b](float x) {
        float r = x < a ? a : x;
        return r > b ? b : r;
      });
    case Code::kSqrt: return each(v, len, [](float x) { return std::sqrt(x); });
    case Code::kExp: return each(v, len, [](float x) { return std::exp(x); });
    case Code::kLog: return each(v, len, [](float x) { return std::log(x); });
    case Code::kReciprocal: return each(v, len, [](float x) { return 1.0f / x; });
    case Code::kFloor: return each(v, len, [](float x) { return std::floor(x); });
    case Code::kCeil: return each(v, len, [](float x) { return std::ceil(x); });
    case Code::kRound: return each(v, len, [](float x) { return std::nearbyint(x); });
    case Code::kSin: return each(v, len, [](float x) { return std::sin(x); });
    case Code::kCos: return each(v, len, [](float x) { return std::cos(x); });
    case Code::kErf: return each(v, len, [](float x) { return std::erf(x); });
    case Code::kNeg: return each(v, len, [](float x) { return -x; });
    case Code::kAbs: return each(v, len, [](float x) { return std::abs(x); });
    case Code::kSign:
      return each(v, len, [](float x) {
        if (std::isnan(x)) return x;
        return static_cast<float>((x > 0.0f) - (x < 0.0f));
      });
    case Code::kRoundBf16: return round_bf16(v, len);
    case Code::kRoundF16:
      if (f16c_supported()) return round_to_f16_f16c(v, len);
      return each(v, len, [](float x) { return static_cast<float>(Float16(x)); });
    default: return;
  }
}

float max_of(float p, float q) {
  if (std::isnan(p) || std::isnan(q)) return std::isnan(p) ? p : q;
  return p < q ? q : p;
}
float min_of(float p, float q) {
  if (std::isnan(p) || std::isnan(q)) return std::isnan(p) ? p : q;
  return q < p ? q : p;
}

// v[j] = v[j] op c[j * kStride] (or c op v): kStride 0 is one constant for
// the whole span (a run of a per-channel constant), 1 a constant per element.
template <int kStride, class F>
void combine(float* v, const float* c, int64_t len, bool c_first, F f) {
  if (c_first) {
    for (int64_t j = 0; j < len; ++j) v[j] = f(c[j * kStride], v[j]);
  } else {
    for (int64_t j = 0; j < len; ++j) v[j] = f(v[j], c[j * kStride]);
  }
}

template <int kStride>
void apply_binary(const Step& s, float* v, const float* c, int64_t len) {
  const bool cf = s.operand_first;
  switch (s.code) {
    case Code::kAdd: return combine<kStride>(v, c, len, cf, [](float p, float q) { return p + q; });
    case Code::kSub: return combine<kStride>(v, c, len, cf, [](float p, float q) { return p - q; });
    case Code::kMul: return combine<kStride>(v, c, len, cf, [](float p, float q) { return p * q; });
    case Code::kDiv: return combine<kStride>(v, c, len, cf, [](float p, float q) { return p / q; });
    // Float bases compute in double and round once, as the reference does.
    case Code::kPow:
      return combine<kStride>(v, c, len, cf, [](float p, float q) {
        if (q == 2.0f) return p * p;
        return static_cast<float>(std::pow(static_cast<double>(p), static_cast<double>(q)));
      });
    case Code::kMax: return combine<kStride>(v, c, len, cf, max_of);
    case Code::kMin: return combine<kStride>(v, c, len, cf, min_of);
    case Code::kPRelu: return combine<kStride>(v, c, len, false, [](float p, float q) { return p < 0.0f ? q * p : p; });
    default: return;
  }
}

// Elements per block: the running values and one constant block stay in L1.
constexpr int64_t kBlock = 2048;

// Every step over the running values v[0, len) of block [i0, i0 + len);
// `cbuf` is kBlock floats of scratch. One body, compiled three times below.
inline void apply_steps(const std::vector<Step>& steps, const Broadcast* bc, float* v, float* cbuf, int64_t i0,
                        int64_t len) {
  for (const Step& s : steps) {
    if (!is_binary(s.code)) {
      apply_unary(s, v, len);
      continue;
    }
    const Broadcast& b = bc[s.operand];
    if (b.n == 1) {
      apply_binary<0>(s, v, b.p, len);
    } else if (b.inner == 1 && (i0 % b.n) + len <= b.n) {
      apply_binary<1>(s, v, b.p + i0 % b.n, len);  // a contiguous run of the constant
    } else if (b.inner >= 8) {
      // Runs of `inner` equal values (e.g. one per channel of NCHW).
      int64_t q = (i0 / b.inner) % b.n, r = i0 % b.inner;
      for (int64_t j = 0; j < len;) {
        const int64_t run = std::min(b.inner - r, len - j);
        apply_binary<0>(s, v + j, b.p + q, run);
        j += run;
        r = 0;
        if (++q == b.n) q = 0;
      }
    } else {
      int64_t q = (i0 / b.inner) % b.n, r = i0 % b.inner;
      for (int64_t j = 0; j < len; ++j) {
        cbuf[j] = b.p[q];
        if (++r == b.inner) {
          r = 0;
          if (++q == b.n) q = 0;
        }
      }
      apply_binary<1>(s, v, cbuf, len);
    }
  }
}

// The same loops vectorized for the ISA levels this machine runs: each entry
// inlines everything it calls (gnu::flatten) under its own target, so no
// out-of-line copy of a shared function is compiled with AVX flags. The file
// is compiled with -ffp-contract=off: no variant fuses a multiply and an add
// that the reference rounds twice.
using StepsFn = void (*)(const std::vector<Step>&, const Broadcast*, float*, float*, int64_t, int64_t);
[[gnu::flatten]] void apply_steps_generic(const std::vector<Step>& steps, const Broadcast* bc, float* v, float* cbuf,
                                          int64_t i0, int64_t len) {
  apply_steps(steps, bc, v, cbuf, i0, len);
}
[[gnu::flatten, gnu::target("avx2")]] void apply_steps_avx2(const std::vector<Step>& steps, const Broadcast* bc,
                                                            float* v, float* cbuf, int64_t i0, int64_t len) {
  apply_steps(steps, bc, v, cbuf, i0, len);
}
[[gnu::flatten, gnu::target("avx512f,avx512bw,avx512dq,avx512vl")]] void apply_steps_avx512(
    const std::vector<Step>& steps, const Broadcast* bc, float* v, float* cbuf, int64_t i0, int64_t len) {
  apply_steps(steps, bc, v, cbuf, i0, len);
}

StepsFn steps_fn() {
  static const StepsFn fn = detect_isa() == Isa::kAvx512 ? apply_steps_avx512
                            : detect_isa() == Isa::kAvx2  ? apply_steps_avx2
                                                          : apply_steps_generic;
  return fn;
}

// An 8-bit to 8-bit chain whose constants are scalars or one per channel
// (runs of at least kMinRun elements) maps each byte to a byte per channel:
// 256-byte tables, computed with the same steps on all 256 inputs, replace
// the arithmetic (one vpermi2b pair per 64 bytes with AVX-512 VBMI).
struct ByteTables {
  int64_t inner = 1;  // element i uses table (i / inner) % n
  int64_t n = 1;
  std::vector<uint8_t> bytes;  // n x 256
};
constexpr int64_t kMinRun = 64;

std::shared_ptr<const ByteTables> byte_tables(const Program& prog, const std::vector<Broadcast>& bc) {
  if (!prog.in.on || !prog.out.on || prog.in2.on) return nullptr;
  auto t = std::make_shared<ByteTables>();
  for (const Broadcast& b : bc) {
    if (b.n == 1) continue;
    if (b.inner < kMinRun || (t->n != 1 && (b.inner != t->inner || b.n != t->n))) return nullptr;
    t->inner = b.inner;
    t->n = b.n;
  }
  t->bytes.resize(static_cast<size_t>(t->n * 256));
  uint8_t all[256];
  for (int i = 0; i < 256; ++i) all[i] = static_cast<uint8_t>(i);
  float v[256];
  for (int64_t c = 0; c < t->n; ++c) {
    dequantize_bytes(all, v, 256, prog.in.scale, prog.in.zero_point, prog.in.type);
    for (const Step& s : prog.steps) {
      if (!is_binary(s.code)) {
        apply_unary(s, v, 256);
        continue;
      }
      const Broadcast& b = bc[static_cast<size_t>(s.operand)];
      apply_binary<0>(s, v, b.p + (b.n == 1 ? 0 : c), 256);
    }
    quantize_floats(v, t->bytes.data() + c * 256, 256, prog.out.scale, prog.out.zero_point, prog.out.type);
  }
  return t;
}

void lookup_generic(const uint8_t* table, const uint8_t* x, uint8_t* y, int64_t len) {
  for (int64_t i = 0; i < len; ++i) y[i] = table[x[i]];
}

[[gnu::target("avx512f,avx512bw,avx512vbmi")]] void lookup_vbmi(const uint8_t* table, const uint8_t* x, uint8_t* y,
                                                                  int64_t len) {
  const __m512i t0 = _mm512_loadu_si512(table), t1 = _mm512_loadu_si512(table + 64);
  const __m512i t2 = _mm512_loadu_si512(table + 128), t3 = _mm512_loadu_si512(table + 192);
  int64_t i = 0;
  for (; i + 64 <= len; i += 64) {
    const __m512i idx = _mm512_loadu_si512(x + i);
    const __m512i lo = _mm512_permutex2var_epi8(t0, idx, t1);  // bytes 0-127 by the index's low 7 bits
    const __m512i hi = _mm512_permutex2var_epi8(t2, idx, t3);  // bytes 128-255
    _mm512_storeu_si512(y + i, _mm512_mask_blend_epi8(_mm512_movepi8_mask(idx), lo, hi));
  }
  for (; i < len; ++i) y[i] = table[x[i]];
}

using LookupFn = void (*)(const uint8_t*, const uint8_t*, uint8_t*, int64_t);
LookupFn lookup_fn() {
  static const LookupFn fn =
      detect_isa() == Isa::kAvx512 && cpu_features().avx512vbmi ? lookup_vbmi : lookup_generic;
  return fn;
}

// y[i] = table((i / inner) % n)[x[i]] for i in [begin, end).
void lookup_span(const ByteTables& t, const uint8_t* x, uint8_t* y, int64_t begin, int64_t end) {
  const LookupFn fn = lookup_fn();
  for (int64_t i = begin; i < end;) {
    const int64_t run = std::min(end, (i / t.inner + 1) * t.inner) - i;
    fn(t.bytes.data() + ((i / t.inner) % t.n) * 256, x + i, y + i, run);
    i += run;
  }
}

// The chain over flat elements [begin, end) of X, in blocks of kBlock
// elements from `begin`: x (8-bit or float32) -> y (8-bit, float16 or
// float32); `second` is the 8-bit second input or nullptr. y may be x.
void run_span(const Program& prog, const Broadcast* bc, const void* x, const uint8_t* second, void* y, int64_t begin,
              int64_t end) {
  const QuantEnd& qin = prog.in;
  const QuantEnd& qout = prog.out;
  const QuantEnd& qin2 = prog.in2;
  float cbuf[kBlock];
  float vbuf[kBlock];  // the running values when X or Y is 8-bit, or Y float16
  for (int64_t i0 = begin; i0 < end; i0 += kBlock) {
    const int64_t len = std::min(kBlock, end - i0);
    float* v = qout.on || prog.half_out ? vbuf : static_cast<float*>(y) + i0;
    if (qin.on) {
      dequantize_bytes(static_cast<const uint8_t*>(x) + i0, v, len, qin.scale, qin.zero_point, qin.type);
    } else if (v != static_cast<const float*>(x) + i0) {
      std::memcpy(v, static_cast<const float*>(x) + i0, static_cast<size_t>(len) * sizeof(float));
    }
    if (second != nullptr) {
      dequantize_bytes(second + i0, cbuf, len, qin2.scale, qin2.zero_point, qin2.type);
      for (int64_t j = 0; j < len; ++j) v[j] += cbuf[j];
    }
    steps_fn()(prog.steps, bc, v, cbuf, i0, len);
    if (qout.on) {
      quantize_floats(v, static_cast<uint8_t*>(y) + i0, len, qout.scale, qout.zero_point, qout.type);
    } else if (prog.half_out) {
      narrow_to_halves(v, static_cast<uint16_t*>(y) + i0, len);
    }
  }
}

// Byte tables per X dims, built once (they depend on the dims only through
// how the constants broadcast) and shared by the runs that follow.
class TableCache {
 public:
  std::shared_ptr<const ByteTables> get(const Program& prog, const Dims& x, const std::vector<Broadcast>& bc) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = cache_.find(x);
    if (it != cache_.end()) return it->second;
    auto t = byte_tables(prog, bc);
    if (cache_.size() < 16) cache_.emplace(x, t);
    return t;
  }

 private:
  mutable std::mutex mu_;
  mutable std::map<Dims, std::shared_ptr<const ByteTables>> cache_;
};

class PointwiseKernel final : public Kernel {
 public:
  explicit PointwiseKernel(Program prog) : prog_(std::move(prog)) {}
  std::shared_ptr<const ByteTables> tables_for(const Dims& x, const std::vector<Broadcast>& bc) const {
    return tables_.get(prog_, x, bc);
  }
  bool fills_outputs() const override { return true; }

  Status run(ops::KernelContext& ctx) const override {
    const DataType in_type = prog_.in.on ? prog_.in.type : DataType::kFloat32;
    const DataType out_type = prog_.out.on ? prog_.out.type : prog_.half_out ? DataType::kFloat16 : DataType::kFloat32;
    if (!ctx.has_input(0) || !ctx.datum(0).is_tensor() || ctx.input(0).dtype() != in_type) {
      return run_reference(ctx);
    }
    const Tensor& x = ctx.input(0);
    const QuantEnd& qin2 = prog_.in2;
    const uint8_t* second = nullptr;
    if (qin2.on) {
      if (ctx.num_inputs() != 2 || !ctx.has_input(1) || !ctx.datum(1).is_tensor()) return run_reference(ctx);
      const Tensor& b = ctx.input(1);
      if (b.dtype() != qin2.type || b.dims() != x.dims()) return run_reference(ctx);
      second = static_cast<const uint8_t*>(b.raw_data());
    }
    std::vector<std::vector<float>> scratch(prog_.operands.size());
    std::vector<Broadcast> bc(prog_.operands.size());
    for (size_t i = 0; i < bc.size(); ++i) {
      if (!broadcast_of(prog_.operands[i], x.dims(), scratch[i], bc[i])) return run_reference(ctx);
    }
    KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.allocate_output(0, out_type, x.dims()));
    const int64_t total = x.numel();
    if (total == 0) return Status::ok();
    // Byte tables pay off once the data is several times their size.
    const std::shared_ptr<const ByteTables> tables = total >= 4096 * static_cast<int64_t>(bc.size() + 1)
                                                         ? tables_for(x.dims(), bc)
                                                         : nullptr;
    auto blocks = [&](int64_t b0, int64_t b1) {
      const int64_t begin = b0 * kBlock, end = std::min(total, b1 * kBlock);
      if (tables != nullptr) {
        lookup_span(*tables, static_cast<const uint8_t*>(x.raw_data()), static_cast<uint8_t*>(y->raw_data()), begin,
                    end);
      } else {
        run_span(prog_, bc.data(), x.raw_data(), second, y->raw_data(), begin, end);
      }
    };
    const int64_t nblocks = (total + kBlock - 1) / kBlock;
    ThreadPool* pool = ctx.pool();
    if (pool != nullptr && pool->threads() > 1 && nblocks > 1) {
      pool->parallel_for(nblocks, 1, blocks);
    } else {
      blocks(0, nblocks);
    }
    return Status::ok();
  }

 private:
  Program prog_;
  TableCache tables_;
};

class PointwiseTactic final : public Tactic {
 public:
  std::string_view name() const override { return "own.pointwise"; }
  std::string_view source() const override { return "own"; }
  bool supports(const ir::Node& node) const override {
    Program prog;
    return compile(node, prog);
  }
  // Float32 in and out, one input, constants (if any) single values.
  bool layout_transparent(const ir::Node& node) const override {
    Program prog;
    if (node.num_inputs() != 1 || !compile(node, prog) || prog.in.on || prog.out.on || prog.half_out) return false;
    for (const Tensor& c : prog.operands) {
      if (c.numel() != 1) return false;
    }
    return true;
  }
  Result<std::unique_ptr<Kernel>> prepare(const ir::Node& node) const override {
    Program prog;
    if (!compile(node, prog)) return invalid_argument("{}: not supported by own.pointwise", node.describe());
    return std::unique_ptr<Kernel>(new PointwiseKernel(std::move(prog)));
  }
};

}  // namespace

std::unique_ptr<Tactic> make_pointwise_tactic() { return std::make_unique<PointwiseTactic>(); }

}  // namespace kiln::backends::cpu
