// kiln::build_plan: ONNX model in, plan file out (what `kiln build` and
// kiln.build() do). Session::open runs the plan file it writes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln {

struct BuildConfig {
  // "fp32", or "int8": calibrate (or read calib_cache), write the ranges into
  // the model as Q/DQ and lower Conv/Gemm/MatMul to int8 layers. A model that
  // already carries Q/DQ (onnxruntime's quantize_static) runs in int8 with
  // either precision. "bf16"/"fp16": Conv/Gemm/MatMul weights and inputs
  // rounded to 16 bits, fp32 accumulation (numerics of 16-bit storage; the
  // kernels are still fp32), everything else fp32.
  std::string precision = "fp32";
  // int8 calibration data: one map of input name -> tensor per batch.
  std::vector<std::map<std::string, Tensor>> calib_batches;
  // A calibration cache file: read when no batches are given, written after
  // calibrating (so later builds need no data). Empty: none.
  std::string calib_cache;
  std::string calibrator = "entropy";  // "entropy", "minmax" or "percentile"
  // int8, >= 0: keep the most sensitive layers in fp32 until top-1 agreement
  // with fp32 on the calibration batches is within this many points.
  double max_accuracy_drop = -1;
  // Per-layer overrides "NAME:fp32" (layers kept in float; int8/bf16/fp16 builds).
  std::vector<std::string> layer_precisions;
  // Progress of calibration and tactic timing: (stage, done, total).
  std::function<void(const std::string&, size_t, size_t)> progress;
  // Input shapes in trtexec's syntax ("input_ids:8x128,attention_mask:8x128"):
  // `shapes` fixes them; min/opt/max make a dynamic profile.
  std::string shapes, min_shapes, opt_shapes, max_shapes;
  std::string timing_cache;                 // a file read and updated; empty: none
  std::vector<std::string> tactic_sources;  // "own", "onednn", "reference"; empty: all
  int threads = 0;                          // threads tactics are timed with; 0: all
  bool time_tactics = true;                 // false: each node's first candidate
};

struct BuildSummary {
  int64_t onnx_nodes = 0;
  int64_t layers = 0;
  int64_t peak_activation_bytes = 0;
  int64_t naive_activation_bytes = 0;
  int64_t timed_layers = 0;
  int64_t cache_hits = 0;
  int64_t cache_misses = 0;
  double seconds = 0;
  int64_t int8_layers = 0;               // layers quantized from calibration
  std::vector<std::string> fp32_layers;  // int8 builds: layers kept in fp32 (overrides, accuracy budget)
};

Result<BuildSummary> build_plan(const std::string& onnx_path, const std::string& plan_path,
                                const BuildConfig& config = {});

}  // namespace kiln
