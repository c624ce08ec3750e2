// Triton's classification extension: a requested output with the parameter
// "classification": k is answered, instead of its values, with the k largest
// values of each batch item (of the whole tensor for a model without batching)
// as BYTES strings "value:index" or "value:index:label", largest first, equal
// values by index. Labels come from the output's label_filename in the model
// folder (one per line). Values print as C++'s std::to_string does (6
// decimals for floating point types), as Triton prints them.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kiln/status.h"
#include "kiln/tensor.h"
#include "model_config.pb.h"

namespace kiln::server {

// Output name -> its labels, for the outputs that name a label_filename.
using OutputLabels = std::map<std::string, std::vector<std::string>>;

// Reads every output's label_filename (a file name in `model_dir`, one label per line).
Result<std::shared_ptr<const OutputLabels>> read_output_labels(const inference::ModelConfig& config,
                                                               const std::string& model_dir);

// The top-`k` classification of output `name`: BYTES [rows, min(k, per-row)] when `batched`
// (rows = the first dim), else [min(k, numel)]. `labels` may be null.
Result<Tensor> classify(const std::string& name, const Tensor& t, int64_t k, bool batched,
                        const std::vector<std::string>* labels);

}  // namespace kiln::server
