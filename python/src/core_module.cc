// kiln._core: the thin pybind11 layer over include/kiln (Session, its I/O
// descriptions and errors). The idiomatic API (InferenceSession, backend)
// lives in the Python package above it.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <fmt/format.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "convert.h"
#include "errors.h"
#include "kiln/builder.h"
#include "kiln/session.h"
#include "test_hooks.h"
#include "train_module.h"

#ifndef KILN_VERSION
#define KILN_VERSION "0.0.0"
#endif

namespace py = pybind11;
using namespace pybind11::literals;  // NOLINT(google-build-using-namespace): "name"_a keyword arguments

namespace kiln::python {
namespace {

const char* kind_name(IoKind kind) {
  switch (kind) {
    case IoKind::kTensor: return "tensor";
    case IoKind::kSequence: return "sequence";
    case IoKind::kOptional: return "optional";
    case IoKind::kMap: return "map";
    case IoKind::kUnknown: break;
  }
  return "unknown";
}

std::unique_ptr<Session> open_session(const py::object& model, int threads, std::vector<std::string> passes) {
  if (threads < 0) throw_status(Status(StatusCode::kInvalidArgument, "threads must be >= 0, got " + std::to_string(threads)));
  SessionOptions options;
  options.threads = threads;
  options.passes = std::move(passes);
  if (py::isinstance<py::bytes>(model) || py::isinstance<py::bytearray>(model) ||
      py::isinstance<py::memoryview>(model)) {
    PyObject* raw = py::isinstance<py::bytes>(model) ? model.inc_ref().ptr() : PyBytes_FromObject(model.ptr());
    if (raw == nullptr) throw py::error_already_set();
    std::string bytes = py::reinterpret_steal<py::bytes>(raw);  // one copy; the import then runs without the GIL
    Result<std::unique_ptr<Session>> r = [&] {
      py::gil_scoped_release nogil;
      return Session::from_bytes(bytes, options, "<bytes>");
    }();
    return value_or_throw(std::move(r));
  }
  py::object path = py::module_::import("os").attr("fspath")(model);
  if (!py::isinstance<py::str>(path)) {
    throw_status(Status(StatusCode::kInvalidArgument, "model must be a path (str) or serialized ONNX bytes"));
  }
  std::string p = path.cast<std::string>();
  Result<std::unique_ptr<Session>> r = [&] {
    py::gil_scoped_release nogil;
    return Session::open(p, options);
  }();
  return value_or_throw(std::move(r));
}

py::dict py_build_plan(const std::string& onnx_path, const std::string& plan_path, const std::string& precision,
                    const std::string& shapes, const std::string& min_shapes, const std::string& opt_shapes,
                    const std::string& max_shapes, const std::string& timing_cache,
                    const std::vector<std::string>& tactic_sources, int threads, bool time_tactics,
                    const py::object& calib, const std::string& calib_cache, const std::string& calibrator,
                    const std::vector<std::string>& layer_precisions, double max_accuracy_drop) {
  BuildConfig c;
  // calib: an iterable of {input name: array} batches (converted while holding the GIL).
  if (!calib.is_none()) {
    size_t index = 0;
    for (const py::handle batch : calib) {
      if (!py::isinstance<py::dict>(batch)) {
        throw_status(Status(StatusCode::kInvalidArgument,
                            fmt::format("calibration batch {} must be a dict of input name -> array", index)));
      }
      std::map<std::string, Tensor> feed;
      for (const auto& [name, value] : batch.cast<py::dict>()) {
        const std::string n = py::str(name).cast<std::string>();
        feed[n] = tensor_from_object(value, fmt::format("calibration batch {} input '{}'", index, n));
      }
      c.calib_batches.push_back(std::move(feed));
      ++index;
    }
  }
  c.calib_cache = calib_cache;
  c.calibrator = calibrator;
  c.layer_precisions = layer_precisions;
  c.max_accuracy_drop = max_accuracy_drop;
  c.precision = precision;
  c.shapes = shapes;
  c.min_shapes = min_shapes;
  c.opt_shapes = opt_shapes;
  c.max_shapes = max_shapes;
  c.timing_cache = timing_cache;
  c.tactic_sources = tactic_sources;
  c.threads = threads;
  c.time_tactics = time_tactics;
  Result<BuildSummary> r = [&] {
    py::gil_scoped_release nogil;
    return kiln::build_plan(onnx_path, plan_path, c);
  }();
  BuildSummary s = value_or_throw(std::move(r));
  return py::dict("onnx_nodes"_a = s.onnx_nodes, "layers"_a = s.layers,
                  "peak_activation_bytes"_a = s.peak_activation_bytes,
                  "naive_activation_bytes"_a = s.naive_activation_bytes, "timed_layers"_a = s.timed_layers,
                  "cache_hits"_a = s.cache_hits, "cache_misses"_a = s.cache_misses, "seconds"_a = s.seconds,
                  "int8_layers"_a = s.int8_layers, "fp32_layers"_a = s.fp32_layers);
}

const IoInfo* find_input(const Session& s, const std::string& name) {
  for (const IoInfo& info : s.inputs()) {
    if (info.name == name) return &info;
  }
  return nullptr;
}

py::list run_session(const Session& s, const py::dict& feeds, const std::optional<std::vector<std::string>>& names) {
  NamedData data;
  data.reserve(feeds.size());
  for (auto [key, value] : feeds) {
    if (!py::isinstance<py::str>(key)) {
      throw_status(Status(StatusCode::kInvalidArgument, "input names must be str, got " +
                                                            std::string(py::str(py::type::handle_of(key).attr("__name__")))));
    }
    std::string name = key.cast<std::string>();
    data.emplace_back(name, datum_from_object(value, find_input(s, name), "input '" + name + "'"));
  }
  std::vector<std::string> wanted = names.value_or(std::vector<std::string>{});
  Result<NamedData> r = [&] {
    py::gil_scoped_release nogil;
    return s.run_data(data, wanted);
  }();
  NamedData outputs = value_or_throw(std::move(r));
  py::list result;
  for (const auto& [name, datum] : outputs) result.append(datum_to_object(datum));
  return result;
}

}  // namespace
}  // namespace kiln::python

PYBIND11_MODULE(_core, m) {
  using namespace kiln;          // NOLINT(google-build-using-namespace)
  using namespace kiln::python;  // NOLINT(google-build-using-namespace)
  m.doc() = "Kiln core bindings: Session, I/O descriptions and errors";
  m.attr("__version__") = KILN_VERSION;
  register_errors(m);
  register_train(m);

  py::class_<IoInfo>(m, "IoInfo", "One model input or output")
      .def_readonly("name", &IoInfo::name)
      .def_property_readonly("kind", [](const IoInfo& i) { return kind_name(i.kind); },
                             "'tensor', 'sequence', 'optional', 'map' or 'unknown'")
      .def_readonly("type", &IoInfo::type, "ONNX Runtime's spelling: 'tensor(float)', 'seq(tensor(int64))', ...")
      .def_property_readonly("dtype", [](const IoInfo& i) { return std::string(data_type_name(i.dtype)); },
                             "element type of the tensor (inside a sequence/optional): 'float', 'int64', ...")
      .def_readonly("dims", &IoInfo::dims, "-1 where unknown or symbolic")
      .def_readonly("dim_names", &IoInfo::dim_names, "the symbol of each named dim, '' otherwise")
      .def_readonly("rank_known", &IoInfo::rank_known)
      .def_readonly("optional", &IoInfo::optional, "an input with a default value (an initializer)")
      .def("__repr__", [](const IoInfo& i) { return "<IoInfo " + i.name + ": " + i.type + ">"; });

  py::class_<Session>(m, "Session", "A loaded model; thread-safe")
      .def(py::init(&open_session), "model"_a, "threads"_a = 0, "passes"_a = std::vector<std::string>{},
           "Loads an ONNX model or a plan file from a path, or an ONNX model from serialized bytes. threads=0 uses every hardware thread. "
           "passes: optimizer passes to run first ([] none, ['all'] the default pipeline, ['NAME'] the "
           "pipeline up to and including pass NAME).")
      .def_property_readonly("inputs", &Session::inputs)
      .def_property_readonly("outputs", &Session::outputs)
      .def_property_readonly("opset", &Session::opset)
      .def_property_readonly(
          "layers",
          [](const Session& s) {
            py::list out;
            for (const LayerInfo& l : s.layers()) out.append(py::make_tuple(l.name, l.op, l.fused_from));
            return out;
          },
          "The top-level nodes the session runs, as (name, op, fused_from) tuples.")
      .def("run", &run_session, "feeds"_a, "output_names"_a = py::none(),
           "Runs the model on {name: array} and returns the outputs (all, or those named) as a list. "
           "Sequence outputs are lists of arrays; empty optionals are None. The GIL is released while it runs.");

  m.def("optimizer_pass_names", &optimizer_pass_names, "The optimizer's default pipeline, in order.");
  m.def("build", &py_build_plan, "onnx_path"_a, "plan_path"_a, "precision"_a = "fp32", "shapes"_a = "",
        "min_shapes"_a = "", "opt_shapes"_a = "", "max_shapes"_a = "", "timing_cache"_a = "",
        "tactic_sources"_a = std::vector<std::string>{}, "threads"_a = 0, "time_tactics"_a = true,
        "calib"_a = py::none(), "calib_cache"_a = "", "calibrator"_a = "entropy",
        "layer_precisions"_a = std::vector<std::string>{}, "max_accuracy_drop"_a = -1.0,
        "Builds a plan file from an ONNX model (shapes in trtexec syntax); returns a summary dict.");

  m.def("_roundtrip", [](const py::object& obj) { return tensor_to_array(tensor_from_object(obj, "value")); },
        "Test hook: numpy -> kiln::Tensor -> numpy.");
  m.def("_identity_session", &make_identity_session, "inputs"_a, "threads"_a = 1,
        "Test hook: a Session whose outputs '<name>_out' are Identity copies of the given inputs, built directly "
        "as IR (no ONNX import). Each input is (name, kind, dtype, dims, default): kind 'tensor', 'sequence' or "
        "'optional'; dims a list of int/str/None or None for unknown rank; default None or an array used as the "
        "input's initializer.");
}
