// Q/DQ lowering: explicit quantization (ONNX Q/DQ models such as
// onnxruntime.quantization.quantize_static writes, and the ones src/quant
// makes from calibration) becomes int8 layers.
//
//   DequantizeLinear(x_q) ─┐
//   DequantizeLinear(W_q) ─┼─ Conv / Gemm / MatMul ─ [Relu] ─ QuantizeLinear ─ y_q
//   [bias: constant or DequantizeLinear(int32)] ┘
//
// becomes kiln.QConv / kiln.QGemm(x_q, ..., W_q, ..., y_q params, int32 bias)
// with the Relu as the epilogue activation (ops/quantization_fused.cc). The
// int8 tensors y_q then feed the next layer's DequantizeLinear, which that
// layer's lowering consumes in turn: consecutive int8 layers exchange 8-bit
// tensors only. Conditions (else the pattern stays as it is, in float):
// per-tensor activation scales and zero points, int8 weights with zero zero
// points (symmetric) and a scale per tensor or per output channel along the
// output-channel axis, Gemm with alpha = beta = 1 and transA = 0, 2-D
// weights for Gemm/MatMul. The bias is requantized to int32 in units of
// x_scale * w_scale(c) (exactly what quantize_static stores).
//
// This pass runs first: constant folding would otherwise turn the weights'
// DequantizeLinear into float constants.
#include <cmath>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "ops/epilogue.h"
#include "passes/graph_util.h"
#include "passes/pass.h"

namespace kiln::passes {
namespace {

bool is_8bit(DataType t) { return t == DataType::kUInt8 || t == DataType::kInt8; }

// A DequantizeLinear / QuantizeLinear's per-tensor (scale, zero point) as
// constants of float32 and `q_type`; the zero point made when absent.
struct TensorQuant {
  ir::Value* scale = nullptr;
  ir::Value* zero_point = nullptr;  // nullptr: absent (zero of the 8-bit type)
};

std::optional<TensorQuant> per_tensor_params(const ir::Node& n, DataType q_type) {
  const Tensor* s = constant_of(n.input(1));
  if (s == nullptr || s->dtype() != DataType::kFloat32 || s->numel() != 1) return std::nullopt;
  if (!(s->data<float>()[0] > 0.0f) || !std::isfinite(s->data<float>()[0])) return std::nullopt;
  TensorQuant p{n.input(1), nullptr};
  if (n.has_input(2)) {
    const Tensor* z = constant_of(n.input(2));
    if (z == nullptr || z->dtype() != q_type || z->numel() != 1) return std::nullopt;
    p.zero_point = n.input(2);
  }
  return p;
}

// The scale or zero point as a scalar or 1-D constant (rank-0 / [1] / [C] tensors).
Tensor as_vector(const Tensor& t) {
  Tensor v = Tensor::empty(t.dtype(), {t.numel()});
  std::memcpy(v.raw_data(), t.raw_data(), t.nbytes());
  return v;
}

// The int8 weight of a DequantizeLinear with symmetric scales along `out_axis`
// (per tensor, or per channel when the DQ's axis is out_axis).
struct WeightQuant {
  const Tensor* w = nullptr;
  Tensor scale;  // [C] or [1]
};

std::optional<WeightQuant> weight_params(const ir::Node* dq, int64_t out_axis) {
  if (dq == nullptr || dq->attr_int("block_size", 0) != 0) return std::nullopt;
  const Tensor* w = constant_of(dq->input(0));
  const Tensor* s = constant_of(dq->input(1));
  if (w == nullptr || w->dtype() != DataType::kInt8 || s == nullptr || s->dtype() != DataType::kFloat32) {
    return std::nullopt;
  }
  if (dq->has_input(2)) {
    const Tensor* z = constant_of(dq->input(2));
    if (z == nullptr || z->dtype() != DataType::kInt8) return std::nullopt;
    for (int8_t v : z->span<int8_t>()) {
      if (v != 0) return std::nullopt;
    }
  }
  if (s->numel() != 1) {
    int64_t axis = dq->attr_int("axis", 1);
    if (axis < 0) axis += w->rank();
    if (axis != out_axis || s->rank() != 1 || s->dim(0) != w->dim(out_axis)) return std::nullopt;
  }
  for (float v : s->span<float>()) {
    if (!(v > 0.0f) || !std::isfinite(v)) return std::nullopt;
  }
  return WeightQuant{w, as_vector(*s)};
}

// The float values of a bias input: a float32 constant or the
// DequantizeLinear of an int32 constant.
std::optional<std::vector<double>> bias_values(const ir::Value* b, int64_t channels) {
  if (b == nullptr) return std::vector<double>(static_cast<size_t>(channels), 0.0);
  std::vector<double> out;
  if (const Tensor* t = constant_of(b); t != nullptr && t->dtype() == DataType::kFloat32) {
    for (float v : t->span<float>()) out.push_back(v);
  } else if (ir::Node* dq = producer_of(b, "DequantizeLinear"); dq != nullptr) {
    const Tensor* q = constant_of(dq->input(0));
    const Tensor* s = constant_of(dq->input(1));
    const Tensor* z = dq->has_input(2) ? constant_of(dq->input(2)) : nullptr;
    if (q == nullptr || q->dtype() != DataType::kInt32 || s == nullptr || s->dtype() != DataType::kFloat32) {
      return std::nullopt;
    }
    if (dq->has_input(2) && (z == nullptr || z->dtype() != DataType::kInt32)) return std::nullopt;
    if ((s->numel() != 1 && s->numel() != q->numel()) ||
        (z != nullptr && z->numel() != 1 && z->numel() != q->numel())) {
      return std::nullopt;
    }
    for (int64_t i = 0; i < q->numel(); ++i) {
      const double zp = z == nullptr ? 0.0 : z->data<int32_t>()[z->numel() == 1 ? 0 : i];
      out.push_back((q->data<int32_t>()[i] - zp) * s->data<float>()[s->numel() == 1 ? 0 : i]);
    }
  } else {
    return std::nullopt;
  }
  if (static_cast<int64_t>(out.size()) != channels) return std::nullopt;
  return out;
}

// Transposes a 2-D int8 tensor.
Tensor transpose_int8(const Tensor& t) {
  const int64_t r = t.dim(0), c = t.dim(1);
  Tensor out = Tensor::empty(DataType::kInt8, {c, r});
  for (int64_t i = 0; i < r; ++i) {
    for (int64_t j = 0; j < c; ++j) out.data<int8_t>()[j * r + i] = t.data<int8_t>()[i * c + j];
  }
  return out;
}

Result<bool> lower(ir::Graph& graph, ir::Node* node, const Pinned& pinned) {
  const std::string& op = node->op_type();
  // Activation input.
  ir::Node* dq_x = producer_of(node->input(0), "DequantizeLinear");
  if (dq_x == nullptr || !dq_x->input(0)->type().is_tensor()) return false;
  const DataType x_type = dq_x->input(0)->type().dtype;
  if (!is_8bit(x_type)) return false;
  auto xq = per_tensor_params(*dq_x, x_type);
  if (!xq) return false;

  // Output: [Relu] then QuantizeLinear.
  ir::Node* relu = nullptr;
  ir::Node* q = only_consumer(node->output(0), pinned);
  if (q != nullptr && is_op(q, "Relu")) {
    relu = q;
    q = only_consumer(relu->output(0), pinned);
  }
  if (q == nullptr || !is_op(q, "QuantizeLinear") || q->output(0) == nullptr) return false;
  if (!q->output(0)->type().is_tensor() || !is_8bit(q->output(0)->type().dtype)) return false;
  const DataType y_type = q->output(0)->type().dtype;
  auto yq = per_tensor_params(*q, y_type);
  if (!yq) return false;

  // Weights (laid out [K, N] for QGemm) and bias.
  ir::Node* dq_w = producer_of(node->input(1), "DequantizeLinear");
  std::optional<WeightQuant> wq;
  Tensor w_int8;
  const ir::Value* bias_in = nullptr;
  int64_t channels = 0;
  if (op == "Conv") {
    wq = weight_params(dq_w, 0);
    if (!wq || wq->w->rank() < 3) return false;
    w_int8 = *wq->w;
    channels = w_int8.dim(0);
    bias_in = node->input(2);
  } else if (op == "Gemm") {
    if (node->attr_float("alpha", 1.0f) != 1.0f || node->attr_float("beta", 1.0f) != 1.0f ||
        node->attr_int("transA", 0) != 0) {
      return false;
    }
    const bool trans_b = node->attr_int("transB", 0) != 0;
    wq = weight_params(dq_w, trans_b ? 0 : 1);
    if (!wq || wq->w->rank() != 2) return false;
    w_int8 = trans_b ? transpose_int8(*wq->w) : *wq->w;
    channels = w_int8.dim(1);
    bias_in = node->input(2);
    if (bias_in != nullptr) {
      auto dims = static_dims(bias_in);
      if (!dims || !(dims->size() == 1 || (dims->size() == 2 && (*dims)[0] == 1))) return false;
    }
  } else {  // MatMul
    wq = weight_params(dq_w, 1);
    if (!wq || wq->w->rank() != 2) return false;
    w_int8 = *wq->w;
    channels = w_int8.dim(1);
  }
  if (wq->scale.numel() != 1 && wq->scale.numel() != channels) return false;
  auto bias = bias_values(bias_in, channels);
  if (!bias) return false;

  // The bias in units of x_scale * w_scale(c), as quantize_static stores it.
  const float xs = constant_of(xq->scale)->data<float>()[0];
  Tensor bias_q = Tensor::empty(DataType::kInt32, {channels});
  bool any_bias = false;
  for (int64_t c = 0; c < channels; ++c) {
    const float unit = xs * wq->scale.data<float>()[wq->scale.numel() == 1 ? 0 : c];
    const double v = std::nearbyint((*bias)[static_cast<size_t>(c)] / unit);
    if (!(std::fabs(v) <= std::numeric_limits<int32_t>::max())) return false;
    bias_q.data<int32_t>()[c] = static_cast<int32_t>(v);
    any_bias = any_bias || v != 0;
  }

  // Build the int8 layer.
  auto zero_of = [&](DataType t, const std::string& prefix) -> Result<ir::Value*> {
    Tensor z = t == DataType::kInt8 ? Tensor::scalar(DataType::kInt8, int8_t{0})
                                    : Tensor::scalar(DataType::kUInt8, uint8_t{0});
    return new_constant(graph, prefix, std::move(z));
  };
  const std::string base = node->name().empty() ? op : node->name();
  ir::Value* x_zp = xq->zero_point;
  if (x_zp == nullptr) {
    KILN_ASSIGN_OR_RETURN(x_zp, zero_of(x_type, base + "_x_zero_point"));
  }
  ir::Value* y_zp = yq->zero_point;
  if (y_zp == nullptr) {
    KILN_ASSIGN_OR_RETURN(y_zp, zero_of(y_type, base + "_y_zero_point"));
  }
  KILN_ASSIGN_OR_RETURN(ir::Value * w_val, new_constant(graph, base + "_w_int8", w_int8));
  KILN_ASSIGN_OR_RETURN(ir::Value * ws_val, new_constant(graph, base + "_w_scale", wq->scale));
  Tensor wz = Tensor::empty(DataType::kInt8, {wq->scale.numel()});
  for (int8_t& z : wz.span<int8_t>()) z = 0;
  KILN_ASSIGN_OR_RETURN(ir::Value * wz_val, new_constant(graph, base + "_w_zero_point", std::move(wz)));
  std::vector<ir::Value*> inputs = {dq_x->input(0), xq->scale, x_zp, w_val, ws_val, wz_val, yq->scale, y_zp};
  if (any_bias) {
    KILN_ASSIGN_OR_RETURN(ir::Value * b_val, new_constant(graph, base + "_bias_int32", std::move(bias_q)));
    inputs.push_back(b_val);
  }

  ir::Value* y = q->output(0);
  std::vector<const ir::Node*> sources = {dq_x, dq_w, node};
  if (relu != nullptr) sources.push_back(relu);
  sources.push_back(q);
  std::vector<std::string> fused_from;
  for (const ir::Node* s : sources) append_fused_from(s, fused_from);
  graph.remove_node(q);
  ir::Node* layer = insert_kiln_node(graph, node, op == "Conv" ? "QConv" : "QGemm", inputs, {y}, base + "_int8");
  if (op == "Conv") copy_attributes(*node, *layer);
  if (relu != nullptr) layer->set_attr(ir::Attribute::make_string("activation", "Relu"));
  ir::Attribute from;
  from.name = ops::kFusedFromAttr;
  from.kind = ir::Attribute::Kind::kStrings;
  from.strings = std::move(fused_from);
  layer->set_attr(std::move(from));
  if (relu != nullptr) graph.remove_node(relu);
  graph.remove_node(node);
  return true;
}

class QdqLowering final : public Pass {
 public:
  std::string_view name() const override { return "qdq_lowering"; }
  Result<bool> run(ir::Graph& graph) override {
    bool changed = false;
    for (const char* op : {"Conv", "Gemm", "MatMul"}) {
      KILN_ASSIGN_OR_RETURN(bool c, fuse_from_seeds(graph, op, lower));
      changed = changed || c;
    }
    if (changed) remove_dead_nodes(graph);
    return changed;
  }
};

}  // namespace

std::unique_ptr<Pass> make_qdq_lowering() { return std::make_unique<QdqLowering>(); }

}  // namespace kiln::passes
