#include "train/model_builder.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <sstream>

#include "core/error.h"

namespace kiln::train {

namespace {

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> parts;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ':')) parts.push_back(item);
  return parts;
}

Result<int64_t> int_field(const std::vector<std::string>& f, size_t i, int64_t fallback, const std::string& spec) {
  if (i >= f.size()) {
    if (fallback < 0) return invalid_argument("layer '{}' needs field {}", spec, i);
    return fallback;
  }
  try {
    size_t used = 0;
    int64_t v = std::stoll(f[i], &used);
    if (used != f[i].size() || v < 0 || v > (1 << 20)) throw std::invalid_argument(f[i]);
    return v;
  } catch (const std::exception&) {
    return invalid_argument("layer '{}': field {} ('{}') is not a valid size", spec, i, f[i]);
  }
}

class Builder {
 public:
  explicit Builder(uint64_t seed) : rng_(seed) {
    model_.graph = std::make_shared<ir::Graph>("kiln_sequential");
    model_.graph->set_opset_imports({{"", 17}});
    model_.ir_version = 8;
    model_.producer_name = "kiln-train";
  }

  ir::Graph& g() { return *model_.graph; }

  Result<ir::Value*> constant(const std::string& base, const Dims& dims, double bound, float fill = 0) {
    KILN_ASSIGN_OR_RETURN(Tensor t, Tensor::allocate(DataType::kFloat32, dims));
    std::uniform_real_distribution<double> u(-bound, bound);
    for (float& v : t.span<float>()) v = bound > 0 ? static_cast<float>(u(rng_)) : fill;
    return g().add_constant(g().unique_name(base), t);
  }

  Result<ir::Value*> node(const std::string& op, std::vector<ir::Value*> inputs, std::vector<ir::Attribute> attrs) {
    std::string base = op == "Gemm" ? "fc" : op;
    std::string name = base + "_" + std::to_string(++counts_[base]);
    std::string out_name = next_output_.empty() ? g().unique_name(name + "_out") : next_output_;
    next_output_.clear();
    KILN_ASSIGN_OR_RETURN(ir::Value * out, g().add_value(out_name));
    ir::Node* n = g().add_node(op, std::move(inputs), {out}, name);
    n->set_opset(g().opset_imports().at(""));
    for (auto& a : attrs) n->set_attr(std::move(a));
    return out;
  }

  std::mt19937_64 rng_;
  ir::Model model_;
  std::map<std::string, int> counts_;  // node names are unique per op: Conv_1, Conv_2, ...
  std::string next_output_;            // the name of the next node's output ("output" for the last layer)
};

}  // namespace

Result<ir::Model> build_sequential(const Dims& sample_dims, const std::vector<std::string>& layers, uint64_t seed) {
  if (sample_dims.empty()) return invalid_argument("sample dims must not be empty");
  if (layers.empty()) return invalid_argument("a model needs at least one layer");
  for (int64_t d : sample_dims) {
    if (d <= 0) return invalid_argument("sample dims must be positive");
  }
  Builder b(seed);
  // Gelu is an ONNX op from opset 20 on; other models stay at 17.
  if (std::find(layers.begin(), layers.end(), "gelu") != layers.end()) b.g().set_opset_imports({{"", 20}});
  std::vector<Dim> in_shape = {Dim::sym("N")};
  for (int64_t d : sample_dims) in_shape.emplace_back(d);
  KILN_ASSIGN_OR_RETURN(ir::Value * x, b.g().add_value("input", ir::ValueType::tensor(DataType::kFloat32, Shape(in_shape))));
  b.g().add_input(x);
  Dims shape = sample_dims;  // per-sample dims as the layers transform them
  using A = ir::Attribute;
  for (const std::string& spec : layers) {
    if (&spec == &layers.back()) b.next_output_ = "output";
    std::vector<std::string> f = split(spec);
    const std::string kind = f.empty() ? "" : f[0];
    if (kind == "conv") {
      if (shape.size() != 3) return invalid_argument("layer '{}' needs [C, H, W] input, got rank {}", spec, shape.size());
      KILN_ASSIGN_OR_RETURN(int64_t out, int_field(f, 1, -1, spec));
      KILN_ASSIGN_OR_RETURN(int64_t k, int_field(f, 2, -1, spec));
      KILN_ASSIGN_OR_RETURN(int64_t stride, int_field(f, 3, 1, spec));
      KILN_ASSIGN_OR_RETURN(int64_t pad, int_field(f, 4, 0, spec));
      if (out == 0 || k == 0 || stride == 0) return invalid_argument("layer '{}': sizes must be positive", spec);
      double fan_in = static_cast<double>(shape[0] * k * k);
      KILN_ASSIGN_OR_RETURN(ir::Value * w, b.constant("conv_w", {out, shape[0], k, k}, std::sqrt(6.0 / fan_in)));
      KILN_ASSIGN_OR_RETURN(ir::Value * bias, b.constant("conv_b", {out}, 0));
      KILN_ASSIGN_OR_RETURN(x, b.node("Conv", {x, w, bias},
                                      {A::make_ints("kernel_shape", {k, k}), A::make_ints("strides", {stride, stride}),
                                       A::make_ints("pads", {pad, pad, pad, pad})}));
      int64_t oh = (shape[1] + 2 * pad - k) / stride + 1;
      int64_t ow = (shape[2] + 2 * pad - k) / stride + 1;
      if (shape[1] + 2 * pad < k || shape[2] + 2 * pad < k) return invalid_argument("layer '{}': kernel larger than input", spec);
      shape = {out, oh, ow};
    } else if (kind == "linear") {
      if (shape.size() != 1) return invalid_argument("layer '{}' needs a flat [F] input (add 'flatten')", spec);
      KILN_ASSIGN_OR_RETURN(int64_t out, int_field(f, 1, -1, spec));
      if (out == 0) return invalid_argument("layer '{}': size must be positive", spec);
      KILN_ASSIGN_OR_RETURN(ir::Value * w, b.constant("fc_w", {out, shape[0]}, std::sqrt(6.0 / static_cast<double>(shape[0]))));
      KILN_ASSIGN_OR_RETURN(ir::Value * bias, b.constant("fc_b", {out}, 0));
      KILN_ASSIGN_OR_RETURN(x, b.node("Gemm", {x, w, bias}, {A::make_int("transB", 1)}));
      shape = {out};
    } else if (kind == "bn") {
      int64_t c = shape[0];
      KILN_ASSIGN_OR_RETURN(ir::Value * scale, b.constant("bn_scale", {c}, 0, 1.0f));
      KILN_ASSIGN_OR_RETURN(ir::Value * bias, b.constant("bn_bias", {c}, 0));
      KILN_ASSIGN_OR_RETURN(ir::Value * mean, b.constant("bn_mean", {c}, 0));
      KILN_ASSIGN_OR_RETURN(ir::Value * var, b.constant("bn_var", {c}, 0, 1.0f));
      KILN_ASSIGN_OR_RETURN(x, b.node("BatchNormalization", {x, scale, bias, mean, var},
                                      {A::make_float("epsilon", 1e-5f), A::make_float("momentum", 0.9f)}));
    } else if (kind == "layernorm") {
      int64_t c = shape.back();
      KILN_ASSIGN_OR_RETURN(ir::Value * scale, b.constant("ln_scale", {c}, 0, 1.0f));
      KILN_ASSIGN_OR_RETURN(ir::Value * bias, b.constant("ln_bias", {c}, 0));
      KILN_ASSIGN_OR_RETURN(x, b.node("LayerNormalization", {x, scale, bias}, {A::make_int("axis", -1)}));
    } else if (kind == "relu" || kind == "gelu" || kind == "tanh" || kind == "sigmoid") {
      const char* op = kind == "relu" ? "Relu" : kind == "gelu" ? "Gelu" : kind == "tanh" ? "Tanh" : "Sigmoid";
      KILN_ASSIGN_OR_RETURN(x, b.node(op, {x}, {}));
    } else if (kind == "maxpool" || kind == "avgpool") {
      if (shape.size() != 3) return invalid_argument("layer '{}' needs [C, H, W] input", spec);
      KILN_ASSIGN_OR_RETURN(int64_t k, int_field(f, 1, -1, spec));
      KILN_ASSIGN_OR_RETURN(int64_t stride, int_field(f, 2, k, spec));
      if (k == 0 || stride == 0 || k > shape[1] || k > shape[2]) return invalid_argument("layer '{}': bad window", spec);
      KILN_ASSIGN_OR_RETURN(x, b.node(kind == "maxpool" ? "MaxPool" : "AveragePool", {x},
                                      {A::make_ints("kernel_shape", {k, k}), A::make_ints("strides", {stride, stride})}));
      shape = {shape[0], (shape[1] - k) / stride + 1, (shape[2] - k) / stride + 1};
    } else if (kind == "gap") {
      if (shape.size() < 2) return invalid_argument("layer '{}' needs spatial input", spec);
      KILN_ASSIGN_OR_RETURN(x, b.node("GlobalAveragePool", {x}, {}));
      for (size_t i = 1; i < shape.size(); ++i) shape[i] = 1;
    } else if (kind == "flatten") {
      KILN_ASSIGN_OR_RETURN(x, b.node("Flatten", {x}, {A::make_int("axis", 1)}));
      int64_t n = 1;
      for (int64_t d : shape) n *= d;
      shape = {n};
    } else if (kind == "dropout") {
      if (f.size() != 2) return invalid_argument("layer '{}' needs a ratio (dropout:0.1)", spec);
      float ratio = 0;
      try {
        ratio = std::stof(f[1]);
      } catch (const std::exception&) {
        return invalid_argument("layer '{}': bad ratio", spec);
      }
      if (!(ratio >= 0 && ratio < 1)) return invalid_argument("layer '{}': ratio must be in [0, 1)", spec);
      KILN_ASSIGN_OR_RETURN(ir::Value * r, b.g().add_constant(b.g().unique_name("dropout_ratio"),
                                                              Tensor::scalar(DataType::kFloat32, ratio)));
      KILN_ASSIGN_OR_RETURN(x, b.node("Dropout", {x, r}, {}));
    } else {
      return invalid_argument("unknown layer '{}'", spec);
    }
  }
  std::vector<Dim> out_shape = {Dim::sym("N")};
  for (int64_t d : shape) out_shape.emplace_back(d);
  x->set_type(ir::ValueType::tensor(DataType::kFloat32, Shape(out_shape)));
  b.g().add_output(x);
  KILN_RETURN_IF_ERROR(b.g().verify());
  return b.model_;
}

}  // namespace kiln::train
