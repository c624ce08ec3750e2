#include "quant/half_precision.h"

#include <map>

#include "core/error.h"
#include "core/float_types.h"

namespace kiln::quant {
namespace {

bool is_matrix_layer(const ir::Node& n) {
  if (!n.domain().empty()) return false;
  const std::string& op = n.op_type();
  return op == "Conv" || op == "ConvTranspose" || op == "Gemm" || op == "MatMul";
}

const Tensor* float_weight(const ir::Node& n) {
  const ir::Value* w = n.input(1);
  if (w == nullptr || !w->is_constant() || w->is_graph_input()) return nullptr;
  return w->constant().dtype() == DataType::kFloat32 ? &w->constant() : nullptr;
}

float round_half(float v, bool bf16) {
  return bf16 ? static_cast<float>(BFloat16(v)) : static_cast<float>(Float16(v));
}

}  // namespace

Result<std::set<std::string>> parse_layer_overrides(const std::vector<std::string>& overrides,
                                                    const std::set<std::string>& allowed) {
  std::set<std::string> keep;
  for (const std::string& o : overrides) {
    const size_t colon = o.rfind(':');
    if (colon == std::string::npos || colon == 0) {
      return invalid_argument("layer precision '{}' must be NAME:PRECISION (e.g. conv1:fp32)", o);
    }
    const std::string name = o.substr(0, colon), precision = o.substr(colon + 1);
    if (precision == "fp32") {
      keep.insert(name);
    } else if (allowed.count(precision) == 0) {
      return invalid_argument("layer precision '{}': '{}' is not a precision a layer can get in this build (fp32{}{})",
                              o, precision, allowed.empty() ? "" : ", ", fmt::join(allowed, ", "));
    }
  }
  return keep;
}

Result<std::vector<LayerPrecision>> apply_half_precision(ir::Graph& graph, const std::string& precision,
                                                         const std::set<std::string>& keep_fp32) {
  if (precision != "bf16" && precision != "fp16") {
    return invalid_argument("half precision must be bf16 or fp16, got '{}'", precision);
  }
  const bool bf16 = precision == "bf16";
  const DataType half = bf16 ? DataType::kBFloat16 : DataType::kFloat16;
  std::set<std::string> names;
  for (const auto& n : graph.nodes()) names.insert(n->name());
  for (const std::string& k : keep_fp32) {
    if (names.count(k) == 0) return invalid_argument("no layer of the model is named '{}'", k);
  }
  const int64_t opset = graph.opset_imports().count("") > 0 ? graph.opset_imports().at("") : 13;
  std::vector<LayerPrecision> report;
  std::map<const ir::Value*, ir::Value*> rounded;  // activation -> its 16-bit round trip
  std::vector<ir::Node*> layers;
  for (const auto& n : graph.nodes()) {
    if (is_matrix_layer(*n)) layers.push_back(n.get());
  }
  for (ir::Node* n : layers) {
    const Tensor* w = float_weight(*n);
    ir::Value* x = n->input(0);
    const bool floats = x != nullptr && x->type().is_tensor() && x->type().dtype == DataType::kFloat32;
    if (w == nullptr || !floats || keep_fp32.count(n->name()) > 0) {
      report.push_back({n->name(), "fp32"});
      continue;
    }
    Tensor wr = Tensor::empty(DataType::kFloat32, w->dims());
    for (int64_t i = 0; i < w->numel(); ++i) wr.data<float>()[i] = round_half(w->data<float>()[i], bf16);
    KILN_ASSIGN_OR_RETURN(ir::Value * wv,
                          graph.add_constant(graph.unique_name(n->input(1)->name() + "_" + precision), std::move(wr)));
    n->set_input(1, wv);
    auto it = rounded.find(x);
    if (it == rounded.end()) {
      ir::ValueType ht = x->type();
      ht.dtype = half;
      KILN_ASSIGN_OR_RETURN(ir::Value * h, graph.add_value(graph.unique_name(x->name() + "_" + precision), ht));
      KILN_ASSIGN_OR_RETURN(ir::Value * back, graph.add_value(graph.unique_name(x->name() + "_" + precision + "_f32"),
                                                              x->type()));
      ir::Node* down = graph.insert_node(n, "Cast", {x}, {h}, graph.unique_name(x->name() + "_to_" + precision));
      down->set_attr(ir::Attribute::make_int("to", static_cast<int64_t>(half)));
      ir::Node* up = graph.insert_node(n, "Cast", {h}, {back}, graph.unique_name(x->name() + "_to_fp32"));
      up->set_attr(ir::Attribute::make_int("to", static_cast<int64_t>(DataType::kFloat32)));
      down->set_opset(opset);
      up->set_opset(opset);
      it = rounded.emplace(x, back).first;
    }
    n->set_input(0, it->second);
    report.push_back({n->name(), precision});
  }
  KILN_RETURN_IF_ERROR(graph.topo_sort());
  return report;
}

}  // namespace kiln::quant
