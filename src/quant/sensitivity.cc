#include "quant/sensitivity.h"

#include <algorithm>

#include "core/error.h"
#include "core/thread_pool.h"
#include "exec/program.h"

namespace kiln::quant {
namespace {

void set_int8(const LayerSwitch& s, bool int8) {
  s.layer->set_input(0, int8 ? s.dq_input : s.float_input);
  s.layer->set_input(1, int8 ? s.dq_weight : s.float_weight);
}

// Top-1 classes of the first output over all batches.
Result<std::vector<int64_t>> predictions(const ir::Graph& graph, const std::vector<Feed>& batches, ThreadPool* pool) {
  KILN_ASSIGN_OR_RETURN(auto program, exec::Program::compile(graph));
  std::vector<int64_t> out;
  for (const Feed& feed : batches) {
    std::vector<Datum> inputs;
    for (const ir::Value* in : graph.inputs()) {
      auto it = feed.find(in->name());
      inputs.push_back(it == feed.end() ? Datum() : Datum(it->second));
    }
    KILN_ASSIGN_OR_RETURN(auto run, exec::execute(*program, inputs, pool));
    if (run.empty() || !run[0].is_tensor() || run[0].tensor().dtype() != DataType::kFloat32 ||
        run[0].tensor().rank() < 1) {
      return invalid_argument("--max-accuracy-drop needs a classifier: the first output must be float class scores");
    }
    const Tensor& y = run[0].tensor();
    const int64_t classes = y.dim(y.rank() - 1);
    for (int64_t r = 0; classes > 0 && r < y.numel() / classes; ++r) {
      const float* p = y.data<float>() + r * classes;
      out.push_back(std::max_element(p, p + classes) - p);
    }
  }
  return out;
}

double drop_points(const std::vector<int64_t>& ref, const std::vector<int64_t>& got) {
  int64_t agree = 0;
  for (size_t i = 0; i < ref.size() && i < got.size(); ++i) agree += ref[i] == got[i] ? 1 : 0;
  return ref.empty() ? 0.0 : 100.0 - 100.0 * static_cast<double>(agree) / static_cast<double>(ref.size());
}

}  // namespace

Result<SensitivityResult> keep_sensitive_layers(ir::Graph& graph, const std::vector<LayerSwitch>& layers,
                                                const std::vector<Feed>& batches, double max_drop) {
  if (batches.empty()) return invalid_argument("--max-accuracy-drop needs calibration data (not only a cache)");
  if (!(max_drop >= 0)) return invalid_argument("--max-accuracy-drop must be >= 0, got {}", max_drop);
  ThreadPool pool(std::max(1, std::min(4, ThreadPool::hardware_threads())));
  SensitivityResult r;
  for (const LayerSwitch& s : layers) set_int8(s, false);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> ref, predictions(graph, batches, &pool));
  for (const LayerSwitch& s : layers) set_int8(s, true);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> all, predictions(graph, batches, &pool));
  r.int8_drop = r.final_drop = drop_points(ref, all);
  r.lines.push_back(fmt::format("all {} layers int8: {:.2f} points below fp32 (budget {:.2f})", layers.size(),
                                r.int8_drop, max_drop));
  if (r.int8_drop <= max_drop) return r;
  // Sensitivity: the drop with only this layer in fp32 (lower is more sensitive).
  std::vector<std::pair<double, size_t>> order;
  for (size_t i = 0; i < layers.size(); ++i) {
    set_int8(layers[i], false);
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> p, predictions(graph, batches, &pool));
    set_int8(layers[i], true);
    order.emplace_back(drop_points(ref, p), i);
  }
  std::stable_sort(order.begin(), order.end());
  for (const auto& [drop, i] : order) {
    set_int8(layers[i], false);
    r.fp32_layers.push_back(layers[i].layer->name());
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> p, predictions(graph, batches, &pool));
    r.final_drop = drop_points(ref, p);
    r.lines.push_back(fmt::format("+ {} in fp32 (alone: {:.2f} points): {} fp32 layers, {:.2f} points below fp32",
                                  layers[i].layer->name(), drop, r.fp32_layers.size(), r.final_drop));
    if (r.final_drop <= max_drop) break;
  }
  return r;
}

}  // namespace kiln::quant
