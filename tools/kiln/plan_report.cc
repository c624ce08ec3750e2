#include "plan_report.h"

#include <fmt/format.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cstdio>
#include <set>

#include "ops/epilogue.h"

namespace kiln::cli {

std::string op_key(const ir::Node& node) {
  if (node.domain().empty() || node.domain() == "ai.onnx") return node.op_type();
  return node.domain() + ":" + node.op_type();
}

std::map<std::string, int64_t> op_histogram(const ir::Graph& g) {
  std::map<std::string, int64_t> out;
  for (const auto& n : g.nodes()) out[op_key(*n)] += 1;
  return out;
}

std::string human_bytes(int64_t bytes) {
  if (bytes >= (int64_t{1} << 30)) return fmt::format("{:.2f} GiB", static_cast<double>(bytes) / (1 << 30));
  if (bytes >= (int64_t{1} << 20)) return fmt::format("{:.2f} MiB", static_cast<double>(bytes) / (1 << 20));
  if (bytes >= (int64_t{1} << 10)) return fmt::format("{:.1f} KiB", static_cast<double>(bytes) / (1 << 10));
  return fmt::format("{} B", bytes);
}

std::vector<LayerRow> layer_rows(const plan::Plan& plan) {
  std::vector<LayerRow> rows;
  size_t k = 0;
  for (const auto& n : plan.model.graph->nodes()) {
    LayerRow r;
    r.name = n->name();
    r.op = op_key(*n);
    r.fused = n->attr_strings(ops::kFusedFromAttr);
    if (r.fused.empty() && !n->name().empty()) r.fused.push_back(n->name());
    r.precision = plan.precision;
    if (k < plan.layers.size()) {
      r.tactic = plan.layers[k].tactic;
      r.time_ms = plan.layers[k].time_ms;
      r.candidates = plan.layers[k].candidates;
    }
    rows.push_back(std::move(r));
    ++k;
  }
  return rows;
}

void print_layer_table(const std::map<std::string, int64_t>& before, const std::map<std::string, int64_t>& after,
                       int64_t onnx_nodes, int64_t layers) {
  std::set<std::string> ops;
  for (const auto& [op, n] : before) ops.insert(op);
  for (const auto& [op, n] : after) ops.insert(op);
  std::vector<std::string> sorted(ops.begin(), ops.end());
  auto count = [](const std::map<std::string, int64_t>& m, const std::string& op) {
    auto it = m.find(op);
    return it == m.end() ? int64_t{0} : it->second;
  };
  std::stable_sort(sorted.begin(), sorted.end(), [&](const std::string& a, const std::string& b) {
    return std::max(count(before, a), count(after, a)) > std::max(count(before, b), count(after, b));
  });
  std::printf("%-32s %8s %8s\n", "op", "onnx", "plan");
  for (const std::string& op : sorted) {
    std::printf("%-32s %8lld %8lld\n", op.c_str(), static_cast<long long>(count(before, op)),
                static_cast<long long>(count(after, op)));
  }
  std::printf("%-32s %8lld %8lld", "layers", static_cast<long long>(onnx_nodes), static_cast<long long>(layers));
  if (onnx_nodes > 0) std::printf("   (%.0f%% of the ONNX node count)", 100.0 * layers / onnx_nodes);
  std::printf("\n");
}

void print_layers(const std::vector<LayerRow>& rows) {
  std::printf("%4s  %-28s %-22s %-28s %10s %5s  %s\n", "#", "layer", "op", "tactic", "time ms", "cand", "fused");
  for (size_t i = 0; i < rows.size(); ++i) {
    const LayerRow& r = rows[i];
    std::string t = r.time_ms >= 0 ? fmt::format("{:.4f}", r.time_ms) : "-";
    std::string fused = r.fused.size() > 1 ? fmt::format("{}", fmt::join(r.fused, ",")) : "";
    std::printf("%4zu  %-28.28s %-22.22s %-28.28s %10s %5d  %s\n", i, r.name.c_str(), r.op.c_str(), r.tactic.c_str(),
                t.c_str(), r.candidates, fused.c_str());
  }
}

void print_memory(const plan::Plan& plan) {
  const auto& m = plan.memory;
  std::printf("activation memory: peak %s (arena) vs naive %s", human_bytes(m.arena_bytes).c_str(),
              human_bytes(m.naive_bytes).c_str());
  if (m.naive_bytes > 0) std::printf(" = %.1f%%", 100.0 * static_cast<double>(m.arena_bytes) / m.naive_bytes);
  std::printf("; %zu values planned, %lld in place, %lld views, %lld concats eliminated\n", m.blocks.size(),
              static_cast<long long>(m.in_place), static_cast<long long>(m.views), static_cast<long long>(m.concats));
  // Values the plan keeps in a blocked channel layout between kernels (plan/layouts.h).
  int64_t blocked = 0, block = 0;
  if (plan.model.graph) {
    for (const auto& n : plan.model.graph->nodes()) {
      const std::vector<int64_t> f = n->attr_ints("kiln_blocked");
      if (f.size() == 4 && f[2] != 0) {
        ++blocked;
        block = f[3];
      }
    }
  }
  if (blocked > 0) {
    std::printf("blocked layouts: %lld values stay in nChw%lldc between kernels (no reorders)\n",
                static_cast<long long>(blocked), static_cast<long long>(block));
  }
}

std::string plan_json(const plan::Plan& plan, const std::string& path) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  auto str = [&](const std::string& s) { w.String(s.c_str(), static_cast<rapidjson::SizeType>(s.size())); };
  auto key = [&](const char* k) { w.Key(k); };
  auto dims = [&](const Dims& d) {
    w.StartArray();
    for (int64_t x : d) w.Int64(x);
    w.EndArray();
  };
  w.StartObject();
  key("plan");
  str(path);
  key("format_version");
  w.Uint(plan::kFormatVersion);
  key("kiln_version");
  str(plan.kiln_version);
  key("target");
  w.StartObject();
  key("arch");
  str(plan.target.arch);
  key("isa");
  w.StartArray();
  for (const auto& f : plan.target.isa) str(f);
  w.EndArray();
  key("required_isa");
  w.StartArray();
  for (const auto& f : plan.target.required) str(f);
  w.EndArray();
  w.EndObject();
  key("libraries");
  w.StartObject();
  for (const auto& [k, v] : plan.libraries) {
    key(k.c_str());
    str(v);
  }
  w.EndObject();
  key("precision");
  str(plan.precision);
  key("threads");
  w.Int(plan.threads);
  key("onnx_nodes");
  w.Int64(plan.onnx_nodes);
  key("layer_count");
  w.Int64(static_cast<int64_t>(plan.layers.size()));
  key("peak_activation_bytes");
  w.Int64(plan.memory.arena_bytes);
  key("naive_activation_bytes");
  w.Int64(plan.memory.naive_bytes);
  key("in_place_values");
  w.Int64(plan.memory.in_place);
  key("view_values");
  w.Int64(plan.memory.views);
  key("concats_eliminated");
  w.Int64(plan.memory.concats);
  key("profiles");
  w.StartArray();
  for (const auto& p : plan.profiles) {
    w.StartObject();
    key("input");
    str(p.name);
    key("min");
    dims(p.min);
    key("opt");
    dims(p.opt);
    key("max");
    dims(p.max);
    w.EndObject();
  }
  w.EndArray();
  key("layers");
  w.StartArray();
  for (const LayerRow& r : layer_rows(plan)) {
    w.StartObject();
    key("name");
    str(r.name);
    key("op");
    str(r.op);
    key("fused");
    w.StartArray();
    for (const auto& f : r.fused) str(f);
    w.EndArray();
    key("precision");
    str(r.precision);
    key("tactic");
    str(r.tactic);
    key("time_ms");
    if (r.time_ms >= 0) {
      w.Double(r.time_ms);
    } else {
      w.Null();
    }
    key("candidates");
    w.Int(r.candidates);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

}  // namespace kiln::cli
