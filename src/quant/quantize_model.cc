#include <set>

#include "core/error.h"
#include "passes/pipeline.h"
#include "quant/quantizer.h"

namespace kiln::quant {
namespace {

// Layers kept in float from "NAME:fp32" overrides.
Result<std::set<std::string>> fp32_layers(const std::vector<std::string>& overrides) {
  std::set<std::string> keep;
  for (const std::string& o : overrides) {
    const size_t colon = o.rfind(':');
    if (colon == std::string::npos || colon == 0) {
      return invalid_argument("layer precision '{}' must be NAME:PRECISION (e.g. conv1:fp32)", o);
    }
    const std::string name = o.substr(0, colon), precision = o.substr(colon + 1);
    if (precision == "fp32") {
      keep.insert(name);
    } else if (precision != "int8") {
      return invalid_argument("layer precision '{}': '{}' is not a precision a layer can get (fp32, int8)", o,
                              precision);
    }
  }
  return keep;
}

}  // namespace

Result<QuantizeReport> quantize_model(ir::Graph& graph, const QuantizeOptions& options) {
  KILN_ASSIGN_OR_RETURN(std::set<std::string> keep, fp32_layers(options.layer_precisions));
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
  KILN_RETURN_IF_ERROR(insert_qdq(graph, targets, report.table).status());
  // insert_qdq quantized the layers whose weights now come from a DequantizeLinear.
  for (const ir::Node* n : targets.layers) {
    const ir::Node* w = n->input(1)->producer();
    if (w != nullptr && w->op_type() == "DequantizeLinear") report.int8_layers.push_back(n->name());
  }
  report.fp32_layers.assign(keep.begin(), keep.end());
  return report;
}

}  // namespace kiln::quant
