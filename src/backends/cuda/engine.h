// GpuEngine: runs a whole ir::Graph on one NVIDIA GPU.
//
//   GpuOptions o;
//   o.precision = Precision::kFp16;
//   o.input_shapes["input"] = {32, 3, 224, 224};
//   KILN_ASSIGN_OR_RETURN(auto engine, GpuEngine::create(graph, o));
//   KILN_ASSIGN_OR_RETURN(std::vector<Tensor> out, engine->run({image}));
//
// Tensors stay on the device between nodes: run() uploads the inputs (through
// pinned staging buffers), runs every step on one stream and downloads the
// outputs. The plan (plan.h) is built for concrete input shapes: at create()
// when every input shape is known (from the graph or GpuOptions::input_shapes),
// else at the first run() with new input shapes; the engine keeps the plans of
// the last few shapes (weights, algorithm choices) for every context. Each
// plan's steps between upload and download are captured as a CUDA graph per
// context and replayed. A node the engine cannot run makes create() (or the
// plan build) fail naming the node; there is no CPU fallback.
//
// Execution contexts (TensorRT's IExecutionContext): the engine holds the
// plans and the weights once; each GpuExecutionContext has its own stream,
// cuDNN/cuBLASLt handles, workspace, activation arena, pinned staging and
// CUDA graphs, so contexts run concurrently on one GPU (one thread each).
// GpuEngine::run() uses the engine's default context.
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backends/cuda/plan.h"
#include "ir/graph.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::backends::cuda {

struct GpuOptions {
  Precision precision = Precision::kFp32;
  int device = 0;
  bool cuda_graph = true;     // capture the steps as a CUDA graph and replay it
  bool channels_last = true;  // NHWC activations for convolutions
  // Bias + residual + Relu inside cuDNN's convolution where it matches the
  // separate epilogue kernel on a test pattern at plan time.
  bool fuse_conv_epilogue = true;
  bool pad_small_channels = false;             // see PlanOptions
  size_t workspace_bytes = size_t{256} << 20;  // cuDNN / cuBLASLt scratch
  // Dims of graph inputs by name, fixing dynamic dims so that create() can plan.
  std::map<std::string, Dims> input_shapes;
};

class GpuExecutionContext;

class GpuEngine {
 public:
  // `graph` must outlive the engine and stay unchanged. Fails when a node is
  // unsupported (naming it), when no GPU is present, or when a CUDA library
  // call fails.
  static Result<std::unique_ptr<GpuEngine>> create(const ir::Graph& graph, const GpuOptions& options);
  ~GpuEngine();
  GpuEngine(const GpuEngine&) = delete;
  GpuEngine& operator=(const GpuEngine&) = delete;

  // Inputs in graph-input order (host tensors of the graph's types); returns
  // the graph outputs as new host tensors. Runs on the default context;
  // calls are serialized.
  Result<std::vector<Tensor>> run(const std::vector<Tensor>& inputs);

  // A new context sharing this engine's plans and weights (it keeps them
  // alive: the engine object may go first, the graph must not).
  Result<std::unique_ptr<GpuExecutionContext>> create_context();
  // Plans held (one per set of input shapes seen recently), for tests.
  size_t cached_plans() const;

  // Device time per run of the current plan's steps (no host transfers),
  // averaged over `iterations` after `warmup` runs, in milliseconds. Needs a
  // plan (create() with known shapes, or a run() before).
  Result<double> time_steps(int warmup, int iterations);

  // Device time of each compute step, launched one by one (no CUDA graph),
  // averaged over `iterations` runs: (step label and choices, milliseconds).
  struct StepTime {
    std::string label;
    double ms = 0.0;
  };
  Result<std::vector<StepTime>> profile_steps(int iterations);

  // The current plan's steps, one per line ("" before the first plan).
  std::string plan_summary() const;
  bool uses_cuda_graph() const;

  struct Shared;

 private:
  GpuEngine(std::shared_ptr<Shared> shared, std::unique_ptr<GpuExecutionContext> context);
  std::shared_ptr<Shared> shared_;
  std::unique_ptr<GpuExecutionContext> default_;
};

// One stream of execution over a GpuEngine's plans (see above). run() is
// serialized per context; different contexts run concurrently.
class GpuExecutionContext {
 public:
  ~GpuExecutionContext();
  GpuExecutionContext(const GpuExecutionContext&) = delete;
  GpuExecutionContext& operator=(const GpuExecutionContext&) = delete;

  // As GpuEngine::run, on this context's stream.
  Result<std::vector<Tensor>> run(const std::vector<Tensor>& inputs);

  struct Impl;

 private:
  friend class GpuEngine;
  explicit GpuExecutionContext(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::backends::cuda
