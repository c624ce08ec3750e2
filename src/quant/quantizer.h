// Implicit quantization: calibrate a float graph on sample data, then write
// the result into the graph as explicit Q/DQ (the form onnxruntime's
// quantize_static produces), which passes/qdq_lowering.cc turns into int8
// layers. `kiln build --int8` and `kiln quantize` share this path; a
// calibration cache file stands in for the data on later builds.
//
// Quantized layers: Conv (2-D weights of rank 4), Gemm (alpha = beta = 1,
// transA = 0) and MatMul with a constant float32 weight, float32 input, not
// listed in `keep_fp32`. Weights become int8, symmetric, one scale per output
// channel; activations uint8 with the calibrated per-tensor range. Each
// quantized layer's input gets QuantizeLinear -> DequantizeLinear, and its
// output (after a Relu that is its only reader) too, so consecutive layers
// share one Q/DQ pair and the lowered layers exchange uint8 tensors.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "kiln/status.h"
#include "kiln/tensor.h"
#include "quant/calibrator.h"
#include "quant/half_precision.h"

namespace kiln::quant {

// One calibration batch: graph input name -> tensor.
using Feed = std::map<std::string, Tensor>;

struct CalibrationTable {
  std::string calibrator = "entropy";
  int64_t batches = 0;
  std::map<std::string, QuantRange> ranges;  // by value name
};

// The cache file: a text file, one "name scale zero_point min max" line per
// tensor after a "kiln-calibration 1 <calibrator> <batches>" header.
Status save_calibration_cache(const CalibrationTable& table, const std::string& path);
Result<CalibrationTable> load_calibration_cache(const std::string& path);

// The layers insert_qdq would quantize (in graph order) and the activation
// tensors whose ranges it needs.
struct QuantTargets {
  std::vector<const ir::Node*> layers;
  std::vector<std::string> tensors;
};
// Fails if a name in keep_fp32 names no node of the graph.
Result<QuantTargets> find_targets(const ir::Graph& graph, const std::set<std::string>& keep_fp32);

// Progress of calibration: (pass 1 or 2, batches done, total).
using CalibrationProgress = std::function<void(int, size_t, size_t)>;

// Runs `graph` with the reference interpreter over `batches` (twice: range,
// then histogram) and picks each target tensor's range. Errors: no batches,
// a batch missing an input or with the wrong dtype or shape (against the
// graph input's declared type), NaN/Inf anywhere in a target tensor.
// `graph`'s outputs are restored before it returns.
Result<CalibrationTable> calibrate(ir::Graph& graph, const QuantTargets& targets, const std::vector<Feed>& batches,
                                   Calibrator calibrator, const CalibrationProgress& progress = {});

// Writes Q/DQ into `graph` for every target layer whose tensors the table
// covers; returns how many layers were quantized.
Result<int64_t> insert_qdq(ir::Graph& graph, const QuantTargets& targets, const CalibrationTable& table);

// The whole of implicit quantization (quantize_model.cc), as `kiln build
// --int8`, kiln::build_plan and `kiln quantize` run it.
struct QuantizeOptions {
  std::vector<Feed> batches;  // calibration data; empty: read `cache`
  std::string cache;          // calibration cache: written after calibrating, read without data
  std::string calibrator = "entropy";
  std::vector<std::string> layer_precisions;  // "NAME:fp32" / "NAME:int8" overrides
  CalibrationProgress progress;
  // >= 0: keep the most sensitive layers in fp32 until int8 is within this
  // many top-1 points of fp32 on the calibration batches (quant/sensitivity.h).
  double max_accuracy_drop = -1;
};

struct QuantizeReport {
  std::vector<std::string> int8_layers;  // quantized, in graph order
  std::vector<std::string> fp32_layers;  // kept in float by an override
  bool from_cache = false;
  CalibrationTable table;
  std::vector<std::string> sensitivity;  // the --max-accuracy-drop trade-off, one line per step
};

// Runs the fp32 clean-up passes the build would run anyway (constant
// folding, BatchNorm folding into Conv), calibrates (or reads the cache),
// and writes Q/DQ into `graph`. Errors: no data and no cache, bad data (see
// calibrate), an override naming no layer or an unknown precision.
Result<QuantizeReport> quantize_model(ir::Graph& graph, const QuantizeOptions& options);

// bf16/fp16 builds: the same fp32 clean-up, then apply_half_precision with
// the "NAME:fp32" overrides of `layer_precisions`.
Result<std::vector<LayerPrecision>> convert_to_half(ir::Graph& graph, const std::string& precision,
                                                    const std::vector<std::string>& layer_precisions);

}  // namespace kiln::quant
