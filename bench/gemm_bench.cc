// SGEMM benchmark: measures this machine's FP32 FMA peak (a register-only
// FMA loop per ISA, on 1 and on N threads) and the packed SGEMM of the CPU
// backend in the same run, and prints GFLOP/s and % of peak.
//
//   gemm_bench [--size 1024 | --shape M,N,K] [--threads 2] [--reps 20] [--check] [--cpu-time] [--fp16]
//
// --fp16 stores B as half values (a --fp16 build's weights, widened while
// the product runs) and reports both that and the fp32 B in the same run.
//
// --cpu-time also reports the 1-thread figures in the thread's CPU time
// (peak loop and GEMM alike), which a machine busy with other processes
// distorts less than wall-clock time.
//
// B is packed once (weights, as Tactic::prepare does); A is packed on the
// fly. --check compares every ISA's GEMM (tails, epilogues) with a plain
// triple loop first and exits non-zero on a mismatch.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "backends/cpu/gemm.h"
#include "backends/cpu/isa.h"
#include "backends/cpu/microkernel.h"
#include "core/float_types.h"
#include "core/thread_pool.h"

namespace {

using kiln::ThreadPool;
using namespace kiln::backends::cpu;

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

double thread_cpu_s() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Peak GFLOP/s of `threads` threads each running the ISA's FMA loop.
double measure_peak(Isa isa, int threads) {
  auto loop = isa == Isa::kAvx512 ? fma_peak_loop_avx512 : fma_peak_loop_avx2;
  const int64_t iters = 20'000'000;
  loop(iters / 10);  // warm up (clocks, AVX-512 license)
  double best = 0.0;
  for (int rep = 0; rep < 3; ++rep) {
    std::vector<std::thread> ts;
    std::vector<double> flops(static_cast<size_t>(threads));
    std::atomic<int> ready{0};
    const double t0 = now_s();
    for (int t = 0; t < threads; ++t) {
      ts.emplace_back([&, t] {
        ready.fetch_add(1);
        while (ready.load() < threads) {
        }
        flops[static_cast<size_t>(t)] = loop(iters);
      });
    }
    for (auto& t : ts) t.join();
    const double dt = now_s() - t0;
    double total = 0.0;
    for (double f : flops) total += f;
    best = std::max(best, total / dt * 1e-9);
  }
  return best;
}

std::vector<float> random_floats(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = d(rng);
  return v;
}

// Median GFLOP/s of C[m, n] = A[m, k] x B[k, n] (B prepacked in `format`, as weights are) over `reps` runs.
double time_gemm(Isa isa, int64_t m, int64_t n, int64_t k, int threads, int reps,
                 WeightFormat format = WeightFormat::kFp32) {
  const GemmPacking packing{format};
  const GemmConfig cfg = packing.config(isa);
  std::vector<float> a = random_floats(m * k, 1), b = random_floats(k * n, 2), c(static_cast<size_t>(m * n));
  for (float& v : b) v = static_cast<float>(kiln::Float16(v));  // half values: both formats hold them exactly
  ThreadPool pool(threads);
  PackedMatrix pb = packing.pack({b.data(), 1, n}, n, k, cfg.kernel.nr, &pool);
  const GemmOperand oa = GemmOperand::strided({a.data(), k, 1});
  const GemmOperand ob = GemmPacking::weights(pb);
  GemmEpilogue e;
  for (int w = 0; w < 3; ++w) gemm(cfg, m, n, k, oa, ob, c.data(), n, e, &pool);
  std::vector<double> times;
  for (int r = 0; r < reps; ++r) {
    const double t0 = now_s();
    gemm(cfg, m, n, k, oa, ob, c.data(), n, e, &pool);
    times.push_back(now_s() - t0);
  }
  std::sort(times.begin(), times.end());
  const double median = times[times.size() / 2];
  return 2.0 * static_cast<double>(m) * n * k / median * 1e-9;
}

// 1-thread figures in CPU time: the peak loop and the GEMM on this thread.
void report_cpu_time(Isa isa, int64_t n, int reps) {
  auto loop = isa == Isa::kAvx512 ? fma_peak_loop_avx512 : fma_peak_loop_avx2;
  double peak = 0.0;
  for (int rep = 0; rep < 3; ++rep) {
    const double t0 = thread_cpu_s();
    const double flops = loop(20'000'000);
    peak = std::max(peak, flops / (thread_cpu_s() - t0) * 1e-9);
  }
  const GemmConfig cfg = gemm_config(isa);
  std::vector<float> a = random_floats(n * n, 1), b = random_floats(n * n, 2), c(static_cast<size_t>(n * n));
  PackedMatrix pb = pack_matrix({b.data(), 1, n}, n, n, cfg.kernel.nr, nullptr);
  const GemmOperand oa = GemmOperand::strided({a.data(), n, 1});
  const GemmOperand ob = GemmOperand::prepacked(pb);
  std::vector<double> times;
  for (int r = 0; r < reps + 2; ++r) {
    const double t0 = thread_cpu_s();
    gemm(cfg, n, n, n, oa, ob, c.data(), n, GemmEpilogue{}, nullptr);
    if (r >= 2) times.push_back(thread_cpu_s() - t0);
  }
  std::sort(times.begin(), times.end());
  const double gf = 2.0 * static_cast<double>(n) * n * n / times[times.size() / 2] * 1e-9;
  std::printf(
      "%-7s threads=1  FMA peak %7.1f GFLOP/s  SGEMM %ld^3 %7.1f GFLOP/s  = %5.1f%% of peak (thread CPU time)\n",
      std::string(isa_name(isa)).c_str(), peak, n, gf, 100.0 * gf / peak);
}

// Compares the packed GEMM with a triple loop on awkward shapes and epilogues.
bool check(Isa isa) {
  const GemmConfig cfg = gemm_config(isa);
  ThreadPool pool(2);
  const int64_t shapes[][3] = {{1, 1, 1}, {7, 13, 5}, {33, 65, 300}, {100, 37, 513}, {15, 129, 64}, {200, 50, 1}};
  bool ok = true;
  for (const auto& s : shapes) {
    const int64_t m = s[0], n = s[1], k = s[2];
    std::vector<float> a = random_floats(m * k, 3), b = random_floats(k * n, 4), bias = random_floats(n, 5),
                       res = random_floats(m * n, 6);
    for (int act = 0; act < 3; ++act) {
      GemmEpilogue e;
      e.bias_col = bias.data();
      e.residual = res.data();
      e.ldr = n;
      e.residual_after_activation = act == 2;
      e.activation.activation = act == 0   ? kiln::ops::Activation::kRelu
                                : act == 1 ? kiln::ops::Activation::kSigmoid
                                           : kiln::ops::Activation::kLeakyRelu;
      e.activation.alpha = 0.1f;
      PackedMatrix pb = pack_matrix({b.data(), 1, n}, n, k, cfg.kernel.nr, nullptr);
      std::vector<float> c(static_cast<size_t>(m * n), -7.0f);
      gemm(cfg, m, n, k, GemmOperand::strided({a.data(), k, 1}), GemmOperand::prepacked(pb), c.data(), n, e, &pool);
      for (int64_t i = 0; i < m; ++i) {
        for (int64_t j = 0; j < n; ++j) {
          double acc = 0.0, mag = 0.0;
          for (int64_t p = 0; p < k; ++p) {
            acc += static_cast<double>(a[i * k + p]) * b[p * n + j];
            mag += std::fabs(static_cast<double>(a[i * k + p]) * b[p * n + j]);
          }
          const float want = apply_epilogue(e, static_cast<float>(acc), i, j);
          const float got = c[static_cast<size_t>(i * n + j)];
          if (!(std::fabs(want - got) <= 1e-5 * (mag + 1.0))) {
            std::printf("MISMATCH %s m=%ld n=%ld k=%ld act=%d at (%ld,%ld): %g vs %g\n",
                        std::string(isa_name(isa)).c_str(), m, n, k, act, i, j, got, want);
            ok = false;
            i = m;
            break;
          }
        }
      }
    }
  }
  std::printf("check %s: %s\n", std::string(isa_name(isa)).c_str(), ok ? "ok" : "FAILED");
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t n = 1024;
  int64_t shape[3] = {0, 0, 0};  // --shape M,N,K: a rectangular product instead of n^3
  int max_threads = 2;
  int reps = 20;
  bool do_check = false;
  bool cpu_time = false;
  bool fp16 = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--size" && i + 1 < argc)
      n = std::atoll(argv[++i]);
    else if (arg == "--shape" && i + 1 < argc) {
      if (std::sscanf(argv[++i], "%ld,%ld,%ld", &shape[0], &shape[1], &shape[2]) != 3 || shape[0] <= 0 ||
          shape[1] <= 0 || shape[2] <= 0) {
        std::fprintf(stderr, "gemm_bench: --shape takes M,N,K (positive), e.g. 128,3072,768\n");
        return 2;
      }
    } else if (arg == "--threads" && i + 1 < argc)
      max_threads = std::atoi(argv[++i]);
    else if (arg == "--reps" && i + 1 < argc)
      reps = std::atoi(argv[++i]);
    else if (arg == "--fp16")
      fp16 = true;
    else if (arg == "--check")
      do_check = true;
    else if (arg == "--cpu-time")
      cpu_time = true;
    else {
      std::fprintf(stderr,
                   "usage: gemm_bench [--size N | --shape M,N,K] [--threads T] [--reps R] [--check] [--cpu-time] "
                   "[--fp16]\n");
      return 2;
    }
  }
  const CpuFeatures& f = cpu_features();
  std::printf("cpu: avx2=%d fma=%d avx512f=%d bw=%d dq=%d vl=%d vnni=%d bf16=%d; detected isa: %s\n", f.avx2, f.fma,
              f.avx512f, f.avx512bw, f.avx512dq, f.avx512vl, f.avx512vnni, f.avx512bf16,
              std::string(isa_name(detect_isa())).c_str());
  if (do_check) {
    bool ok = true;
    for (Isa isa : supported_isas()) ok = check(isa) && ok;
    if (!ok) return 1;
  }
  for (Isa isa : supported_isas()) {
    if (isa == Isa::kGeneric) continue;
    std::vector<int> counts{1};
    if (max_threads > 1) counts.push_back(max_threads);
    for (int t : counts) {
      const double peak = measure_peak(isa, t);
      if (shape[0] > 0) {
        const double gf = time_gemm(isa, shape[0], shape[1], shape[2], t, reps);
        std::printf("%-7s threads=%d  FMA peak %7.1f GFLOP/s  SGEMM %ldx%ldx%ld %7.1f GFLOP/s  = %5.1f%% of peak\n",
                    std::string(isa_name(isa)).c_str(), t, peak, shape[0], shape[1], shape[2], gf, 100.0 * gf / peak);
        if (fp16 && f.f16c) {
          const double g16 = time_gemm(isa, shape[0], shape[1], shape[2], t, reps, WeightFormat::kFp16);
          std::printf("%-7s threads=%d  fp16 B (widened while it runs)              %7.1f GFLOP/s  = %5.2fx fp32 B\n",
                      std::string(isa_name(isa)).c_str(), t, g16, g16 / gf);
        }
        continue;
      }
      const double gf = time_gemm(isa, n, n, n, t, reps);
      std::printf("%-7s threads=%d  FMA peak %7.1f GFLOP/s  SGEMM %ld^3 %7.1f GFLOP/s  = %5.1f%% of peak\n",
                  std::string(isa_name(isa)).c_str(), t, peak, n, gf, 100.0 * gf / peak);
    }
    if (cpu_time) report_cpu_time(isa, n, reps);
  }
  return 0;
}
