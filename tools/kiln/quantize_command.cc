// kiln quantize: calibrates an fp32 ONNX model and writes it out as a
// standard Q/DQ ONNX model (QuantizeLinear/DequantizeLinear around each int8
// layer, int8 per-channel weights), the form onnxruntime's quantize_static
// writes and other runtimes load. The same calibration `kiln build --int8` uses.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "calib_data.h"
#include "commands.h"
#include "core/error.h"
#include "onnx/exporter.h"
#include "onnx/importer.h"

namespace kiln::cli {
namespace {

struct QuantizeArgs {
  std::string model, output;
  std::string calib_dir, calib_cache, calibrator = "entropy";
  std::vector<std::string> layer_precisions;
};

Status run_quantize(const QuantizeArgs& args) {
  KILN_ASSIGN_OR_RETURN(ir::Model model, onnx::import_model_file(args.model));
  KILN_ASSIGN_OR_RETURN(quant::QuantizeOptions qo, quantize_options(args.calib_dir, args.calib_cache, args.calibrator,
                                                                    args.layer_precisions, *model.graph, "quantize"));
  KILN_ASSIGN_OR_RETURN(quant::QuantizeReport q, quant::quantize_model(*model.graph, qo));
  model.graph->remove_unused_values();
  KILN_RETURN_IF_ERROR(onnx::export_model_file(model, args.output));
  std::printf("kiln quantize: %s -> %s\n", args.model.c_str(), args.output.c_str());
  std::printf("int8: %zu layers quantized (%s), %zu kept in fp32\n", q.int8_layers.size(), q.table.calibrator.c_str(),
              q.fp32_layers.size());
  for (const std::string& name : q.int8_layers) std::printf("  %-40s int8\n", name.c_str());
  for (const std::string& name : q.fp32_layers) std::printf("  %-40s fp32\n", name.c_str());
  return Status::ok();
}

}  // namespace

void add_quantize_command(CLI::App& app, int* exit_code) {
  auto args = std::make_shared<QuantizeArgs>();
  CLI::App* sub = app.add_subcommand("quantize", "Calibrate an ONNX model and write it as a Q/DQ (int8) ONNX model");
  sub->add_option("model", args->model, "the fp32 .onnx model file")->required();
  sub->add_option("-o,--output", args->output, "the Q/DQ .onnx file to write")->required();
  sub->add_option("--calib", args->calib_dir,
                  "calibration data: a directory of .npy batches (one-input models) or of batch "
                  "subdirectories holding <input>.npy");
  sub->add_option("--calib-cache", args->calib_cache, "calibration cache: written after calibrating, read without --calib");
  sub->add_option("--calibrator", args->calibrator, "entropy (default), minmax or percentile");
  sub->add_option("--layer-precision", args->layer_precisions, "per-layer override NAME:fp32 (repeatable)");
  sub->callback([args, exit_code] {
    try {
      Status s = run_quantize(*args);
      if (!s.is_ok()) {
        std::fprintf(stderr, "kiln quantize: error: %s\n", s.message().c_str());
        *exit_code = 1;
      }
    } catch (const std::exception& e) {
      std::fprintf(stderr, "kiln quantize: internal error: %s\n", e.what());
      *exit_code = 1;
    }
  });
}

}  // namespace kiln::cli
