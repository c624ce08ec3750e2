#include "quant/calibrator.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/error.h"

namespace kiln::quant {

std::string_view calibrator_name(Calibrator c) {
  switch (c) {
    case Calibrator::kEntropy:
      return "entropy";
    case Calibrator::kMinMax:
      return "minmax";
    case Calibrator::kPercentile:
      return "percentile";
  }
  return "?";
}

Result<Calibrator> parse_calibrator(std::string_view name) {
  if (name == "entropy") return Calibrator::kEntropy;
  if (name == "minmax") return Calibrator::kMinMax;
  if (name == "percentile") return Calibrator::kPercentile;
  return invalid_argument("unknown calibrator '{}' (entropy, minmax, percentile)", name);
}

Status TensorStats::observe_range(std::span<const float> values, const std::string& what) {
  for (size_t i = 0; i < values.size(); ++i) {
    const float v = values[i];
    if (!std::isfinite(v)) {
      return invalid_argument("calibration data gives {} at element {} of {}", std::isnan(v) ? "NaN" : "Inf", i, what);
    }
    if (count == 0 && i == 0) min = max = v;
    min = std::min<double>(min, v);
    max = std::max<double>(max, v);
  }
  count += static_cast<int64_t>(values.size());
  return Status::ok();
}

void TensorStats::observe_histogram(std::span<const float> values) {
  if (histogram.empty()) histogram.assign(kHistogramBins, 0.0);
  const double a = amax();
  if (!(a > 0)) {
    histogram[0] += static_cast<double>(values.size());
    return;
  }
  const double per_bin = kHistogramBins / a;
  for (float v : values) {
    // Exact zeros (the ReLU spike) are exact at every threshold: they say
    // nothing about where to clip, and a spike in bin 0 would drag the
    // entropy search to the smallest threshold.
    if (v == 0.0f) continue;
    const auto bin = static_cast<int64_t>(std::fabs(v) * per_bin);
    histogram[static_cast<size_t>(std::min<int64_t>(bin, kHistogramBins - 1))] += 1.0;
  }
}

double entropy_threshold(const std::vector<double>& histogram, double amax) {
  constexpr int kLevels = 128;
  const auto bins = static_cast<int>(histogram.size());
  const double total = std::accumulate(histogram.begin(), histogram.end(), 0.0);
  if (bins <= kLevels || !(amax > 0) || total <= 0) return amax;
  double best_kl = std::numeric_limits<double>::infinity();
  int best = bins;
  std::vector<double> p, q;
  for (int i = kLevels; i <= bins; ++i) {
    // P: the histogram clipped at bin i, the clipped mass in its last bin.
    p.assign(histogram.begin(), histogram.begin() + i);
    p[static_cast<size_t>(i - 1)] += std::accumulate(histogram.begin() + i, histogram.end(), 0.0);
    // Q: the unclipped bins merged into kLevels levels, each level's mass
    // spread evenly over its non-empty bins.
    q.assign(static_cast<size_t>(i), 0.0);
    for (int level = 0; level < kLevels; ++level) {
      const int start = static_cast<int>(static_cast<int64_t>(level) * i / kLevels);
      const int end = level + 1 == kLevels ? i : static_cast<int>(static_cast<int64_t>(level + 1) * i / kLevels);
      double mass = 0;
      int nonzero = 0;
      for (int k = start; k < end; ++k) {
        mass += histogram[static_cast<size_t>(k)];
        nonzero += histogram[static_cast<size_t>(k)] != 0 ? 1 : 0;
      }
      if (nonzero == 0) continue;
      for (int k = start; k < end; ++k) {
        if (histogram[static_cast<size_t>(k)] != 0) q[static_cast<size_t>(k)] = mass / nonzero;
      }
    }
    const double p_sum = std::accumulate(p.begin(), p.end(), 0.0);
    const double q_sum = std::accumulate(q.begin(), q.end(), 0.0);
    if (p_sum <= 0 || q_sum <= 0) continue;
    double kl = 0;
    for (size_t k = 0; k < p.size(); ++k) {
      if (p[k] <= 0) continue;
      const double pk = p[k] / p_sum;
      const double qk = std::max(q[k] / q_sum, 1e-12);  // P mass where Q has none: a large penalty
      kl += pk * std::log(pk / qk);
    }
    // Ties (flat or discrete histograms give several equal minima) go to the
    // larger threshold: clipping less is the safer of two equal choices.
    if (kl <= best_kl) {
      best_kl = kl;
      best = i;
    }
  }
  return std::min(amax, (best + 0.5) * amax / bins);
}

double percentile_threshold(const std::vector<double>& histogram, double amax, double percentile) {
  const double total = std::accumulate(histogram.begin(), histogram.end(), 0.0);
  if (!(amax > 0) || total <= 0) return amax;
  const double want = total * std::clamp(percentile, 0.0, 100.0) / 100.0;
  double seen = 0;
  for (size_t k = 0; k < histogram.size(); ++k) {
    seen += histogram[k];
    if (seen >= want) return std::min(amax, (static_cast<double>(k) + 1) * amax / static_cast<double>(histogram.size()));
  }
  return amax;
}

QuantRange choose_range(const TensorStats& stats, Calibrator calibrator, double percentile) {
  QuantRange r;
  double lo = std::min(0.0, stats.min), hi = std::max(0.0, stats.max);
  if (calibrator != Calibrator::kMinMax && !stats.histogram.empty()) {
    const double t = calibrator == Calibrator::kEntropy ? entropy_threshold(stats.histogram, stats.amax())
                                                        : percentile_threshold(stats.histogram, stats.amax(), percentile);
    hi = t;
    lo = stats.min >= 0 ? 0.0 : -t;
  }
  if (!(hi - lo > 0)) hi = lo + 1e-6;  // a constant-zero tensor: any positive scale
  r.scale = static_cast<float>((hi - lo) / 255.0);
  if (calibrator != Calibrator::kMinMax && !stats.histogram.empty()) {
    r.zero_point = lo < 0 ? 128 : 0;
    if (lo < 0) r.scale = static_cast<float>(hi / 127.0);
  } else {
    r.zero_point = static_cast<int32_t>(std::clamp(std::nearbyint(-lo / r.scale), 0.0, 255.0));
  }
  r.min = (0 - r.zero_point) * static_cast<double>(r.scale);
  r.max = (255 - r.zero_point) * static_cast<double>(r.scale);
  return r;
}

}  // namespace kiln::quant
