// Calibration data for `kiln build --int8` and `kiln quantize`: batches read
// from a directory of .npy files, and the options both commands share.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "kiln/status.h"
#include "quant/quantizer.h"

namespace kiln::cli {

// For a one-input model every *.npy file of `dir` (in name order) is one
// batch of that input; otherwise every subdirectory (in name order) is one
// batch holding <input name>.npy per input. Errors: no such directory, no
// batches in it, a batch missing an input, unreadable .npy files.
Result<std::vector<quant::Feed>> read_calibration_dir(const std::string& dir, const ir::Graph& graph);

// quant::QuantizeOptions from the shared flags, reading `calib_dir` if set;
// calibration progress goes through output.h's Progress (under `command`).
Result<quant::QuantizeOptions> quantize_options(const std::string& calib_dir, const std::string& calib_cache,
                                                const std::string& calibrator,
                                                const std::vector<std::string>& layer_precisions,
                                                const ir::Graph& graph, const std::string& command);

}  // namespace kiln::cli
