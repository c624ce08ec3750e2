// kiln train: trains a model on .npy data with an optimizer and an AMP
// level, prints one line per epoch (loss, held-out accuracy, skipped steps,
// loss scale, throughput) and writes the trained model as ONNX and
// optionally a checkpoint. The model is an ONNX file (--model) or a layer
// list (--layers, see src/train/model_builder.h). Integer labels train with
// softmax cross-entropy, float targets with MSE.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <memory>
#include <numbers>
#include <sstream>
#include <string>
#include <vector>

#include "commands.h"
#include "core/error.h"
#include "kiln/train.h"
#include "npy.h"
#include "train/data_loader.h"

namespace kiln::cli {
namespace {

struct TrainArgs {
  std::string model, layers, sample_shape;
  std::string x, y, test_x, test_y;
  std::string amp = "O0";
  std::string optimizer = "sgd";
  double lr = 0.05, momentum = 0.9, weight_decay = 0, max_grad_norm = 0;
  bool nesterov = false, cosine = false;
  int64_t epochs = 8, batch_size = 32;
  uint64_t seed = 0;
  std::string output, checkpoint, resume;
};

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, sep)) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

Result<train::Model> make_model(const TrainArgs& a, const Tensor& x) {
  if (!a.model.empty()) return train::Model::load_onnx(a.model);
  if (a.layers.empty()) return invalid_argument("give --model or --layers");
  Dims sample(x.dims().begin() + 1, x.dims().end());
  return train::Model::sequential(sample, split(a.layers, ','), a.seed);
}

Result<train::Optimizer> make_optimizer(const TrainArgs& a, train::Model& model) {
  if (a.optimizer == "sgd") return train::Optimizer::sgd(model, {a.lr, a.momentum, 0, a.weight_decay, a.nesterov});
  train::AdamOptions o;
  o.lr = a.lr;
  o.weight_decay = a.weight_decay;
  if (a.optimizer == "adam") return train::Optimizer::adam(model, o);
  if (a.optimizer == "adamw") return train::Optimizer::adamw(model, o);
  return invalid_argument("unknown optimizer '{}' (sgd, adam, adamw)", a.optimizer);
}

bool is_int(const Tensor& t) { return t.dtype() == DataType::kInt64 || t.dtype() == DataType::kInt32; }

Result<train::Loss> loss_of(const Tensor& out, const Tensor& y) {
  return is_int(y) ? train::cross_entropy(out, y) : train::mse(out, y);
}

// Top-1 accuracy (integer labels) in percent, or the mean loss (float targets).
Result<double> evaluate(train::Model& model, const Tensor& x, const Tensor& y) {
  KILN_ASSIGN_OR_RETURN(train::DataLoader loader, train::DataLoader::create(x, y, 256, false));
  double total = 0;
  for (int64_t b = 0; b < loader.num_batches(); ++b) {
    KILN_ASSIGN_OR_RETURN(train::Batch batch, loader.batch(b));
    KILN_ASSIGN_OR_RETURN(Tensor out, model.predict(batch.x));
    if (!is_int(y)) {
      KILN_ASSIGN_OR_RETURN(train::Loss l, train::mse(out, batch.y));
      total += l.value * static_cast<double>(batch.y.dim(0));
      continue;
    }
    if (out.rank() != 2 || out.dtype() != DataType::kFloat32) return invalid_argument("logits must be float [N, C]");
    for (int64_t i = 0; i < out.dim(0); ++i) {
      const float* row = out.data<float>() + i * out.dim(1);
      int64_t best = std::max_element(row, row + out.dim(1)) - row;
      int64_t label = batch.y.dtype() == DataType::kInt64 ? batch.y.data<int64_t>()[i] : batch.y.data<int32_t>()[i];
      total += best == label ? 100.0 : 0.0;
    }
  }
  return total / static_cast<double>(x.dim(0));
}

Status run_train(const TrainArgs& a) {
  KILN_ASSIGN_OR_RETURN(Tensor x, read_npy(a.x));
  KILN_ASSIGN_OR_RETURN(Tensor y, read_npy(a.y));
  if (x.rank() < 2) return invalid_argument("{}: samples need a leading batch dim and a sample shape", a.x);
  if (a.epochs <= 0 || a.batch_size <= 0) return invalid_argument("--epochs and --batch-size must be positive");
  Tensor test_x, test_y;
  if (!a.test_x.empty() || !a.test_y.empty()) {
    if (a.test_x.empty() || a.test_y.empty()) return invalid_argument("give both --test-x and --test-y");
    KILN_ASSIGN_OR_RETURN(test_x, read_npy(a.test_x));
    KILN_ASSIGN_OR_RETURN(test_y, read_npy(a.test_y));
  }
  KILN_ASSIGN_OR_RETURN(train::Model model, make_model(a, x));
  KILN_ASSIGN_OR_RETURN(train::Optimizer opt, make_optimizer(a, model));
  KILN_RETURN_IF_ERROR(train::amp::initialize(model, opt, a.amp));
  opt.set_max_grad_norm(a.max_grad_norm);
  if (!a.resume.empty()) KILN_RETURN_IF_ERROR(opt.load_checkpoint(a.resume));
  KILN_ASSIGN_OR_RETURN(train::DataLoader loader, train::DataLoader::create(x, y, a.batch_size, true, a.seed));
  std::printf("%s: %lld samples, %lld parameters, AMP %s, %s lr %g, %lld epochs of %lld batches\n",
              a.model.empty() ? "layers" : a.model.c_str(), static_cast<long long>(x.dim(0)),
              static_cast<long long>(model.num_parameters()), model.amp_level().c_str(), a.optimizer.c_str(), a.lr,
              static_cast<long long>(a.epochs), static_cast<long long>(loader.num_batches()));
  for (int64_t epoch = 0; epoch < a.epochs; ++epoch) {
    if (a.cosine) opt.set_lr(a.lr * 0.5 * (1 + std::cos(std::numbers::pi * static_cast<double>(epoch) / static_cast<double>(a.epochs))));
    loader.set_epoch(epoch);
    double loss_sum = 0;
    auto start = std::chrono::steady_clock::now();
    for (int64_t b = 0; b < loader.num_batches(); ++b) {
      KILN_ASSIGN_OR_RETURN(train::Batch batch, loader.batch(b));
      KILN_ASSIGN_OR_RETURN(Tensor out, model.forward(batch.x));
      KILN_ASSIGN_OR_RETURN(train::Loss loss, loss_of(out, batch.y));
      KILN_RETURN_IF_ERROR(train::amp::scaled_backward(model, opt, loss));
      KILN_RETURN_IF_ERROR(opt.step());
      loss_sum += loss.value;
    }
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::string held_out;
    if (test_x.defined()) {
      KILN_ASSIGN_OR_RETURN(double metric, evaluate(model, test_x, test_y));
      held_out = is_int(test_y) ? fmt::format("  held-out accuracy {:.2f}%", metric) : fmt::format("  held-out mse {:.5f}", metric);
    }
    std::printf("epoch %lld  loss %.4f%s  skipped %lld  scale %g  %.0f samples/s\n", static_cast<long long>(epoch + 1),
                loss_sum / static_cast<double>(loader.num_batches()), held_out.c_str(),
                static_cast<long long>(opt.skipped_steps()), opt.loss_scale(),
                static_cast<double>(x.dim(0)) / std::max(seconds, 1e-9));
  }
  if (!a.output.empty()) {
    KILN_RETURN_IF_ERROR(model.save_onnx(a.output));
    std::printf("wrote %s\n", a.output.c_str());
  }
  if (!a.checkpoint.empty()) {
    KILN_RETURN_IF_ERROR(opt.save_checkpoint(a.checkpoint));
    std::printf("wrote %s\n", a.checkpoint.c_str());
  }
  return Status::ok();
}

}  // namespace

void add_train_command(CLI::App& app, int* exit_code) {
  auto args = std::make_shared<TrainArgs>();
  CLI::App* sub = app.add_subcommand("train", "Train a model on .npy data (optionally with mixed precision)");
  sub->add_option("--model", args->model, "an ONNX model to train (its ops need gradient rules)");
  sub->add_option("--layers", args->layers, "or a sequential model: conv:16:3:1:1,bn,relu,maxpool:2,flatten,linear:10");
  sub->add_option("--x", args->x, "training samples [N, ...] (.npy, float)")->required();
  sub->add_option("--y", args->y, "labels [N] (.npy, int64: cross-entropy) or targets (float: MSE)")->required();
  sub->add_option("--test-x", args->test_x, "held-out samples (.npy)");
  sub->add_option("--test-y", args->test_y, "held-out labels (.npy)");
  sub->add_option("--amp", args->amp, "O0, O1, O2, O3, optionally -bf16 (default O0)");
  sub->add_option("--optimizer", args->optimizer, "sgd, adam or adamw (default sgd)");
  sub->add_option("--lr", args->lr, "learning rate (default 0.05)");
  sub->add_option("--momentum", args->momentum, "SGD momentum (default 0.9)");
  sub->add_flag("--nesterov", args->nesterov, "Nesterov momentum");
  sub->add_option("--weight-decay", args->weight_decay, "L2 (SGD, Adam) or decoupled (AdamW) weight decay");
  sub->add_option("--max-grad-norm", args->max_grad_norm, "clip the unscaled gradients to this global norm");
  sub->add_flag("--cosine", args->cosine, "cosine learning-rate decay per epoch");
  sub->add_option("--epochs", args->epochs, "epochs (default 8)");
  sub->add_option("--batch-size", args->batch_size, "batch size (default 32)");
  sub->add_option("--seed", args->seed, "seed of weights, shuffling and dropout (default 0)");
  sub->add_option("-o,--output", args->output, "write the trained model here (ONNX)");
  sub->add_option("--checkpoint", args->checkpoint, "write weights and optimizer state here at the end");
  sub->add_option("--resume", args->resume, "start from this checkpoint");
  sub->callback([args, exit_code] {
    try {
      Status s = run_train(*args);
      if (!s.is_ok()) {
        std::fprintf(stderr, "kiln train: error: %s\n", s.message().c_str());
        *exit_code = 1;
      }
    } catch (const std::exception& e) {
      std::fprintf(stderr, "kiln train: internal error: %s\n", e.what());
      *exit_code = 1;
    }
  });
}

}  // namespace kiln::cli
