// Prometheus text exposition of the server's metrics: Triton's nv_inference_*
// counters and gauges per model and version (from the same ModelStats as
// the statistics endpoint), latency and batch-size histograms, and process
// and machine CPU and memory, and per GPU (gpu_metrics.h) unless
// ServerOptions::gpu_metrics is off.
#pragma once

#include <string>

#include "server/server_core.h"

namespace kiln::server {

std::string render_metrics(ServerCore& core);

}  // namespace kiln::server
