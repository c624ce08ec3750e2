#include "test_hooks.h"

#include <string>
#include <utility>

#include "convert.h"
#include "errors.h"
#include "ir/graph.h"

namespace py = pybind11;

namespace kiln::python {
namespace {

[[noreturn]] void bad(const std::string& message) { throw_status(Status(StatusCode::kInvalidArgument, message)); }

Shape shape_of(const py::handle& dims) {
  if (dims.is_none()) return Shape::unknown_rank();
  std::vector<Dim> out;
  for (py::handle d : dims) {
    if (d.is_none()) {
      out.emplace_back();
    } else if (py::isinstance<py::str>(d)) {
      out.push_back(Dim::sym(d.cast<std::string>()));
    } else {
      out.emplace_back(d.cast<int64_t>());
    }
  }
  return Shape(std::move(out));
}

}  // namespace

std::unique_ptr<Session> make_identity_session(const py::list& inputs, int threads) {
  auto graph = std::make_shared<ir::Graph>("identity");
  graph->set_opset_imports({{"", 21}});
  for (py::handle item : inputs) {
    auto spec = item.cast<py::tuple>();
    if (spec.size() != 5) bad("each input is (name, kind, dtype, dims, default)");
    auto name = spec[0].cast<std::string>();
    auto kind = spec[1].cast<std::string>();
    auto dtype_name = spec[2].cast<std::string>();
    std::optional<DataType> dtype = data_type_from_name(dtype_name);
    if (!dtype) bad("unknown dtype '" + dtype_name + "'");
    ir::ValueType tensor_type = ir::ValueType::tensor(*dtype, shape_of(spec[3]));
    ir::ValueType type = tensor_type;
    if (kind == "sequence") {
      type = ir::ValueType::wrapping(ir::ValueType::Kind::kSequence, tensor_type);
    } else if (kind == "optional") {
      type = ir::ValueType::wrapping(ir::ValueType::Kind::kOptional, tensor_type);
    } else if (kind != "tensor") {
      bad("unknown kind '" + kind + "'");
    }
    ir::Value* in = nullptr;
    if (!spec[4].is_none()) {
      // Copy the default so that the model owns its constant.
      Tensor value = tensor_from_object(spec[4], "default of '" + name + "'").clone();
      in = value_or_throw(graph->add_constant(name, std::move(value)));
      in->set_type(type);
    } else {
      in = value_or_throw(graph->add_value(name, type));
    }
    graph->add_input(in);
    ir::Value* out = value_or_throw(graph->add_value(name + "_out", type));
    ir::Node* node = graph->add_node("Identity", {in}, {out}, "identity_" + name);
    node->set_opset(21);
    graph->add_output(out);
  }
  ir::Model model;
  model.graph = std::move(graph);
  model.source_path = "<identity test model>";
  SessionOptions options;
  options.threads = threads;
  Result<std::unique_ptr<Session>> r = [&] {
    py::gil_scoped_release nogil;
    return Session::from_model(std::move(model), options);
  }();
  return value_or_throw(std::move(r));
}

}  // namespace kiln::python
