#include "server/classification.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <filesystem>
#include <fstream>
#include <numeric>

#include "core/error.h"
#include "core/float_types.h"

namespace kiln::server {
namespace {

// Element i of a numeric tensor as double (exact for every type but the
// largest 64-bit integers, which only rank ties differently), and its text.
struct Numeric {
  const Tensor& t;
  double value(int64_t i) const {
    switch (t.dtype()) {
      case DataType::kFloat32: return t.data<float>()[i];
      case DataType::kFloat64: return t.data<double>()[i];
      case DataType::kFloat16: return Float16::to_float(t.data<uint16_t>()[i]);
      case DataType::kBFloat16: return BFloat16::to_float(t.data<uint16_t>()[i]);
      case DataType::kInt8: return t.data<int8_t>()[i];
      case DataType::kInt16: return t.data<int16_t>()[i];
      case DataType::kInt32: return t.data<int32_t>()[i];
      case DataType::kInt64: return static_cast<double>(t.data<int64_t>()[i]);
      case DataType::kUInt8: return t.data<uint8_t>()[i];
      case DataType::kUInt16: return t.data<uint16_t>()[i];
      case DataType::kUInt32: return t.data<uint32_t>()[i];
      case DataType::kUInt64: return static_cast<double>(t.data<uint64_t>()[i]);
      case DataType::kBool: return t.data<bool>()[i] ? 1.0 : 0.0;
      default: return 0.0;
    }
  }
  std::string text(int64_t i) const {
    switch (t.dtype()) {
      case DataType::kFloat32:
      case DataType::kFloat16:
      case DataType::kBFloat16: return std::to_string(static_cast<float>(value(i)));
      case DataType::kFloat64: return std::to_string(t.data<double>()[i]);
      case DataType::kInt64: return std::to_string(t.data<int64_t>()[i]);
      case DataType::kUInt64: return std::to_string(t.data<uint64_t>()[i]);
      default: return std::to_string(static_cast<int64_t>(value(i)));
    }
  }
};

bool classifiable(DataType d) {
  switch (d) {
    case DataType::kFloat32: case DataType::kFloat64: case DataType::kFloat16: case DataType::kBFloat16:
    case DataType::kInt8: case DataType::kInt16: case DataType::kInt32: case DataType::kInt64:
    case DataType::kUInt8: case DataType::kUInt16: case DataType::kUInt32: case DataType::kUInt64:
    case DataType::kBool:
      return true;
    default:
      return false;
  }
}

}  // namespace

Result<std::shared_ptr<const OutputLabels>> read_output_labels(const inference::ModelConfig& config,
                                                               const std::string& model_dir) {
  auto labels = std::make_shared<OutputLabels>();
  for (const auto& out : config.output()) {
    const std::string& file = out.label_filename();
    if (file.empty()) continue;
    if (file.find('/') != std::string::npos || file == "." || file == "..") {
      return invalid_argument("output '{}': label_filename '{}' must be a file name in the model folder", out.name(),
                              file);
    }
    const std::filesystem::path path = std::filesystem::path(model_dir) / file;
    std::ifstream in(path);
    if (!in) return not_found("output '{}': label file '{}' cannot be read", out.name(), path.string());
    std::vector<std::string>& lines = (*labels)[out.name()];
    for (std::string line; std::getline(in, line);) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      lines.push_back(std::move(line));
    }
  }
  return std::shared_ptr<const OutputLabels>(std::move(labels));
}

Result<Tensor> classify(const std::string& name, const Tensor& t, int64_t k, bool batched,
                        const std::vector<std::string>* labels) {
  if (!classifiable(t.dtype())) {
    return invalid_argument("output '{}': classification needs a numeric output, not {}", name,
                            data_type_name(t.dtype()));
  }
  if (k < 1) return invalid_argument("output '{}': classification count must be positive, got {}", name, k);
  const int64_t rows = batched ? (t.rank() > 0 ? t.dim(0) : 1) : 1;
  const int64_t per_row = rows > 0 ? t.numel() / rows : 0;
  const int64_t keep = std::min(k, per_row);
  Dims dims = batched ? Dims{rows, keep} : Dims{keep};
  KILN_ASSIGN_OR_RETURN(Tensor out, Tensor::allocate(DataType::kString, dims));
  const Numeric num{t};
  std::vector<int64_t> order(static_cast<size_t>(per_row));
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t base = r * per_row;
    std::iota(order.begin(), order.end(), int64_t{0});
    // NaN ranks below every number (a strict weak order even then).
    auto key = [&](int64_t i) {
      const double v = num.value(base + i);
      return std::isnan(v) ? -std::numeric_limits<double>::infinity() : v;
    };
    std::partial_sort(order.begin(), order.begin() + keep, order.end(), [&](int64_t a, int64_t b) {
      const double va = key(a), vb = key(b);
      return va > vb || (va == vb && a < b);
    });
    for (int64_t j = 0; j < keep; ++j) {
      const int64_t idx = order[static_cast<size_t>(j)];
      std::string s = num.text(base + idx) + ":" + std::to_string(idx);
      if (labels != nullptr && idx < static_cast<int64_t>(labels->size())) s += ":" + (*labels)[static_cast<size_t>(idx)];
      out.data<std::string>()[r * keep + j] = std::move(s);
    }
  }
  return out;
}

}  // namespace kiln::server
