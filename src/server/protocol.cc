#include "server/protocol.h"

#include <algorithm>

#include "core/error.h"
#include "server/model_config.h"
#include "server/types.h"

namespace kiln::server {
namespace {

template <class Io>
void add_tensor_metadata(inference::ModelMetadataResponse::TensorMetadata* t, const Io& io, int max_batch) {
  t->set_name(io.name());
  std::optional<DataType> dtype = dtype_from_config(io.data_type());
  t->set_datatype(dtype ? std::string(protocol_dtype_name(*dtype)) : "INVALID");
  if (max_batch > 0) t->add_shape(-1);
  for (int64_t d : io.dims()) t->add_shape(d);
}

void set_duration(inference::StatisticDuration* d, const DurationStat& s) {
  d->set_count(s.count.load(std::memory_order_relaxed));
  d->set_ns(s.ns.load(std::memory_order_relaxed));
}

}  // namespace

Result<int64_t> parse_version(const std::string& text) {
  if (text.empty()) return int64_t{0};
  if (text.size() > 18 || !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return invalid_argument("model version '{}' is not a positive integer", text);
  }
  int64_t v = std::stoll(text);
  if (v <= 0) return invalid_argument("model version '{}' is not a positive integer", text);
  return v;
}

inference::ServerMetadataResponse server_metadata(const ServerCore& core) {
  inference::ServerMetadataResponse out;
  out.set_name(core.options().server_name);
  out.set_version(core.options().server_version);
  for (const auto& e : ServerCore::extensions()) out.add_extensions(e);
  return out;
}

Result<inference::ModelMetadataResponse> model_metadata(ServerCore& core, const std::string& name,
                                                        const std::string& version) {
  KILN_RETURN_IF_ERROR(check_model_name(name));
  KILN_ASSIGN_OR_RETURN(int64_t v, parse_version(version));
  KILN_ASSIGN_OR_RETURN(auto model, core.models().get(name, v));
  inference::ModelMetadataResponse out;
  out.set_name(name);
  for (const auto& mv : core.models().versions(name)) out.add_versions(mv->version_string());
  const auto& config = model->config();
  out.set_platform(!config.platform().empty() ? config.platform() : config.backend());
  for (const auto& in : config.input()) add_tensor_metadata(out.add_inputs(), in, config.max_batch_size());
  for (const auto& o : config.output()) add_tensor_metadata(out.add_outputs(), o, config.max_batch_size());
  return out;
}

Result<inference::ModelConfigResponse> model_config(ServerCore& core, const std::string& name,
                                                    const std::string& version) {
  KILN_RETURN_IF_ERROR(check_model_name(name));
  KILN_ASSIGN_OR_RETURN(int64_t v, parse_version(version));
  KILN_ASSIGN_OR_RETURN(auto model, core.models().get(name, v));
  inference::ModelConfigResponse out;
  *out.mutable_config() = model->config();
  return out;
}

Result<inference::ModelStatisticsResponse> model_statistics(ServerCore& core, const std::string& name,
                                                            const std::string& version) {
  std::vector<std::shared_ptr<ModelVersion>> models;
  if (name.empty()) {
    models = core.models().all_versions();
  } else {
    KILN_RETURN_IF_ERROR(check_model_name(name));
    KILN_ASSIGN_OR_RETURN(int64_t v, parse_version(version));
    if (v == 0) {
      models = core.models().versions(name);
      if (models.empty()) return not_found("Request for unknown model: '{}' is not found", name);
    } else {
      KILN_ASSIGN_OR_RETURN(auto m, core.models().get(name, v));
      models.push_back(m);
    }
  }
  inference::ModelStatisticsResponse out;
  for (const auto& m : models) {
    const ModelStats& s = m->stats();
    inference::ModelStatistics* ms = out.add_model_stats();
    ms->set_name(m->name());
    ms->set_version(m->version_string());
    ms->set_last_inference(s.last_inference_ms.load(std::memory_order_relaxed));
    ms->set_inference_count(s.inference_count.load(std::memory_order_relaxed));
    ms->set_execution_count(s.execution_count.load(std::memory_order_relaxed));
    auto* is = ms->mutable_inference_stats();
    set_duration(is->mutable_success(), s.success);
    set_duration(is->mutable_fail(), s.fail);
    set_duration(is->mutable_queue(), s.queue);
    set_duration(is->mutable_compute_input(), s.compute_input);
    set_duration(is->mutable_compute_infer(), s.compute_infer);
    set_duration(is->mutable_compute_output(), s.compute_output);
    set_duration(is->mutable_cache_hit(), s.cache_hit);
    set_duration(is->mutable_cache_miss(), s.cache_miss);
    for (const auto& [size, b] : s.batch_table()) {
      auto* bs = ms->add_batch_stats();
      bs->set_batch_size(size);
      bs->mutable_compute_input()->set_count(b.count);
      bs->mutable_compute_input()->set_ns(b.compute_input_ns);
      bs->mutable_compute_infer()->set_count(b.count);
      bs->mutable_compute_infer()->set_ns(b.compute_infer_ns);
      bs->mutable_compute_output()->set_count(b.count);
      bs->mutable_compute_output()->set_ns(b.compute_output_ns);
    }
  }
  return out;
}

inference::RepositoryIndexResponse repository_index(ServerCore& core, bool ready_only) {
  inference::RepositoryIndexResponse out;
  for (const auto& e : core.models().index(ready_only)) {
    auto* m = out.add_models();
    m->set_name(e.name);
    m->set_version(e.version);
    m->set_state(e.state);
    m->set_reason(e.reason);
  }
  return out;
}

bool model_ready(ServerCore& core, const std::string& name, const std::string& version) {
  if (!check_model_name(name).is_ok()) return false;
  auto v = parse_version(version);
  if (!v.is_ok()) return false;
  return core.models().get(name, v.value()).is_ok();
}

}  // namespace kiln::server
