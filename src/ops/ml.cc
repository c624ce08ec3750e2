// Op family: ai.onnx.ml operators (their own opset numbers, 1..5).
// LabelEncoder, ArrayFeatureExtractor and Binarizer here; TreeEnsemble in
// ml_tree.cc.
#include <cmath>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "ops/families.h"
#include "ops/ml_tree.h"
#include "ops/op_util.h"
#include "ops/registry.h"

namespace kiln::ops {
namespace {

constexpr std::string_view kMlDomain = "ai.onnx.ml";

const Shape* known_shape(const InferContext& ctx, size_t i) {
  const ir::ValueType& t = ctx.input_type(i);
  return t.is_tensor() && t.shape.rank_known() ? &t.shape : nullptr;
}

DataType input_dtype(const InferContext& ctx, size_t i) {
  const ir::ValueType& t = ctx.input_type(i);
  return t.is_tensor() ? t.dtype : DataType::kUndefined;
}

// ---- LabelEncoder ---------------------------------------------------------------

// The keys of a LabelEncoder in the one form its input is compared in.
struct LabelKeys {
  enum class Kind { kString, kInt, kFloat } kind = Kind::kString;
  std::vector<std::string> strings;
  std::vector<int64_t> ints;
  std::vector<double> floats;
  size_t size() const { return kind == Kind::kString ? strings.size() : kind == Kind::kInt ? ints.size() : floats.size(); }
};

// Keys, values (a 1-D tensor of the output type, one per key) and the
// default (one element of the output type) of one node.
struct LabelTable {
  LabelKeys keys;
  Tensor values;
  Tensor fallback;
};

Tensor string_tensor(const std::vector<std::string>& v) {
  Tensor t = Tensor::empty(DataType::kString, {static_cast<int64_t>(v.size())});
  for (size_t i = 0; i < v.size(); ++i) t.data<std::string>()[i] = v[i];
  return t;
}
Tensor int64_tensor(const std::vector<int64_t>& v) {
  Tensor t = Tensor::empty(DataType::kInt64, {static_cast<int64_t>(v.size())});
  for (size_t i = 0; i < v.size(); ++i) t.data<int64_t>()[i] = v[i];
  return t;
}
Tensor float_tensor(const std::vector<float>& v) {
  Tensor t = Tensor::empty(DataType::kFloat32, {static_cast<int64_t>(v.size())});
  for (size_t i = 0; i < v.size(); ++i) t.data<float>()[i] = v[i];
  return t;
}

Result<LabelKeys> keys_from_tensor(const Tensor& t) {
  LabelKeys k;
  if (t.dtype() == DataType::kString) {
    k.kind = LabelKeys::Kind::kString;
    k.strings.assign(t.data<std::string>(), t.data<std::string>() + t.numel());
  } else if (is_integer(t.dtype())) {
    k.kind = LabelKeys::Kind::kInt;
    KILN_ASSIGN_OR_RETURN(Tensor i64, cast_tensor(t, DataType::kInt64));
    k.ints.assign(i64.data<int64_t>(), i64.data<int64_t>() + i64.numel());
  } else if (is_floating(t.dtype())) {
    k.kind = LabelKeys::Kind::kFloat;
    KILN_ASSIGN_OR_RETURN(Tensor f64, to_float64(t));
    k.floats.assign(f64.data<double>(), f64.data<double>() + f64.numel());
  } else {
    return invalid_argument("keys_tensor has unsupported element type {}", data_type_name(t.dtype()));
  }
  return k;
}

// The default output when values_tensor is given without default_tensor.
Tensor typed_default(DataType dtype) {
  Tensor t = Tensor::empty(dtype, {});
  if (dtype == DataType::kString) {
    t.data<std::string>()[0] = "_Unused";
    return t;
  }
  auto v = cast_tensor(Tensor::scalar<double>(DataType::kFloat64, is_integer(dtype) ? -1.0 : -0.0), dtype);
  return v.is_ok() ? *v : t;
}

// LabelEncoder-1 maps strings to their index in classes_strings (else
// default_int64) or indices back to strings (else default_string).
LabelTable legacy_table(const ir::Node& node, DataType input) {
  std::vector<std::string> classes = node.attr_strings("classes_strings");
  std::vector<int64_t> indices(classes.size());
  for (size_t i = 0; i < classes.size(); ++i) indices[i] = static_cast<int64_t>(i);
  LabelTable t;
  if (input == DataType::kString) {
    t.keys.kind = LabelKeys::Kind::kString;
    t.keys.strings = classes;
    t.values = int64_tensor(indices);
    t.fallback = int64_tensor({node.attr_int("default_int64", -1)});
  } else {
    t.keys.kind = LabelKeys::Kind::kInt;
    t.keys.ints = indices;
    t.values = string_tensor(classes);
    t.fallback = string_tensor({node.attr_string("default_string", "_Unused")});
  }
  return t;
}

Result<LabelTable> label_table(const ir::Node& node, DataType input) {
  const std::string where = node.describe();
  if (node.opset() < 2) return legacy_table(node, input);
  LabelTable t;
  int num_keys = 0;
  int num_values = 0;
  if (node.has_attr("keys_strings")) {
    ++num_keys;
    t.keys.kind = LabelKeys::Kind::kString;
    t.keys.strings = node.attr_strings("keys_strings");
  }
  if (node.has_attr("keys_int64s")) {
    ++num_keys;
    t.keys.kind = LabelKeys::Kind::kInt;
    t.keys.ints = node.attr_ints("keys_int64s");
  }
  if (node.has_attr("keys_floats")) {
    ++num_keys;
    t.keys.kind = LabelKeys::Kind::kFloat;
    for (float f : node.attr_floats("keys_floats")) t.keys.floats.push_back(f);
  }
  if (const Tensor* kt = node.attr_tensor("keys_tensor"); kt != nullptr && node.opset() >= 4) {
    ++num_keys;
    auto k = keys_from_tensor(*kt);
    if (!k.is_ok()) return k.status().with_context(where);
    t.keys = std::move(k).value();
  }
  if (node.has_attr("values_strings")) {
    ++num_values;
    t.values = string_tensor(node.attr_strings("values_strings"));
    t.fallback = string_tensor({node.attr_string("default_string", "_Unused")});
  }
  if (node.has_attr("values_int64s")) {
    ++num_values;
    t.values = int64_tensor(node.attr_ints("values_int64s"));
    t.fallback = int64_tensor({node.attr_int("default_int64", -1)});
  }
  if (node.has_attr("values_floats")) {
    ++num_values;
    t.values = float_tensor(node.attr_floats("values_floats"));
    t.fallback = float_tensor({node.attr_float("default_float", -0.0f)});
  }
  if (const Tensor* vt = node.attr_tensor("values_tensor"); vt != nullptr && node.opset() >= 4) {
    ++num_values;
    t.values = *vt;
    t.fallback = typed_default(vt->dtype());
  }
  if (num_keys != 1 || num_values != 1) {
    return invalid_argument("{}: exactly one keys_* and one values_* attribute must be set (got {} and {})", where,
                            num_keys, num_values);
  }
  if (const Tensor* dt = node.attr_tensor("default_tensor"); dt != nullptr && node.opset() >= 4) {
    if (dt->dtype() != t.values.dtype() || dt->numel() != 1) {
      return invalid_argument("{}: default_tensor must hold one {}, got {}", where, data_type_name(t.values.dtype()),
                              dt->debug_string());
    }
    t.fallback = *dt;
  }
  if (static_cast<int64_t>(t.keys.size()) != t.values.numel()) {
    return invalid_argument("{}: {} keys but {} values", where, t.keys.size(), t.values.numel());
  }
  return t;
}

// For each element of x, the index of its key in `keys` (the last one when a
// key repeats) or -1.
Result<std::vector<int64_t>> lookup_keys(const LabelKeys& keys, const Tensor& x) {
  std::vector<int64_t> found(static_cast<size_t>(x.numel()), -1);
  switch (keys.kind) {
    case LabelKeys::Kind::kString: {
      if (x.dtype() != DataType::kString) break;
      std::unordered_map<std::string, int64_t> index;
      for (size_t k = 0; k < keys.strings.size(); ++k) index[keys.strings[k]] = static_cast<int64_t>(k);
      for (int64_t i = 0; i < x.numel(); ++i) {
        auto it = index.find(x.data<std::string>()[i]);
        if (it != index.end()) found[static_cast<size_t>(i)] = it->second;
      }
      return found;
    }
    case LabelKeys::Kind::kInt: {
      if (!is_integer(x.dtype())) break;
      std::unordered_map<int64_t, int64_t> index;
      for (size_t k = 0; k < keys.ints.size(); ++k) index[keys.ints[k]] = static_cast<int64_t>(k);
      KILN_ASSIGN_OR_RETURN(Tensor xi, cast_tensor(x, DataType::kInt64));
      for (int64_t i = 0; i < x.numel(); ++i) {
        auto it = index.find(xi.data<int64_t>()[i]);
        if (it != index.end()) found[static_cast<size_t>(i)] = it->second;
      }
      return found;
    }
    case LabelKeys::Kind::kFloat: {
      if (!is_floating(x.dtype())) break;
      // NaN keys match every NaN input, whatever its bits.
      std::unordered_map<double, int64_t> index;
      int64_t nan_index = -1;
      for (size_t k = 0; k < keys.floats.size(); ++k) {
        if (std::isnan(keys.floats[k])) {
          nan_index = static_cast<int64_t>(k);
        } else {
          index[keys.floats[k] == 0 ? 0.0 : keys.floats[k]] = static_cast<int64_t>(k);
        }
      }
      KILN_ASSIGN_OR_RETURN(Tensor xf, to_float64(x));
      for (int64_t i = 0; i < x.numel(); ++i) {
        const double v = xf.data<double>()[i];
        if (std::isnan(v)) {
          found[static_cast<size_t>(i)] = nan_index;
          continue;
        }
        auto it = index.find(v == 0 ? 0.0 : v);
        if (it != index.end()) found[static_cast<size_t>(i)] = it->second;
      }
      return found;
    }
  }
  static constexpr const char* kKindNames[] = {"string", "integer", "float"};
  return invalid_argument("input X is {} but the keys are {}", data_type_name(x.dtype()),
                          kKindNames[static_cast<int>(keys.kind)]);
}

Status label_encoder_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  KILN_ASSIGN_OR_RETURN(LabelTable table, label_table(ctx.node(), x->dtype()));
  auto found = lookup_keys(table.keys, *x);
  if (!found.is_ok()) return ctx.error(found.status());
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.allocate_output(0, table.values.dtype(), x->dims()));
  for (int64_t i = 0; i < x->numel(); ++i) {
    const int64_t k = (*found)[static_cast<size_t>(i)];
    if (k >= 0) {
      copy_elements(table.values, k, *y, i, 1);
    } else {
      copy_elements(table.fallback, 0, *y, i, 1);
    }
  }
  return Status::ok();
}

Status label_encoder_infer(InferContext& ctx) {
  // LabelEncoder-1's output type follows its input type.
  if (ctx.opset() < 2 && input_dtype(ctx, 0) == DataType::kUndefined) return Status::ok();
  KILN_ASSIGN_OR_RETURN(LabelTable table, label_table(ctx.node(), input_dtype(ctx, 0)));
  const Shape* x = known_shape(ctx, 0);
  ctx.set_output_type(0, ir::ValueType::tensor(table.values.dtype(), x != nullptr ? *x : Shape()));
  return Status::ok();
}

// ---- ArrayFeatureExtractor --------------------------------------------------------

// Y[..., j] = X[..., indices[j]] over the flattened indices; a 1-D X gives [1, n].
Status array_feature_extractor_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  KILN_ASSIGN_OR_RETURN(const Tensor* ind, ctx.tensor_input(1));
  if (x->rank() < 1) return ctx.error(invalid_argument("input X must have rank >= 1, got a scalar"));
  if (ind->dtype() != DataType::kInt64) {
    return ctx.error(invalid_argument("input Y (indices) must be int64, got {}", data_type_name(ind->dtype())));
  }
  const int64_t c = x->dims().back();
  const int64_t n = ind->numel();
  for (int64_t j = 0; j < n; ++j) {
    const int64_t k = ind->data<int64_t>()[j];
    if (k < 0 || k >= c) {
      return ctx.error(out_of_range("index {} is out of range for the last dimension of X ({})", k, c));
    }
  }
  Dims out_dims = x->dims();
  if (x->rank() == 1) out_dims.insert(out_dims.begin(), 1);
  out_dims.back() = n;
  const int64_t rows = c == 0 ? 0 : x->numel() / c;
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.allocate_output(0, x->dtype(), out_dims));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < n; ++j) copy_elements(*x, r * c + ind->data<int64_t>()[j], *y, r * n + j, 1);
  }
  return Status::ok();
}

Status array_feature_extractor_infer(InferContext& ctx) {
  const Shape* x = known_shape(ctx, 0);
  const Shape* ind = known_shape(ctx, 1);
  Shape out;
  if (x != nullptr && x->rank() >= 1) {
    std::vector<Dim> dims = x->dims();
    if (dims.size() == 1) dims.insert(dims.begin(), Dim(1));
    dims.back() = Dim();
    if (ind != nullptr && ind->fully_known()) {
      int64_t n = 1;
      for (const Dim& d : ind->dims()) n *= d.value;
      dims.back() = Dim(n);
    }
    out = Shape(dims);
  }
  ctx.set_output_type(0, ir::ValueType::tensor(input_dtype(ctx, 0), out));
  return Status::ok();
}

// ---- Binarizer ----------------------------------------------------------------------

Status binarizer_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  const double threshold = ctx.node().attr_float("threshold", 0.0f);
  const DataType t = x->dtype();
  if (t != DataType::kFloat32 && t != DataType::kFloat64 && t != DataType::kInt64 && t != DataType::kInt32) {
    return ctx.error(invalid_argument("input X must be float, double, int64 or int32, got {}", data_type_name(t)));
  }
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.allocate_output(0, t, x->dims()));
  return visit_numeric(t, "Binarizer", [&](auto tag) -> Status {
    using T = decltype(tag);
    for (int64_t i = 0; i < x->numel(); ++i) {
      y->data<T>()[i] = static_cast<double>(x->data<T>()[i]) > threshold ? T(1) : T(0);
    }
    return Status::ok();
  });
}

Status same_type_infer(InferContext& ctx) {
  ctx.set_output_type(0, ctx.input_type(0));
  return Status::ok();
}

}  // namespace

void register_ml(Registry& r) {
  r.add({.name = "LabelEncoder", .domain = kMlDomain, .since_version = 1, .min_inputs = 1, .max_inputs = 1,
         .kernel = label_encoder_kernel, .infer = label_encoder_infer});
  r.add({.name = "ArrayFeatureExtractor", .domain = kMlDomain, .since_version = 1, .min_inputs = 2,
         .max_inputs = 2, .kernel = array_feature_extractor_kernel, .infer = array_feature_extractor_infer});
  r.add({.name = "Binarizer", .domain = kMlDomain, .since_version = 1, .min_inputs = 1, .max_inputs = 1,
         .kernel = binarizer_kernel, .infer = same_type_infer});
  register_tree_ensemble(r);
}

}  // namespace kiln::ops
