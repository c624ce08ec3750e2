#include "train_module.h"

#include <pybind11/stl.h>

#include "convert.h"
#include "errors.h"
#include "kiln/train.h"
#include "train/data_loader.h"

namespace py = pybind11;
using namespace pybind11::literals;  // NOLINT(google-build-using-namespace)

namespace kiln::python {

namespace {

using train::Loss;
using train::Model;
using train::Optimizer;

void check(const Status& s) {
  if (!s.is_ok()) throw_status(s);
}

py::object call_tensor(Result<Tensor> r) { return tensor_to_array(value_or_throw(std::move(r))); }

// Loaders copy the arrays once; batches are fresh arrays.
struct PyDataLoader {
  train::DataLoader loader;
  int64_t epoch = 0;
};

}  // namespace

void register_train(py::module_& parent) {
  py::module_ m = parent.def_submodule("train", "Training: autodiff over the Kiln IR, optimizers, AMP");

  py::class_<Loss>(m, "Loss", "A loss value and its gradient with respect to the model output")
      .def_readonly("value", &Loss::value)
      .def_property_readonly("grad", [](const Loss& l) { return tensor_to_array(l.grad); })
      .def("__float__", [](const Loss& l) { return l.value; })
      .def("__repr__", [](const Loss& l) { return "<Loss " + std::to_string(l.value) + ">"; });
  m.def("cross_entropy", [](const py::object& logits, const py::object& labels) {
    return value_or_throw(train::cross_entropy(tensor_from_object(logits, "logits"), tensor_from_object(labels, "labels")));
  }, "logits"_a, "labels"_a, "Softmax cross-entropy, mean over the batch");
  m.def("mse", [](const py::object& pred, const py::object& target) {
    return value_or_throw(train::mse(tensor_from_object(pred, "pred"), tensor_from_object(target, "target")));
  }, "pred"_a, "target"_a, "Mean squared error");

  py::class_<Model>(m, "Model", "A trainable model over the Kiln IR")
      .def_static("sequential", [](const std::vector<int64_t>& dims, const std::vector<std::string>& layers, uint64_t seed) {
        return value_or_throw(Model::sequential(dims, layers, seed));
      }, "sample_shape"_a, "layers"_a, "seed"_a = 0)
      .def_static("load_onnx", [](const std::string& path) { return value_or_throw(Model::load_onnx(path)); }, "path"_a)
      .def("forward", [](Model& self, const py::object& x) { return call_tensor(self.forward(tensor_from_object(x, "input"))); },
           "x"_a, "Training-mode forward, recorded for backward()")
      .def("backward", [](Model& self, const py::object& g) { check(self.backward(tensor_from_object(g, "grad"))); }, "grad"_a)
      .def("predict", [](Model& self, const py::object& x) { return call_tensor(self.predict(tensor_from_object(x, "input"))); },
           "x"_a, "Inference-mode forward")
      .def("parameter_names", &Model::parameter_names)
      .def_property_readonly("num_parameters", &Model::num_parameters)
      .def("parameter", [](const Model& self, const std::string& n) { return call_tensor(self.parameter(n)); }, "name"_a,
           "The fp32 value (a view that shares the model's storage)")
      .def("grad", [](const Model& self, const std::string& n) { return call_tensor(self.grad(n)); }, "name"_a)
      .def_property_readonly("amp_level", &Model::amp_level)
      .def("save_onnx", [](const Model& self, const std::string& path) { check(self.save_onnx(path)); }, "path"_a)
      .def("onnx_bytes", [](const Model& self) { return py::bytes(value_or_throw(self.onnx_bytes())); });

  py::class_<Optimizer>(m, "Optimizer", "SGD / Adam / AdamW over a model's parameters (keep the model alive)")
      .def_static("sgd", [](Model& model, double lr, double momentum, double dampening, double weight_decay, bool nesterov) {
        return value_or_throw(Optimizer::sgd(model, {lr, momentum, dampening, weight_decay, nesterov}));
      }, "model"_a, "lr"_a = 0.01, "momentum"_a = 0.0, "dampening"_a = 0.0, "weight_decay"_a = 0.0, "nesterov"_a = false,
         py::keep_alive<0, 1>())
      .def_static("adam", [](Model& model, double lr, double beta1, double beta2, double eps, double weight_decay, bool decoupled) {
        train::AdamOptions o{lr, beta1, beta2, eps, weight_decay};
        return value_or_throw(decoupled ? Optimizer::adamw(model, o) : Optimizer::adam(model, o));
      }, "model"_a, "lr"_a = 1e-3, "beta1"_a = 0.9, "beta2"_a = 0.999, "eps"_a = 1e-8, "weight_decay"_a = 0.0,
         "decoupled"_a = false, py::keep_alive<0, 1>())
      .def("step", [](Optimizer& self) { return value_or_throw(self.step()); },
           "Unscale, skip on inf/NaN (returns False), clip, update")
      .def_property("lr", &Optimizer::lr, &Optimizer::set_lr)
      .def("set_max_grad_norm", &Optimizer::set_max_grad_norm, "max_norm"_a)
      .def_property_readonly("last_grad_norm", &Optimizer::last_grad_norm)
      .def_property_readonly("steps", &Optimizer::steps)
      .def_property_readonly("skipped_steps", &Optimizer::skipped_steps)
      .def_property_readonly("loss_scale", &Optimizer::loss_scale)
      .def("save_checkpoint", [](const Optimizer& self, const std::string& p) { check(self.save_checkpoint(p)); }, "path"_a)
      .def("load_checkpoint", [](Optimizer& self, const std::string& p) { check(self.load_checkpoint(p)); }, "path"_a);

  m.def("amp_initialize", [](Model& model, Optimizer& opt, const std::string& level, std::optional<double> init_scale,
                             std::optional<int64_t> growth_interval, std::optional<bool> dynamic) {
    train::AmpOptions o;
    o.init_scale = init_scale;
    o.growth_interval = growth_interval;
    o.dynamic = dynamic;
    check(train::amp::initialize(model, opt, level, o));
  }, "model"_a, "optimizer"_a, "level"_a, "init_scale"_a = py::none(), "growth_interval"_a = py::none(),
     "dynamic"_a = py::none());
  m.def("amp_scaled_backward", [](Model& model, Optimizer& opt, const Loss& loss) {
    check(train::amp::scaled_backward(model, opt, loss));
  }, "model"_a, "optimizer"_a, "loss"_a);

  py::class_<PyDataLoader>(m, "DataLoader", "Seeded shuffling and batching over in-memory arrays")
      .def(py::init([](const py::object& x, const py::object& y, int64_t batch_size, bool shuffle, uint64_t seed,
                       bool drop_last) {
        Tensor tx = tensor_from_object(x, "x").clone();
        Tensor ty = tensor_from_object(y, "y").clone();
        return PyDataLoader{value_or_throw(train::DataLoader::create(tx, ty, batch_size, shuffle, seed, drop_last)), 0};
      }), "x"_a, "y"_a, "batch_size"_a, "shuffle"_a = true, "seed"_a = 0, "drop_last"_a = false)
      .def("__len__", [](const PyDataLoader& d) { return d.loader.num_batches(); })
      .def("set_epoch", [](PyDataLoader& d, int64_t e) { d.epoch = e; d.loader.set_epoch(e); }, "epoch"_a)
      .def("batch", [](const PyDataLoader& d, int64_t i) {
        train::Batch b = value_or_throw(d.loader.batch(i));
        return py::make_tuple(tensor_to_array(b.x), tensor_to_array(b.y));
      }, "index"_a);
}

}  // namespace kiln::python
