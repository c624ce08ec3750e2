// own.pointwise against the reference kernels of the body's ops, run one
// after another on the whole tensor: bit for bit (NaN matching NaN), over
// sizes that split into blocks with a tail, on one and two threads, with
// constants broadcast every way the fusion pass lets through.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "backends/cpu/tactics.h"
#include "core/thread_pool.h"
#include "cpu_test_util.h"
#include "ops/registry.h"

namespace kiln::backends::cpu {
namespace {

using ir::Attribute;

// One op of a chain: the running value is input `data_index`; `constants`
// fill the other inputs in order (an undefined Tensor: an absent input).
struct Op {
  Op(std::string op_type, std::vector<Attribute> attributes = {}, std::vector<Tensor> consts = {}, int data = 0,
     std::string dom = "", int64_t set = 17)
      : op(std::move(op_type)), attrs(std::move(attributes)), constants(std::move(consts)), data_index(data),
        domain(std::move(dom)), opset(set) {}
  std::string op;
  std::vector<Attribute> attrs;
  std::vector<Tensor> constants;
  int data_index;
  std::string domain;
  int64_t opset;
};

Tensor scalar(float v) {
  Tensor t = Tensor::empty(DataType::kFloat32, {});
  t.data<float>()[0] = v;
  return t;
}

// A kiln.Pointwise node over X of `dims` whose body is `chain`.
class Chain {
 public:
  Chain(const Dims& dims, const std::vector<Op>& chain) : graph_(std::make_shared<ir::Graph>("g")) {
    graph_->set_opset_imports({{"", 17}, {"kiln", 1}});
    const auto type = ir::ValueType::tensor(DataType::kFloat32, Shape::of(dims));
    ir::Value* x = *graph_->add_value("x", type);
    graph_->add_input(x);
    auto body = std::make_shared<ir::Graph>("body", graph_.get());
    ir::Value* cur = *body->add_value("bx", type);
    body->add_input(cur);
    int k = 0;
    for (const Op& o : chain) {
      std::vector<ir::Value*> in;
      size_t c = 0;
      const size_t n = o.constants.size() + 1;
      for (size_t i = 0; i < n; ++i) {
        if (static_cast<int>(i) == o.data_index) {
          in.push_back(cur);
        } else {
          const Tensor& t = o.constants[c++];
          in.push_back(t.dtype() == DataType::kUndefined
                           ? nullptr
                           : *body->add_constant("c" + std::to_string(k) + "_" + std::to_string(i), t));
        }
      }
      ir::Value* out = *body->add_value("t" + std::to_string(k), type);
      ir::Node* node = body->add_node(o.op, in, {out}, o.op + std::to_string(k), o.domain);
      node->set_opset(o.domain.empty() ? o.opset : 1);
      for (const Attribute& a : o.attrs) node->set_attr(a);
      cur = out;
      ++k;
    }
    body->add_output(cur);
    body_ = body.get();
    ir::Value* y = *graph_->add_value("y", type);
    node_ = graph_->add_node("Pointwise", {x}, {y}, "pw", "kiln");
    node_->set_opset(1);
    node_->set_attr(Attribute::make_graph("body", body));
  }

  ir::Node& node() { return *node_; }

  // The body's ops one at a time, by their reference kernels.
  Tensor reference(const Tensor& x) {
    Tensor cur = x;
    for (const auto& n : body_->nodes()) {
      std::vector<Datum> in;
      for (size_t i = 0; i < n->num_inputs(); ++i) {
        const ir::Value* v = n->input(i);
        in.push_back(v == nullptr ? Datum() : v->is_constant() ? Datum(v->constant()) : Datum(cur));
      }
      std::vector<Datum> out(1);
      ops::KernelContext ctx(*n, in, out, nullptr, nullptr);
      const ops::OpDef* def = ops::Registry::global().find(n->domain(), n->op_type(), n->opset());
      EXPECT_NE(def, nullptr) << n->op_type();
      if (def == nullptr) return cur;
      Status st = def->kernel(ctx);
      EXPECT_TRUE(st.is_ok()) << st.to_string();
      if (!st.is_ok()) return cur;
      cur = out[0].tensor();
    }
    return cur;
  }

  Tensor run(const Tensor& x, ThreadPool* pool) {
    auto kernel = make_pointwise_tactic()->prepare(*node_);
    EXPECT_TRUE(kernel.is_ok()) << kernel.status().to_string();
    if (!kernel.is_ok()) return {};
    std::vector<Datum> feeds = {x};
    std::vector<Datum> outs(1);
    ops::KernelContext ctx(*node_, feeds, outs, pool, nullptr);
    test::PoisonedOutputs poisoned;
    ctx.set_allocator(&poisoned);
    Status st = (*kernel)->run(ctx);
    EXPECT_TRUE(st.is_ok()) << st.to_string();
    return st.is_ok() ? outs[0].tensor() : Tensor();
  }

 private:
  std::shared_ptr<ir::Graph> graph_;
  ir::Graph* body_ = nullptr;
  ir::Node* node_ = nullptr;
};

void expect_bit_exact(const Tensor& got, const Tensor& want, const std::string& what) {
  ASSERT_EQ(got.dims(), want.dims()) << what;
  int64_t bad = 0;
  for (int64_t i = 0; i < want.numel(); ++i) {
    const float a = got.data<float>()[i], b = want.data<float>()[i];
    if (!((std::isnan(a) && std::isnan(b)) || std::memcmp(&a, &b, sizeof a) == 0)) {
      if (bad++ < 3) ADD_FAILURE() << what << ": element " << i << " is " << a << ", expected " << b;
    }
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << want.numel() << " differ";
}

// Random values in [-3, 3) with NaN, infinities, zeros of both signs and
// values of magnitude 2.5/0.5 (rounding ties) sprinkled in.
Tensor inputs(const Dims& dims, uint32_t seed) {
  Tensor x = test::random_tensor(dims, seed, -3.0f, 3.0f);
  float* p = x.data<float>();
  const float special[] = {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                           -std::numeric_limits<float>::infinity(), 0.0f, -0.0f, 2.5f, -0.5f};
  for (int64_t i = 0; i < x.numel(); i += 97) p[i] = special[(i / 97) % 7];
  return x;
}

void check(const Dims& dims, const std::vector<Op>& chain, const std::string& what) {
  Chain c(dims, chain);
  ASSERT_TRUE(make_pointwise_tactic()->supports(c.node())) << what;
  const Tensor x = inputs(dims, 7);
  const Tensor want = c.reference(x);
  ThreadPool one(1), two(2);
  expect_bit_exact(c.run(x, &one), want, what + " (1 thread)");
  expect_bit_exact(c.run(x, &two), want, what + " (2 threads)");
  expect_bit_exact(c.run(x, nullptr), want, what + " (no pool)");
}

TEST(CpuPointwise, EveryUnaryOpMatchesTheReference) {
  const Dims dims = {3, 5, 7, 61};  // 6405 elements: three blocks and a tail
  const std::vector<Op> ops = {
      {"Relu"},
      {"LeakyRelu", {Attribute::make_float("alpha", 0.2f)}},
      {"Elu", {Attribute::make_float("alpha", 0.7f)}},
      {"Selu"},
      {"Celu", {Attribute::make_float("alpha", 1.5f)}},
      {"Sigmoid"},
      {"HardSigmoid", {Attribute::make_float("alpha", 0.3f), Attribute::make_float("beta", 0.4f)}},
      {"HardSwish"},
      {"Softplus"},
      {"Softsign"},
      {"Tanh"},
      {"ThresholdedRelu", {Attribute::make_float("alpha", 0.5f)}},
      {"Gelu", {}, {}, 0, "", 20},
      {"Gelu", {Attribute::make_string("approximate", "tanh")}, {}, 0, "", 20},
      {"Gelu", {}, {}, 0, "kiln"},
      {"Mish", {}, {}, 0, "", 18},
      {"Sqrt"},
      {"Exp"},
      {"Log"},
      {"Reciprocal"},
      {"Floor"},
      {"Ceil"},
      {"Round"},
      {"Sin"},
      {"Cos"},
      {"Erf"},
      {"Neg"},
      {"Abs"},
      {"Sign"},
      {"Cast", {Attribute::make_int("to", 1)}},
      {"Clip", {}, {scalar(-0.5f), scalar(1.25f)}},
      {"Clip", {}, {Tensor(), scalar(0.5f)}},
      {"Clip", {Attribute::make_float("min", -1.0f), Attribute::make_float("max", 2.0f)}, {}, 0, "", 6},
  };
  for (const Op& op : ops) {
    // Each op alone and after a Mul that moves values around.
    check(dims, {op}, op.op + (op.domain.empty() ? "" : "(kiln)"));
    check(dims, {{"Mul", {}, {scalar(1.7f)}}, op}, "Mul then " + op.op);
  }
}

TEST(CpuPointwise, BinaryOpsWithEveryBroadcast) {
  const Dims dims = {2, 6, 5, 173};
  const Tensor one = scalar(0.75f);
  const Tensor last = test::random_tensor({173}, 1, 0.5f, 2.0f);             // a row vector (bias)
  const Tensor channel = test::random_tensor({6, 1, 1}, 2, 0.5f, 2.0f);      // per channel of NCHW
  const Tensor gapped = test::random_tensor({6, 1, 173}, 3, 0.5f, 2.0f);     // non-1 dims not adjacent
  const Tensor leading = test::random_tensor({1, 1, 5, 173}, 4, 0.5f, 2.0f); // rank 4 with leading 1s
  const Tensor whole = test::random_tensor({2, 6, 5, 173}, 5, 0.5f, 2.0f);   // no broadcast at all
  for (const char* op : {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min"}) {
    for (const Tensor* c : {&one, &last, &channel, &gapped, &leading, &whole}) {
      const std::string what = std::string(op) + " with constant " + dims_to_string(c->dims());
      check(dims, {{"Abs"}, {op, {}, {*c}, 0}}, what + ", X first");
      check(dims, {{"Abs"}, {op, {}, {*c}, 1}}, what + ", constant first");
    }
  }
  check(dims, {{"PRelu", {}, {channel}, 0}, {"Relu"}}, "PRelu per channel");
  check(dims, {{"Pow", {}, {scalar(2.0f)}, 0}, {"Sqrt"}}, "Pow 2");
  // BERT's GELU as ONNX writes it: x * 0.5 * (1 + erf(x / sqrt 2)) is not a
  // chain, but the layer norm's tail is: (x - mean) ... * gamma + beta.
  check(dims, {{"Mul", {}, {last}, 0}, {"Add", {}, {last}, 0}, {"Relu"}, {"Clip", {}, {scalar(0), scalar(6)}}},
        "scale, shift, relu6");
}

// The round trip a --bf16/--fp16 build puts before matrix layers.
TEST(CpuPointwise, HalfRoundTripsMatchTheReference) {
  const Dims dims = {3, 5, 7, 61};
  for (DataType half : {DataType::kBFloat16, DataType::kFloat16}) {
    const Op down{"Cast", {Attribute::make_int("to", static_cast<int64_t>(half))}};
    const Op up{"Cast", {Attribute::make_int("to", 1)}};
    const std::string name = half == DataType::kBFloat16 ? "bf16" : "fp16";
    check(dims, {down, up}, name + " round trip");
    check(dims, {{"Mul", {}, {scalar(1.7f)}}, down, up, {"Relu"}}, "Mul, " + name + " round trip, Relu");
    // Edges of both formats: overflow to infinity, fp16 subnormals and
    // underflow, rounding ties, NaN; 19 values (a vector body and a tail).
    const std::vector<float> edges = {65504.0f, 65520.0f, 65519.0f, -1e6f, 3.4e38f, 6.1e-5f, 5.96e-8f, 2.9e-8f,
                                      1e-6f, -3e-7f, 1.00048828125f, 1.00146484375f, 1.00390625f, 1.01171875f,
                                      std::numeric_limits<float>::quiet_NaN(), -0.0f, 1e-40f, -1e-39f, 7.0f};
    Tensor x = Tensor::empty(DataType::kFloat32, {static_cast<int64_t>(edges.size())});
    std::copy(edges.begin(), edges.end(), x.data<float>());
    Chain edge({x.numel()}, {down, up});
    ThreadPool two(2);
    expect_bit_exact(edge.run(x, &two), edge.reference(x), name + " edge values");
    // A 16-bit value that is not cast straight back is not this tactic's.
    EXPECT_FALSE(make_pointwise_tactic()->supports(Chain(dims, {down, {"Relu"}, up}).node())) << name;
    EXPECT_FALSE(make_pointwise_tactic()->supports(Chain(dims, {{"Relu"}, down}).node())) << name;
  }
}

// A kiln.Pointwise over 8-bit X [2, C, 9, 131] (DequantizeLinear first) or
// with an 8-bit Y (QuantizeLinear last), `middle` between, as the pointwise
// fusion pass builds it around a Q/DQ model's BatchNormalization.
struct QuantChain {
  std::shared_ptr<ir::Graph> graph = std::make_shared<ir::Graph>("g");
  ir::Node* node = nullptr;

  QuantChain(const Dims& dims, DataType in, DataType out,
             const std::function<ir::Value*(ir::Graph&, ir::Value*)>& middle) {
    graph->set_opset_imports({{"", 17}, {"kiln", 1}});
    const auto type = [&](DataType t) { return ir::ValueType::tensor(t, Shape::of(dims)); };
    ir::Value* x = *graph->add_value("x", type(in));
    graph->add_input(x);
    auto body = std::make_shared<ir::Graph>("body", graph.get());
    ir::Value* cur = *body->add_value("bx", type(in));
    body->add_input(cur);
    if (in != DataType::kFloat32) {
      ir::Value* f = *body->add_value("dq", type(DataType::kFloat32));
      ir::Node* dq = body->add_node("DequantizeLinear", {cur, *body->add_constant("s", scalar(0.047f)),
                                                          *body->add_constant("z", zero_point(in, 7))},
                                    {f}, "dq");
      dq->set_opset(17);
      cur = f;
    }
    cur = middle(*body, cur);
    if (out != DataType::kFloat32) {
      ir::Value* q = *body->add_value("q", type(out));
      ir::Node* qn = body->add_node("QuantizeLinear", {cur, *body->add_constant("s2", scalar(0.031f)),
                                                        *body->add_constant("z2", zero_point(out, -5))},
                                    {q}, "q");
      qn->set_opset(17);
      cur = q;
    }
    body->add_output(cur);
    ir::Value* y = *graph->add_value("y", type(out));
    node = graph->add_node("Pointwise", {x}, {y}, "pw", "kiln");
    node->set_opset(1);
    node->set_attr(Attribute::make_graph("body", body));
  }

  static Tensor zero_point(DataType t, int v) {
    Tensor z = Tensor::empty(t, {});
    *static_cast<uint8_t*>(z.raw_data()) = t == DataType::kInt8 ? static_cast<uint8_t>(static_cast<int8_t>(v))
                                                                 : static_cast<uint8_t>(v + 128);
    return z;
  }
};

// DQ -> BatchNormalization -> Relu -> Q (or no Q) over 8-bit X of `dims`,
// against the unfused arithmetic done here, bit for bit.
void check_quantized_batchnorm(const Dims& dims) {
  const int64_t c = dims[1];
  const Tensor gamma = test::random_tensor({c}, 11, 0.5f, 2.0f), beta = test::random_tensor({c}, 12);
  const Tensor mean = test::random_tensor({c}, 13), var = test::random_tensor({c}, 14, 0.2f, 3.0f);
  const float eps = 1e-3f;
  auto batchnorm = [&](ir::Graph& body, ir::Value* cur) {
    ir::Value* out = *body.add_value("bn", ir::ValueType::tensor(DataType::kFloat32, Shape::of(dims)));
    ir::Node* n = body.add_node("BatchNormalization",
                                {cur, *body.add_constant("g", gamma), *body.add_constant("b", beta),
                                 *body.add_constant("m", mean), *body.add_constant("v", var)},
                                {out}, "bn");
    n->set_opset(15);
    n->set_attr(Attribute::make_float("epsilon", eps));
    ir::Value* r = *body.add_value("r", ir::ValueType::tensor(DataType::kFloat32, Shape::of(dims)));
    body.add_node("Relu", {out}, {r}, "relu")->set_opset(17);
    return r;
  };
  for (DataType in : {DataType::kUInt8, DataType::kInt8}) {
    for (DataType out : {DataType::kUInt8, DataType::kInt8, DataType::kFloat32}) {
      QuantChain chain(dims, in, out, batchnorm);
      const auto tactic = make_pointwise_tactic();
      ASSERT_TRUE(tactic->supports(*chain.node));
      Tensor x = Tensor::empty(in, dims);
      auto* xb = static_cast<uint8_t*>(x.raw_data());
      for (int64_t i = 0; i < x.numel(); ++i) xb[i] = static_cast<uint8_t>(i * 73 + (i >> 8));  // every byte
      // What the unfused own kernels compute: DQ, x * k + b with k and b from
      // the statistics in double (own.batchnorm), Relu, then Q.
      Tensor want = Tensor::empty(out, dims);
      const int64_t inner = dims[2] * dims[3];
      for (int64_t i = 0; i < x.numel(); ++i) {
        const int64_t ch = (i / inner) % c;
        const int32_t q = in == DataType::kInt8 ? int32_t{static_cast<int8_t>(static_cast<uint8_t*>(x.raw_data())[i])}
                                                 : int32_t{static_cast<uint8_t*>(x.raw_data())[i]};
        const int32_t zp = in == DataType::kInt8 ? 7 : 135;
        const float dq = static_cast<float>(q - zp) * 0.047f;
        const double kd = static_cast<double>(gamma.data<float>()[ch]) /
                          std::sqrt(static_cast<double>(var.data<float>()[ch]) + static_cast<double>(eps));
        const auto k = static_cast<float>(kd);
        const auto b = static_cast<float>(static_cast<double>(beta.data<float>()[ch]) -
                                          static_cast<double>(mean.data<float>()[ch]) * kd);
        float y = dq * k + b;
        y = y < 0.0f ? 0.0f : y;
        if (out == DataType::kFloat32) {
          want.data<float>()[i] = y;
          continue;
        }
        const bool sgn = out == DataType::kInt8;
        const double lo = sgn ? -128 : 0, hi = sgn ? 127 : 255, zp2 = sgn ? -5 : 123;
        const double v = std::clamp(std::nearbyint(static_cast<double>(y / 0.031f)) + zp2, lo, hi);
        static_cast<uint8_t*>(want.raw_data())[i] = static_cast<uint8_t>(static_cast<int32_t>(v));
      }
      auto kernel = tactic->prepare(*chain.node);
      ASSERT_TRUE(kernel.is_ok()) << kernel.status().to_string();
      for (int threads : {1, 2}) {
        ThreadPool pool(threads);
        std::vector<Datum> feeds = {x};
        std::vector<Datum> outs(1);
        ops::KernelContext ctx(*chain.node, feeds, outs, &pool, nullptr);
        test::PoisonedOutputs poisoned;
        ctx.set_allocator(&poisoned);
        Status st = (*kernel)->run(ctx);
        ASSERT_TRUE(st.is_ok()) << st.to_string();
        const Tensor& got = outs[0].tensor();
        ASSERT_EQ(got.dtype(), out);
        ASSERT_EQ(std::memcmp(got.raw_data(), want.raw_data(), want.nbytes()), 0)
            << data_type_name(in) << " -> " << data_type_name(out) << ", threads " << threads;
      }
    }
  }
}

TEST(CpuPointwise, QuantizedEndsAndBatchNorm) {
  // 7074 elements: blocks and a tail, computed step by step. 32226: an
  // 8-bit to 8-bit chain that large runs as per-channel byte tables.
  check_quantized_batchnorm({2, 3, 9, 131});
  check_quantized_batchnorm({2, 3, 41, 131});
  const Dims dims = {2, 3, 9, 131};
  // A float X with a QuantizeLinear end, and a DequantizeLinear straight into a QuantizeLinear.
  QuantChain relu_q(dims, DataType::kFloat32, DataType::kUInt8, [&](ir::Graph& body, ir::Value* cur) {
    ir::Value* r = *body.add_value("r", ir::ValueType::tensor(DataType::kFloat32, Shape::of(dims)));
    body.add_node("Relu", {cur}, {r}, "relu")->set_opset(17);
    return r;
  });
  EXPECT_TRUE(make_pointwise_tactic()->supports(*relu_q.node));
  QuantChain requant(dims, DataType::kUInt8, DataType::kInt8, [](ir::Graph&, ir::Value* cur) { return cur; });
  EXPECT_TRUE(make_pointwise_tactic()->supports(*requant.node));
}

// The two-input form the fusion pass makes of a residual add:
// Q(Relu(DQ(a) + DQ(b))), against the same float operations done here.
TEST(CpuPointwise, QuantizedResidualAdd) {
  const Dims dims = {2, 5, 7, 61};  // 4270 elements: blocks and a tail
  auto graph = std::make_shared<ir::Graph>("g");
  graph->set_opset_imports({{"", 17}, {"kiln", 1}});
  const auto type = [&](DataType t) { return ir::ValueType::tensor(t, Shape::of(dims)); };
  auto body = std::make_shared<ir::Graph>("body", graph.get());
  ir::Value* xa = *body->add_value("xa", type(DataType::kUInt8));
  ir::Value* xb = *body->add_value("xb", type(DataType::kInt8));
  body->add_input(xa);
  body->add_input(xb);
  ir::Value* a = *body->add_value("a", type(DataType::kFloat32));
  ir::Value* b = *body->add_value("b", type(DataType::kFloat32));
  ir::Value* s = *body->add_value("s", type(DataType::kFloat32));
  ir::Value* r = *body->add_value("r", type(DataType::kFloat32));
  ir::Value* y = *body->add_value("y", type(DataType::kUInt8));
  auto constant = [&](const char* name, Tensor t) { return *body->add_constant(name, std::move(t)); };
  body->add_node("DequantizeLinear",
                 {xa, constant("sa", scalar(0.043f)), constant("za", QuantChain::zero_point(DataType::kUInt8, 2))}, {a},
                 "dqa")
      ->set_opset(17);
  body->add_node("DequantizeLinear",
                 {xb, constant("sb", scalar(0.07f)), constant("zb", QuantChain::zero_point(DataType::kInt8, -3))}, {b},
                 "dqb")
      ->set_opset(17);
  body->add_node("Add", {b, a}, {s}, "add")->set_opset(17);
  body->add_node("Relu", {s}, {r}, "relu")->set_opset(17);
  body->add_node("QuantizeLinear",
                 {r, constant("sy", scalar(0.09f)), constant("zy", QuantChain::zero_point(DataType::kUInt8, -100))},
                 {y}, "q")
      ->set_opset(17);
  body->add_output(y);
  ir::Value* ga = *graph->add_value("ga", type(DataType::kUInt8));
  ir::Value* gb = *graph->add_value("gb", type(DataType::kInt8));
  graph->add_input(ga);
  graph->add_input(gb);
  ir::Value* gy = *graph->add_value("gy", type(DataType::kUInt8));
  ir::Node* node = graph->add_node("Pointwise", {ga, gb}, {gy}, "pw", "kiln");
  node->set_opset(1);
  node->set_attr(Attribute::make_graph("body", body));
  const auto tactic = make_pointwise_tactic();
  ASSERT_TRUE(tactic->supports(*node));
  Tensor ta = Tensor::empty(DataType::kUInt8, dims), tb = Tensor::empty(DataType::kInt8, dims);
  Tensor want = Tensor::empty(DataType::kUInt8, dims);
  for (int64_t i = 0; i < ta.numel(); ++i) {
    ta.data<uint8_t>()[i] = static_cast<uint8_t>(i * 73 % 251);
    tb.data<int8_t>()[i] = static_cast<int8_t>(i * 29 % 256 - 128);
    const float fa = static_cast<float>(int32_t{ta.data<uint8_t>()[i]} - 130) * 0.043f;
    const float fb = static_cast<float>(int32_t{tb.data<int8_t>()[i]} + 3) * 0.07f;
    const float sum = std::max(fb + fa, 0.0f);
    const double v = std::clamp(std::nearbyint(static_cast<double>(sum / 0.09f)) + 28.0, 0.0, 255.0);
    want.data<uint8_t>()[i] = static_cast<uint8_t>(static_cast<int32_t>(v));
  }
  auto kernel = tactic->prepare(*node);
  ASSERT_TRUE(kernel.is_ok()) << kernel.status().to_string();
  for (int threads : {1, 2}) {
    ThreadPool pool(threads);
    std::vector<Datum> feeds = {ta, tb};
    std::vector<Datum> outs(1);
    ops::KernelContext ctx(*node, feeds, outs, &pool, nullptr);
    test::PoisonedOutputs poisoned;
    ctx.set_allocator(&poisoned);
    Status st = (*kernel)->run(ctx);
    ASSERT_TRUE(st.is_ok()) << st.to_string();
    ASSERT_EQ(std::memcmp(outs[0].tensor().raw_data(), want.raw_data(), want.nbytes()), 0) << "threads " << threads;
  }
}

TEST(CpuPointwise, SmallAndEmptyTensors) {
  check({1}, {{"Neg"}, {"Exp"}}, "one element");
  check({3, 1}, {{"Add", {}, {scalar(1.0f)}, 0}, {"Sigmoid"}}, "three elements");
  Chain c({0, 4}, {{"Relu"}, {"Neg"}});
  ThreadPool two(2);
  const Tensor y = c.run(Tensor::empty(DataType::kFloat32, {0, 4}), &two);
  EXPECT_EQ(y.dims(), (Dims{0, 4}));
}

TEST(CpuPointwise, OtherBodiesAreLeftToTheReference) {
  const Dims dims = {2, 3};
  const auto tactic = make_pointwise_tactic();
  EXPECT_FALSE(tactic->supports(Chain(dims, {{"Relu"}, {"Cast", {Attribute::make_int("to", 7)}}}).node()))
      << "a cast to int64";
  EXPECT_FALSE(tactic->supports(Chain(dims, {{"Relu"}, {"Mod", {}, {scalar(2.0f)}}}).node())) << "Mod";
  EXPECT_FALSE(tactic->supports(Chain(dims, {{"Celu", {Attribute::make_float("alpha", 0.0f)}}}).node()))
      << "Celu with alpha 0 (the reference reports it)";
  EXPECT_FALSE(tactic->supports(Chain(dims, {{"Add", {}, {scalar(1.0f)}, 0, "", 6}}).node()))
      << "Add before numpy broadcasting";
  Tensor int_exponent = Tensor::empty(DataType::kInt64, {});
  int_exponent.data<int64_t>()[0] = 3;
  EXPECT_FALSE(tactic->supports(Chain(dims, {{"Pow", {}, {int_exponent}, 0}}).node())) << "an int64 exponent";
}

}  // namespace
}  // namespace kiln::backends::cpu
