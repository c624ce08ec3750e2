#include "calib_data.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "core/error.h"
#include "npy.h"
#include "output.h"

namespace kiln::cli {

Result<std::vector<quant::Feed>> read_calibration_dir(const std::string& dir, const ir::Graph& graph) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return invalid_argument("calibration directory '{}' does not exist", dir);
  std::vector<std::string> inputs;
  for (const ir::Value* v : graph.inputs()) {
    if (!v->is_constant()) inputs.push_back(v->name());
  }
  std::vector<fs::path> entries;
  for (const auto& e : fs::directory_iterator(dir, ec)) entries.push_back(e.path());
  std::sort(entries.begin(), entries.end());
  std::vector<quant::Feed> batches;
  for (const fs::path& p : entries) {
    if (inputs.size() == 1 && p.extension() == ".npy") {
      KILN_ASSIGN_OR_RETURN(Tensor t, read_npy(p.string()));
      batches.push_back({{inputs[0], std::move(t)}});
    } else if (inputs.size() > 1 && fs::is_directory(p, ec)) {
      quant::Feed feed;
      for (const std::string& name : inputs) {
        const fs::path f = p / (name + ".npy");
        if (!fs::exists(f, ec)) return invalid_argument("calibration batch '{}' lacks {}.npy", p.string(), name);
        KILN_ASSIGN_OR_RETURN(feed[name], read_npy(f.string()));
      }
      batches.push_back(std::move(feed));
    }
  }
  if (batches.empty() && inputs.size() == 1) {
    return invalid_argument("calibration directory '{}' holds no .npy files", dir);
  }
  if (batches.empty()) return invalid_argument("calibration directory '{}' holds no batch subdirectories", dir);
  return batches;
}

Result<quant::QuantizeOptions> quantize_options(const std::string& calib_dir, const std::string& calib_cache,
                                                const std::string& calibrator,
                                                const std::vector<std::string>& layer_precisions,
                                                const ir::Graph& graph, const std::string& command) {
  quant::QuantizeOptions qo;
  if (!calib_dir.empty()) {
    KILN_ASSIGN_OR_RETURN(qo.batches, read_calibration_dir(calib_dir, graph));
  }
  qo.cache = calib_cache;
  qo.calibrator = calibrator;
  qo.layer_precisions = layer_precisions;
  auto progress = std::make_shared<Progress>(command);
  qo.progress = [progress](int pass, size_t done, size_t total) {
    progress->update(pass == 1 ? "calibration: ranges" : "calibration: histograms", done, total);
  };
  return qo;
}

}  // namespace kiln::cli
