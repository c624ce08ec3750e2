// kiln accuracy: top-1 of a classifier at several precisions on labelled
// data, against fp32: the table of docs/PRECISION.md.
//
//   kiln accuracy model.onnx --data DIR --labels FILE --precisions fp32,bf16,fp16,int8 [--calib DIR]
//
// DIR holds the inputs as .npy batches (one-input models; name order), FILE
// the labels (an integer .npy array, or text with one label per line) in the
// same order. Each precision is built into a plan (kiln::build_plan, no
// tactic timing) and run; int8 calibrates on --calib (default: the first
// --calib-batches batches of --data, which the table then says).
#include <CLI/CLI.hpp>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "calib_data.h"
#include "commands.h"
#include "core/error.h"
#include "kiln/builder.h"
#include "kiln/session.h"
#include "npy.h"
#include "output.h"
#include "onnx/importer.h"

namespace kiln::cli {
namespace {

struct AccuracyArgs {
  std::string model, data, labels, calib, precisions = "fp32,bf16,fp16,int8", calibrator = "entropy";
  int calib_batches = 4;
  int threads = 0;
};

Result<std::vector<int64_t>> read_labels(const std::string& path) {
  std::vector<int64_t> out;
  if (path.ends_with(".npy")) {
    KILN_ASSIGN_OR_RETURN(Tensor t, read_npy(path));
    for (int64_t i = 0; i < t.numel(); ++i) {
      switch (t.dtype()) {
        case DataType::kInt64:
          out.push_back(t.data<int64_t>()[i]);
          break;
        case DataType::kInt32:
          out.push_back(t.data<int32_t>()[i]);
          break;
        case DataType::kUInt8:
          out.push_back(t.data<uint8_t>()[i]);
          break;
        default:
          return invalid_argument("labels '{}' must be integers, got {}", path, data_type_name(t.dtype()));
      }
    }
    return out;
  }
  std::ifstream in(path);
  if (!in) return not_found("labels file '{}' does not exist or cannot be read", path);
  std::string line;
  int64_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty()) continue;
    std::istringstream is(line);
    int64_t v = 0;
    if (!(is >> v)) return invalid_argument("labels '{}': line {} is not an integer", path, n);
    out.push_back(v);
  }
  return out;
}

// Top-1 class of each row of a [N, C] (or [N, ..., C]) float output.
Result<std::vector<int64_t>> argmax_rows(const Tensor& y) {
  if (y.dtype() != DataType::kFloat32 || y.rank() < 1) {
    return invalid_argument("the model's first output must be float scores, got {}{}", data_type_name(y.dtype()),
                            dims_to_string(y.dims()));
  }
  const int64_t classes = y.dim(y.rank() - 1);
  const int64_t rows = classes > 0 ? y.numel() / classes : 0;
  std::vector<int64_t> out;
  for (int64_t r = 0; r < rows; ++r) {
    const float* p = y.data<float>() + r * classes;
    out.push_back(std::max_element(p, p + classes) - p);
  }
  return out;
}

Status run_accuracy(const AccuracyArgs& args) {
  KILN_ASSIGN_OR_RETURN(ir::Model probe, onnx::import_model_file(args.model));
  KILN_ASSIGN_OR_RETURN(std::vector<quant::Feed> data, read_calibration_dir(args.data, *probe.graph));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> labels, read_labels(args.labels));
  std::vector<quant::Feed> calib;
  std::string calib_note;
  if (!args.calib.empty()) {
    KILN_ASSIGN_OR_RETURN(calib, read_calibration_dir(args.calib, *probe.graph));
    calib_note = "calibrated on " + args.calib;
  } else {
    calib.assign(data.begin(), data.begin() + std::min<size_t>(data.size(), static_cast<size_t>(args.calib_batches)));
    calib_note = fmt::format("calibrated on the first {} batches of the data", calib.size());
  }
  std::vector<std::string> precisions;
  {
    std::stringstream in(args.precisions);
    std::string p;
    while (std::getline(in, p, ',')) {
      if (!p.empty()) precisions.push_back(p);
    }
  }
  if (precisions.empty()) return invalid_argument("--precisions is empty");
  const std::string plan_path =
      (std::filesystem::temp_directory_path() / fmt::format("kiln_accuracy_{}.plan", ::getpid())).string();
  std::map<std::string, std::vector<int64_t>> predictions;
  // One redrawn line on a terminal, plain lines in logs, nothing with --quiet:
  // the build's own stages (calibration among them), then the evaluation.
  Progress progress("accuracy");
  for (const std::string& p : precisions) {
    BuildConfig c;
    c.progress = [&progress, &p](const std::string& stage, size_t done, size_t total) {
      progress.update(p + ": " + stage, done, total);
    };
    c.precision = p;
    c.time_tactics = false;
    c.threads = args.threads;
    c.calibrator = args.calibrator;
    if (p == "int8") c.calib_batches.assign(calib.begin(), calib.end());
    auto built = build_plan(args.model, plan_path, c);
    if (!built.is_ok()) return std::move(built).status().with_context("precision " + p);
    SessionOptions so;
    so.threads = args.threads;
    auto session = Session::open(plan_path, so);
    std::error_code ec;
    std::filesystem::remove(plan_path, ec);
    if (!session.is_ok()) return std::move(session).status().with_context("precision " + p);
    std::vector<int64_t>& pred = predictions[p];
    for (size_t b = 0; b < data.size(); ++b) {
      progress.update(p + ": evaluating", b, data.size());
      NamedTensors feeds(data[b].begin(), data[b].end());
      KILN_ASSIGN_OR_RETURN(NamedTensors out, (*session)->run(feeds));
      KILN_ASSIGN_OR_RETURN(std::vector<int64_t> top, argmax_rows(out.at(0).second));
      pred.insert(pred.end(), top.begin(), top.end());
    }
    progress.update(p + ": evaluating", data.size(), data.size());
    if (pred.size() != labels.size()) {
      return invalid_argument("the data has {} samples but '{}' has {} labels", pred.size(), args.labels, labels.size());
    }
  }
  auto top1 = [&](const std::vector<int64_t>& pred) {
    int64_t ok = 0;
    for (size_t i = 0; i < pred.size(); ++i) ok += pred[i] == labels[i] ? 1 : 0;
    return 100.0 * static_cast<double>(ok) / static_cast<double>(std::max<size_t>(pred.size(), 1));
  };
  const bool have_fp32 = predictions.count("fp32") > 0;
  std::printf("kiln accuracy: %s, %zu samples (%s)\n", args.model.c_str(), labels.size(), calib_note.c_str());
  std::printf("%-10s %10s %12s %16s\n", "precision", "top-1 %", "vs fp32", "agree w/ fp32 %");
  for (const std::string& p : precisions) {
    const double t = top1(predictions[p]);
    if (!have_fp32 || p == "fp32") {
      std::printf("%-10s %10.2f %12s %16s\n", p.c_str(), t, "-", "-");
      continue;
    }
    const auto& ref = predictions["fp32"];
    int64_t agree = 0;
    for (size_t i = 0; i < ref.size(); ++i) agree += ref[i] == predictions[p][i] ? 1 : 0;
    std::printf("%-10s %10.2f %+12.2f %16.2f\n", p.c_str(), t, t - top1(ref),
                100.0 * static_cast<double>(agree) / static_cast<double>(std::max<size_t>(ref.size(), 1)));
  }
  return Status::ok();
}

}  // namespace

void add_accuracy_command(CLI::App& app, int* exit_code) {
  auto args = std::make_shared<AccuracyArgs>();
  CLI::App* sub = app.add_subcommand("accuracy", "Top-1 of a classifier at several precisions, against fp32");
  sub->add_option("model", args->model, "the fp32 .onnx classifier")->required();
  sub->add_option("--data", args->data, "directory of .npy input batches (name order)")->required();
  sub->add_option("--labels", args->labels, "labels: an integer .npy array or one integer per line")->required();
  sub->add_option("--precisions", args->precisions, "comma-separated: fp32,bf16,fp16,int8 (default all)");
  sub->add_option("--calib", args->calib, "int8 calibration batches (default: the first --calib-batches of --data)");
  sub->add_option("--calib-batches", args->calib_batches, "batches of --data to calibrate on without --calib");
  sub->add_option("--calibrator", args->calibrator, "entropy (default), minmax or percentile");
  sub->add_option("--threads", args->threads, "threads (default: all)");
  sub->callback([args, exit_code] {
    try {
      Status s = run_accuracy(*args);
      if (!s.is_ok()) {
        std::fprintf(stderr, "kiln accuracy: error: %s\n", s.message().c_str());
        *exit_code = 1;
      }
    } catch (const std::exception& e) {
      std::fprintf(stderr, "kiln accuracy: internal error: %s\n", e.what());
      *exit_code = 1;
    }
  });
}

}  // namespace kiln::cli
