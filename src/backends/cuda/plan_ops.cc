// Lowering of each op to plan steps (see plan.h for the decisions).
#include <algorithm>
#include <cmath>
#include <set>

#include "backends/cuda/plan_builder.h"
#include "core/error.h"
#include "ops/conv_window.h"

namespace kiln::backends::cuda {
namespace {

using kernels::EwOp;

bool is_float_storage(DataType t) {
  return t == DataType::kFloat32 || t == DataType::kFloat16 || t == DataType::kBFloat16;
}

const std::set<std::string>& unary_ops() {
  static const std::set<std::string> s = {"Relu",        "Sigmoid",   "Tanh", "Erf",        "Sqrt", "Exp",
                                          "Log",         "Abs",       "Neg",  "Reciprocal", "Clip", "LeakyRelu",
                                          "HardSigmoid", "HardSwish", "Gelu", "Floor",      "Ceil"};
  return s;
}
const std::set<std::string>& binary_ops() {
  static const std::set<std::string> s = {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min"};
  return s;
}
const std::set<std::string>& alias_ops() {
  static const std::set<std::string> s = {"Identity", "Dropout", "Reshape", "Flatten", "Squeeze", "Unsqueeze"};
  return s;
}
const std::set<std::string>& other_ops() {
  static const std::set<std::string> s = {"Conv",
                                          "MatMul",
                                          "Gemm",
                                          "BatchNormalization",
                                          "MaxPool",
                                          "AveragePool",
                                          "GlobalAveragePool",
                                          "Softmax",
                                          "LayerNormalization",
                                          "Transpose",
                                          "Concat",
                                          "Gather",
                                          "Slice",
                                          "Shape",
                                          "Size",
                                          "Cast",
                                          "Expand",
                                          "Split"};
  return s;
}

EwOp binary_op(const std::string& t) {
  if (t == "Add") return EwOp::kAdd;
  if (t == "Sub") return EwOp::kSub;
  if (t == "Mul") return EwOp::kMul;
  if (t == "Div") return EwOp::kDiv;
  if (t == "Pow") return EwOp::kPow;
  if (t == "Max") return EwOp::kMax;
  return EwOp::kMin;
}

int64_t numel_of(const Dims& d) {
  int64_t n = 1;
  for (int64_t x : d) n *= x;
  return n;
}

// The scalar value of a constant with one element.
bool scalar_constant(const ir::Value* v, float& out) {
  if (v == nullptr || !v->is_constant() || v->constant().numel() != 1) return false;
  Result<std::vector<float>> f = tensor_floats(v->constant());
  if (!f.is_ok()) return false;
  out = (*f)[0];
  return true;
}

// `n` is a default-domain binary op `op` of `x` and a scalar constant near `value`.
bool is_op_with_scalar(const ir::Node* n, const char* op, const ir::Value* x, float value) {
  if (n == nullptr || n->op_type() != op || !n->domain().empty() || n->num_inputs() != 2) return false;
  const ir::Value* other = n->input(0) == x ? n->input(1) : n->input(1) == x ? n->input(0) : nullptr;
  if (std::string(op) == "Div" && n->input(0) != x) return false;
  float c = 0.0f;
  return scalar_constant(other, c) && std::fabs(c - value) <= 1e-4f * std::fabs(value);
}

}  // namespace

// Exact GELU written out with Erf, as make_models.py and PyTorch's exporter do:
//   x * 0.5 * (1 + erf(x / sqrt 2)), either Mul(Mul(x, 0.5), a) or Mul(Mul(x, a), 0.5)
// with a = Add(Erf(Mul(x, 1/sqrt 2) or Div(x, sqrt 2)), 1). Returns the nodes
// (the last one produces the GELU) or an empty list.
std::vector<const ir::Node*> PlanBuilder::match_gelu(const ir::Value* x) const {
  if (x == nullptr || x->is_graph_output() || x->uses().size() != 2) return {};
  for (int first = 0; first < 2; ++first) {
    const ir::Node* scale = x->uses()[static_cast<size_t>(first)].node;
    const ir::Node* other = x->uses()[static_cast<size_t>(1 - first)].node;
    if (consumed_.count(scale) || consumed_.count(other)) return {};
    if (!is_op_with_scalar(scale, "Mul", x, 0.70710678f) && !is_op_with_scalar(scale, "Div", x, 1.41421356f)) continue;
    const ir::Node* erf = sole_consumer(scale->output(0));
    if (erf == nullptr || erf->op_type() != "Erf" || !erf->domain().empty()) continue;
    const ir::Node* add = sole_consumer(erf->output(0));
    if (!is_op_with_scalar(add, "Add", erf->output(0), 1.0f)) continue;
    const ir::Value* a = add->output(0);
    if (is_op_with_scalar(other, "Mul", x, 0.5f)) {
      const ir::Node* last = sole_consumer(other->output(0));
      if (last != nullptr && last->op_type() == "Mul" && last->domain().empty() && sole_consumer(a) == last &&
          ((last->input(0) == a && last->input(1) == other->output(0)) ||
           (last->input(1) == a && last->input(0) == other->output(0)))) {
        return {scale, erf, add, other, last};
      }
    } else if (other->op_type() == "Mul" && other->domain().empty() && sole_consumer(a) == other &&
               ((other->input(0) == x && other->input(1) == a) || (other->input(1) == x && other->input(0) == a))) {
      const ir::Node* last = sole_consumer(other->output(0));
      if (is_op_with_scalar(last, "Mul", other->output(0), 0.5f)) return {scale, erf, add, other, last};
    }
  }
  return {};
}

bool gpu_supports_op(const ir::Node& node) {
  if (node.domain() == "kiln" || node.domain() == "com.kiln") {
    // kiln.Gelu and kiln.LayerNormalization are the ONNX ops for older opsets; QGemm: plan_ops_qgemm.cc.
    const std::string& t = node.op_type();
    return t == "FusedConv" || t == "FusedGemm" || t == "FusedMatMul" || t == "Gelu" || t == "LayerNormalization" ||
           t == "Attention" || t == "Pointwise" || t == "QGemm";
  }
  if (!node.domain().empty() && node.domain() != "ai.onnx") return false;
  const std::string& t = node.op_type();
  if (t == "QuantizeLinear" || t == "DequantizeLinear") return true;  // plan_ops_quant.cc
  return unary_ops().count(t) || binary_ops().count(t) || alias_ops().count(t) || other_ops().count(t);
}

// Element strides of `d` broadcast to `out` (0 on broadcast dims), or an
// error when `d` does not fit into `out` without enlarging it.
Result<Dims> broadcast_strides(const Dims& d, const Dims& out) {
  if (d.size() > out.size()) {
    return invalid_argument("{} does not broadcast to {}", dims_to_string(d), dims_to_string(out));
  }
  Dims st = row_major_strides(d);
  Dims s(out.size(), 0);
  size_t off = out.size() - d.size();
  for (size_t i = off; i < out.size(); ++i) {
    int64_t di = d[i - off];
    if (di != 1 && di != out[i]) {
      return invalid_argument("{} does not broadcast to {}", dims_to_string(d), dims_to_string(out));
    }
    s[i] = di == 1 ? 0 : st[i - off];
  }
  return s;
}

Result<int> PlanBuilder::broadcast_copy(const ir::Node& n, int vid, const Dims& src, const Dims& full) {
  KILN_ASSIGN_OR_RETURN(vid, on_device(vid));
  KILN_ASSIGN_OR_RETURN(vid, as_row_major(vid));
  KILN_ASSIGN_OR_RETURN(Dims strides, broadcast_strides(src, full));
  int e = device_value(val(vid).name + ".expand", val(vid).dtype, full);
  Step s = make_step(StepKind::kCopy, &n);
  s.copy.rank = static_cast<int>(full.size());
  for (size_t i = 0; i < full.size(); ++i) {
    s.copy.dims[i] = full[i];
    s.copy.strides[i] = strides[i];
  }
  s.inputs = {vid};
  s.outputs = {e};
  add_step(std::move(s));
  return e;
}

Status PlanBuilder::lower_node(const ir::Node& n) {
  if (!gpu_supports_op(n)) {
    return unimplemented("op {}{}{} has no GPU implementation", n.domain(), n.domain().empty() ? "" : ".", n.op_type());
  }
  const std::string& t = n.op_type();
  if (!n.domain().empty() && n.domain() != "ai.onnx") {
    if (t == "Attention") return lower_attention(n);
    if (t == "Pointwise") return lower_pointwise(n);
  }
  if (t == "QGemm" && !n.domain().empty()) return lower_kiln_qgemm(n);
  if (t == "QuantizeLinear") return lower_quantize(n);
  if (t == "DequantizeLinear") return lower_dequantize(n);
  if ((t == "MatMul" || t == "Gemm") && n.domain().empty() && reads_quant_act(n)) return lower_qgemm(n);
  if (t == "Conv" || t == "FusedConv") return lower_conv(n);
  if (t == "MatMul" || t == "Gemm" || t == "FusedGemm" || t == "FusedMatMul") return lower_gemm(n);
  if (unary_ops().count(t) || binary_ops().count(t)) return lower_elementwise(n);
  if (alias_ops().count(t) || t == "Shape" || t == "Size") return lower_shape_op(n);
  if (t == "MaxPool" || t == "AveragePool" || t == "GlobalAveragePool") return lower_pool(n);
  if (t == "BatchNormalization" || t == "LayerNormalization" || t == "Softmax") return lower_norm(n);
  if (t == "Split") return lower_split(n);
  return lower_misc(n);
}

// ---------------------------------------------------------------------------
// Conv (+ BatchNormalization + residual Add + Relu/Clip)

Status PlanBuilder::lower_conv(const ir::Node& n) {
  const bool fused_op = n.op_type() == "FusedConv";
  KILN_ASSIGN_OR_RETURN(int x, value_of(n.input(0)));
  Dims xd = val(x).dims;
  KILN_ASSIGN_OR_RETURN(Tensor w, host_tensor(n, 1));
  if (xd.size() != 4 || w.rank() != 4) {
    return unimplemented("only 2-D convolutions run on the GPU (input {}, weight {})", dims_to_string(xd),
                         dims_to_string(w.dims()));
  }
  int64_t group = n.attr_int("group", 1);
  int64_t cout = w.dim(0);
  if (group <= 0 || xd[1] != w.dim(1) * group || cout % group != 0) {
    return invalid_argument("input channels {} do not match weight {} with group {}", xd[1], dims_to_string(w.dims()),
                            group);
  }
  std::vector<int64_t> kernel = n.attr_ints("kernel_shape", {w.dim(2), w.dim(3)});
  KILN_ASSIGN_OR_RETURN(ops::Window win, ops::read_window(n, kernel));
  Dims yd = {xd[0], cout, 0, 0};
  for (size_t a = 0; a < 2; ++a) {
    KILN_ASSIGN_OR_RETURN(yd[a + 2], ops::window_output_dim(xd[a + 2], a, win));
    if (win.pad_begin(a) != win.pad_end(a)) {
      return unimplemented("asymmetric pads {} are not supported on the GPU", fmt::join(win.pads, ","));
    }
  }
  std::vector<float> wf, bias;
  KILN_ASSIGN_OR_RETURN(wf, tensor_floats(w));
  bool has_bias = n.has_input(2);
  if (has_bias) {
    KILN_ASSIGN_OR_RETURN(Tensor b, host_tensor(n, 2));
    KILN_ASSIGN_OR_RETURN(bias, tensor_floats(b));
    if (static_cast<int64_t>(bias.size()) != cout)
      return invalid_argument("bias has {} values, expected {}", bias.size(), cout);
  } else {
    bias.assign(static_cast<size_t>(cout), 0.0f);
  }
  ops::Epilogue ep;
  int z = -1;
  const ir::Value* out = n.output(0);
  if (fused_op) {
    KILN_ASSIGN_OR_RETURN(ep, ops::Epilogue::from_node(n));
    if (n.has_input(3)) {
      KILN_ASSIGN_OR_RETURN(z, value_of(n.input(3)));
    }
  } else {
    // BatchNormalization with constant statistics folds into W and bias.
    const ir::Node* c = sole_consumer(out);
    if (c != nullptr && c->op_type() == "BatchNormalization" && c->domain().empty() && c->input(0) == out &&
        c->num_inputs() >= 5 && c->attr_int("training_mode", 0) == 0) {
      bool params_known = true;
      for (size_t i = 1; i < 5; ++i)
        params_known = params_known && c->input(i) != nullptr && c->input(i)->is_constant();
      bool extra_outputs = false;
      for (size_t i = 1; i < c->num_outputs(); ++i) extra_outputs = extra_outputs || c->output(i) != nullptr;
      if (params_known && !extra_outputs) {
        KILN_ASSIGN_OR_RETURN(auto gamma, tensor_floats(c->input(1)->constant()));
        KILN_ASSIGN_OR_RETURN(auto beta, tensor_floats(c->input(2)->constant()));
        KILN_ASSIGN_OR_RETURN(auto mean, tensor_floats(c->input(3)->constant()));
        KILN_ASSIGN_OR_RETURN(auto var, tensor_floats(c->input(4)->constant()));
        size_t co = static_cast<size_t>(cout);
        if (gamma.size() == co && beta.size() == co && mean.size() == co && var.size() == co) {
          float eps = c->attr_float("epsilon", 1e-5f);
          size_t per = wf.size() / co;
          for (size_t o = 0; o < co; ++o) {
            float s = gamma[o] / std::sqrt(var[o] + eps);
            for (size_t i = 0; i < per; ++i) wf[o * per + i] *= s;
            bias[o] = (bias[o] - mean[o]) * s + beta[o];
          }
          has_bias = true;
          consume(c);
          out = c->output(0);
        }
      }
    }
    // A residual Add whose other operand is already computed, with the same dims.
    c = sole_consumer(out);
    if (c != nullptr && c->op_type() == "Add" && c->domain().empty() && c->num_inputs() == 2) {
      const ir::Value* other = c->input(0) == out ? c->input(1) : c->input(0);
      if (other != nullptr && other != out && available(other)) {
        KILN_ASSIGN_OR_RETURN(int ov, value_of(other));
        if (!val(ov).on_host && val(ov).dims == yd && is_float_storage(val(ov).dtype)) {
          z = ov;
          consume(c);
          out = c->output(0);
        }
      }
    }
    c = sole_consumer(out);
    if (c != nullptr && c->domain().empty() && c->input(0) == out) {
      if (c->op_type() == "Relu") {
        ep.activation = ops::Activation::kRelu;
        consume(c);
        out = c->output(0);
      } else if (c->op_type() == "Clip") {
        float lo = -INFINITY, hi = INFINITY;
        bool ok = true;
        if (c->opset() >= 11) {
          for (size_t i = 1; i < 3; ++i) {
            if (!c->has_input(i)) continue;
            if (!c->input(i)->is_constant() || c->input(i)->constant().numel() != 1) {
              ok = false;
              continue;
            }
            KILN_ASSIGN_OR_RETURN(auto f, tensor_floats(c->input(i)->constant()));
            (i == 1 ? lo : hi) = f[0];
          }
        } else {
          lo = c->attr_float("min", -INFINITY);
          hi = c->attr_float("max", INFINITY);
        }
        if (ok) {
          ep.activation = ops::Activation::kClip;
          ep.alpha = lo;
          ep.beta = hi;
          consume(c);
          out = c->output(0);
        }
      }
    }
  }
  Dims wd = w.dims();
  int pad_to = options_.pad_small_channels && options_.channels_last && group == 1 && xd[1] < 8 ? 8 : 0;
  if (pad_to > 0) {  // zero input channels: the weights grow, the input is concatenated with zeros
    Tensor wp = Tensor::empty(DataType::kFloat32, {wd[0], pad_to, wd[2], wd[3]});
    std::fill(wp.data<float>(), wp.data<float>() + wp.numel(), 0.0f);
    int64_t rs = wd[2] * wd[3];
    for (int64_t o = 0; o < wd[0]; ++o) {
      for (int64_t c = 0; c < wd[1]; ++c) {
        std::copy(wf.begin() + (o * wd[1] + c) * rs, wf.begin() + (o * wd[1] + c + 1) * rs,
                  wp.data<float>() + (o * pad_to + c) * rs);
      }
    }
    wd = wp.dims();
    wf.assign(wp.data<float>(), wp.data<float>() + wp.numel());
  }
  Tensor wt = Tensor::empty(DataType::kFloat32, wd);
  std::copy(wf.begin(), wf.end(), wt.data<float>());
  int wv = host_value(n.input(1)->name() + ".folded", wt);
  KILN_ASSIGN_OR_RETURN(int wdev, device_const(wv, plan_.act_dtype, options_.channels_last));
  if (pad_to > 0) {
    KILN_ASSIGN_OR_RETURN(x, as_row_major(x));
    Tensor zeros = Tensor::empty(DataType::kFloat32, {xd[0], pad_to - xd[1], xd[2], xd[3]});
    std::fill(zeros.data<float>(), zeros.data<float>() + zeros.numel(), 0.0f);
    KILN_ASSIGN_OR_RETURN(int zdev, device_const(host_value(n.name() + ".zero_channels", zeros), val(x).dtype));
    int padded = device_value(val(x).name + ".padded", val(x).dtype, {xd[0], pad_to, xd[2], xd[3]});
    Step cat = make_step(StepKind::kConcat, &n);
    cat.label = fmt::format("zero channels for {}", n.describe());
    cat.inputs = {x, zdev};
    cat.outputs = {padded};
    cat.axis_dim = 1;
    add_step(std::move(cat));
    x = padded;
  }
  int bdev = -1;
  if (has_bias) {
    Tensor bt = Tensor::empty(DataType::kFloat32, {cout});
    std::copy(bias.begin(), bias.end(), bt.data<float>());
    KILN_ASSIGN_OR_RETURN(bdev, device_const(host_value(n.name() + ".bias", bt), DataType::kFloat32));
  }
  Layout layout = options_.channels_last ? Layout::kNhwc : Layout::kRowMajor;
  KILN_ASSIGN_OR_RETURN(int xin, options_.channels_last ? as_nhwc(x) : as_row_major(x));
  if (z >= 0) {
    if (val(z).dims != yd)
      return invalid_argument("residual {} does not match the output {}", dims_to_string(val(z).dims),
                              dims_to_string(yd));
    KILN_ASSIGN_OR_RETURN(z, options_.channels_last ? as_nhwc(z) : as_row_major(z));
  }
  int y = device_value(out->name(), plan_.act_dtype, yd, layout);
  Step s = make_step(StepKind::kConv, &n);
  s.inputs = {xin, wdev, bdev, z};
  s.outputs = {y};
  s.epilogue = ep;
  s.conv.group = group;
  for (size_t a = 0; a < 2; ++a) {
    s.conv.pads[a] = win.pad_begin(a);
    s.conv.strides[a] = win.strides[a];
    s.conv.dilations[a] = win.dilations[a];
  }
  add_step(std::move(s));
  bind(out, y);
  return Status::ok();
}

// ---------------------------------------------------------------------------
// MatMul / Gemm / FusedMatMul / FusedGemm (+ bias Add + Relu)

Status PlanBuilder::lower_gemm(const ir::Node& n) {
  const std::string& t = n.op_type();
  const bool is_gemm = t == "Gemm" || t == "FusedGemm";
  KILN_ASSIGN_OR_RETURN(int a, value_of(n.input(0)));
  KILN_ASSIGN_OR_RETURN(int b, value_of(n.input(1)));
  if (!is_float_storage(val(a).dtype) || !is_float_storage(val(b).dtype)) {
    return unimplemented("{} x {} products are not supported on the GPU", data_type_name(val(a).dtype),
                         data_type_name(val(b).dtype));
  }
  Dims ad = val(a).dims, bd = val(b).dims;
  GemmParams g;
  Dims yd;
  int cfull = -1;
  std::vector<float> bias;  // per output column
  ops::Epilogue ep;
  int z = -1;
  if (is_gemm) {
    if (ad.size() != 2 || bd.size() != 2)
      return invalid_argument("Gemm needs 2-D inputs, got {} and {}", dims_to_string(ad), dims_to_string(bd));
    g.trans_a = n.attr_int("transA", 0) != 0;
    g.trans_b = n.attr_int("transB", 0) != 0;
    g.alpha = n.attr_float("alpha", 1.0f);
    float beta = n.attr_float("beta", 1.0f);
    g.m = g.trans_a ? ad[1] : ad[0];
    g.k = g.trans_a ? ad[0] : ad[1];
    int64_t kb = g.trans_b ? bd[1] : bd[0];
    g.n = g.trans_b ? bd[0] : bd[1];
    if (kb != g.k) return invalid_argument("Gemm inner dims differ: {} and {}", g.k, kb);
    yd = {g.m, g.n};
    if (n.has_input(2) && beta != 0.0f) {
      KILN_ASSIGN_OR_RETURN(int c, value_of(n.input(2)));
      Dims cd = val(c).dims;
      KILN_ASSIGN_OR_RETURN(Dims bc, broadcast_dims(cd, yd));
      if (bc != yd) return invalid_argument("C {} does not broadcast to {}", dims_to_string(cd), dims_to_string(yd));
      bool per_column = numel_of(cd) == g.n && (cd.empty() || cd.back() == g.n);
      if (val(c).on_host && (per_column || numel_of(cd) == 1)) {
        KILN_ASSIGN_OR_RETURN(auto cf, tensor_floats(val(c).host));
        bias.assign(static_cast<size_t>(g.n), 0.0f);
        for (int64_t j = 0; j < g.n; ++j)
          bias[static_cast<size_t>(j)] = beta * cf[cf.size() == 1 ? 0 : static_cast<size_t>(j)];
      } else {
        KILN_ASSIGN_OR_RETURN(c, on_device(c));
        KILN_ASSIGN_OR_RETURN(c, as_row_major(c));
        if (val(c).dims != yd) {
          int e = device_value(val(c).name + ".expand", val(c).dtype, yd);
          Step s = make_step(StepKind::kCopy, &n);
          Dims cs = row_major_strides(val(c).dims);
          Dims cdd = val(c).dims;
          while (cdd.size() < 2) {
            cdd.insert(cdd.begin(), 1);
            cs.insert(cs.begin(), 0);
          }
          s.copy.rank = 2;
          for (int i = 0; i < 2; ++i) {
            s.copy.dims[i] = yd[static_cast<size_t>(i)];
            s.copy.strides[i] = cdd[static_cast<size_t>(i)] == 1 ? 0 : cs[static_cast<size_t>(i)];
          }
          s.inputs = {c};
          s.outputs = {e};
          add_step(std::move(s));
          c = e;
        }
        cfull = c;
        g.beta = beta;
      }
    }
  } else {
    // MatMul: numpy batching; a 1-D operand gains a dim that the output drops.
    Dims a2 = ad, b2 = bd;
    if (a2.size() == 1) a2.insert(a2.begin(), 1);
    if (b2.size() == 1) b2.push_back(1);
    if (a2.size() < 2 || b2.size() < 2) return invalid_argument("MatMul of scalars");
    g.m = a2[a2.size() - 2];
    g.k = a2.back();
    g.n = b2.back();
    if (b2[b2.size() - 2] != g.k)
      return invalid_argument("MatMul inner dims differ: {} and {}", dims_to_string(ad), dims_to_string(bd));
    Dims ab(a2.begin(), a2.end() - 2), bb(b2.begin(), b2.end() - 2);
    KILN_ASSIGN_OR_RETURN(Dims ob, broadcast_dims(ab, bb));
    int64_t batch = numel_of(ob);
    if (numel_of(bb) == 1 && numel_of(ab) == batch) {
      g.m *= batch;  // B is one matrix: fold A's batch into M
      g.batch = 1;
    } else {
      g.batch = batch;
      // Operands whose batch does not cover the output's are expanded.
      auto expand = [&](int& v, const Dims& vb, const Dims& mat) -> Status {
        if (vb == ob || (numel_of(vb) == batch && vb.size() == ob.size())) return Status::ok();
        Dims full = ob;
        full.insert(full.end(), mat.begin(), mat.end());
        Dims src = vb;
        src.insert(src.end(), mat.begin(), mat.end());
        if (full.size() > static_cast<size_t>(kernels::kMaxRank))
          return unimplemented("MatMul rank {} too high", full.size());
        KILN_ASSIGN_OR_RETURN(v, broadcast_copy(n, v, src, full));
        return Status::ok();
      };
      KILN_RETURN_IF_ERROR(expand(a, ab, {g.m, g.k}));
      KILN_RETURN_IF_ERROR(expand(b, bb, {g.k, g.n}));
      g.stride_a = g.m * g.k;
      g.stride_b = g.k * g.n;
      g.stride_c = g.m * g.n;
    }
    yd = ob;
    if (ad.size() > 1) yd.push_back(a2[a2.size() - 2]);
    if (bd.size() > 1) yd.push_back(g.n);
    if (t == "FusedMatMul" && n.has_input(2)) {
      KILN_ASSIGN_OR_RETURN(Tensor bt, host_tensor(n, 2));
      KILN_ASSIGN_OR_RETURN(bias, tensor_floats(bt));
      if (static_cast<int64_t>(bias.size()) != g.n)
        return invalid_argument("bias has {} values, expected {}", bias.size(), g.n);
    }
  }
  const ir::Value* out = n.output(0);
  if (t == "FusedGemm" || t == "FusedMatMul") {
    KILN_ASSIGN_OR_RETURN(ep, ops::Epilogue::from_node(n));
    if (n.has_input(3)) {
      KILN_ASSIGN_OR_RETURN(z, value_of(n.input(3)));
    }
  } else {
    // A product scaled by a constant (attention's 1/sqrt(d)) folds into alpha.
    const ir::Node* c = sole_consumer(out);
    float scale = 0.0f;
    if (c != nullptr && c->op_type() == "Mul" && c->domain().empty() && c->num_inputs() == 2 && cfull < 0 &&
        bias.empty() &&
        (c->input(0) == out ? scalar_constant(c->input(1), scale) : scalar_constant(c->input(0), scale))) {
      g.alpha *= scale;
      consume(c);
      out = c->output(0);
    }
    c = sole_consumer(out);
    if (c != nullptr && c->op_type() == "Add" && c->domain().empty() && c->num_inputs() == 2) {
      const ir::Value* other = c->input(0) == out ? c->input(1) : c->input(0);
      if (other != nullptr && other->is_constant()) {
        const Tensor& bt = other->constant();
        const Dims& od = bt.dims();
        bool per_column = numel_of(od) == g.n && !od.empty() && od.back() == g.n && od.size() <= yd.size();
        if (per_column) {
          KILN_ASSIGN_OR_RETURN(auto bf, tensor_floats(bt));
          if (bias.empty()) bias.assign(static_cast<size_t>(g.n), 0.0f);
          for (size_t j = 0; j < bias.size(); ++j) bias[j] += bf[j];
          consume(c);
          out = c->output(0);
        }
      }
    }
    // A residual Add of an already computed value of the output's dims,
    // before the activation or after it.
    auto take_residual = [&]() -> Result<bool> {
      const ir::Node* r = sole_consumer(out);
      if (r == nullptr || r->op_type() != "Add" || !r->domain().empty() || r->num_inputs() != 2) return false;
      const ir::Value* other = r->input(0) == out ? r->input(1) : r->input(0);
      if (other == nullptr || other == out || other->is_constant() || !available(other)) return false;
      KILN_ASSIGN_OR_RETURN(int ov, value_of(other));
      if (val(ov).on_host || val(ov).dims != yd || !is_float_storage(val(ov).dtype)) return false;
      z = ov;
      consume(r);
      out = r->output(0);
      return true;
    };
    KILN_ASSIGN_OR_RETURN(bool residual_first, take_residual());
    std::vector<const ir::Node*> gelu = match_gelu(out);
    c = sole_consumer(out);
    if (!gelu.empty()) {
      ep.activation = ops::Activation::kGelu;
      for (const ir::Node* g2 : gelu) consume(g2);
      out = gelu.back()->output(0);
    } else if (c != nullptr && c->op_type() == "Relu" && c->domain().empty()) {
      ep.activation = ops::Activation::kRelu;
      consume(c);
      out = c->output(0);
    }
    if (!residual_first && ep.activation != ops::Activation::kNone) {
      KILN_ASSIGN_OR_RETURN(bool residual_after, take_residual());
      ep.residual_after_activation = residual_after;
    }
  }
  KILN_ASSIGN_OR_RETURN(a, on_device(a));
  KILN_ASSIGN_OR_RETURN(a, as_row_major(a));
  if (val(b).on_host) {
    KILN_ASSIGN_OR_RETURN(b, device_const(b, plan_.act_dtype));
  } else {
    KILN_ASSIGN_OR_RETURN(b, as_row_major(b));
  }
  int bias_dev = -1;
  if (!bias.empty()) {
    Tensor bt = Tensor::empty(DataType::kFloat32, {g.n});
    std::copy(bias.begin(), bias.end(), bt.data<float>());
    KILN_ASSIGN_OR_RETURN(bias_dev, device_const(host_value(n.name() + ".bias", bt), plan_.act_dtype));
  }
  if (z >= 0) {
    KILN_ASSIGN_OR_RETURN(z, on_device(z));
    KILN_ASSIGN_OR_RETURN(z, as_row_major(z));
    if (val(z).dims != yd)
      return invalid_argument("residual {} does not match the output {}", dims_to_string(val(z).dims),
                              dims_to_string(yd));
  }
  int y = device_value(out->name(), plan_.act_dtype, yd);
  Step s = make_step(StepKind::kGemm, &n);
  s.inputs = {a, b, cfull, bias_dev, z};
  s.outputs = {y};
  s.gemm = g;
  s.epilogue = ep;
  add_step(std::move(s));
  bind(out, y);
  return Status::ok();
}

// ---------------------------------------------------------------------------
// Element-wise ops

Status PlanBuilder::lower_elementwise(const ir::Node& n) {
  const std::string& t = n.op_type();
  Step s = make_step(StepKind::kElementwise, &n);
  KILN_ASSIGN_OR_RETURN(int a, value_of(n.input(0)));
  if (!is_float_storage(val(a).dtype)) {
    return unimplemented("{} on {} data is not supported on the GPU", t, data_type_name(val(a).dtype));
  }
  if (unary_ops().count(t)) {
    s.op = t == "Relu"         ? EwOp::kRelu
           : t == "Sigmoid"    ? EwOp::kSigmoid
           : t == "Tanh"       ? EwOp::kTanh
           : t == "Erf"        ? EwOp::kErf
           : t == "Sqrt"       ? EwOp::kSqrt
           : t == "Exp"        ? EwOp::kExp
           : t == "Log"        ? EwOp::kLog
           : t == "Abs"        ? EwOp::kAbs
           : t == "Neg"        ? EwOp::kNeg
           : t == "Reciprocal" ? EwOp::kReciprocal
           : t == "Floor"      ? EwOp::kFloor
           : t == "Ceil"       ? EwOp::kCeil
                               : EwOp::kIdentity;
    if (t == "Clip") {
      s.op = EwOp::kClip;
      s.p0 = -INFINITY;
      s.p1 = INFINITY;
      if (n.opset() >= 11) {
        for (size_t i = 1; i < 3; ++i) {
          if (!n.has_input(i)) continue;
          KILN_ASSIGN_OR_RETURN(Tensor b, host_tensor(n, i));
          KILN_ASSIGN_OR_RETURN(auto f, tensor_floats(b));
          if (f.size() != 1) return invalid_argument("Clip bound must be a scalar");
          (i == 1 ? s.p0 : s.p1) = f[0];
        }
      } else {
        s.p0 = n.attr_float("min", -INFINITY);
        s.p1 = n.attr_float("max", INFINITY);
      }
    } else if (t == "LeakyRelu") {
      s.op = EwOp::kLeakyRelu;
      s.p0 = n.attr_float("alpha", 0.01f);
    } else if (t == "HardSigmoid") {
      s.op = EwOp::kHardSigmoid;
      s.p0 = n.attr_float("alpha", 0.2f);
      s.p1 = n.attr_float("beta", 0.5f);
    } else if (t == "HardSwish") {
      s.op = EwOp::kHardSwish;
    } else if (t == "Gelu") {
      s.op = n.attr_string("approximate", "none") == "tanh" ? EwOp::kGeluTanh : EwOp::kGelu;
    }
    KILN_ASSIGN_OR_RETURN(a, on_device(a));
    int y = device_value(n.output(0)->name(), val(a).dtype, val(a).dims, val(a).layout);
    s.inputs = {a};
    s.outputs = {y};
    s.flat = true;
    add_step(std::move(s));
    bind(n.output(0), y);
    return Status::ok();
  }
  if (n.num_inputs() != 2) return unimplemented("{} with {} inputs is not supported on the GPU", t, n.num_inputs());
  KILN_ASSIGN_OR_RETURN(int b, value_of(n.input(1)));
  s.op = binary_op(t);
  KILN_ASSIGN_OR_RETURN(a, on_device(a));
  KILN_ASSIGN_OR_RETURN(b, on_device(b));
  if (val(a).dtype != val(b).dtype) return invalid_argument("operand types differ");
  Dims ad = val(a).dims, bd = val(b).dims;
  KILN_ASSIGN_OR_RETURN(Dims yd, broadcast_dims(ad, bd));
  bool a_scalar = numel_of(ad) == 1, b_scalar = numel_of(bd) == 1;
  bool a_nhwc = val(a).layout == Layout::kNhwc, b_nhwc = val(b).layout == Layout::kNhwc;
  Layout out_layout = Layout::kRowMajor;
  if (a_nhwc || b_nhwc) {
    bool same = ad == bd && a_nhwc == b_nhwc;
    if (same || (a_nhwc && b_scalar && ad == yd) || (b_nhwc && a_scalar && bd == yd)) {
      out_layout = Layout::kNhwc;
    } else {
      KILN_ASSIGN_OR_RETURN(a, as_row_major(a));
      KILN_ASSIGN_OR_RETURN(b, as_row_major(b));
    }
  }
  s.a_scalar = a_scalar && ad != yd;
  s.b_scalar = b_scalar && bd != yd;
  s.flat = (ad == yd || s.a_scalar) && (bd == yd || s.b_scalar);
  if (!s.flat) {
    if (yd.size() > static_cast<size_t>(kernels::kMaxRank))
      return unimplemented("broadcast of rank {} on the GPU", yd.size());
    int r = static_cast<int>(yd.size());
    s.ew.rank = r;
    auto fill = [&](const Dims& d, int64_t* strides) {
      Dims st = row_major_strides(d);
      size_t off = yd.size() - d.size();
      for (size_t i = 0; i < yd.size(); ++i) {
        strides[i] = i < off || d[i - off] == 1 ? 0 : st[i - off];
      }
    };
    for (int i = 0; i < r; ++i) s.ew.dims[i] = yd[static_cast<size_t>(i)];
    fill(ad, s.ew.a_strides);
    fill(bd, s.ew.b_strides);
  }
  int y = device_value(n.output(0)->name(), val(a).dtype, yd, out_layout);
  s.inputs = {a, b};
  s.outputs = {y};
  add_step(std::move(s));
  bind(n.output(0), y);
  return Status::ok();
}

}  // namespace kiln::backends::cuda
