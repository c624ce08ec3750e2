#include "plan/timing_cache.h"

#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/logging.h"
#include "ops/epilogue.h"
#include "plan/target.h"
#ifdef KILN_HAVE_CUDA
#include "backends/cuda/cuda_backend.h"
#endif

namespace kiln::plan {
namespace {

constexpr const char* kHeader = "# kiln timing cache v1";

// The attributes that can change a kernel's speed, as text (subgraphs by name only).
// "fused_from" (the names of the nodes a fused node replaced) is provenance,
// not semantics: left out, so that identical layers (a transformer's 12
// blocks) share their timings within a build and across models.
std::string attribute_text(const ir::Node& node) {
  std::string out;
  for (const auto& [name, a] : node.attributes()) {
    if (name == ops::kFusedFromAttr) continue;
    out += name + "=";
    switch (a.kind) {
      case ir::Attribute::Kind::kInt:
        out += std::to_string(a.i);
        break;
      case ir::Attribute::Kind::kFloat:
        out += fmt::format("{}", a.f);
        break;
      case ir::Attribute::Kind::kString:
        out += a.s;
        break;
      case ir::Attribute::Kind::kInts:
        out += fmt::format("{}", fmt::join(a.ints, ","));
        break;
      case ir::Attribute::Kind::kFloats:
        out += fmt::format("{}", fmt::join(a.floats, ","));
        break;
      case ir::Attribute::Kind::kStrings:
        out += fmt::format("{}", fmt::join(a.strings, ","));
        break;
      case ir::Attribute::Kind::kTensor:
        out += a.t.debug_string();
        break;
      default:
        out += ir::attribute_kind_name(a.kind);
        break;
    }
    out += ";";
  }
  return out;
}

// "<arch>+<isa features>": the machine part of every key.
std::string host_key() {
  const Target& host = host_target();
  return fmt::format("{}+{}", host.arch, fmt::join(host.isa, "+"));
}

}  // namespace

std::string TimingCache::layout_change_key(const std::string& layout, const Dims& dims, int threads) {
  return fmt::format("layout_change|{}|{}|{}|t{}", layout, dims_to_string(dims), host_key(), threads);
}

std::string TimingCache::key(const ir::Node& node, const ValueDims& dims, int threads, const std::string& tactic) {
  std::string inputs;
  for (const ir::Value* v : node.inputs()) {
    if (v == nullptr) {
      inputs += "-;";
      continue;
    }
    auto it = dims.find(v);
    inputs +=
        fmt::format("{}{}{};", data_type_name(v->type().dtype),
                    it != dims.end() ? dims_to_string(it->second) : std::string("[?]"), v->is_constant() ? "c" : "");
  }
  std::string target = host_key();
#ifdef KILN_HAVE_CUDA
  // A GPU tactic's time is the GPU's: the key names the device (tactics run on device 0).
  if (tactic.rfind("cuda.", 0) == 0) target += "+gpu:" + backends::cuda::device_name(0);
#endif
  return fmt::format("{}::{}:{}|{}|{}|{}|t{}|{}", node.domain(), node.op_type(), node.opset(), attribute_text(node),
                     inputs, target, threads, tactic);
}

Result<TimingCache> TimingCache::load(const std::string& path) {
  TimingCache cache;
  std::ifstream in(path);
  if (!in) return cache;
  std::string line;
  int64_t bad = 0;
  bool first = true;
  while (std::getline(in, line)) {
    if (first) {
      first = false;
      if (line != kHeader) {
        return invalid_argument("timing cache '{}' does not start with '{}'; not a Kiln timing cache", path, kHeader);
      }
      continue;
    }
    if (line.empty()) continue;
    size_t tab = line.find('\t');
    if (tab == std::string::npos) {
      ++bad;
      continue;
    }
    try {
      size_t used = 0;
      double ms = std::stod(line.substr(0, tab), &used);
      if (used != tab || !(ms >= 0)) {
        ++bad;
        continue;
      }
      cache.entries_[line.substr(tab + 1)] = ms;
    } catch (const std::exception&) {
      ++bad;
    }
  }
  if (bad > 0) KILN_LOG_WARN("timing cache '{}': skipped {} malformed lines", path, bad);
  return cache;
}

Status TimingCache::save(const std::string& path) const {
  std::ostringstream out;
  out << kHeader << "\n";
  for (const auto& [key, ms] : entries_) out << fmt::format("{:.6f}", ms) << '\t' << key << '\n';
  std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) return io_error("cannot write timing cache '{}'", tmp);
    f << out.str();
    if (!f) return io_error("cannot write timing cache '{}'", tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) return io_error("cannot replace timing cache '{}'", path);
  return Status::ok();
}

std::optional<double> TimingCache::find(const std::string& key) const {
  auto it = entries_.find(key);
  if (it == entries_.end()) return std::nullopt;
  return it->second;
}

}  // namespace kiln::plan
