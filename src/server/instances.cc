#include "server/instances.h"

#include <algorithm>
#include <string>

#include "core/error.h"
#include "server/batching.h"

namespace kiln::server {

Result<InstanceSet> create_instances(const inference::ModelConfig& config, const ModelBackend& backend,
                                     RateLimiter* limiter) {
  InstanceSet set;
  std::vector<InstancePlacement> placements;
  for (const auto& group : config.instance_group()) {
    ResourceNeeds needs;
    if (limiter != nullptr) {
      for (const auto& r : group.rate_limiter().resources()) needs[r.name()] += r.count();
      KILN_RETURN_IF_ERROR(limiter->declare(needs));
    }
    InstancePlacement where;
    where.group = group.name();
    std::vector<int> devices = {0};
    if (group.kind() == inference::ModelInstanceGroup::KIND_GPU) {
      where.gpu = true;
      // count instances on EACH listed GPU (normalize_instance_groups lists them; GPU 0 if not)
      if (group.gpus_size() > 0) devices.assign(group.gpus().begin(), group.gpus().end());
    }
    where.index = 0;
    for (int device : devices) {
      where.device = device;
      for (int i = 0; i < std::max(1, group.count()); ++i, ++where.index) {
        placements.push_back(where);
        set.needs.push_back(needs);
        set.priority.push_back(group.rate_limiter().priority());
      }
    }
  }
  // A config without instance_group still gets one (CPU) instance.
  if (placements.empty()) {
    placements.emplace_back();
    set.needs.resize(1);
    set.priority.resize(1);
  }
  for (const InstancePlacement& where : placements) {
    set.instances.push_back(backend.create_instance(where));
    if (Status st = set.instances.back()->ready(); !st.is_ok()) {
      if (!where.gpu) return st;
      return Status(st.code(), fmt::format("model '{}': instance_group '{}' on gpu {}: {}", config.name(),
                                           where.group, where.device, st.message()));
    }
  }
  return set;
}

Result<Tensor> shape_input(const inference::ModelConfig& config, const std::string& name, bool batched, int64_t rows,
                           Tensor t) {
  for (const auto& cfg : config.input()) {
    if (cfg.name() != name || !cfg.has_reshape()) continue;
    std::vector<int64_t> dims(cfg.reshape().shape().begin(), cfg.reshape().shape().end());
    if (batched) dims.insert(dims.begin(), rows);
    auto r = reshape_to(t, dims);
    if (!r.is_ok()) return r.status().with_context("input '" + name + "'");
    t = std::move(r).value();
  }
  return t;
}

Status shape_outputs(const inference::ModelConfig& config, std::string_view model, bool batched, int64_t rows,
                     NamedTensors& outputs) {
  for (auto& [name, tensor] : outputs) {
    for (const auto& cfg : config.output()) {
      if (cfg.name() != name || !cfg.has_reshape()) continue;
      std::vector<int64_t> dims(cfg.dims().begin(), cfg.dims().end());
      if (batched) dims.insert(dims.begin(), rows);
      auto r = reshape_to(tensor, dims);
      if (!r.is_ok()) return r.status().with_context("output '" + name + "'");
      tensor = std::move(r).value();
    }
    if (batched && (tensor.rank() < 1 || tensor.dim(0) != rows)) {
      return internal_error("model '{}' output '{}' has shape {} but the batch has {} rows", model, name,
                            tensor.debug_string(), rows);
    }
  }
  return Status::ok();
}

}  // namespace kiln::server
