// The requests `kiln perf` sends: each model input's shape (from the model's
// metadata, the batch size and --shape) and its data (--input-data random,
// zero, or a JSON file in perf_analyzer's format).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "kiln/client.h"

namespace kiln::cli {

struct PerfDataOptions {
  int64_t batch_size = 1;
  std::map<std::string, Dims> shapes;  // --shape name:d1,d2 (dims without the batch dim)
  std::string input_data = "random";   // "random", "zero" or a JSON file
  int64_t string_length = 16;          // BYTES elements of random data
};

// Parses one --shape value, "name:d1,d2,..."; the name may itself hold ':'.
Result<std::pair<std::string, Dims>> parse_shape_arg(const std::string& arg);

// The input sets to send, one per request in turn (random and zero data give
// one set; a JSON file gives one per entry of its "data" list).
//
// JSON format (perf_analyzer's): {"data": [{"<input>": <values>, ...}, ...]}
// where <values> is a flat or nested array, or {"content": [...], "shape":
// [...]}, or {"b64": "<base64 of the raw bytes>"}. An entry holds one batch
// item (shape without the batch dim); with -b N it is repeated N times.
Result<std::vector<std::vector<client::InferInput>>> make_perf_inputs(const client::ModelMetadata& metadata,
                                                                      int64_t max_batch_size,
                                                                      const PerfDataOptions& options);

}  // namespace kiln::cli
