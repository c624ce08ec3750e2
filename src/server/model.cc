#include "server/model.h"

#include <filesystem>

#include "core/error.h"
#include "core/logging.h"
#include "server/model_config.h"
#include "server/types.h"
#include "server/warmup.h"

namespace kiln::server {

Result<std::shared_ptr<ModelVersion>> ModelVersion::load(const std::string& model_dir, int64_t version,
                                                         inference::ModelConfig config, const ServingContext& context) {
  if (config.model_transaction_policy().decoupled()) {
    if (config.backend() != "python") {
      return invalid_argument("model '{}': only Python backend models can be decoupled (model_transaction_policy)",
                              config.name());
    }
    if (config.response_cache().enable()) {
      return invalid_argument("model '{}': response_cache cannot be enabled for a decoupled model", config.name());
    }
    if (config.has_sequence_batching()) {
      return invalid_argument("model '{}': Kiln does not run decoupled models under the sequence batcher",
                              config.name());
    }
  }
  if (config.response_cache().enable() && config.has_sequence_batching()) {
    return invalid_argument("model '{}': response_cache cannot be enabled for a sequence (stateful) model",
                            config.name());
  }
  KILN_ASSIGN_OR_RETURN(std::shared_ptr<const OutputLabels> labels, read_output_labels(config, model_dir));
  if (config.platform() == "ensemble") {
    if (!config.has_version_policy()) config.mutable_version_policy()->mutable_latest()->set_num_versions(1);
    std::shared_ptr<ModelVersion> mv(new ModelVersion());
    mv->config_ = std::move(config);
    mv->version_ = version;
    mv->version_string_ = std::to_string(version);
    mv->stats_ = std::make_shared<ModelStats>();
    mv->labels_ = labels;
    KILN_ASSIGN_OR_RETURN(mv->ensemble_,
                          Ensemble::create(mv->config_, mv->version_string_, context.resolver, mv->stats_));
    if (mv->config_.response_cache().enable()) mv->cache_ = context.cache;
    return mv;
  }
  std::string dir = (std::filesystem::path(model_dir) / std::to_string(version)).string();
  InferFn infer;  // business logic scripting: the Python backend's InferenceRequest.exec()
  if (context.resolver) {
    infer = [resolver = context.resolver](InferRequest request, InferCallback done) {
      auto model = resolver(request.model_name, request.model_version);
      if (!model.is_ok()) return done(model.status());
      model.value()->infer(std::move(request), std::move(done));
    };
  }
  // Where the instances run decides how the model loads (CPU plan, GPU engines or both).
  const inference::ModelConfig written = config;
  KILN_RETURN_IF_ERROR(normalize_instance_groups(config, visible_gpus()));
  auto loaded = load_placed(dir, model_dir, version, config, context, labels, infer);
  if (!loaded.is_ok() && config.backend() != "python" && gpu_chosen_by_default(written, config)) {
    // The config did not ask for a GPU: a model the GPU engine cannot run serves from the CPU.
    KILN_LOG_WARN("model '{}' runs on the CPU: {}", config.name(), loaded.status().message());
    config = written;
    KILN_RETURN_IF_ERROR(normalize_instance_groups(config, GpuInventory{0, "the GPU engine cannot run the model"}));
    loaded = load_placed(dir, model_dir, version, config, context, labels, infer);
  }
  return loaded;
}

Result<std::shared_ptr<ModelVersion>> ModelVersion::load_placed(const std::string& dir, const std::string& model_dir,
                                                                int64_t version, inference::ModelConfig config,
                                                                const ServingContext& context,
                                                                std::shared_ptr<const OutputLabels> labels,
                                                                InferFn infer) {
  KILN_ASSIGN_OR_RETURN(auto backend, load_backend(dir, config, std::move(infer)));
  KILN_RETURN_IF_ERROR(complete_config(config, *backend, context.auto_complete));
  std::shared_ptr<ModelVersion> mv(new ModelVersion());
  mv->config_ = std::move(config);
  mv->version_ = version;
  mv->version_string_ = std::to_string(version);
  mv->backend_ = std::move(backend);
  mv->stats_ = std::make_shared<ModelStats>();
  mv->labels_ = labels;
  if (mv->config_.has_sequence_batching()) {
    KILN_ASSIGN_OR_RETURN(
        mv->sequencer_, SequenceBatcher::create(mv->config_, mv->version_string_, model_dir, mv->backend_, mv->stats_));
    mv->sequencer_->set_rate_limiter(context.limiter);
    KILN_RETURN_IF_ERROR(mv->sequencer_->start());
  } else {
    mv->scheduler_ = std::make_unique<Scheduler>(mv->config_, mv->version_string_, mv->backend_, mv->stats_);
    mv->scheduler_->set_rate_limiter(context.limiter);
    KILN_RETURN_IF_ERROR(mv->scheduler_->start());
  }
  if (mv->config_.response_cache().enable()) {
    if (!context.cache) {
      KILN_LOG_WARN("model '{}' enables response_cache but the server has no cache (--cache-config local,size=N)",
                    mv->config_.name());
    }
    mv->cache_ = context.cache;
  }
  KILN_RETURN_IF_ERROR(run_warmup(*mv, model_dir));
  return mv;
}

ModelVersion::~ModelVersion() { stop(); }

void ModelVersion::stop() {
  if (scheduler_) scheduler_->stop();
  if (sequencer_) sequencer_->stop();
  if (ensemble_) ensemble_->stop();
}

Result<int64_t> ModelVersion::validate(InferRequest& request) const {
  const int max_batch = config_.max_batch_size();
  int64_t batch = -1;
  std::vector<InferInput> ordered;
  ordered.reserve(request.inputs.size());
  for (const auto& in : request.inputs) {
    int matches = 0;
    for (const auto& other : request.inputs) matches += other.name == in.name;
    if (matches > 1) return invalid_argument("input '{}' appears more than once in the request", in.name);
    bool known = false;
    for (const auto& cfg : config_.input()) known = known || cfg.name() == in.name;
    if (!known) {
      return invalid_argument("unexpected inference input '{}' for model '{}'", in.name, name());
    }
  }
  for (const auto& cfg : config_.input()) {
    auto it = std::find_if(request.inputs.begin(), request.inputs.end(),
                           [&](const InferInput& in) { return in.name == cfg.name(); });
    if (it == request.inputs.end()) {
      if (cfg.optional()) continue;
      return invalid_argument("expected {} inputs but got {} inputs for model '{}': input '{}' is missing",
                              config_.input_size(), request.inputs.size(), name(), cfg.name());
    }
    const Tensor& t = it->tensor;
    std::optional<DataType> want = dtype_from_config(cfg.data_type());
    if (!want || t.dtype() != *want) {
      return invalid_argument("inference input '{}' data-type is '{}', but model '{}' expects '{}'", cfg.name(),
                              protocol_dtype_name(t.dtype()), name(),
                              want ? protocol_dtype_name(*want) : std::string_view("?"));
    }
    std::vector<int64_t> expected(cfg.dims().begin(), cfg.dims().end());
    std::vector<int64_t> got(t.dims().begin(), t.dims().end());
    if (max_batch > 0) {
      if (got.empty()) {
        return invalid_argument("inference input '{}' of model '{}' needs a batch dimension, got shape []", cfg.name(),
                                name());
      }
      int64_t b = got[0];
      if (b < 1 || b > max_batch) {
        return invalid_argument("inference request batch-size must be <= {} for '{}' (input '{}' has batch {})",
                                max_batch, name(), cfg.name(), b);
      }
      if (batch >= 0 && b != batch) {
        return invalid_argument("inputs of model '{}' disagree on the batch size ({} and {})", name(), batch, b);
      }
      batch = b;
      got.erase(got.begin());
    }
    bool ok = got.size() == expected.size();
    for (size_t i = 0; ok && i < got.size(); ++i) ok = expected[i] < 0 || expected[i] == got[i];
    if (!ok) {
      std::vector<int64_t> shown = expected;
      if (max_batch > 0) shown.insert(shown.begin(), -1);
      return invalid_argument("unexpected shape for input '{}' for model '{}'. Expected {}, got {}", cfg.name(), name(),
                              shape_string(shown), shape_string({t.dims().begin(), t.dims().end()}));
    }
    ordered.push_back(std::move(*it));
  }
  for (const std::string& out : request.requested_outputs) {
    bool known = false;
    for (const auto& cfg : config_.output()) known = known || cfg.name() == out;
    if (!known) return invalid_argument("unexpected inference output '{}' for model '{}'", out, name());
  }
  request.inputs = std::move(ordered);
  return max_batch > 0 ? batch : 1;
}

void ModelVersion::infer(InferRequest request, InferCallback done) {
  if (config_.model_transaction_policy().decoupled() && !request.partial) {
    stats_->record_failure(FailureReason::kOther, 0);
    return done(unimplemented(
        "model '{}' uses the decoupled transaction policy: only a stream (gRPC ModelStreamInfer) carries its "
        "responses; neither the HTTP end point nor the ModelInfer RPC supports it",
        name()));
  }
  auto batch = validate(request);
  if (!batch.is_ok()) {
    stats_->record_failure(FailureReason::kOther, 0);
    done(batch.status());
    return;
  }
  int64_t rows = batch.value() < 1 ? 1 : batch.value();
  if (!request.output_classes.empty()) {
    // Outermost, so that the response cache keeps the values and a hit is classified too.
    done = [classes = request.output_classes, batched = config_.max_batch_size() > 0, labels = labels_,
            done = std::move(done)](Result<InferResponse> result) mutable {
      if (result.is_ok()) {
        for (InferOutput& out : result.value().outputs) {
          auto k = classes.find(out.name);
          if (k == classes.end()) continue;
          auto l = labels->find(out.name);
          auto top = classify(out.name, out.tensor, k->second, batched, l == labels->end() ? nullptr : &l->second);
          if (!top.is_ok()) return done(top.status());
          out.tensor = std::move(top).value();
        }
      }
      done(std::move(result));
    };
  }
  if (cache_) {
    const Clock::time_point start = Clock::now();
    std::string key = ResponseCache::key(request, version_string_);
    if (auto hit = cache_->lookup(key)) {
      InferResponse resp;
      resp.model_name = name();
      resp.model_version = version_string_;
      resp.id = request.id;
      resp.outputs = std::move(*hit);
      const Clock::time_point now = Clock::now();
      auto ns = [](Clock::duration d) { return static_cast<uint64_t>(std::chrono::nanoseconds(d).count()); };
      stats_->cache_hit.add(1, ns(now - start));
      stats_->record_success(ns(now - request.arrival), 0);
      return done(std::move(resp));
    }
    stats_->cache_miss.add(1, static_cast<uint64_t>(std::chrono::nanoseconds(Clock::now() - start).count()));
    done = [cache = cache_, key = std::move(key), done = std::move(done)](Result<InferResponse> result) {
      if (result.is_ok()) cache->insert(key, result.value().outputs);
      done(std::move(result));
    };
  }
  if (sequencer_) return sequencer_->enqueue(std::move(request), rows, std::move(done));
  if (ensemble_) return ensemble_->infer(std::move(request), std::move(done));
  scheduler_->enqueue(std::move(request), rows, std::move(done));
}

}  // namespace kiln::server
