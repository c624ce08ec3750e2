// Model warm-up (config model_warmup): before a model version is reported
// ready, each warm-up sample runs `count` times (default 1) through the
// version's scheduler, with inputs of zeros, random values, or the bytes of
// <model>/warmup/<input_data_file>. A failing sample fails the load.
#pragma once

#include <string>

#include "kiln/status.h"

namespace kiln::server {

class ModelVersion;

Status run_warmup(ModelVersion& model, const std::string& model_dir);

}  // namespace kiln::server
