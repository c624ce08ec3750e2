#include "perf_runner.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <random>
#include <thread>

#include "core/error.h"

namespace kiln::cli {
namespace {

using Clock = std::chrono::steady_clock;

struct Sample {
  int64_t latency_ns;
  int64_t send_ns;
  int64_t recv_ns;
};

// What the workers report; the measuring thread takes it window by window.
class Recorder {
 public:
  void add(const client::InferResult& r, bool delayed) {
    std::lock_guard<std::mutex> lock(mu_);
    samples_.push_back({r.timing.total_ns, r.timing.send_ns, r.timing.recv_ns});
    delayed_ += delayed ? 1 : 0;
  }
  void fail(Status s) {
    std::lock_guard<std::mutex> lock(mu_);
    if (error_.is_ok()) error_ = std::move(s);
  }
  // The samples since the last take and the number of late sends among them.
  std::pair<std::vector<Sample>, int64_t> take() {
    std::lock_guard<std::mutex> lock(mu_);
    std::pair<std::vector<Sample>, int64_t> out{std::move(samples_), delayed_};
    samples_.clear();
    delayed_ = 0;
    return out;
  }
  Status error() {
    std::lock_guard<std::mutex> lock(mu_);
    return error_;
  }

 private:
  std::mutex mu_;  // guards everything below
  std::vector<Sample> samples_;
  int64_t delayed_ = 0;
  Status error_;
};

struct Window {
  std::vector<Sample> samples;
  int64_t delayed = 0;
  double seconds = 0;
  client::ModelStatistics stats_end;  // cumulative, summed over versions
};

// Sends request-rate mode's requests on schedule: the i-th at start + t_i.
class Schedule {
 public:
  Schedule(double rate, bool poisson) : rate_(rate), poisson_(poisson), rng_(0) {}
  Clock::time_point next(Clock::time_point start) {
    std::lock_guard<std::mutex> lock(mu_);
    double gap = poisson_ ? std::exponential_distribution<double>(rate_)(rng_) : 1.0 / rate_;
    offset_s_ += gap;
    return start + std::chrono::nanoseconds(static_cast<int64_t>(offset_s_ * 1e9));
  }

 private:
  std::mutex mu_;  // guards offset_s_ and rng_
  double rate_;
  bool poisson_;
  double offset_s_ = 0;
  std::mt19937_64 rng_;
};

Result<client::ModelStatistics> total_stats(client::Client& c, const PerfSpec& spec) {
  KILN_ASSIGN_OR_RETURN(auto all, c.model_statistics(spec.model, spec.version));
  client::ModelStatistics sum;
  for (const auto& s : all) {
    if (s.name != spec.model) continue;
    sum.inference_count += s.inference_count;
    sum.execution_count += s.execution_count;
    for (auto [to, from] : {std::pair{&sum.success, &s.success},
                            {&sum.queue, &s.queue},
                            {&sum.compute_input, &s.compute_input},
                            {&sum.compute_infer, &s.compute_infer},
                            {&sum.compute_output, &s.compute_output}}) {
      to->count += from->count;
      to->ns += from->ns;
    }
  }
  return sum;
}

double percentile_of(const std::vector<int64_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  // Nearest rank: the smallest value with at least p% of the samples at or below it.
  auto rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  return static_cast<double>(sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1]);
}

// Throughput and the stabilizing latency of one window.
std::pair<double, double> window_figures(const Window& w, const PerfSpec& spec) {
  double tput = static_cast<double>(w.samples.size()) / std::max(w.seconds, 1e-9);
  std::vector<int64_t> lat;
  for (const Sample& s : w.samples) lat.push_back(s.latency_ns);
  std::sort(lat.begin(), lat.end());
  double latency = 0;
  if (spec.percentile > 0) {
    latency = percentile_of(lat, spec.percentile);
  } else if (!lat.empty()) {
    double sum = 0;
    for (int64_t l : lat) sum += static_cast<double>(l);
    latency = sum / static_cast<double>(lat.size());
  }
  return {tput, latency};
}

bool within(const std::vector<double>& xs, double pct) {
  double mean = 0;
  for (double x : xs) mean += x / static_cast<double>(xs.size());
  if (mean <= 0) return false;
  for (double x : xs) {
    if (std::abs(x - mean) > mean * pct / 100.0) return false;
  }
  return true;
}

double avg_ns(const client::Duration& a, const client::Duration& b) {
  uint64_t n = b.count - a.count;
  return n ? static_cast<double>(b.ns - a.ns) / static_cast<double>(n) : 0.0;
}

LevelResult summarize(const std::vector<Window>& windows, size_t first, const client::ModelStatistics& stats_begin,
                      const PerfSpec& spec, double level, bool stable) {
  LevelResult r;
  r.level = level;
  r.stable = stable;
  r.windows = static_cast<int>(windows.size());
  std::vector<int64_t> lat;
  double send = 0, recv = 0;
  for (size_t i = first; i < windows.size(); ++i) {
    r.duration_s += windows[i].seconds;
    r.delayed_count += windows[i].delayed;
    for (const Sample& s : windows[i].samples) {
      lat.push_back(s.latency_ns);
      send += static_cast<double>(s.send_ns);
      recv += static_cast<double>(s.recv_ns);
    }
  }
  std::sort(lat.begin(), lat.end());
  r.request_count = static_cast<int64_t>(lat.size());
  r.throughput = static_cast<double>(r.request_count * spec.batch_size) / std::max(r.duration_s, 1e-9);
  if (!lat.empty()) {
    double n = static_cast<double>(lat.size());
    for (int64_t l : lat) r.avg_ns += static_cast<double>(l) / n;
    double var = 0;
    for (int64_t l : lat) var += (static_cast<double>(l) - r.avg_ns) * (static_cast<double>(l) - r.avg_ns) / n;
    r.stddev_ns = std::sqrt(var);
    r.send_ns = send / n;
    r.recv_ns = recv / n;
  }
  r.p50_ns = percentile_of(lat, 50);
  r.p90_ns = percentile_of(lat, 90);
  r.p95_ns = percentile_of(lat, 95);
  r.p99_ns = percentile_of(lat, 99);
  r.chosen_percentile_ns = spec.percentile > 0 ? percentile_of(lat, spec.percentile) : r.avg_ns;
  const client::ModelStatistics& end = windows.back().stats_end;
  ServerSplit& s = r.server;
  s.success_count = end.success.count - stats_begin.success.count;
  s.inference_count = end.inference_count - stats_begin.inference_count;
  s.execution_count = end.execution_count - stats_begin.execution_count;
  s.request_ns = avg_ns(stats_begin.success, end.success);
  s.queue_ns = avg_ns(stats_begin.queue, end.queue);
  s.compute_input_ns = avg_ns(stats_begin.compute_input, end.compute_input);
  s.compute_infer_ns = avg_ns(stats_begin.compute_infer, end.compute_infer);
  s.compute_output_ns = avg_ns(stats_begin.compute_output, end.compute_output);
  return r;
}

}  // namespace

Result<LevelResult> run_perf_level(const PerfSpec& spec, LoadMode mode, double level) {
  KILN_ASSIGN_OR_RETURN(auto stats_client, client::Client::create(spec.protocol, spec.url));
  Recorder recorder;
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> next_data{0};
  std::mutex stop_mu;  // with stop_cv: wakes request-rate workers waiting for their slot
  std::condition_variable stop_cv;
  Schedule schedule(level, spec.poisson);
  Clock::time_point start = Clock::now();

  int workers = mode == LoadMode::kConcurrency ? static_cast<int>(level) : spec.max_threads;
  std::vector<std::thread> threads;
  threads.reserve(static_cast<size_t>(workers));
  for (int w = 0; w < workers; ++w) {
    threads.emplace_back([&] {
      auto made = client::Client::create(spec.protocol, spec.url);
      if (!made.is_ok()) return recorder.fail(made.status());
      client::Client& c = *made.value();
      client::InferOptions options;
      options.model_version = spec.version;
      while (!stop.load()) {
        bool delayed = false;
        if (mode == LoadMode::kRequestRate) {
          Clock::time_point when = schedule.next(start);
          std::unique_lock<std::mutex> lock(stop_mu);
          if (stop_cv.wait_until(lock, when, [&] { return stop.load(); })) break;
          delayed = Clock::now() - when > std::chrono::milliseconds(1);
        }
        const auto& inputs = spec.data[next_data.fetch_add(1) % spec.data.size()];
        auto result = c.infer(spec.model, inputs, options);
        if (!result.is_ok()) return recorder.fail(result.status());
        recorder.add(*result, delayed);
      }
    });
  }
  auto finish = [&] {
    {
      std::lock_guard<std::mutex> lock(stop_mu);
      stop.store(true);
    }
    stop_cv.notify_all();
    for (auto& t : threads) t.join();
  };

  std::deque<client::ModelStatistics> begins;  // the stats at each window's start
  std::vector<Window> windows;
  auto first_stats = total_stats(*stats_client, spec);
  if (!first_stats.is_ok()) {
    finish();
    return first_stats.status().with_context("statistics of '" + spec.model + "'");
  }
  begins.push_back(*first_stats);
  recorder.take();
  Clock::time_point window_start = Clock::now();
  bool stable = false;
  for (int trial = 0; trial < spec.max_trials; ++trial) {
    std::this_thread::sleep_for(std::chrono::milliseconds(spec.measurement_interval_ms));
    Status err = recorder.error();
    if (!err.is_ok()) {
      finish();
      return err;
    }
    Window w;
    auto [samples, delayed] = recorder.take();
    Clock::time_point now = Clock::now();
    w.samples = std::move(samples);
    w.delayed = delayed;
    w.seconds = std::chrono::duration<double>(now - window_start).count();
    window_start = now;
    auto stats = total_stats(*stats_client, spec);
    if (!stats.is_ok()) {
      finish();
      return stats.status().with_context("statistics of '" + spec.model + "'");
    }
    w.stats_end = *stats;
    begins.push_back(*stats);
    windows.push_back(std::move(w));
    if (windows.size() >= 3) {
      std::vector<double> tputs, lats;
      for (size_t i = windows.size() - 3; i < windows.size(); ++i) {
        auto [t, l] = window_figures(windows[i], spec);
        tputs.push_back(t);
        lats.push_back(l);
      }
      if (within(tputs, spec.stability_percentage) && within(lats, spec.stability_percentage)) {
        stable = true;
        break;
      }
    }
  }
  finish();
  Status err = recorder.error();
  if (!err.is_ok()) return err;
  size_t first = windows.size() >= 3 ? windows.size() - 3 : 0;
  return summarize(windows, first, begins[first], spec, level, stable);
}

}  // namespace kiln::cli
