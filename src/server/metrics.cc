#include "server/metrics.h"

#include <unistd.h>

#include <fstream>
#include <mutex>
#include <sstream>
#include <string_view>

#include "core/error.h"
#include "server/gpu_devices.h"
#include "server/gpu_metrics.h"
#include "server/model_config.h"

namespace kiln::server {
namespace {

struct Family {
  const char* name;
  const char* type;
  const char* help;
};

std::string labels(const ModelVersion& m) {
  std::string name;
  for (char c : m.name()) {
    if (c == '\\' || c == '"') name.push_back('\\');
    if (c == '\n') {
      name += "\\n";
      continue;
    }
    name.push_back(c);
  }
  std::string out = fmt::format("model=\"{}\",version=\"{}\"", name, m.version_string());
  // Triton labels a GPU instance's series with its GPU; Kiln counts per model
  // version, so the label is there when every instance runs on one GPU.
  if (std::optional<int> gpu = single_gpu(m.config())) {
    std::string uuid = gpu_uuid(*gpu);
    if (!uuid.empty()) out += fmt::format(",gpu_uuid=\"{}\"", uuid);
  }
  return out;
}

void header(std::string& out, const Family& f) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", f.name, f.help, f.name, f.type);
}

void histogram(std::string& out, const char* name, const std::string& label, const Histogram& h) {
  std::vector<uint64_t> counts = h.bucket_counts();
  uint64_t cumulative = 0;
  for (size_t i = 0; i < h.bounds().size(); ++i) {
    cumulative += counts[i];
    out += fmt::format("{}_bucket{{{},le=\"{}\"}} {}\n", name, label, h.bounds()[i], cumulative);
  }
  cumulative += counts.back();
  out += fmt::format("{}_bucket{{{},le=\"+Inf\"}} {}\n", name, label, cumulative);
  out += fmt::format("{}_sum{{{}}} {}\n", name, label, h.sum());
  out += fmt::format("{}_count{{{}}} {}\n", name, label, cumulative);
}

// Machine-wide CPU busy fraction between two scrapes (from /proc/stat).
double cpu_utilization() {
  static std::mutex mu;
  static uint64_t last_total = 0, last_idle = 0;
  std::ifstream in("/proc/stat");
  std::string cpu;
  uint64_t v[10] = {};
  in >> cpu;
  for (auto& x : v) in >> x;
  uint64_t idle = v[3] + v[4];
  uint64_t total = 0;
  for (int i = 0; i < 8; ++i) total += v[i];
  std::lock_guard<std::mutex> lock(mu);
  double util = 0.0;
  if (total > last_total) util = 1.0 - static_cast<double>(idle - last_idle) / static_cast<double>(total - last_total);
  last_total = total;
  last_idle = idle;
  return util < 0 ? 0 : util;
}

uint64_t meminfo_kb(std::string_view key) {
  std::ifstream in("/proc/meminfo");
  std::string k;
  uint64_t value = 0;
  std::string unit;
  while (in >> k >> value >> unit) {
    if (k.size() == key.size() + 1 && std::string_view(k).substr(0, key.size()) == key) return value;
  }
  return 0;
}

void process_metrics(std::string& out) {
  // /proc/self/stat: utime (14) and stime (15) in clock ticks, rss (24) in pages.
  std::ifstream in("/proc/self/stat");
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t paren = content.rfind(')');
  double cpu_s = 0;
  double rss = 0;
  if (paren != std::string::npos) {
    std::istringstream fields(content.substr(paren + 2));
    std::string f;
    std::vector<std::string> all;
    while (fields >> f) all.push_back(f);
    // all[0] is field 3 (state).
    if (all.size() > 21) {
      double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
      cpu_s = (std::stod(all[11]) + std::stod(all[12])) / ticks;
      rss = std::stod(all[21]) * static_cast<double>(sysconf(_SC_PAGESIZE));
    }
  }
  out += "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n";
  out += "# TYPE process_cpu_seconds_total counter\n";
  out += fmt::format("process_cpu_seconds_total {}\n", cpu_s);
  out += "# HELP process_resident_memory_bytes Resident memory size in bytes.\n";
  out += "# TYPE process_resident_memory_bytes gauge\n";
  out += fmt::format("process_resident_memory_bytes {}\n", rss);
  out += "# HELP nv_cpu_utilization CPU utilization rate [0.0 - 1.0]\n# TYPE nv_cpu_utilization gauge\n";
  out += fmt::format("nv_cpu_utilization {}\n", cpu_utilization());
  uint64_t total = meminfo_kb("MemTotal") * 1024;
  uint64_t avail = meminfo_kb("MemAvailable") * 1024;
  out += "# HELP nv_cpu_memory_total_bytes CPU total memory (RAM), in bytes\n# TYPE nv_cpu_memory_total_bytes gauge\n";
  out += fmt::format("nv_cpu_memory_total_bytes {}\n", total);
  out += "# HELP nv_cpu_memory_used_bytes CPU used memory (RAM), in bytes\n# TYPE nv_cpu_memory_used_bytes gauge\n";
  out += fmt::format("nv_cpu_memory_used_bytes {}\n", total > avail ? total - avail : 0);
}

}  // namespace

std::string render_metrics(ServerCore& core) {
  std::vector<std::shared_ptr<ModelVersion>> models = core.models().all_versions();
  std::string out;
  auto counter = [&](const Family& f, auto value_of) {
    header(out, f);
    for (const auto& m : models) out += fmt::format("{}{{{}}} {}\n", f.name, labels(*m), value_of(m->stats()));
  };
  auto load = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  counter({"nv_inference_request_success", "counter", "Number of successful inference requests, all batch sizes"},
          [&](const ModelStats& s) { return load(s.success.count); });
  header(out, {"nv_inference_request_failure", "counter", "Number of failed inference requests, all batch sizes"});
  for (const auto& m : models) {
    for (int r = 0; r < kFailureReasons; ++r) {
      out += fmt::format("nv_inference_request_failure{{{},reason=\"{}\"}} {}\n", labels(*m),
                         failure_reason_name(static_cast<FailureReason>(r)), load(m->stats().failures[static_cast<size_t>(r)]));
    }
  }
  counter({"nv_inference_count", "counter", "Number of inferences performed (does not include cached requests)"},
          [&](const ModelStats& s) { return load(s.inference_count); });
  counter({"nv_inference_exec_count", "counter",
           "Number of model executions performed (does not include cached requests)"},
          [&](const ModelStats& s) { return load(s.execution_count); });
  counter({"nv_inference_request_duration_us", "counter", "Cumulative inference request duration in microseconds"},
          [&](const ModelStats& s) { return (load(s.success.ns) + load(s.fail.ns)) / 1000; });
  counter({"nv_inference_queue_duration_us", "counter", "Cumulative inference queuing duration in microseconds"},
          [&](const ModelStats& s) { return load(s.queue.ns) / 1000; });
  counter({"nv_inference_compute_input_duration_us", "counter",
           "Cumulative compute input duration in microseconds"},
          [&](const ModelStats& s) { return load(s.compute_input.ns) / 1000; });
  counter({"nv_inference_compute_infer_duration_us", "counter",
           "Cumulative compute inference duration in microseconds"},
          [&](const ModelStats& s) { return load(s.compute_infer.ns) / 1000; });
  counter({"nv_inference_compute_output_duration_us", "counter",
           "Cumulative inference compute output duration in microseconds"},
          [&](const ModelStats& s) { return load(s.compute_output.ns) / 1000; });
  counter({"nv_inference_pending_request_count", "gauge",
           "Instantaneous number of pending requests awaiting execution per-model."},
          [&](const ModelStats& s) { return std::max<int64_t>(0, s.pending.load(std::memory_order_relaxed)); });

  const Family hists[] = {
      {"kiln_inference_request_duration_us", "histogram", "End-to-end request latency in microseconds"},
      {"kiln_inference_queue_duration_us", "histogram", "Time requests wait in the queue in microseconds"},
      {"kiln_inference_compute_infer_duration_us", "histogram", "Model execution time per batch in microseconds"},
      {"kiln_inference_batch_size", "histogram", "Sizes of the batches the scheduler formed and executed"},
  };
  for (int h = 0; h < 4; ++h) {
    header(out, hists[h]);
    for (const auto& m : models) {
      const ModelStats& s = m->stats();
      const Histogram& hist = h == 0 ? s.request_us : h == 1 ? s.queue_us : h == 2 ? s.infer_us : s.batch_size;
      histogram(out, hists[h].name, labels(*m), hist);
    }
  }
  process_metrics(out);
  if (core.options().gpu_metrics) {
    if (GpuMetricsSource* gpus = nvml_source()) append_gpu_metrics(out, gpus->sample());
  }
  return out;
}

}  // namespace kiln::server
