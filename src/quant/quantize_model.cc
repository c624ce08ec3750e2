#include <algorithm>
#include <set>

#include "core/error.h"
#include "passes/pipeline.h"
#include "quant/half_precision.h"
#include "quant/quantizer.h"
#include "quant/sensitivity.h"

namespace kiln::quant {

Result<QuantizeReport> quantize_model(ir::Graph& graph, const QuantizeOptions& options) {
  KILN_ASSIGN_OR_RETURN(std::set<std::string> keep, parse_layer_overrides(options.layer_precisions, {"int8"}));
  KILN_ASSIGN_OR_RETURN(Calibrator calibrator, parse_calibrator(options.calibrator));
  passes::PipelineOptions po;
  po.stop_after = "batchnorm_folding";
  KILN_RETURN_IF_ERROR(passes::optimize(graph, po).status());
  KILN_ASSIGN_OR_RETURN(QuantTargets targets, find_targets(graph, keep));
  QuantizeReport report;
  if (!options.batches.empty()) {
    KILN_ASSIGN_OR_RETURN(report.table, calibrate(graph, targets, options.batches, calibrator, options.progress));
    if (!options.cache.empty()) KILN_RETURN_IF_ERROR(save_calibration_cache(report.table, options.cache));
  } else if (!options.cache.empty()) {
    KILN_ASSIGN_OR_RETURN(report.table, load_calibration_cache(options.cache));
    report.from_cache = true;
  } else {
    return invalid_argument("int8 needs calibration data (--calib DIR) or a calibration cache (--calib-cache FILE)");
  }
  std::vector<std::pair<ir::Node*, ir::Value*>> float_weights;
  for (const ir::Node* n : targets.layers) float_weights.emplace_back(const_cast<ir::Node*>(n), n->input(1));
  KILN_RETURN_IF_ERROR(insert_qdq(graph, targets, report.table).status());
  // insert_qdq quantized the layers whose weights now come from a DequantizeLinear.
  std::vector<LayerSwitch> switches;
  for (const auto& [n, w] : float_weights) {
    const ir::Node* dq_w = n->input(1)->producer();
    const ir::Node* dq_x = n->input(0)->producer();
    if (dq_w == nullptr || dq_w->op_type() != "DequantizeLinear") continue;
    report.int8_layers.push_back(n->name());
    if (dq_x != nullptr && dq_x->op_type() == "DequantizeLinear" && dq_x->input(0)->producer() != nullptr) {
      switches.push_back({n, dq_x->input(0)->producer()->input(0), n->input(0), w, n->input(1)});
    }
  }
  report.fp32_layers.assign(keep.begin(), keep.end());
  if (options.max_accuracy_drop >= 0) {
    KILN_ASSIGN_OR_RETURN(SensitivityResult s,
                          keep_sensitive_layers(graph, switches, options.batches, options.max_accuracy_drop));
    for (const std::string& name : s.fp32_layers) {
      report.int8_layers.erase(std::find(report.int8_layers.begin(), report.int8_layers.end(), name));
      report.fp32_layers.push_back(name);
    }
    report.sensitivity = std::move(s.lines);
  }
  return report;
}

Result<std::vector<LayerPrecision>> convert_to_half(ir::Graph& graph, const std::string& precision,
                                                    const std::vector<std::string>& layer_precisions) {
  KILN_ASSIGN_OR_RETURN(std::set<std::string> keep, parse_layer_overrides(layer_precisions, {precision}));
  passes::PipelineOptions po;
  po.stop_after = "batchnorm_folding";
  KILN_RETURN_IF_ERROR(passes::optimize(graph, po).status());
  return apply_half_precision(graph, precision, keep);
}

}  // namespace kiln::quant
