#include "train/loss_scaler.h"

#include <algorithm>
#include <cmath>

namespace kiln::train {

bool LossScaler::unscale(std::span<Param> params) const {
  bool found_inf = false;
  const double inv = 1.0 / scale_;
  for (Param& p : params) {
    if (!p.grad.defined()) continue;
    for (float& g : p.grad.span<float>()) {
      if (!std::isfinite(g)) found_inf = true;
      g = static_cast<float>(g * inv);
    }
  }
  return found_inf;
}

void LossScaler::update(bool found_inf) {
  if (found_inf) ++skipped_;
  if (!config_.dynamic) return;
  if (found_inf) {
    scale_ = std::max(scale_ * config_.backoff_factor, config_.min_scale);
    growth_tracker_ = 0;
    return;
  }
  if (++growth_tracker_ >= config_.growth_interval) {
    scale_ *= config_.growth_factor;
    growth_tracker_ = 0;
  }
}

void LossScaler::restore(double scale, int64_t growth_tracker, int64_t skipped) {
  scale_ = scale;
  growth_tracker_ = growth_tracker;
  skipped_ = skipped;
}

}  // namespace kiln::train
