// kiln run: runs a model on inputs read from .npy files and prints the
// outputs or writes them as .npy files.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "commands.h"
#include "core/datum.h"
#include "core/error.h"
#include "kiln/session.h"
#include "npy.h"
#include "ops/op_util.h"

namespace kiln::cli {
namespace {

struct RunArgs {
  std::string model;
  std::vector<std::string> inputs;  // NAME=PATH, or PATH for a one-input model
  std::string output_dir;
  int threads = 0;
  int show = 8;
};

// Formats up to `count` leading values of a tensor.
std::string first_values(const Tensor& t, int count) {
  int64_t n = std::min<int64_t>(t.numel(), count);
  std::vector<std::string> parts;
  if (t.dtype() == DataType::kString) {
    for (int64_t i = 0; i < n; ++i) parts.push_back(fmt::format("\"{}\"", t.data<std::string>()[i]));
  } else if (t.dtype() == DataType::kComplex64 || t.dtype() == DataType::kComplex128) {
    return "(complex values)";
  } else {
    auto r = ops::to_float64(t);
    if (!r.is_ok()) return "(values not printable)";
    const double* v = r.value().data<double>();
    for (int64_t i = 0; i < n; ++i) {
      parts.push_back(is_floating(t.dtype()) ? fmt::format("{:.6g}", v[i])
                                             : fmt::format("{}", static_cast<int64_t>(v[i])));
    }
  }
  std::string s = fmt::format("{}", fmt::join(parts, ", "));
  if (t.numel() > n) s += ", ...";
  return s;
}

// A tensor of a type .npy holds: float8/float4/bfloat16 widen to float32, int4/int2 to int8/uint8.
Result<Tensor> npy_compatible(const Tensor& t) {
  switch (t.dtype()) {
    case DataType::kBFloat16:
    case DataType::kFloat8E4M3FN:
    case DataType::kFloat8E4M3FNUZ:
    case DataType::kFloat8E5M2:
    case DataType::kFloat8E5M2FNUZ:
    case DataType::kFloat8E8M0:
    case DataType::kFloat4E2M1:
      return ops::cast_tensor(t, DataType::kFloat32);
    case DataType::kInt4:
    case DataType::kInt2:
      return ops::cast_tensor(t, DataType::kInt8);
    case DataType::kUInt4:
    case DataType::kUInt2:
      return ops::cast_tensor(t, DataType::kUInt8);
    default:
      return t;
  }
}

// A file name for an output: its name with path separators and odd characters replaced.
std::string file_stem(const std::string& name) {
  std::string s;
  for (char c : name) s += (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.') ? c : '_';
  if (s.empty() || s[0] == '.') s = "_" + s;
  return s;
}

Status write_output(const std::string& dir, const std::string& stem, const std::string& what, const Tensor& t) {
  KILN_ASSIGN_OR_RETURN(Tensor out, npy_compatible(t));
  if (out.dtype() != t.dtype()) {
    std::fprintf(stderr, "kiln: note: %s is %s, written as %s\n", what.c_str(),
                 std::string(data_type_name(t.dtype())).c_str(), std::string(data_type_name(out.dtype())).c_str());
  }
  std::string path = (std::filesystem::path(dir) / (stem + ".npy")).string();
  KILN_RETURN_IF_ERROR(write_npy(path, out).with_context(what));
  std::printf("%s: wrote %s (%s)\n", what.c_str(), path.c_str(), out.debug_string().c_str());
  return Status::ok();
}

Status report_output(const RunArgs& args, const std::string& name, const Datum& d) {
  std::vector<std::pair<std::string, Tensor>> tensors;  // (label, tensor)
  const Datum* v = d.is_optional() ? d.optional_value() : &d;
  if (v == nullptr || v->is_none()) {
    std::printf("%s: (empty optional)\n", name.c_str());
    return Status::ok();
  }
  if (v->is_tensor()) {
    tensors.emplace_back("", v->tensor());
  } else if (v->is_sequence()) {
    std::printf("%s: sequence of %zu %s tensors\n", name.c_str(), v->items().size(),
                std::string(data_type_name(v->elem_type())).c_str());
    for (size_t i = 0; i < v->items().size(); ++i) tensors.emplace_back(fmt::format("[{}]", i), v->items()[i]);
  }
  for (const auto& [label, t] : tensors) {
    std::string what = name + label;
    if (!args.output_dir.empty()) {
      std::string stem = file_stem(name) + (label.empty() ? "" : fmt::format(".{}", label.substr(1, label.size() - 2)));
      KILN_RETURN_IF_ERROR(write_output(args.output_dir, stem, "output '" + what + "'", t));
    } else {
      std::printf("%s: %s %s = [%s]\n", what.c_str(), std::string(data_type_name(t.dtype())).c_str(),
                  dims_to_string(t.dims()).c_str(), first_values(t, args.show).c_str());
    }
  }
  return Status::ok();
}

Status run(const RunArgs& args) {
  // Inputs are read before the model is loaded, so that a bad file is reported even for a model that fails.
  std::vector<std::pair<std::string, Tensor>> read;  // (name, or "" for a bare FILE.npy; tensor)
  for (const std::string& spec : args.inputs) {
    size_t eq = spec.find('=');
    std::string name = eq == std::string::npos ? "" : spec.substr(0, eq);
    std::string path = eq == std::string::npos ? spec : spec.substr(eq + 1);
    if (eq != std::string::npos && name.empty()) return invalid_argument("--input '{}': the input name is empty", spec);
    auto tensor = read_npy(path);
    if (!tensor.is_ok()) {
      return name.empty() ? tensor.status() : tensor.status().with_context(fmt::format("input '{}'", name));
    }
    read.emplace_back(name, std::move(tensor).value());
  }
  SessionOptions options;
  options.threads = args.threads;
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, Session::open(args.model, options));
  NamedData feeds;
  for (auto& [name, tensor] : read) {
    if (name.empty()) {
      std::vector<std::string> required;
      for (const IoInfo& in : session->inputs()) {
        if (!in.optional) required.push_back(in.name);
      }
      if (required.size() != 1 || read.size() != 1) {
        return invalid_argument("--input without NAME= needs a model with one input; give NAME=FILE.npy (the "
                                "model's inputs are {})",
                                fmt::join(required, ", "));
      }
      name = required[0];
    }
    feeds.emplace_back(name, Datum(std::move(tensor)));
  }
  if (!args.output_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(args.output_dir, ec);
    if (ec) return io_error("--output-dir {}: {}", args.output_dir, ec.message());
  }
  auto start = std::chrono::steady_clock::now();
  KILN_ASSIGN_OR_RETURN(NamedData outputs, session->run_data(feeds));
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  for (const auto& [name, d] : outputs) KILN_RETURN_IF_ERROR(report_output(args, name, d));
  std::fprintf(stderr, "kiln: ran %s in %.2f ms\n", args.model.c_str(), ms);
  return Status::ok();
}

}  // namespace

void add_run_command(CLI::App& app, int* exit_code) {
  auto args = std::make_shared<RunArgs>();
  CLI::App* sub = app.add_subcommand("run", "Run a model on inputs read from .npy files");
  sub->add_option("model", args->model, "the .onnx model file")->required();
  sub->add_option("-i,--input", args->inputs,
                  "an input as NAME=FILE.npy (repeat for each input; just FILE.npy for a one-input model)");
  sub->add_option("-o,--output-dir", args->output_dir,
                  "write each output to DIR/<name>.npy instead of printing it");
  sub->add_option("-t,--threads", args->threads, "intra-op threads (0: every hardware thread)")
      ->check(CLI::Range(0, 4096));
  sub->add_option("--show", args->show, "how many leading values of each output to print (default 8)")
      ->check(CLI::Range(0, 1 << 30));
  sub->footer("");
  sub->callback([args, exit_code] {
    try {
      Status s = run(*args);
      if (!s.is_ok()) {
        std::fprintf(stderr, "kiln run: error: %s\n", s.message().c_str());
        *exit_code = 1;
      }
    } catch (const std::exception& e) {
      std::fprintf(stderr, "kiln run: internal error: %s\n", e.what());
      *exit_code = 1;
    }
  });
}

}  // namespace kiln::cli
