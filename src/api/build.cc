#include <filesystem>

#include "core/error.h"
#include "kiln/builder.h"
#include "onnx/importer.h"
#include "plan/builder.h"
#include "plan/plan_file.h"
#include "quant/quantizer.h"

namespace kiln {

Result<BuildSummary> build_plan(const std::string& onnx_path, const std::string& plan_path,
                                const BuildConfig& config) {
  plan::BuildOptions o;
  o.precision = config.precision;
  KILN_ASSIGN_OR_RETURN(o.shapes, plan::parse_shape_spec(config.shapes));
  KILN_ASSIGN_OR_RETURN(o.min_shapes, plan::parse_shape_spec(config.min_shapes));
  KILN_ASSIGN_OR_RETURN(o.opt_shapes, plan::parse_shape_spec(config.opt_shapes));
  KILN_ASSIGN_OR_RETURN(o.max_shapes, plan::parse_shape_spec(config.max_shapes));
  o.timing_cache = config.timing_cache;
  o.tactic_sources = config.tactic_sources;
  o.threads = config.threads;
  o.time_tactics = config.time_tactics;
  if (!config.calib_batches.empty() && config.precision != "int8") {
    return invalid_argument("calibration data was given but the precision is '{}', not int8", config.precision);
  }
  if (config.progress) o.progress = config.progress;
  KILN_ASSIGN_OR_RETURN(ir::Model model, onnx::import_model_file(onnx_path));
  int64_t int8_layers = 0;
  std::vector<std::string> fp32_kept;
  if (config.precision == "int8") {
    quant::QuantizeOptions qo;
    qo.batches.assign(config.calib_batches.begin(), config.calib_batches.end());
    qo.cache = config.calib_cache;
    qo.calibrator = config.calibrator;
    qo.layer_precisions = config.layer_precisions;
    qo.max_accuracy_drop = config.max_accuracy_drop;
    if (config.progress) {
      qo.progress = [&](int pass, size_t done, size_t total) {
        config.progress(pass == 1 ? "calibration (ranges)" : "calibration (histograms)", done, total);
      };
    }
    auto q = quant::quantize_model(*model.graph, qo);
    if (!q.is_ok()) return std::move(q).status().with_context(onnx_path);
    int8_layers = static_cast<int64_t>(q->int8_layers.size());
    fp32_kept = q->fp32_layers;
  } else if (config.precision == "bf16" || config.precision == "fp16") {
    auto h = quant::convert_to_half(*model.graph, config.precision, config.layer_precisions);
    if (!h.is_ok()) return std::move(h).status().with_context(onnx_path);
  } else if (!config.layer_precisions.empty()) {
    return invalid_argument("per-layer precisions need a reduced precision (bf16, fp16 or int8)");
  }
  std::error_code ec;
  model.metadata["kiln.source_model"] = std::filesystem::absolute(onnx_path, ec).string();
  plan::BuildReport report;
  auto built = plan::build(std::move(model), o, &report);
  if (!built.is_ok()) return std::move(built).status().with_context(onnx_path);
  KILN_RETURN_IF_ERROR(plan::save_plan(*built, plan_path));
  BuildSummary s;
  s.onnx_nodes = report.onnx_nodes;
  s.layers = report.layers;
  s.peak_activation_bytes = built->memory.arena_bytes;
  s.naive_activation_bytes = built->memory.naive_bytes;
  s.timed_layers = report.timed_nodes;
  s.cache_hits = report.cache_hits;
  s.cache_misses = report.cache_misses;
  s.seconds = report.total_seconds;
  s.int8_layers = int8_layers;
  s.fp32_layers = std::move(fp32_kept);
  return s;
}

}  // namespace kiln
