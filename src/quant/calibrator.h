// Calibrators: from the values a tensor takes on calibration data to the
// range that its 8-bit quantization covers.
//
// Every calibrator sees the same statistics, collected in two passes over
// the data (the first finds each tensor's min/max, the second fills a
// 2048-bin histogram of the non-zero |x| over [0, max|x|]; exact zeros, the
// ReLU spike, are representable at any threshold and left out):
//   minmax      the observed [min, max];
//   percentile  |x| clipped at the given percentile of the histogram (99.99 by default);
//   entropy     TensorRT's threshold search: for each candidate threshold
//               (bins 128..2048) the clipped histogram P (outliers added to
//               the last bin) is merged into 128 levels and expanded back
//               into Q over P's non-empty bins; the threshold with the least
//               KL(P || Q) wins.
// Ties in the entropy search go to the larger threshold. calibrate() gives the
// model's own inputs and outputs their min/max range whatever the calibrator.
// The range becomes uint8 parameters: a tensor that never goes negative
// (after ReLU) gets [0, T] with zero point 0, others [-T, T] with zero point
// 128 (minmax keeps its asymmetric [min, max], widened to include 0).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/status.h"

namespace kiln::quant {

enum class Calibrator { kEntropy, kMinMax, kPercentile };

// "entropy", "minmax", "percentile".
std::string_view calibrator_name(Calibrator c);
Result<Calibrator> parse_calibrator(std::string_view name);

inline constexpr int kHistogramBins = 2048;

// The statistics of one tensor.
struct TensorStats {
  double min = 0, max = 0;
  int64_t count = 0;
  std::vector<double> histogram;  // kHistogramBins bins of |x| over [0, amax()]; empty before pass 2

  double amax() const { return std::max(-min, max); }
  // Pass 1: min/max. Fails on NaN or Inf, naming `what`.
  Status observe_range(std::span<const float> values, const std::string& what);
  // Pass 2: histogram of |x| (after observe_range saw every batch).
  void observe_histogram(std::span<const float> values);
};

// The threshold on |x| an entropy search picks (TensorRT's algorithm).
double entropy_threshold(const std::vector<double>& histogram, double amax);
// The |x| below which `percentile` percent of the histogram's mass lies.
double percentile_threshold(const std::vector<double>& histogram, double amax, double percentile);

// uint8 quantization parameters of one tensor.
struct QuantRange {
  float scale = 1.0f;
  int32_t zero_point = 0;  // uint8
  double min = 0, max = 0;  // the real range covered
};

QuantRange choose_range(const TensorStats& stats, Calibrator calibrator, double percentile = 99.99);

}  // namespace kiln::quant
