// Lowering of QuantizeLinear and DequantizeLinear for the GPU (explicit
// quantization, TensorRT's way; the int8 GEMMs they surround are in
// plan_ops_qgemm.cc).
//
// QuantizeLinear of a device value is a kQuantize step (float -> int8/uint8,
// per tensor or per axis). A uint8 output read only by DequantizeLinears and
// kiln.QGemms is stored as int8 q - 128 with zero point z - 128 (the same real
// values): cuBLASLt's int8 kernels take int8 only, and uint8 activations are
// what onnxruntime's quantize_static and src/quant write.
//
// DequantizeLinear of a device value: when some reader is a MatMul/Gemm that
// can take it in int8 (input 0, per-tensor scale, int8 storage), its output
// is a QuantAct: those readers go through lower_qgemm on the int8 value, the
// others (if any) read a kDequantize step's output. Otherwise a kDequantize
// step. Constant Q/DQ (weights) are evaluated at plan time like every
// constant node.
#include "backends/cuda/plan_ops_quant.h"

#include <optional>

#include "core/error.h"

namespace kiln::backends::cuda {
namespace qdq {

Result<QParams> read_qparams(PlanBuilder& b, const ir::Node& n, const Dims& x) {
  if (n.opset() >= 21 && n.attr_int("block_size", 0) != 0) {
    return unimplemented("blocked quantization (block_size) is not supported on the GPU");
  }
  KILN_ASSIGN_OR_RETURN(Tensor st, b.host_tensor(n, 1));
  if (!is_float_storage(st.dtype())) {
    return unimplemented("{} scales are not supported on the GPU", data_type_name(st.dtype()));
  }
  QParams p;
  KILN_ASSIGN_OR_RETURN(p.scale, tensor_floats(st));
  if (p.scale.empty()) return invalid_argument("the scale is empty");
  if (n.has_input(2)) {
    KILN_ASSIGN_OR_RETURN(Tensor zt, b.host_tensor(n, 2));
    DataType zd = zt.dtype();
    if (zd != DataType::kInt8 && zd != DataType::kUInt8 && zd != DataType::kInt32) {
      return unimplemented("{} zero points are not supported on the GPU", data_type_name(zd));
    }
    if (zt.numel() != static_cast<int64_t>(p.scale.size())) {
      return invalid_argument("the zero point has {} values, the scale {}", zt.numel(), p.scale.size());
    }
    KILN_ASSIGN_OR_RETURN(std::vector<float> z, tensor_floats(zt));
    for (float v : z) p.zero_point.push_back(static_cast<int32_t>(v));
  } else {
    p.zero_point.assign(p.scale.size(), 0);
  }
  if (p.scale.size() > 1) {
    int64_t rank = static_cast<int64_t>(x.size());
    int64_t axis = n.opset() >= 13 ? n.attr_int("axis", 1) : 1;
    if (axis < 0) axis += rank;
    if (axis < 0 || axis >= rank || st.rank() != 1 || x[static_cast<size_t>(axis)] != st.numel()) {
      return invalid_argument("scale of shape {} does not fit data of shape {} along axis {}",
                              dims_to_string(st.dims()), dims_to_string(x), n.attr_int("axis", 1));
    }
    p.channels = st.numel();
    for (size_t d = static_cast<size_t>(axis) + 1; d < x.size(); ++d) p.inner *= x[d];
  }
  return p;
}

// Persistent float [C] and int32 [C] copies of a Q/DQ's parameters, the zero
// points moved by `shift`.
Result<std::pair<int, int>> param_consts(PlanBuilder& b, const ir::Node& n, const QParams& p, int32_t shift) {
  const int64_t c = static_cast<int64_t>(p.scale.size());
  Tensor s = Tensor::empty(DataType::kFloat32, {c});
  Tensor z = Tensor::empty(DataType::kInt32, {c});
  for (int64_t i = 0; i < c; ++i) {
    s.data<float>()[i] = p.scale[static_cast<size_t>(i)];
    z.data<int32_t>()[i] = p.zero_point[static_cast<size_t>(i)] - shift;
  }
  KILN_ASSIGN_OR_RETURN(int sv, b.device_const(b.host_value(n.name() + ".scale", s), DataType::kFloat32));
  KILN_ASSIGN_OR_RETURN(int zv, b.device_const(b.host_value(n.name() + ".zero_point", z), DataType::kInt32));
  return std::make_pair(sv, zv);
}

// A kDequantize step of device value `x` (int8/uint8/int32 storage) to the
// activation type; per-axis data is read row-major.
Result<int> emit_dequantize(PlanBuilder& b, const ir::Node& n, int x, const QParams& p, int32_t shift,
                            const std::string& name) {
  if (!p.per_tensor()) {
    KILN_ASSIGN_OR_RETURN(x, b.as_row_major(x));
  }
  KILN_ASSIGN_OR_RETURN(auto params, param_consts(b, n, p, shift));
  const PlanValue xv = b.val(x);
  int y = b.device_value(name, b.plan().act_dtype, xv.dims, xv.layout);
  Step s = b.make_step(StepKind::kDequantize, &n);
  s.inputs = {x, params.first, params.second};
  s.outputs = {y};
  s.channels = p.channels;
  s.inner = p.inner;
  b.add_step(std::move(s));
  return y;
}

Result<DataType> quantized_type(const ir::Node& n) {
  if (n.has_input(2) && n.input(2)->type().is_tensor() && n.input(2)->type().dtype != DataType::kUndefined) {
    return n.input(2)->type().dtype;
  }
  int64_t od = n.opset() >= 21 ? n.attr_int("output_dtype", 0) : 0;
  if (od == 0) return DataType::kUInt8;
  std::optional<DataType> t = data_type_from_int(od);
  if (!t) return invalid_argument("output_dtype {} is not a tensor element type", od);
  return *t;
}

bool can_store_shifted(const ir::Value* v) {
  if (v->is_graph_output() || v->uses().empty()) return false;
  for (const ir::Use& u : v->uses()) {
    const ir::Node* c = u.node;
    bool dq = c->domain().empty() && c->op_type() == "DequantizeLinear";
    bool qgemm = (c->domain() == "kiln" || c->domain() == "com.kiln") && c->op_type() == "QGemm";
    if (!(dq || qgemm) || u.input_index != 0) return false;
  }
  return true;
}

}  // namespace qdq

namespace {

using namespace qdq;

// A reader of a DequantizeLinear output `v` that can take it in int8: a
// default-domain MatMul/Gemm reading it as input 0 only.
bool int8_reader(const ir::Use& u, const ir::Value* v) {
  const ir::Node* c = u.node;
  if (!c->domain().empty() || (c->op_type() != "MatMul" && c->op_type() != "Gemm")) return false;
  return u.input_index == 0 && c->input(1) != v && !(c->has_input(2) && c->input(2) == v);
}

}  // namespace

Status PlanBuilder::lower_quantize(const ir::Node& n) {
  KILN_ASSIGN_OR_RETURN(int x, value_of(n.input(0)));
  if (!is_float_storage(val(x).dtype)) {
    return unimplemented("QuantizeLinear of {} data is not supported on the GPU", data_type_name(val(x).dtype));
  }
  KILN_ASSIGN_OR_RETURN(DataType to, quantized_type(n));
  if (to != DataType::kInt8 && to != DataType::kUInt8) {
    return unimplemented("QuantizeLinear to {} is not supported on the GPU (int8 and uint8 are)", data_type_name(to));
  }
  KILN_ASSIGN_OR_RETURN(QParams p, read_qparams(*this, n, val(x).dims));
  KILN_ASSIGN_OR_RETURN(x, on_device(x));
  if (!p.per_tensor()) {
    KILN_ASSIGN_OR_RETURN(x, as_row_major(x));
  }
  // uint8 read only in int8 form: stored as int8 q - 128 (see the top).
  const ir::Value* out = n.output(0);
  const bool shift = to == DataType::kUInt8 && can_store_shifted(out);
  KILN_ASSIGN_OR_RETURN(auto params, param_consts(*this, n, p, shift ? 128 : 0));
  const PlanValue xv = val(x);
  int y = device_value(out->name(), shift ? DataType::kInt8 : to, xv.dims, xv.layout);
  Step s = make_step(StepKind::kQuantize, &n);
  if (shift) s.label += " (uint8 kept as int8 q-128)";
  s.inputs = {x, params.first, params.second};
  s.outputs = {y};
  s.channels = p.channels;
  s.inner = p.inner;
  add_step(std::move(s));
  if (shift) shifted_u8_.insert(out);
  bind(out, y);
  return Status::ok();
}

Status PlanBuilder::lower_dequantize(const ir::Node& n) {
  KILN_ASSIGN_OR_RETURN(int x, value_of(n.input(0)));
  DataType st = val(x).dtype;
  if (st != DataType::kInt8 && st != DataType::kUInt8 && st != DataType::kInt32) {
    return unimplemented("DequantizeLinear of {} data is not supported on the GPU", data_type_name(st));
  }
  if (n.opset() >= 23 && n.attr_int("output_dtype", 0) != 0) {
    std::optional<DataType> od = data_type_from_int(n.attr_int("output_dtype", 0));
    if (!od || !is_float_storage(*od))
      return unimplemented("DequantizeLinear to output_dtype {}", n.attr_int("output_dtype", 0));
  }
  KILN_ASSIGN_OR_RETURN(QParams p, read_qparams(*this, n, val(x).dims));
  KILN_ASSIGN_OR_RETURN(x, on_device(x));
  const int32_t shift = shifted_u8_.count(n.input(0)) != 0 ? 128 : 0;
  const ir::Value* out = n.output(0);
  bool gemm_reader = false, float_reader = out->is_graph_output();
  for (const ir::Use& u : out->uses()) (int8_reader(u, out) ? gemm_reader : float_reader) = true;
  if (p.per_tensor() && val(x).dtype == DataType::kInt8 && gemm_reader) {
    // The GEMMs read the int8 value through lower_qgemm; other readers, if
    // any, the dequantized one (which a GEMM falling back shares).
    QuantAct qa{x, p.scale[0], p.zero_point[0] - shift, -1};
    if (float_reader) {
      KILN_ASSIGN_OR_RETURN(qa.dequantized, emit_dequantize(*this, n, x, p, shift, out->name()));
    }
    bind(out, float_reader ? qa.dequantized : x);
    quant_acts_[out] = qa;
    return Status::ok();
  }
  KILN_ASSIGN_OR_RETURN(int y, emit_dequantize(*this, n, x, p, shift, out->name()));
  bind(out, y);
  return Status::ok();
}

}  // namespace kiln::backends::cuda
