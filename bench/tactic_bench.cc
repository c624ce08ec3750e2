// Times every tactic the registry offers for typical layers of the zoo models
// (ResNet-50, MobileNetV2, BERT-base with its fused attention and head
// transposes), batch 1, on 1 and 2 threads, and prints ms per tactic with
// the speed-up over the reference kernel. The
// same measurement the builder's tuner makes (warm-up, median of repeats).
//
//   tactic_bench [--reps 10] [--threads 2] [--filter conv3x3] [--cpu-time]
//
// --cpu-time (with --threads 1) times the calling thread's CPU time instead
// of wall time: a fairer comparison of kernels on a machine busy with other
// work, which wall-clock medians are not.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backends/tactic.h"
#include "core/datum.h"
#include "core/thread_pool.h"
#include "ir/graph.h"

namespace {

using namespace kiln;

Tensor random_tensor(const Dims& dims, uint32_t seed) {
  Tensor t = Tensor::empty(DataType::kFloat32, dims);
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (float& v : t.span<float>()) v = dist(gen);
  return t;
}

struct Layer {
  std::string name;
  std::string op;
  Dims x, w;
  bool w_const;
  std::vector<ir::Attribute> attrs;
  bool bias;
  std::string domain = "";       // "kiln" for Kiln's own ops
  std::vector<Dims> extra = {};  // further run-time inputs after x, w (and b)
};

std::vector<Layer> layers() {
  using ir::Attribute;
  auto pads = [](int64_t p) { return Attribute::make_ints("pads", {p, p, p, p}); };
  auto strides = [](int64_t s) { return Attribute::make_ints("strides", {s, s}); };
  return {
      {"resnet50 stem 7x7/2 3->64 @224", "Conv", {1, 3, 224, 224}, {64, 3, 7, 7}, true, {pads(3), strides(2)}, true},
      {"resnet50 conv3x3 64->64 @56", "Conv", {1, 64, 56, 56}, {64, 64, 3, 3}, true, {pads(1)}, true},
      {"resnet50 conv1x1 256->64 @56", "Conv", {1, 256, 56, 56}, {64, 256, 1, 1}, true, {}, true},
      {"resnet50 conv1x1 64->256 @56", "Conv", {1, 64, 56, 56}, {256, 64, 1, 1}, true, {}, true},
      {"resnet50 conv3x3 256->256 @14", "Conv", {1, 256, 14, 14}, {256, 256, 3, 3}, true, {pads(1)}, true},
      {"resnet50 conv1x1/2 1024->2048 @14", "Conv", {1, 1024, 14, 14}, {2048, 1024, 1, 1}, true, {strides(2)}, true},
      {"mobilenetv2 dw3x3 144 @56",
       "Conv",
       {1, 144, 56, 56},
       {144, 1, 3, 3},
       true,
       {pads(1), Attribute::make_int("group", 144)},
       true},
      {"mobilenetv2 dw3x3/2 144 @56",
       "Conv",
       {1, 144, 56, 56},
       {144, 1, 3, 3},
       true,
       {pads(1), strides(2), Attribute::make_int("group", 144)},
       true},
      {"mobilenetv2 dw3x3 960 @7",
       "Conv",
       {1, 960, 7, 7},
       {960, 1, 3, 3},
       true,
       {pads(1), Attribute::make_int("group", 960)},
       true},
      {"bert matmul 128x768 x 768x3072", "MatMul", {1, 128, 768}, {768, 3072}, true, {}, false},
      {"bert matmul 128x3072 x 3072x768", "MatMul", {1, 128, 3072}, {3072, 768}, true, {}, false},
      {"bert attention 12x128x64 x 12x64x128", "MatMul", {1, 12, 128, 64}, {1, 12, 64, 128}, false, {}, false},
      {"bert fused attention 12 heads seq 128",
       "Attention",
       {1, 12, 128, 64},
       {1, 12, 64, 128},
       false,
       {Attribute::make_float("scale", 0.125f)},
       false,
       "kiln",
       {{1, 12, 128, 64}, {1, 1, 1, 128}}},
      {"bert transpose heads [0,2,1,3]",
       "Transpose",
       {1, 128, 12, 64},
       {},
       false,
       {Attribute::make_ints("perm", {0, 2, 1, 3})},
       false},
      {"bert transpose keys [0,2,3,1]",
       "Transpose",
       {1, 128, 12, 64},
       {},
       false,
       {Attribute::make_ints("perm", {0, 2, 3, 1})},
       false},
      {"sgemm 1024^3 (weights packed)", "MatMul", {1024, 1024}, {1024, 1024}, true, {}, false},
  };
}

double now_ms(bool cpu_time) {
  if (cpu_time) {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) * 1e-6;
  }
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 10;
  int threads = 2;
  std::string filter;
  bool cpu_time = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--reps" && i + 1 < argc)
      reps = std::atoi(argv[++i]);
    else if (a == "--threads" && i + 1 < argc)
      threads = std::atoi(argv[++i]);
    else if (a == "--filter" && i + 1 < argc)
      filter = argv[++i];
    else if (a == "--cpu-time")
      cpu_time = true;
    else {
      std::fprintf(stderr, "usage: tactic_bench [--reps R] [--threads T] [--filter SUBSTRING] [--cpu-time]\n");
      return 2;
    }
  }
  if (cpu_time && threads != 1) {
    std::fprintf(stderr, "tactic_bench: --cpu-time needs --threads 1\n");
    return 2;
  }
  const auto& registry = backends::TacticRegistry::global();
  ThreadPool pool(threads);
  uint32_t seed = 1;
  for (const Layer& l : layers()) {
    if (!filter.empty() && l.name.find(filter) == std::string::npos) continue;
    ir::Graph g("bench");
    g.set_opset_imports({{"", 17}, {"kiln", 1}});
    Tensor x = random_tensor(l.x, seed++);
    ir::Value* xv = *g.add_value("x", ir::ValueType::tensor(DataType::kFloat32, Shape::of(l.x)));
    g.add_input(xv);
    std::vector<ir::Value*> in = {xv};
    std::vector<Datum> feeds = {x};
    if (!l.w.empty()) {
      Tensor w = random_tensor(l.w, seed++);
      ir::Value* wv;
      if (l.w_const) {
        wv = *g.add_constant("w", w);
      } else {
        wv = *g.add_value("w", ir::ValueType::tensor(DataType::kFloat32, Shape::of(l.w)));
        g.add_input(wv);
      }
      in.push_back(wv);
      feeds.push_back(w);
    }
    if (l.bias) {
      Tensor b = random_tensor({l.w[0]}, seed++);
      in.push_back(*g.add_constant("b", b));
      feeds.push_back(b);
    }
    for (size_t i = 0; i < l.extra.size(); ++i) {
      Tensor e = random_tensor(l.extra[i], seed++);
      ir::Value* ev =
          *g.add_value("e" + std::to_string(i), ir::ValueType::tensor(DataType::kFloat32, Shape::of(l.extra[i])));
      g.add_input(ev);
      in.push_back(ev);
      feeds.push_back(e);
    }
    ir::Node* node = g.add_node(l.op, in, {*g.add_value("y")}, "layer", l.domain);
    node->set_opset(l.domain.empty() ? 17 : 1);
    for (const auto& a : l.attrs) node->set_attr(a);
    std::printf("%s\n", l.name.c_str());
    double ref_ms = 0.0;
    std::vector<std::pair<std::string, double>> rows;
    for (const backends::Tactic* t : registry.candidates(*node)) {
      auto kernel = t->prepare(*node);
      if (!kernel.is_ok()) {
        std::printf("  %-34s prepare failed: %s\n", std::string(t->name()).c_str(),
                    kernel.status().to_string().c_str());
        continue;
      }
      std::vector<double> times;
      bool ok = true;
      for (int r = 0; r < reps + 2; ++r) {
        std::vector<Datum> outs(1);
        ops::KernelContext ctx(*node, feeds, outs, &pool, nullptr);
        const double t0 = now_ms(cpu_time);
        Status s = (*kernel)->run(ctx);
        const double dt = now_ms(cpu_time) - t0;
        if (!s.is_ok()) {
          std::printf("  %-34s run failed: %s\n", std::string(t->name()).c_str(), s.to_string().c_str());
          ok = false;
          break;
        }
        if (r >= 2) times.push_back(dt);
      }
      if (!ok) continue;
      std::sort(times.begin(), times.end());
      const double med = times[times.size() / 2];
      if (t->name() == "reference") ref_ms = med;
      rows.emplace_back(std::string(t->name()), med);
    }
    for (const auto& [name, ms] : rows) {
      std::printf("  %-34s %9.3f ms  %6.2fx reference\n", name.c_str(), ms, ref_ms > 0 ? ref_ms / ms : 0.0);
    }
  }
  return 0;
}
