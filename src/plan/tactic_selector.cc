#include "plan/tactic_selector.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <random>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"
#include "core/memory.h"
#include "core/logging.h"
#include "core/thread_pool.h"
#include "passes/graph_util.h"
#include "plan/layouts.h"

namespace kiln::plan {
namespace {

bool allowed(const backends::Tactic& t, const std::vector<std::string>& sources) {
  if (sources.empty()) return true;
  return std::find(sources.begin(), sources.end(), std::string(t.source())) != sources.end();
}

// Bytes of timing storage for a tensor: its own, and for a 4-D tensor room
// for its channels rounded up to whole blocks of 16, as a kernel timed in a
// chain of blocked layouts reads and writes them (padded blocks of the
// largest layout, nChw16c; plan/layouts.h).
size_t timing_bytes(DataType dtype, const Dims& dims, int64_t numel) {
  int64_t n = numel;
  if (dims.size() == 4 && dims[1] > 0 && dims[1] % 16 != 0) n = numel / dims[1] * ((dims[1] + 15) / 16 * 16);
  return static_cast<size_t>(n) * element_size(dtype);
}

// Random values for a timing run: floats in [-1, 1), integers and bools zero
// (valid as indices and counts); zero-filled room past them for padded
// blocks (timing_bytes).
Tensor random_tensor(DataType dtype, const Dims& dims, std::mt19937& rng) {
  const int64_t numel = checked_numel(dims).value();  // the caller checked the size
  Tensor t;
  const size_t room = timing_bytes(dtype, dims, numel);
  if (dtype != DataType::kString && room > static_cast<size_t>(numel) * element_size(dtype)) {
    auto storage = std::make_shared<Tensor>(Tensor::empty(DataType::kUInt8, Dims{static_cast<int64_t>(room)}));
    void* data = storage->raw_data();
    t = Tensor::wrap(dtype, dims, data, std::move(storage));
  } else {
    t = Tensor::empty(dtype, dims);
  }
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  if (dtype == DataType::kFloat32) {
    for (float& x : t.span<float>()) x = u(rng);
  } else if (dtype == DataType::kFloat64) {
    for (double& x : t.span<double>()) x = u(rng);
  }
  return t;
}

// The node's inputs for timing, or nullopt when a shape is unknown or too big.
std::optional<std::vector<Datum>> timing_inputs(const ir::Node& node, const ValueDims& dims, std::mt19937& rng) {
  std::vector<Datum> in;
  for (const ir::Value* v : node.inputs()) {
    if (v == nullptr) {
      in.emplace_back();
      continue;
    }
    if (v->is_constant()) {
      in.emplace_back(v->constant());
      continue;
    }
    auto it = dims.find(v);
    if (it == dims.end() || !v->type().is_tensor() || v->type().dtype == DataType::kString) return std::nullopt;
    auto numel = checked_numel(it->second);
    if (!numel.is_ok() || *numel > (int64_t{1} << 28)) return std::nullopt;
    in.emplace_back(random_tensor(v->type().dtype, it->second, rng));
  }
  return in;
}

// Output storage for timing runs, kept from run to run like the memory
// plan's arena at run time: fresh heap outputs would put the page faults of
// first touch in every timing (a 77 MB output paid more in faults than in
// arithmetic) and swamp the differences between candidates. Zero-filled
// unless the kernel writes all of its outputs (Kernel::fills_outputs), as
// the executor does.
class ReusedOutputs final : public ops::OutputAllocator {
 public:
  explicit ReusedOutputs(bool zero_fill) : zero_fill_(zero_fill) {}

  Tensor allocate(const ir::Node& node, size_t index, DataType dtype, const Dims& dims) override {
    (void)node;
    if (dtype == DataType::kString || dtype == DataType::kUndefined) return {};
    auto numel = checked_numel(dims);
    if (!numel.is_ok()) return {};
    const size_t nbytes = timing_bytes(dtype, dims, *numel);  // room for padded blocks
    if (index >= buffers_.size()) buffers_.resize(index + 1);
    Buffer& b = buffers_[index];
    if (!b.data || b.bytes < nbytes) {
      const size_t rounded = (std::max<size_t>(nbytes, 1) + 63) / 64 * 64;
      void* p = allocate_aligned(rounded);  // huge pages where the arena gets them
      if (p == nullptr) return {};
      b.data = std::shared_ptr<void>(p, std::free);
      b.bytes = rounded;
      std::memset(p, 0, rounded);  // first touch here, not in the timed run
    } else if (zero_fill_) {
      std::memset(b.data.get(), 0, nbytes);
    }
    return Tensor::wrap(dtype, dims, b.data.get(), b.data);
  }

 private:
  struct Buffer {
    std::shared_ptr<void> data;
    size_t bytes = 0;
  };
  bool zero_fill_;
  std::vector<Buffer> buffers_;
};

// Median time of `kernel` on `inputs` in milliseconds, or an error from the
// kernel. A first run slower than `give_up_ms` (when positive) ends the
// timing there: that candidate cannot win, and the reference kernels of big
// layers would otherwise spend most of a build in their repeats. Kernels that
// set themselves up on their first run (oneDNN creates and JIT-compiles its
// primitive for the shapes it sees) get a second run before they are given
// up (`second_chance`): a layer of 0.3 ms can spend 5 ms in that first run. Long runs
// need fewer samples for the same precision: one warm-up run when the first
// takes over 20 ms, and the repeats stop after two once they add up to 100 ms.
Result<double> time_kernel(const backends::Kernel& kernel, const ir::Node& node, const std::vector<Datum>& inputs,
                           ThreadPool& pool, int warmup, int repeats, double give_up_ms, bool second_chance) {
  std::vector<double> times;
  double timed_ms = 0;
  ReusedOutputs storage(!kernel.fills_outputs());
  for (int r = 0; r < warmup + repeats; ++r) {
    std::vector<Datum> outputs(node.num_outputs());
    ops::KernelContext ctx(node, inputs, outputs, &pool, nullptr);
    ctx.set_allocator(&storage);
    auto t0 = std::chrono::steady_clock::now();
    KILN_RETURN_IF_ERROR(kernel.run(ctx));
    auto t1 = std::chrono::steady_clock::now();
    const double ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
    if (r == 0 && give_up_ms > 0 && ms > give_up_ms) {
      if (!second_chance) return ms;
      second_chance = false;
      r = -1;  // this run was the set-up; start again
      continue;
    }
    if (r == 0 && ms > 20.0 && warmup > 1) {
      r = warmup - 1;  // the first run was the warm-up
      continue;
    }
    if (r < warmup) continue;
    times.push_back(ms);
    timed_ms += ms;
    if (times.size() >= 2 && timed_ms > 100.0) break;
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

// One timed candidate of a node: its median, the blocked layout it keeps
// ("" for NCHW) and its kernel when the timing prepared it for the plan.
struct Option {
  const backends::Tactic* tactic = nullptr;
  double ms = 0;
  std::string layout;
  std::shared_ptr<const backends::Kernel> kernel;
};

// Each node's fastest candidate, timed alone, can cost the plan more than it
// saves: a blocked-layout tactic was timed inside a chain, and a neighbour in
// NCHW makes one side of it reorder (mobilenetv2 on AVX-512: oneDNN's
// depthwise layers timed at 0.1 ms ran 0.3-1.2 ms between own NCHW kernels,
// and the plan lost 20% to a plan of oneDNN alone). This pass adds to each
// choice the reorders its neighbours' layouts cost (timed by the tactic,
// Tactic::time_layout_change, and kept in the timing cache) and moves one
// node at a time to the option of least total cost until none improves.
// Mirrors plan/layouts.cc: a value stays blocked when its producer and every
// consumer (through input 0 or 3) keep one layout; otherwise each blocked
// end reorders it. `chosen[i]` indexes `options[i]` and is updated.
class LayoutCosts {
 public:
  LayoutCosts(const ir::Graph& graph, const ValueDims& dims, ThreadPool& pool, bool keep_blocked, TimingCache* cache)
      : dims_(dims), pool_(pool), pinned_(graph), keep_blocked_(keep_blocked), cache_(cache) {
    for (const auto& n : graph.nodes()) {
      index_[n.get()] = nodes_.size();
      nodes_.push_back(n.get());
    }
  }

  // `untimed[i]`: the tactic of a node without timed options.
  void refine(const std::vector<std::vector<Option>>& options, std::vector<size_t>& chosen,
              const std::vector<const backends::Tactic*>& untimed) {
    options_ = &options;
    layout_.assign(nodes_.size(), "");
    transparent_.assign(nodes_.size(), false);
    for (size_t i = 0; i < nodes_.size(); ++i) {
      if (!options[i].empty()) layout_[i] = options[i][chosen[i]].layout;
      const backends::Tactic* t = !options[i].empty() ? options[i][chosen[i]].tactic : untimed[i];
      transparent_[i] = t != nullptr && t->layout_transparent(*nodes_[i]);
    }
    for (int round = 0; round < 8; ++round) {
      bool changed = false;
      for (size_t i = 0; i < nodes_.size(); ++i) {
        if (options[i].size() < 2) continue;
        bool mixed = false;
        for (const Option& o : options[i]) mixed = mixed || o.layout != options[i][0].layout;
        if (!mixed) continue;
        auto total = [&](size_t k) {
          layout_[i] = options[i][k].layout;
          return options[i][k].ms + neighbourhood_cost(i);
        };
        const double current = total(chosen[i]);
        size_t best = chosen[i];
        double best_cost = current;
        for (size_t k = 0; k < options[i].size(); ++k) {
          const double c = total(k);
          if (c < best_cost - 1e-6) best = k, best_cost = c;
        }
        layout_[i] = options[i][best].layout;
        if (best != chosen[i]) {
          KILN_LOG_DEBUG("{}: {} ({:.4f} ms with reorders) over {} ({:.4f} ms)", nodes_[i]->describe(),
                         options[i][best].tactic->name(), best_cost, options[i][chosen[i]].tactic->name(), current);
          chosen[i] = best;
          changed = true;
        }
      }
      if (!changed) break;
    }
    join_blocked_spans(chosen);
  }

 private:
  // One node at a time cannot leave a pair of NCHW nodes that share a value
  // (mobilenetv2: the 1x1 convolution writing a 24-channel value and the
  // residual one that adds it): each alone in a blocked layout pays the
  // reorder the other's NCHW side costs. So for each value whose producer
  // has a blocked option, the producer and every end of the value's span
  // that has an option in that layout move there together (each its
  // fastest in it), kept when the plan's total cost falls.
  void join_blocked_spans(std::vector<size_t>& chosen) {
    const auto& options = *options_;
    double cost = -1;  // the plan's total cost with `chosen`, computed at the first move tried
    for (size_t i = 0; i < nodes_.size(); ++i) {
      const ir::Node& n = *nodes_[i];
      if (n.num_outputs() != 1 || n.output(0) == nullptr) continue;
      const size_t k = fastest_in(i, [&](const Option& o) { return !o.layout.empty(); });
      if (k == options[i].size() || options[i][chosen[i]].layout == options[i][k].layout) continue;
      const std::string layout = options[i][k].layout;
      std::vector<std::pair<size_t, size_t>> moves = {{i, k}};  // node, option
      const BlockedSpan span = blocked_span(n.output(0), pinned_, [&](const ir::Node& m) { return is_transparent(m); },
                                            layout);
      if (!span.spannable) continue;
      bool all = true;
      for (const ir::Use& u : span.ends) {
        auto it = index_.find(u.node);
        if (it == index_.end()) {
          all = false;
          break;
        }
        const size_t e = it->second;
        const size_t ke = fastest_in(e, [&](const Option& o) { return o.layout == layout; });
        if (ke == options[e].size()) {
          all = false;
          break;
        }
        moves.emplace_back(e, ke);
      }
      if (!all) continue;
      std::vector<std::pair<size_t, size_t>> before;
      for (const auto& [node, option] : moves) before.emplace_back(node, chosen[node]);
      if (cost < 0) cost = total_cost(chosen);
      for (const auto& [node, option] : moves) chosen[node] = option, layout_[node] = options[node][option].layout;
      const double new_cost = total_cost(chosen);
      if (new_cost < cost - 1e-6) {
        KILN_LOG_DEBUG("{} and the {} readers of its output in {}: {:.4f} ms with reorders over {:.4f} ms",
                       n.describe(), moves.size() - 1, layout, new_cost, cost);
        cost = new_cost;
        continue;
      }
      for (const auto& [node, option] : before) chosen[node] = option, layout_[node] = options[node][option].layout;
    }
  }

  // Index of node i's fastest option that `keep` accepts; options[i].size() when none does.
  template <class Keep>
  size_t fastest_in(size_t i, Keep keep) const {
    const auto& o = (*options_)[i];
    size_t best = o.size();
    for (size_t k = 0; k < o.size(); ++k) {
      if (keep(o[k]) && (best == o.size() || o[k].ms < o[best].ms)) best = k;
    }
    return best;
  }

  // The plan's cost: every chosen option's time and each activation's reorders once.
  double total_cost(const std::vector<size_t>& chosen) {
    const auto& options = *options_;
    double c = 0;
    std::unordered_set<const ir::Value*> values;
    for (size_t i = 0; i < nodes_.size(); ++i) {
      if (!options[i].empty()) c += options[i][chosen[i]].ms;
      const ir::Node& n = *nodes_[i];
      for (size_t in : {size_t{0}, size_t{3}}) {
        if (in < n.num_inputs() && n.input(in) != nullptr && !n.input(in)->is_constant()) values.insert(n.input(in));
      }
      if (n.num_outputs() == 1 && n.output(0) != nullptr) values.insert(n.output(0));
    }
    for (const ir::Value* v : values) c += value_cost(v);
    return c;
  }

  // The reorders of node i's blocked-capable values: input 0, input 3, output 0.
  double neighbourhood_cost(size_t i) {
    const ir::Node& n = *nodes_[i];
    double c = 0;
    for (size_t in : {size_t{0}, size_t{3}}) {
      if (in < n.num_inputs() && n.input(in) != nullptr && !n.input(in)->is_constant()) c += value_cost(n.input(in));
    }
    if (n.num_outputs() == 1 && n.output(0) != nullptr) c += value_cost(n.output(0));
    return c;
  }

  double value_cost(const ir::Value* v) {
    // A layout-transparent node's output belongs to its input's span.
    for (const ir::Node* t = v->producer(); t != nullptr && is_transparent(*t) && t->input(0) != nullptr;
         t = v->producer()) {
      v = t->input(0);
    }
    const ir::Node* producer = v->producer();
    auto p = producer != nullptr ? index_.find(producer) : index_.end();
    const std::string& own = p != index_.end() ? layout_[p->second] : kNone;
    const BlockedSpan span = blocked_span(v, pinned_, [&](const ir::Node& n) { return is_transparent(n); }, own);
    bool kept = keep_blocked_ && !own.empty() && span.spannable;
    int blocked_ends = own.empty() ? 0 : 1;
    std::string other;
    for (const ir::Use& u : span.ends) {
      auto it = index_.find(u.node);
      const bool activation = u.input_index == 0 || u.input_index == 3;
      const std::string& l = it != index_.end() && activation ? layout_[it->second] : kNone;
      if (!l.empty()) ++blocked_ends, other = l;
      kept = kept && l == own;
    }
    if (kept || blocked_ends == 0) return 0;
    return blocked_ends * reorder_ms(v, own.empty() ? other : own, p != index_.end() ? p->second : nodes_.size());
  }

  bool is_transparent(const ir::Node& n) const {
    auto it = index_.find(&n);
    return it != index_.end() && transparent_[it->second];
  }

  // One reorder of `v` to or from `layout`, timed by a tactic that keeps it.
  double reorder_ms(const ir::Value* v, const std::string& layout, size_t producer) {
    auto d = dims_.find(v);
    if (d == dims_.end() || v->type().dtype != DataType::kFloat32) return 0;
    const std::string key = TimingCache::layout_change_key(layout, d->second, pool_.threads());
    if (auto hit = memo_.find(key); hit != memo_.end()) return hit->second;
    double ms = -1;  // unknown
    if (cache_ != nullptr) {
      if (auto hit = cache_->find(key)) ms = *hit;
    }
    if (ms < 0) {
      // The tactic of any end that keeps this layout can time it.
      std::vector<size_t> ends;
      if (producer < nodes_.size()) ends.push_back(producer);
      for (const ir::Use& u : v->uses()) {
        if (auto it = index_.find(u.node); it != index_.end()) ends.push_back(it->second);
      }
      for (size_t e : ends) {
        for (const Option& o : (*options_)[e]) {
          if (ms >= 0 || o.layout != layout) continue;
          if (auto t = o.tactic->time_layout_change(d->second, pool_)) ms = *t;
        }
      }
      if (ms >= 0 && cache_ != nullptr) cache_->put(key, ms);
    }
    return memo_[key] = std::max(ms, 0.0);
  }

  static inline const std::string kNone;
  const ValueDims& dims_;
  ThreadPool& pool_;
  const passes::Pinned pinned_;
  const bool keep_blocked_;
  TimingCache* cache_;
  std::vector<const ir::Node*> nodes_;
  std::unordered_map<const ir::Node*, size_t> index_;
  std::vector<std::string> layout_;
  std::vector<bool> transparent_;  // the chosen tactic is layout-transparent (fixed during refine)
  const std::vector<std::vector<Option>>* options_ = nullptr;
  std::unordered_map<std::string, double> memo_;
};

}  // namespace

Status check_tactic_sources(const std::vector<std::string>& sources) {
  static const char* const kKnown[] = {"own", "onednn", "reference", "cuda"};
  for (const std::string& s : sources) {
    if (std::find(std::begin(kKnown), std::end(kKnown), s) == std::end(kKnown)) {
      return invalid_argument("unknown tactic source '{}'; the sources are own, onednn, reference, cuda", s);
    }
  }
  return Status::ok();
}

Result<Selection> select_tactics(const ir::Graph& graph, const ValueDims& dims, ThreadPool& pool,
                                 const SelectOptions& options, TimingCache* cache) {
  KILN_RETURN_IF_ERROR(check_tactic_sources(options.sources));
  const auto& registry = options.registry ? *options.registry : backends::TacticRegistry::global();
  for (const auto& [name, tactic] : options.forced) {
    const bool found = std::any_of(graph.nodes().begin(), graph.nodes().end(),
                                   [&, &name = name](const auto& n) { return n->name() == name; });
    if (!found) {
      return invalid_argument("no layer named '{}' to give tactic '{}' (kiln build --verbose lists the layers)", name,
                              tactic);
    }
  }
  Selection sel;
  std::mt19937 rng(1234);
  const size_t total = graph.num_nodes();
  size_t done = 0;
  std::vector<std::vector<Option>> timed(total);  // per node, its timed candidates
  std::vector<size_t> fastest(total, 0);
  std::vector<const backends::Tactic*> untimed(total);  // what a node without timings runs
  for (const auto& node_ptr : graph.nodes()) {
    const size_t index = sel.layers.size();
    std::vector<Option>& opts = timed[index];
    const ir::Node& node = *node_ptr;
    std::vector<const backends::Tactic*> cands;
    for (const backends::Tactic* t : registry.candidates(node)) {
      if (allowed(*t, options.sources)) cands.push_back(t);
    }
    // The reference kernels run what no allowed source covers.
    if (cands.empty() && registry.reference().supports(node)) cands.push_back(&registry.reference());
    if (cands.empty()) return unimplemented("{}: no tactic can run this node", node.describe());
    if (auto f = options.forced.find(node.name()); f != options.forced.end()) {
      auto it = std::find_if(cands.begin(), cands.end(), [&](const backends::Tactic* t) { return t->name() == f->second; });
      if (it == cands.end()) {
        std::string names;
        for (const backends::Tactic* t : cands) names += (names.empty() ? "" : ", ") + std::string(t->name());
        return invalid_argument("layer '{}': tactic '{}' is not one of its candidates ({})", node.name(), f->second,
                                names);
      }
      cands = {*it};
    }

    Layer layer;
    layer.candidates = static_cast<int>(cands.size());
    untimed[index] = cands.front();
    std::optional<std::vector<Datum>> inputs;
    if (cands.size() > 1 && options.time) inputs = timing_inputs(node, dims, rng);
    if (inputs) {
      ++sel.timed_nodes;
      double best = -1;
      for (const backends::Tactic* t : cands) {
        std::string name(t->name());
        std::string key = TimingCache::key(node, dims, pool.threads(), name);
        std::optional<double> ms = cache ? cache->find(key) : std::nullopt;
        std::shared_ptr<const backends::Kernel> kernel;
        if (ms) {
          ++sel.cache_hits;
        } else {
          ++sel.cache_misses;
          // A tactic that can chain in a blocked layout is timed inside such a chain (no reorders).
          const bool in_chain = !t->blocked_layout(node).empty();
          auto k = in_chain ? t->prepare_blocked(node) : t->prepare(node);
          if (!k.is_ok()) {
            KILN_LOG_DEBUG("{}: tactic {} failed to prepare: {}", node.describe(), name, k.status().message());
            continue;
          }
          kernel = std::move(k).value();
          const bool second_chance = t != &registry.reference();
          auto timed =
              time_kernel(*kernel, node, *inputs, pool, options.warmup, options.repeats, 3.0 * best, second_chance);
          if (!timed.is_ok()) {
            KILN_LOG_DEBUG("{}: tactic {} failed to run: {}", node.describe(), name, timed.status().message());
            continue;
          }
          ms = *timed;
          if (cache) cache->put(key, *ms);
          if (in_chain) kernel.reset();  // the plan's kernel is prepared for its real layouts below
        }
        opts.push_back({t, *ms, t->blocked_layout(node), std::move(kernel)});
        if (best < 0 || *ms < best) {
          fastest[index] = opts.size() - 1;
          best = *ms;
        }
      }
      // Only the likely choice keeps its kernel (packed weights) until the plan takes it.
      for (size_t k = 0; k < opts.size(); ++k) {
        if (k != fastest[index]) opts[k].kernel.reset();
      }
    }
    sel.layers.push_back(std::move(layer));
    if (options.progress) options.progress(++done, total);
  }
  std::vector<size_t> chosen = fastest;
  LayoutCosts costs(graph, dims, pool, options.blocked_layouts, cache);
  costs.refine(timed, chosen, untimed);
  size_t i = 0;
  for (const auto& node_ptr : graph.nodes()) {
    Layer& layer = sel.layers[i];
    const backends::Tactic* t = untimed[i];
    std::shared_ptr<const backends::Kernel> kernel;
    if (!timed[i].empty()) {
      const Option& o = timed[i][chosen[i]];
      t = o.tactic;
      layer.time_ms = o.ms;
      kernel = o.kernel;
    }
    layer.tactic = std::string(t->name());
    if (!kernel) {
      auto k = t->prepare(*node_ptr);
      if (!k.is_ok()) return std::move(k).status().with_context(fmt::format("tactic {}", layer.tactic));
      kernel = std::move(k).value();
    }
    layer.state = kernel->serialize();
    sel.kernels.push_back(std::move(kernel));
    ++i;
  }
  return sel;
}

}  // namespace kiln::plan
