#include <filesystem>

#include "core/error.h"
#include "kiln/builder.h"
#include "onnx/importer.h"
#include "plan/builder.h"
#include "plan/plan_file.h"

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
  KILN_ASSIGN_OR_RETURN(ir::Model model, onnx::import_model_file(onnx_path));
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
  return s;
}

}  // namespace kiln
