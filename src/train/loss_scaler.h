// Dynamic loss scaling (Micikevicius et al., "Mixed Precision Training"):
// the loss gradient is multiplied by `scale` before backward so that small
// fp16 gradients do not flush to zero; the fp32 master gradients are divided
// by it again (unscale) before clipping and the optimizer step. A step whose
// gradients hold inf or NaN is skipped and the scale backed off; after
// `growth_interval` clean steps in a row the scale grows.
#pragma once

#include <cstdint>
#include <span>

#include "train/optimizer.h"

namespace kiln::train {

struct LossScalerConfig {
  double init_scale = 65536.0;  // 2^16
  double growth_factor = 2.0;
  double backoff_factor = 0.5;
  int64_t growth_interval = 2000;
  bool dynamic = true;          // false: a static scale, never changed
  double min_scale = 1.0 / 16777216.0;
};

class LossScaler {
 public:
  explicit LossScaler(const LossScalerConfig& config = {}) : config_(config), scale_(config.init_scale) {}

  double scale() const { return scale_; }
  // Multiplies every gradient by 1/scale in place and reports whether any
  // element (before or after) is inf or NaN.
  bool unscale(std::span<Param> params) const;
  // Records the outcome of one step: backs off on overflow, grows after a
  // run of clean steps.
  void update(bool found_inf);

  int64_t growth_tracker() const { return growth_tracker_; }
  int64_t skipped_steps() const { return skipped_; }
  const LossScalerConfig& config() const { return config_; }
  // Restores the state saved in a checkpoint.
  void restore(double scale, int64_t growth_tracker, int64_t skipped);

 private:
  LossScalerConfig config_;
  double scale_;
  int64_t growth_tracker_ = 0;
  int64_t skipped_ = 0;
};

}  // namespace kiln::train
