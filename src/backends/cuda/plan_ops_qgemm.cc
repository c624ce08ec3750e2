// Int8 GEMMs of the GPU plan: Q/DQ MatMul/Gemm (explicit quantization,
// TensorRT's way) and kiln.QGemm.
//
//   x ─ QuantizeLinear ─ DequantizeLinear ─┐
//   W_q (int8 constant) ─ DequantizeLinear ─┴─ MatMul / Gemm ─ [bias Add] ─ [residual Add] ─ [Relu | Gelu]
//
// becomes a kQuantize step (x to int8, plan_ops_quant.cc) and one int8 GEMM
// step: cuBLASLt int8 x int8 with int32 accumulation, then an epilogue
// kernel computing y = act(acc * x_scale * w_scale[n] + bias[n]) in the
// activation storage type or, when a QuantizeLinear follows (after the bias
// and Relu), the requantized int8/uint8 tensor directly. The activation's
// DequantizeLinear emits no step when every reader is a MatMul/Gemm taking
// it as input 0 (its output stays bound to the int8 value, a QuantAct);
// other readers get a kDequantize step's output.
//
// Zero points: an activation zero point z (any per-tensor value) becomes a
// constant per-column term, since sum_k (q - z) w[k,n] = acc - z * colsum(w)[n].
// uint8 activations are stored as int8 q - 128 with zero point z - 128
// (plan_ops_quant.cc). Weights: int8 with zero points 0 (uint8 with 128),
// per tensor or per output channel.
//
// Where the int8 GEMM cannot run (K or N not a multiple of 4, which
// cuBLASLt's int8 kernels on row/column-major data need; a per-axis
// activation scale; Gemm with transA or a full C; non-constant or
// asymmetric weights), the activation is dequantized by a kernel, the
// weight's DequantizeLinear has been evaluated at plan time as every
// constant node is, and the float GEMM runs; its step label says why.
#include <algorithm>
#include <string>
#include <vector>

#include "backends/cuda/plan_ops_quant.h"
#include "core/error.h"

namespace kiln::backends::cuda {
namespace {

using namespace qdq;

// The int8 weight of a GEMM as cuBLASLt's int8 kernels take it: [N, K]
// row-major (the "T" operand), one scale per output column.
struct QWeight {
  Tensor w;
  std::vector<float> scale;
};

// DequantizeLinear(W_q) behind input `v`: W [K, N], or [N, K] when
// `n_major` (Gemm's transB). Returns "" and fills `out`, or why not.
std::string read_qweight(const ir::Value* v, bool n_major, QWeight& out) {
  const ir::Node* dq = v->producer();
  if (dq == nullptr || dq->op_type() != "DequantizeLinear" || !dq->domain().empty()) {
    return "input 1 is not a DequantizeLinear of constant weights";
  }
  if (dq->opset() >= 21 && dq->attr_int("block_size", 0) != 0) return "blocked weight quantization";
  const ir::Value* wv = dq->input(0);
  const ir::Value* sv = dq->input(1);
  const ir::Value* zv = dq->has_input(2) ? dq->input(2) : nullptr;
  if (!wv->is_constant() || sv == nullptr || !sv->is_constant() || (zv != nullptr && !zv->is_constant())) {
    return "input 1 is not constant (an activation x activation product)";
  }
  const Tensor& w = wv->constant();
  if (w.rank() != 2) return fmt::format("the weight is {}-D", w.rank());
  if (w.dtype() != DataType::kInt8 && w.dtype() != DataType::kUInt8) {
    return fmt::format("{} weights", data_type_name(w.dtype()));
  }
  const int32_t shift = w.dtype() == DataType::kUInt8 ? 128 : 0;
  Result<std::vector<float>> scale = tensor_floats(sv->constant());
  if (!scale.is_ok() || scale->empty()) return "the weight's scale is not a float tensor";
  if (zv != nullptr) {
    Result<std::vector<float>> z = tensor_floats(zv->constant());
    if (!z.is_ok()) return "the weight's zero point is not an integer tensor";
    for (float f : *z) {
      if (static_cast<int32_t>(f) != shift) return "the weight's zero points are not those of symmetric quantization";
    }
  }
  const int64_t n = n_major ? w.dim(0) : w.dim(1), k = n_major ? w.dim(1) : w.dim(0);
  if (scale->size() != 1) {
    int64_t axis = dq->opset() >= 13 ? dq->attr_int("axis", 1) : 1;
    if (axis < 0) axis += 2;
    if (axis != (n_major ? 0 : 1) || sv->constant().rank() != 1 || static_cast<int64_t>(scale->size()) != n) {
      return "the weight's scale is neither per tensor nor per output channel";
    }
  }
  out.w = Tensor::empty(DataType::kInt8, {n, k});
  int8_t* dst = out.w.data<int8_t>();
  for (int64_t j = 0; j < n; ++j) {
    for (int64_t i = 0; i < k; ++i) {
      int64_t src = n_major ? j * k + i : i * n + j;
      int32_t q = shift != 0 ? static_cast<int32_t>(w.data<uint8_t>()[src]) : w.data<int8_t>()[src];
      dst[j * k + i] = static_cast<int8_t>(q - shift);
    }
  }
  out.scale.resize(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j)
    out.scale[static_cast<size_t>(j)] = (*scale)[scale->size() == 1 ? 0 : static_cast<size_t>(j)];
  return "";
}

using QuantAct = PlanBuilder::QuantAct;

// The QuantizeLinear after an int8 GEMM (and its bias / Relu) that its
// epilogue can apply: per tensor, constant, to int8/uint8.
struct OutputQuant {
  const ir::Node* q = nullptr;
  float scale = 0.0f;
  int32_t zero_point = 0;
  DataType type = DataType::kUndefined;
};

Result<OutputQuant> output_quant(PlanBuilder& b, const ir::Node* q, const Dims& yd) {
  OutputQuant o;
  if (q == nullptr || q->op_type() != "QuantizeLinear" || !q->domain().empty()) return o;
  for (size_t i = 1; i < q->num_inputs(); ++i) {
    if (q->has_input(i) && !q->input(i)->is_constant()) return o;
  }
  KILN_ASSIGN_OR_RETURN(DataType to, quantized_type(*q));
  if (to != DataType::kInt8 && to != DataType::kUInt8) return o;
  Result<QParams> p = read_qparams(b, *q, yd);
  if (!p.is_ok() || !p->per_tensor()) return o;
  o.q = q;
  o.scale = p->scale[0];
  o.zero_point = p->zero_point[0];
  o.type = to;
  return o;
}

// The int8 GEMM step for MatMul/Gemm `n` whose input 0 is `qa`, with the
// bias / residual / Relu / Gelu after it fused, and a QuantizeLinear after
// those when the epilogue can requantize (no residual, Relu or no
// activation): then it writes the int8/uint8 tensor (`shifted` is set when
// that is a uint8 one kept as int8 q - 128). false (and `why`) when it
// cannot run in int8; nothing is emitted or consumed then.
Result<bool> lower_int8_gemm(PlanBuilder& b, const ir::Node& n, const QuantAct& qa, std::string& why,
                             const ir::Value*& shifted) {
  const bool is_gemm = n.op_type() == "Gemm";
  const Dims xd = b.val(qa.q).dims;
  double alpha = 1.0;
  bool trans_b = false;
  if (is_gemm) {
    if (n.attr_int("transA", 0) != 0) {
      why = "transA";
      return false;
    }
    if (xd.size() != 2) {
      why = "Gemm of a non-2-D input";
      return false;
    }
    trans_b = n.attr_int("transB", 0) != 0;
    alpha = n.attr_float("alpha", 1.0f);
  }
  if (xd.empty()) {
    why = "scalar input";
    return false;
  }
  QWeight qw;
  why = read_qweight(n.input(1), trans_b, qw);
  if (!why.empty()) return false;
  const int64_t N = qw.w.dim(0), K = qw.w.dim(1);
  if (xd.back() != K) {
    why = "inner dimensions differ";
    return false;
  }
  if (K == 0 || N == 0) {
    why = "an empty product";
    return false;
  }
  if (K % 4 != 0 || N % 4 != 0) {
    why = fmt::format("K={} N={}: cuBLASLt's int8 GEMM needs multiples of 4", K, N);
    return false;
  }
  if (K > (int64_t{1} << 17)) {
    why = fmt::format("K={} could overflow the int32 accumulator", K);
    return false;
  }
  Dims yd(xd.begin(), xd.end() - 1);
  yd.push_back(N);
  std::vector<double> bias;
  if (is_gemm && n.has_input(2) && n.attr_float("beta", 1.0f) != 0.0f) {
    KILN_ASSIGN_OR_RETURN(int c, b.value_of(n.input(2)));
    const Dims cd = b.val(c).dims;
    bool row = numel_of(cd) == N && (cd.empty() || cd.back() == N) && cd.size() <= 2;
    if (!b.val(c).on_host || !(row || numel_of(cd) == 1)) {
      why = "Gemm's C is not a constant row";
      return false;
    }
    KILN_ASSIGN_OR_RETURN(std::vector<float> cf, tensor_floats(b.val(c).host));
    double beta = n.attr_float("beta", 1.0f);
    for (int64_t j = 0; j < N; ++j) bias.push_back(beta * cf[cf.size() == 1 ? 0 : static_cast<size_t>(j)]);
  }

  // From here on it runs in int8: fuse what follows, as lower_gemm does.
  const ir::Value* out = n.output(0);
  ops::Epilogue ep;
  int z = -1;
  const ir::Node* c = b.sole_consumer(out);
  if (c != nullptr && c->op_type() == "Add" && c->domain().empty() && c->num_inputs() == 2) {
    const ir::Value* other = c->input(0) == out ? c->input(1) : c->input(0);
    if (other != nullptr && other != out && (other->is_constant() || b.available(other))) {
      KILN_ASSIGN_OR_RETURN(int ov, b.value_of(other));
      const Dims od = b.val(ov).dims;
      if (b.val(ov).on_host && numel_of(od) == N && !od.empty() && od.back() == N && od.size() <= yd.size()) {
        KILN_ASSIGN_OR_RETURN(std::vector<float> bf, tensor_floats(b.val(ov).host));
        if (bias.empty()) bias.assign(static_cast<size_t>(N), 0.0);
        for (size_t j = 0; j < bias.size(); ++j) bias[j] += bf[j];
        b.consume(c);
        out = c->output(0);
      }
    }
  }
  auto take_residual = [&]() -> Result<bool> {
    const ir::Node* r = b.sole_consumer(out);
    if (r == nullptr || r->op_type() != "Add" || !r->domain().empty() || r->num_inputs() != 2) return false;
    const ir::Value* other = r->input(0) == out ? r->input(1) : r->input(0);
    if (other == nullptr || other == out || other->is_constant() || !b.available(other)) return false;
    KILN_ASSIGN_OR_RETURN(int ov, b.value_of(other));
    if (b.val(ov).on_host || b.val(ov).dims != yd || !is_float_storage(b.val(ov).dtype)) return false;
    z = ov;
    b.consume(r);
    out = r->output(0);
    return true;
  };
  KILN_ASSIGN_OR_RETURN(bool residual_first, take_residual());
  std::vector<const ir::Node*> gelu = b.match_gelu(out);
  c = b.sole_consumer(out);
  if (!gelu.empty()) {
    ep.activation = ops::Activation::kGelu;
    for (const ir::Node* g : gelu) b.consume(g);
    out = gelu.back()->output(0);
  } else if (c != nullptr && c->op_type() == "Relu" && c->domain().empty()) {
    ep.activation = ops::Activation::kRelu;
    b.consume(c);
    out = c->output(0);
  }
  if (!residual_first && ep.activation != ops::Activation::kNone) {
    KILN_ASSIGN_OR_RETURN(ep.residual_after_activation, take_residual());
  }

  std::vector<int64_t> colsum(static_cast<size_t>(N), 0);
  for (int64_t j = 0; j < N; ++j) {
    for (int64_t i = 0; i < K; ++i) colsum[static_cast<size_t>(j)] += qw.w.data<int8_t>()[j * K + i];
  }
  KILN_ASSIGN_OR_RETURN(int wdev, b.device_const(b.host_value(n.input(1)->name() + ".int8", qw.w), DataType::kInt8));
  KILN_ASSIGN_OR_RETURN(int a, b.as_row_major(qa.q));
  const int64_t M = numel_of(xd) / K;
  Step s = b.make_step(StepKind::kGemm, &n);
  s.gemm.m = M;
  s.gemm.n = N;
  s.gemm.k = K;
  s.gemm.trans_b = true;
  s.gemm.int8 = true;
  s.epilogue = ep;

  // Requantized: q = round((acc + bias[c] / s[c] - z * colsum[c]) * s[c] / y_scale) + y_zp
  // with s[c] = alpha * x_scale * w_scale[c], in float64.
  OutputQuant oq;
  if (z < 0 && ep.activation != ops::Activation::kGelu) {
    KILN_ASSIGN_OR_RETURN(oq, output_quant(b, b.sole_consumer(out), yd));
  }
  if (oq.q != nullptr) {
    Tensor offset = Tensor::empty(DataType::kFloat64, {N});
    Tensor mult = Tensor::empty(DataType::kFloat64, {N});
    for (int64_t j = 0; j < N; ++j) {
      double sj = alpha * qa.scale * qw.scale[static_cast<size_t>(j)];
      double bj = bias.empty() ? 0.0 : bias[static_cast<size_t>(j)];
      offset.data<double>()[j] =
          bj / sj - static_cast<double>(qa.zero_point) * static_cast<double>(colsum[static_cast<size_t>(j)]);
      mult.data<double>()[j] = sj / static_cast<double>(oq.scale);
    }
    KILN_ASSIGN_OR_RETURN(int odev, b.device_const(b.host_value(n.name() + ".offset", offset), DataType::kFloat64));
    KILN_ASSIGN_OR_RETURN(int mdev, b.device_const(b.host_value(n.name() + ".multiplier", mult), DataType::kFloat64));
    b.consume(oq.q);
    out = oq.q->output(0);
    const bool shift = oq.type == DataType::kUInt8 && can_store_shifted(out);
    int y = b.device_value(out->name(), shift ? DataType::kInt8 : oq.type, yd);
    int acc = b.device_value(out->name() + ".int32", DataType::kInt32, {M, N});
    s.label += shift ? " [int8, requantized; uint8 kept as int8 q-128]" : " [int8, requantized]";
    s.inputs = {a, wdev, odev, mdev, -1};
    s.outputs = {y, acc};
    s.p0 = static_cast<float>(oq.zero_point - (shift ? 128 : 0));
    b.add_step(std::move(s));
    b.bind(out, y);
    if (shift) shifted = out;
    return true;
  }

  // y = acc * scale[n] + bias[n], the activation zero point folded into the bias.
  Tensor st = Tensor::empty(DataType::kFloat32, {N});
  Tensor bt = Tensor::empty(DataType::kFloat32, {N});
  const bool has_bias = !bias.empty() || qa.zero_point != 0;
  for (int64_t j = 0; j < N; ++j) {
    float sj = static_cast<float>(alpha * qa.scale * qw.scale[static_cast<size_t>(j)]);
    double bj = bias.empty() ? 0.0 : bias[static_cast<size_t>(j)];
    st.data<float>()[j] = sj;
    bt.data<float>()[j] = static_cast<float>(bj - static_cast<double>(sj) * qa.zero_point *
                                                      static_cast<double>(colsum[static_cast<size_t>(j)]));
  }
  KILN_ASSIGN_OR_RETURN(int sdev, b.device_const(b.host_value(n.name() + ".dequant_scale", st), DataType::kFloat32));
  int bdev = -1;
  if (has_bias) {
    KILN_ASSIGN_OR_RETURN(bdev, b.device_const(b.host_value(n.name() + ".bias", bt), DataType::kFloat32));
  }
  if (z >= 0) {
    KILN_ASSIGN_OR_RETURN(z, b.as_row_major(z));
  }
  int y = b.device_value(out->name(), b.plan().act_dtype, yd);
  int acc = b.device_value(out->name() + ".int32", DataType::kInt32, {M, N});
  s.label += " [int8]";
  s.inputs = {a, wdev, sdev, bdev, z};
  s.outputs = {y, acc};
  b.add_step(std::move(s));
  b.bind(out, y);
  return true;
}

}  // namespace

Status PlanBuilder::lower_qgemm(const ir::Node& n) {
  const QuantAct qa = quant_acts_.at(n.input(0));
  std::string why;
  const ir::Value* shifted = nullptr;
  KILN_ASSIGN_OR_RETURN(bool int8, lower_int8_gemm(*this, n, qa, why, shifted));
  if (shifted != nullptr) shifted_u8_.insert(shifted);
  if (int8) return Status::ok();
  // The float GEMM on the dequantized activation (one dequantization shared
  // by every reader that falls back).
  QuantAct& entry = quant_acts_.at(n.input(0));
  if (entry.dequantized < 0) {
    QParams p;
    p.scale = {qa.scale};
    p.zero_point = {qa.zero_point};
    const ir::Node* dq = n.input(0)->producer();
    KILN_ASSIGN_OR_RETURN(entry.dequantized,
                          emit_dequantize(*this, dq != nullptr ? *dq : n, qa.q, p, 0, n.input(0)->name() + ".float"));
  }
  bind(n.input(0), entry.dequantized);
  size_t first = plan_.steps.size();
  KILN_RETURN_IF_ERROR(lower_gemm(n));
  for (size_t i = first; i < plan_.steps.size(); ++i) {
    Step& s = plan_.steps[i];
    if (s.kind == StepKind::kGemm && s.node == &n) s.label += fmt::format(" [float, not int8: {}]", why);
  }
  return Status::ok();
}

// kiln.QGemm(a, a_scale, a_zp, b [K,N], b_scale, b_zp, y_scale, y_zp, [bias int32])
// as the reference computes it (ops/quantization_fused.cc): the exact
// integer sum plus the bias, times f32(f32(a_scale * b_scale[c]) / y_scale) in
// float64, rounded half to even, saturated (Relu: at least y_zp). The
// activation zero point folds into a per-column offset, as above.
Status PlanBuilder::lower_kiln_qgemm(const ir::Node& n) {
  KILN_ASSIGN_OR_RETURN(int a, value_of(n.input(0)));
  const DataType at = val(a).dtype;
  if (at != DataType::kInt8 && at != DataType::kUInt8) {
    return unimplemented("kiln.QGemm of {} data is not supported on the GPU", data_type_name(at));
  }
  Tensor in[9];
  for (size_t i = 1; i < 8; ++i) {
    KILN_ASSIGN_OR_RETURN(in[i], host_tensor(n, i));
  }
  const bool has_bias = n.has_input(8);
  if (has_bias) {
    KILN_ASSIGN_OR_RETURN(in[8], host_tensor(n, 8));
  }
  const Tensor &a_scale = in[1], &a_zp = in[2], &b = in[3], &b_scale = in[4], &b_zp = in[5], &y_scale = in[6],
               &y_zp = in[7];
  for (const Tensor* t : {&a_scale, &b_scale, &y_scale}) {
    if (t->dtype() != DataType::kFloat32) return unimplemented("scale type {}", data_type_name(t->dtype()));
  }
  if (b.rank() != 2 || (b.dtype() != DataType::kInt8 && b.dtype() != DataType::kUInt8) || b_zp.dtype() != b.dtype() ||
      (y_zp.dtype() != DataType::kInt8 && y_zp.dtype() != DataType::kUInt8)) {
    return invalid_argument("expected an 8-bit 2-D b with its zero point and an 8-bit y zero point");
  }
  const int64_t K = b.dim(0), N = b.dim(1);
  const Dims ad = val(a).dims;
  if (ad.empty() || ad.back() != K) {
    return invalid_argument("a {} and b {} do not multiply", dims_to_string(ad), dims_to_string(b.dims()));
  }
  if (a_scale.numel() != 1 || a_zp.numel() != 1 || y_scale.numel() != 1 || y_zp.numel() != 1 ||
      (b_scale.numel() != 1 && b_scale.numel() != N) || (b_zp.numel() != 1 && b_zp.numel() != N) ||
      (has_bias && (in[8].dtype() != DataType::kInt32 || in[8].numel() != N))) {
    return invalid_argument("kiln.QGemm parameters do not fit a {} x {} product", dims_to_string(ad),
                            dims_to_string(b.dims()));
  }
  KILN_ASSIGN_OR_RETURN(ops::Epilogue ep, ops::Epilogue::from_node(n));
  if (ep.activation != ops::Activation::kNone && ep.activation != ops::Activation::kRelu) {
    return unimplemented("kiln.QGemm activation other than Relu");
  }
  // The weight as [N, K] int8 with zero point 0 (uint8 with 128 shifted).
  const int32_t b_shift = b.dtype() == DataType::kUInt8 ? 128 : 0;
  KILN_ASSIGN_OR_RETURN(std::vector<float> bz, tensor_floats(b_zp));
  for (float z : bz) {
    if (static_cast<int32_t>(z) != b_shift) return unimplemented("kiln.QGemm with asymmetric weights on the GPU");
  }
  Tensor w = Tensor::empty(DataType::kInt8, {N, K});
  std::vector<int64_t> colsum(static_cast<size_t>(N), 0);
  for (int64_t i = 0; i < K; ++i) {
    for (int64_t j = 0; j < N; ++j) {
      int32_t q = b_shift != 0 ? static_cast<int32_t>(b.data<uint8_t>()[i * N + j]) - b_shift
                               : static_cast<int32_t>(b.data<int8_t>()[i * N + j]);
      w.data<int8_t>()[j * K + i] = static_cast<int8_t>(q);
      colsum[static_cast<size_t>(j)] += q;
    }
  }
  // The activation as int8 with its zero point.
  KILN_ASSIGN_OR_RETURN(std::vector<float> azv, tensor_floats(a_zp));
  int32_t az = static_cast<int32_t>(azv[0]);
  if (shifted_u8_.count(n.input(0)) != 0) {
    az -= 128;
  } else if (at == DataType::kUInt8) {  // a real uint8 tensor (a graph input): q - 128 by two exact kernels
    QParams one;
    one.scale = {1.0f};
    one.zero_point = {0};
    KILN_ASSIGN_OR_RETURN(int f, emit_dequantize(*this, n, a, one, 0, val(a).name + ".values"));
    one.zero_point = {-128};
    KILN_ASSIGN_OR_RETURN(auto params, param_consts(*this, n, one, 0));
    int s8 = device_value(val(a).name + ".int8", DataType::kInt8, val(f).dims, val(f).layout);
    Step q = make_step(StepKind::kQuantize, &n);
    q.label = fmt::format("uint8 '{}' as int8 q-128 for {}", val(a).name, n.describe());
    q.inputs = {f, params.first, params.second};
    q.outputs = {s8};
    q.channels = one.channels;  // per tensor
    q.inner = one.inner;
    add_step(std::move(q));
    a = s8;
    az -= 128;
  }
  KILN_ASSIGN_OR_RETURN(a, as_row_major(a));
  // Requantization parameters, in float64 on the device.
  KILN_ASSIGN_OR_RETURN(std::vector<float> bs, tensor_floats(b_scale));
  const float as = a_scale.data<float>()[0], ys = y_scale.data<float>()[0];
  Tensor offset = Tensor::empty(DataType::kFloat64, {N});
  Tensor mult = Tensor::empty(DataType::kFloat64, {N});
  for (int64_t j = 0; j < N; ++j) {
    const float ab = as * bs[bs.size() == 1 ? 0 : static_cast<size_t>(j)];
    mult.data<double>()[j] = static_cast<float>(ab / ys);
    double bias = has_bias ? in[8].data<int32_t>()[j] : 0;
    offset.data<double>()[j] = bias - static_cast<double>(az) * static_cast<double>(colsum[static_cast<size_t>(j)]);
  }
  KILN_ASSIGN_OR_RETURN(int wdev, device_const(host_value(n.input(3)->name() + ".int8", w), DataType::kInt8));
  KILN_ASSIGN_OR_RETURN(int odev, device_const(host_value(n.name() + ".offset", offset), DataType::kFloat64));
  KILN_ASSIGN_OR_RETURN(int mdev, device_const(host_value(n.name() + ".multiplier", mult), DataType::kFloat64));
  // The output: uint8 read only in int8 form is stored as q - 128.
  const ir::Value* out = n.output(0);
  KILN_ASSIGN_OR_RETURN(std::vector<float> yzv, tensor_floats(y_zp));
  const bool shift_y = y_zp.dtype() == DataType::kUInt8 && can_store_shifted(out);
  Dims yd(ad.begin(), ad.end() - 1);
  yd.push_back(N);
  const int64_t M = numel_of(ad) / std::max<int64_t>(K, 1);
  int y = device_value(out->name(), shift_y ? DataType::kInt8 : y_zp.dtype(), yd);
  int acc = device_value(out->name() + ".int32", DataType::kInt32, {M, N});
  Step s = make_step(StepKind::kGemm, &n);
  s.label += shift_y ? " [int8, uint8 kept as int8 q-128]" : " [int8]";
  s.inputs = {a, wdev, odev, mdev, -1};
  s.outputs = {y, acc};
  s.gemm.m = M;
  s.gemm.n = N;
  s.gemm.k = K;
  s.gemm.trans_b = true;
  s.gemm.int8 = true;
  s.p0 = static_cast<float>(static_cast<int32_t>(yzv[0]) - (shift_y ? 128 : 0));
  s.epilogue.activation = ep.activation;
  add_step(std::move(s));
  if (shift_y) shifted_u8_.insert(out);
  bind(out, y);
  return Status::ok();
}

}  // namespace kiln::backends::cuda
