// The GPU side of an ONNX model served with KIND_GPU instances: the model's
// graph (optimized when the GPU engine runs every node of the optimized
// graph, else as imported) and one backends::cuda::GpuEngine per instance,
// on the instance's device. Without the CUDA backend in the build, load()
// fails saying so.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "ir/graph.h"
#include "kiln/status.h"
#include "kiln/tensor.h"
#include "model_config.pb.h"
#include "server/backend.h"

namespace kiln::server {

class GpuModel {
 public:
  // Prepares `model` (imported from `path`) for GPU instances. `input_shapes`
  // (may be empty) fixes the graph inputs' dims so that each engine plans
  // when it is created (a node the engine cannot run then fails the load, not
  // a request); other shapes are planned at a request. Precision from
  // gpu_precision(config).
  static Result<std::shared_ptr<const GpuModel>> load(ir::Model model, const std::string& path,
                                                      const inference::ModelConfig& config,
                                                      std::map<std::string, Dims> input_shapes);
  virtual ~GpuModel() = default;

  // An instance on CUDA device `device` (the first one there creates the
  // device's engine); a failure to create it shows in its ready().
  virtual std::unique_ptr<BackendInstance> create_instance(int device) const = 0;
};

}  // namespace kiln::server
