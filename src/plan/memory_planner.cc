#include "plan/memory_planner.h"

#include <algorithm>
#include <set>
#include <string_view>
#include <unordered_map>

#include "ops/op_def.h"

namespace kiln::plan {
namespace {

// Ops whose reference kernel outputs a view of (owned) input 0.
bool is_view_op(const ir::Node& n) {
  if (!n.domain().empty() && n.domain() != "ai.onnx") return false;
  static const std::set<std::string_view> kOps = {"Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze"};
  if (kOps.count(n.op_type()) != 0) return true;
  // Dropout in inference mode passes its input through.
  return n.op_type() == "Dropout" && !n.has_input(2) && n.attr_int("training_mode", 0) == 0;
}

// Elementwise ops whose reference kernels map element i of each input to
// element i of the output in one pass.
bool is_in_place_op(const ir::Node& n) {
  if (!n.domain().empty() && n.domain() != "ai.onnx") return false;
  static const std::set<std::string_view> kOps = {
      "Relu", "LeakyRelu", "Elu",  "Selu", "Celu", "Sigmoid", "HardSigmoid", "HardSwish", "Softplus", "Softsign",
      "Tanh", "Gelu",      "Mish", "Clip", "Add",  "Sub",     "Mul",         "Div",       "Neg",      "Abs",
      "Sqrt", "Exp",       "Log",  "Erf",  "Reciprocal"};
  return kOps.count(n.op_type()) != 0;
}

struct Member {
  const ir::Value* value;
  BlockKind kind;
  int64_t sub_offset = 0;  // within the buffer (concat slices)
  int64_t size = -1;       // bytes when not the buffer's size (concat slices)
};

struct Buffer {
  int64_t start = 0;
  int64_t end = 0;
  int64_t size = 0;
  int64_t offset = -1;
  std::vector<Member> values;
};

// Concat inputs that can live in a slice of the output: (input -> byte offset in the output).
std::unordered_map<const ir::Value*, int64_t> concat_slices(
    const std::vector<const ir::Node*>& order, const ValueDims& dims,
    const std::unordered_map<const ir::Value*, int64_t>& bytes, const std::vector<std::string>& tactics,
    std::unordered_map<const ir::Node*, int64_t>& index) {
  std::unordered_map<const ir::Value*, int64_t> out;
  for (const ir::Node* n : order) {
    if (n->op_type() != "Concat" || (!n->domain().empty() && n->domain() != "ai.onnx")) continue;
    const size_t i = static_cast<size_t>(index[n]);
    if (i >= tactics.size() || tactics[i] != "reference" || n->num_outputs() != 1) continue;
    const ir::Value* o = n->output(0);
    if (o == nullptr || bytes.count(o) == 0) continue;
    const Dims& od = dims.at(o);
    int64_t axis = n->attr_int("axis", 0);
    const int64_t rank = static_cast<int64_t>(od.size());
    if (axis < 0) axis += rank;
    if (axis < 0 || axis >= rank) continue;
    int64_t outer = 1;
    for (int64_t d = 0; d < axis; ++d) outer *= od[static_cast<size_t>(d)];
    if (outer != 1) continue;  // slices would not be contiguous
    std::vector<std::pair<const ir::Value*, int64_t>> slices;
    int64_t offset = 0;
    bool ok = n->num_inputs() > 1;
    for (const ir::Value* v : n->inputs()) {
      ok = ok && v != nullptr && bytes.count(v) != 0 && v->uses().size() == 1 && v->producer() != nullptr &&
           v->type().dtype == o->type().dtype && out.count(v) == 0 && !is_view_op(*v->producer());
      for (const auto& s : slices) ok = ok && s.first != v;
      if (!ok) break;
      slices.emplace_back(v, offset);
      offset += bytes.at(v);
    }
    if (!ok || offset != bytes.at(o)) continue;
    for (const auto& [v, off] : slices) out[v] = off;
  }
  return out;
}

int64_t aligned(int64_t n, int64_t a) { return (n + a - 1) / a * a; }

void collect_capture_names(const ir::Graph& g, std::vector<std::string>& names) {
  for (const ir::Value* v : g.captures()) names.push_back(v->name());
  for (const auto& node : g.nodes()) {
    for (const ir::Graph* sub : node->subgraphs()) collect_capture_names(*sub, names);
  }
}

}  // namespace

MemoryPlan plan_memory(const ir::Graph& graph, const ValueDims& dims, const std::vector<std::string>& tactics,
                       const MemoryPlanOptions& options) {
  const backends::TacticRegistry& registry =
      options.registry != nullptr ? *options.registry : backends::TacticRegistry::global();
  MemoryPlan plan;
  std::unordered_map<const ir::Node*, int64_t> index;
  std::vector<const ir::Node*> order;
  for (const auto& n : graph.nodes()) {
    index[n.get()] = static_cast<int64_t>(order.size());
    order.push_back(n.get());
  }
  // Value -> bytes, for the values we may plan.
  std::unordered_map<const ir::Value*, int64_t> bytes;
  std::unordered_map<const ir::Value*, int64_t> last_use;
  for (const ir::Node* n : order) {
    for (const ir::Value* v : n->outputs()) {
      if (v == nullptr || v->is_graph_output() || v->is_constant() || !v->type().is_tensor()) continue;
      DataType dt = v->type().dtype;
      if (dt == DataType::kUndefined || dt == DataType::kString) continue;
      auto it = dims.find(v);
      if (it == dims.end()) continue;
      size_t out = 0;
      while (out < n->num_outputs() && n->output(out) != v) ++out;
      const int64_t storage = ops::output_storage_bytes(*n, out, dt, it->second);  // padded blocked layouts
      if (storage < 0) continue;
      bytes[v] = storage;
      last_use[v] = index[n];
    }
  }
  for (const ir::Node* n : order) {
    for (const ir::Value* v : n->inputs()) {
      auto it = last_use.find(v);
      if (it != last_use.end()) it->second = std::max(it->second, index[n]);
    }
    std::vector<std::string> captured;
    for (const ir::Graph* sub : n->subgraphs()) collect_capture_names(*sub, captured);
    for (const std::string& name : captured) {
      const ir::Value* v = graph.find_value(name);
      auto it = v ? last_use.find(v) : last_use.end();
      if (it != last_use.end()) it->second = std::max(it->second, index[n]);
    }
  }
  for (const auto& [v, b] : bytes) plan.naive_bytes += b;

  std::unordered_map<const ir::Value*, int64_t> slices;
  if (options.concats) slices = concat_slices(order, dims, bytes, tactics, index);
  std::vector<Buffer> buffers;
  std::unordered_map<const ir::Value*, size_t> buffer_of;
  for (const ir::Node* n : order) {
    const int64_t i = index[n];
    const std::string& tactic = static_cast<size_t>(i) < tactics.size() ? tactics[static_cast<size_t>(i)] : "";
    // An eliminated Concat: one buffer from its first input's producer to its output's last use.
    if (!n->inputs().empty() && n->input(0) != nullptr && slices.count(n->input(0)) != 0) {
      const ir::Value* o = n->output(0);
      Buffer b;
      b.start = i;
      b.end = last_use[o];
      b.size = aligned(bytes[o], options.alignment);
      b.values.push_back({o, BlockKind::kConcat});
      for (const ir::Value* in : n->inputs()) {
        b.start = std::min(b.start, index[in->producer()]);
        b.values.push_back({in, BlockKind::kOwn, slices[in], bytes[in]});
      }
      buffer_of[o] = buffers.size();
      buffers.push_back(std::move(b));
      ++plan.concats;
      continue;
    }
    for (size_t o = 0; o < n->num_outputs(); ++o) {
      const ir::Value* v = n->output(o);
      if (v == nullptr || bytes.count(v) == 0 || slices.count(v) != 0) continue;
      const int64_t size = bytes[v];
      // A view shares its input's block.
      if (options.views && o == 0 && is_view_op(*n) && n->input(0) != nullptr && tactic == "reference") {
        auto in = buffer_of.find(n->input(0));
        if (in != buffer_of.end() && buffers[in->second].size >= size) {
          Buffer& b = buffers[in->second];
          b.end = std::max(b.end, last_use[v]);
          b.values.push_back({v, BlockKind::kView});
          buffer_of[v] = in->second;
          ++plan.views;
          continue;
        }
      }
      // In place: an input that dies here with the output's dtype and dims
      // (for a fast tactic, the one input it names).
      const backends::Tactic* fast = tactic == "reference" ? nullptr : registry.find(tactic);
      const int over = fast != nullptr ? fast->output_over_input(*n) : -1;
      if (options.in_place && o == 0 && (over >= 0 || (is_in_place_op(*n) && tactic == "reference"))) {
        bool placed = false;
        for (size_t k = 0; k < n->num_inputs(); ++k) {
          const ir::Value* in = n->input(k);
          if (over >= 0 && k != static_cast<size_t>(over)) continue;
          auto bi = in ? buffer_of.find(in) : buffer_of.end();
          if (bi == buffer_of.end()) continue;
          Buffer& b = buffers[bi->second];
          auto din = dims.find(in);
          auto dout = dims.find(v);
          if (b.end != i || in->type().dtype != v->type().dtype || din == dims.end() || dout == dims.end() ||
              din->second != dout->second || b.size < size) {
            continue;
          }
          b.end = std::max(b.end, last_use[v]);
          b.values.push_back({v, BlockKind::kInPlace});
          buffer_of[v] = bi->second;
          ++plan.in_place;
          placed = true;
          break;
        }
        if (placed) continue;
      }
      Buffer b;
      b.start = i;
      b.end = last_use[v];
      b.size = aligned(size, options.alignment);
      b.values.push_back({v, BlockKind::kOwn});
      buffer_of[v] = buffers.size();
      buffers.push_back(std::move(b));
    }
  }

  // Greedy by size: largest first, at the lowest offset free for its lifetime.
  std::vector<size_t> by_size(buffers.size());
  for (size_t k = 0; k < by_size.size(); ++k) by_size[k] = k;
  std::stable_sort(by_size.begin(), by_size.end(), [&](size_t a, size_t b) {
    if (buffers[a].size != buffers[b].size) return buffers[a].size > buffers[b].size;
    return buffers[a].start < buffers[b].start;
  });
  std::vector<size_t> placed;
  for (size_t k : by_size) {
    Buffer& b = buffers[k];
    std::vector<std::pair<int64_t, int64_t>> busy;  // [offset, offset + size) overlapping in time
    for (size_t p : placed) {
      const Buffer& q = buffers[p];
      if (q.start <= b.end && b.start <= q.end) busy.emplace_back(q.offset, q.offset + q.size);
    }
    std::sort(busy.begin(), busy.end());
    // Best fit: the smallest gap that holds the block, else the end.
    int64_t best = -1;
    int64_t best_gap = 0;
    int64_t cursor = 0;
    for (const auto& [lo, hi] : busy) {
      if (lo > cursor) {
        int64_t gap = lo - cursor;
        if (gap >= b.size && (best < 0 || gap < best_gap)) {
          best = cursor;
          best_gap = gap;
        }
      }
      cursor = std::max(cursor, hi);
    }
    b.offset = best >= 0 ? best : cursor;
    plan.arena_bytes = std::max(plan.arena_bytes, b.offset + b.size);
    placed.push_back(k);
  }
  for (const Buffer& b : buffers) {
    for (const Member& m : b.values) {
      plan.blocks.push_back({m.value->name(), b.offset + m.sub_offset, m.size >= 0 ? m.size : b.size, m.kind});
    }
  }
  return plan;
}

}  // namespace kiln::plan
