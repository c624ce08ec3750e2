#include "server/warmup.h"

#include <filesystem>
#include <fstream>
#include <future>
#include <random>
#include <sstream>

#include "core/error.h"
#include "core/logging.h"
#include "server/model.h"
#include "server/tensor_codec.h"
#include "server/types.h"

namespace kiln::server {
namespace {

template <class T>
void fill_random(Tensor& t, std::mt19937& rng) {
  T* p = t.data<T>();
  if constexpr (std::is_floating_point_v<T>) {
    std::uniform_real_distribution<T> dist(-1, 1);
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = dist(rng);
  } else {
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<T>(rng() % 100);
  }
}

Status randomize(Tensor& t, std::mt19937& rng) {
  switch (t.dtype()) {
    case DataType::kFloat32: fill_random<float>(t, rng); break;
    case DataType::kFloat64: fill_random<double>(t, rng); break;
    case DataType::kInt8: fill_random<int8_t>(t, rng); break;
    case DataType::kInt16: fill_random<int16_t>(t, rng); break;
    case DataType::kInt32: fill_random<int32_t>(t, rng); break;
    case DataType::kInt64: fill_random<int64_t>(t, rng); break;
    case DataType::kUInt8: fill_random<uint8_t>(t, rng); break;
    case DataType::kUInt16: fill_random<uint16_t>(t, rng); break;
    case DataType::kUInt32: fill_random<uint32_t>(t, rng); break;
    case DataType::kUInt64: fill_random<uint64_t>(t, rng); break;
    case DataType::kBool:
      for (int64_t i = 0; i < t.numel(); ++i) t.data<bool>()[i] = rng() % 2;
      break;
    case DataType::kString:
      for (int64_t i = 0; i < t.numel(); ++i) t.data<std::string>()[i] = std::to_string(rng() % 1000);
      break;
    default:
      break;  // FP16/BF16 stay zero: random bits could be NaN
  }
  return Status::ok();
}

Result<Tensor> warmup_input(const std::string& sample, const std::string& name,
                            const inference::ModelWarmup::Input& in, int64_t batch, const std::string& model_dir,
                            std::mt19937& rng) {
  std::optional<DataType> dtype = dtype_from_config(in.data_type());
  if (!dtype) return invalid_argument("warmup '{}' input '{}': unsupported data_type", sample, name);
  std::vector<int64_t> dims(in.dims().begin(), in.dims().end());
  if (batch > 0) dims.insert(dims.begin(), batch);
  KILN_RETURN_IF_ERROR(checked_request_numel(name, dims).status());
  if (in.input_data_type_case() == inference::ModelWarmup::Input::kInputDataFile) {
    const std::string& file = in.input_data_file();
    if (file.empty() || file.find('/') != std::string::npos || file == "..") {
      return invalid_argument("warmup '{}' input '{}': input_data_file '{}' must be a file name in warmup/", sample,
                              name, file);
    }
    std::filesystem::path path = std::filesystem::path(model_dir) / "warmup" / file;
    std::ifstream f(path, std::ios::binary);
    if (!f) return not_found("warmup '{}' input '{}': file '{}' not found", sample, name, path.string());
    std::stringstream bytes;
    bytes << f.rdbuf();
    if (batch <= 1) return tensor_from_raw(name, *dtype, dims, bytes.str());
    // The file holds one sample; repeat it for every row.
    std::string rows;
    for (int64_t b = 0; b < batch; ++b) rows += bytes.str();
    return tensor_from_raw(name, *dtype, dims, rows);
  }
  KILN_ASSIGN_OR_RETURN(Tensor t, Tensor::allocate(*dtype, dims));
  if (in.input_data_type_case() == inference::ModelWarmup::Input::kRandomData) KILN_RETURN_IF_ERROR(randomize(t, rng));
  return t;
}

}  // namespace

Status run_warmup(ModelVersion& model, const std::string& model_dir) {
  const auto& config = model.config();
  std::mt19937 rng(12345);
  for (const auto& sample : config.model_warmup()) {
    const int64_t batch = config.max_batch_size() > 0 ? std::max<int64_t>(1, sample.batch_size()) : 0;
    InferRequest request;
    request.model_name = config.name();
    request.id = "warmup:" + sample.name();
    for (const auto& [name, in] : sample.inputs()) {
      KILN_ASSIGN_OR_RETURN(Tensor t, warmup_input(sample.name(), name, in, batch, model_dir, rng));
      request.inputs.push_back({name, std::move(t)});
    }
    if (config.has_sequence_batching()) {
      request.sequence_id.number = 1;
      request.sequence_start = request.sequence_end = true;
    }
    const uint32_t count = std::max<uint32_t>(1, sample.count());
    for (uint32_t i = 0; i < count; ++i) {
      std::promise<Status> done;
      auto result = done.get_future();
      model.infer(request, [&done](Result<InferResponse> r) { done.set_value(r.status()); });
      Status st = result.get();
      if (!st.is_ok()) return st.with_context("warmup '" + sample.name() + "' of model '" + config.name() + "'");
    }
    KILN_LOG_INFO("model '{}': warmup '{}' ran {} time(s)", config.name(), sample.name(), count);
  }
  return Status::ok();
}

}  // namespace kiln::server
