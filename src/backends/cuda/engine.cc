#include "backends/cuda/engine.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <optional>

#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/device.h"
#include "backends/cuda/step_ops.h"
#include "core/error.h"
#include "core/logging.h"

namespace kiln::backends::cuda {

// A plan with the device resources every context shares: the weights
// (persistent constants) and the prepared steps (descriptors, algorithms).
struct SharedPlan {
  Plan plan;
  std::vector<Dims> input_dims;
  std::vector<DeviceBuffer> constants;
  std::vector<void*> const_ptrs;                   // per plan value: its persistent device copy, else null
  std::vector<std::unique_ptr<PreparedStep>> ops;  // per step; null for simple steps
  size_t first_compute = 0, end_compute = 0;       // steps [first, end) run between uploads and downloads
};

// One context's resources for one shared plan: activations, staging, the
// device pointer of every value, and the captured CUDA graph.
struct ContextPlan {
  std::shared_ptr<const SharedPlan> shared;
  DeviceBuffer arena;
  std::vector<PinnedBuffer> in_staging, out_staging;
  std::vector<void*> ptrs;
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t graph_exec = nullptr;
  uint64_t last_use = 0;

  ContextPlan() = default;
  ContextPlan(const ContextPlan&) = delete;
  ContextPlan& operator=(const ContextPlan&) = delete;
  ~ContextPlan() { drop_graph(); }
  void drop_graph() {
    if (graph_exec != nullptr) (void)cudaGraphExecDestroy(graph_exec);
    if (graph != nullptr) (void)cudaGraphDestroy(graph);
    graph_exec = nullptr;
    graph = nullptr;
  }
};

// Plans kept per engine (and per context): the last kMaxPlans input shapes.
constexpr size_t kMaxPlans = 8;

// What the engine's contexts share.
struct GpuEngine::Shared {
  const ir::Graph* graph = nullptr;
  GpuOptions options;
  std::mutex mu;  // guards plans, conv_algos and tick; held while a plan is prepared
  std::vector<std::shared_ptr<const SharedPlan>> plans;  // most recently used last
  std::map<std::string, std::pair<int, int>> conv_algos;
};

struct GpuExecutionContext::Impl {
  std::shared_ptr<GpuEngine::Shared> engine;
  Stream stream;
  cudnnHandle_t cudnn = nullptr;
  cublasLtHandle_t lt = nullptr;
  DeviceBuffer workspace;
  GpuContext ctx;
  std::vector<std::unique_ptr<ContextPlan>> plans;  // this context's side of the engine's plans
  ContextPlan* current = nullptr;
  uint64_t tick = 0;
  std::mutex mu;  // serializes this context's runs

  ~Impl() {
    plans.clear();
    if (cudnn != nullptr) (void)cudnnDestroy(cudnn);
    if (lt != nullptr) (void)cublasLtDestroy(lt);
  }

  static Result<std::unique_ptr<Impl>> create(std::shared_ptr<GpuEngine::Shared> engine) {
    auto m = std::make_unique<Impl>();
    m->engine = std::move(engine);
    const GpuOptions& o = m->engine->options;
    KILN_RETURN_IF_ERROR(set_device(o.device));
    KILN_ASSIGN_OR_RETURN(m->stream, Stream::create());
    KILN_CUDNN_CHECK(cudnnCreate(&m->cudnn));
    KILN_CUBLAS_CHECK(cublasLtCreate(&m->lt));
    KILN_CUDNN_CHECK(cudnnSetStream(m->cudnn, m->stream.get()));
    KILN_ASSIGN_OR_RETURN(m->workspace, DeviceBuffer::allocate(o.workspace_bytes));
    m->ctx.stream = m->stream.get();
    m->ctx.cudnn = m->cudnn;
    m->ctx.lt = m->lt;
    m->ctx.workspace = m->workspace.get();
    m->ctx.workspace_bytes = o.workspace_bytes;
    m->ctx.precision = o.precision;
    m->ctx.fuse_conv_epilogue = o.fuse_conv_epilogue;
    return m;
  }

  const SharedPlan& shared() const { return *current->shared; }

  Status enqueue_range(size_t begin, size_t end) {
    const SharedPlan& sp = shared();
    for (size_t i = begin; i < end; ++i) {
      if (sp.ops[i] != nullptr) {
        KILN_RETURN_IF_ERROR(sp.ops[i]->enqueue(ctx));
      } else {
        KILN_RETURN_IF_ERROR(enqueue_simple(sp.plan, sp.plan.steps[i], ctx));
      }
    }
    return Status::ok();
  }

  Status enqueue_compute() {
    if (current->graph_exec != nullptr) {
      return check_cuda(cudaGraphLaunch(current->graph_exec, stream.get()), "cudaGraphLaunch");
    }
    return enqueue_range(shared().first_compute, shared().end_compute);
  }

  // This context's buffers for `sp`; becomes the current plan.
  Status attach(std::shared_ptr<const SharedPlan> sp) {
    auto cp = std::make_unique<ContextPlan>();
    const Plan& pl = sp->plan;
    KILN_ASSIGN_OR_RETURN(cp->arena, DeviceBuffer::allocate(static_cast<size_t>(pl.arena_bytes)));
    cp->ptrs = sp->const_ptrs;
    for (size_t v = 0; v < pl.values.size(); ++v) {
      const PlanValue& pv = pl.values[v];
      if (!pv.persistent && !pv.on_host && pv.buffer >= 0) {
        cp->ptrs[v] = static_cast<char*>(cp->arena.get()) + pl.buffer_offsets[static_cast<size_t>(pv.buffer)];
      }
    }
    for (int v : pl.input_values) {
      KILN_ASSIGN_OR_RETURN(PinnedBuffer b,
                            PinnedBuffer::allocate(static_cast<size_t>(pl.values[static_cast<size_t>(v)].nbytes())));
      cp->in_staging.push_back(std::move(b));
    }
    for (int v : pl.output_values) {
      const PlanValue& pv = pl.values[static_cast<size_t>(v)];
      KILN_ASSIGN_OR_RETURN(PinnedBuffer b, PinnedBuffer::allocate(pv.on_host ? 0 : static_cast<size_t>(pv.nbytes())));
      cp->out_staging.push_back(std::move(b));
    }
    cp->shared = std::move(sp);
    if (plans.size() >= kMaxPlans) {  // drop this context's least recently used plan
      auto lru = std::min_element(plans.begin(), plans.end(),
                                  [](const auto& a, const auto& b) { return a->last_use < b->last_use; });
      plans.erase(lru);
    }
    plans.push_back(std::move(cp));
    select(plans.back().get());
    return Status::ok();
  }

  void select(ContextPlan* cp) {
    current = cp;
    cp->last_use = ++tick;
    ctx.ptrs = cp->ptrs;
    ctx.in_staging = &cp->in_staging;
    ctx.out_staging = &cp->out_staging;
  }

  // One eager run checks every step; then the compute range is captured as
  // a CUDA graph (where the options ask for one and capture works).
  Status check_and_capture() {
    const SharedPlan& sp = shared();
    KILN_RETURN_IF_ERROR(enqueue_range(sp.first_compute, sp.end_compute));
    KILN_RETURN_IF_ERROR(stream.synchronize());
    if (!engine->options.cuda_graph || sp.end_compute <= sp.first_compute) return Status::ok();
    Status st = capture();
    if (!st.is_ok()) {  // a library call that cannot be captured: run the steps eagerly
      KILN_LOG_WARN("GPU engine: CUDA graph capture failed ({}); launching steps one by one", st.message());
      current->drop_graph();
      (void)cudaGetLastError();
      KILN_RETURN_IF_ERROR(enqueue_range(sp.first_compute, sp.end_compute));
      KILN_RETURN_IF_ERROR(stream.synchronize());
    }
    return Status::ok();
  }

  Status capture() {
    KILN_CUDA_CHECK(cudaStreamBeginCapture(stream.get(), cudaStreamCaptureModeThreadLocal));
    Status st = enqueue_range(shared().first_compute, shared().end_compute);
    cudaGraph_t g = nullptr;
    Status end = check_cuda(cudaStreamEndCapture(stream.get(), &g), "cudaStreamEndCapture");
    if (!st.is_ok() || !end.is_ok()) {
      if (g != nullptr) (void)cudaGraphDestroy(g);
      return !st.is_ok() ? st.with_context("CUDA graph capture") : end;
    }
    current->graph = g;
    KILN_CUDA_CHECK(cudaGraphInstantiate(&current->graph_exec, g, 0));
    return Status::ok();
  }

  // Makes the plan for these input shapes current: this context's own, the
  // engine's (prepared by another context), or a new one prepared here.
  Status activate(const std::vector<Dims>& dims, const std::vector<DataType>& dtypes) {
    if (current != nullptr && current->shared->input_dims == dims) return Status::ok();
    for (auto& cp : plans) {
      if (cp->shared->input_dims == dims) {
        select(cp.get());
        return Status::ok();
      }
    }
    std::shared_ptr<const SharedPlan> sp;
    {
      std::lock_guard<std::mutex> lock(engine->mu);
      for (auto it = engine->plans.begin(); it != engine->plans.end(); ++it) {
        if ((*it)->input_dims == dims) {
          sp = *it;
          engine->plans.erase(it);
          engine->plans.push_back(sp);
          break;
        }
      }
      if (sp == nullptr) return prepare(dims, dtypes);  // attaches and checks the new plan
    }
    KILN_RETURN_IF_ERROR(attach(std::move(sp)));
    Status st = check_and_capture();
    if (!st.is_ok()) forget(current);
    return st;
  }

  // Drops this context's side of a plan (after a failure), leaving no current plan.
  void forget(ContextPlan* cp) {
    for (auto it = plans.begin(); it != plans.end(); ++it) {
      if (it->get() == cp) {
        plans.erase(it);
        break;
      }
    }
    current = nullptr;
  }

  // Plans and prepares for these input shapes (engine lock held). Should
  // cuDNN refuse a channels-last convolution on this GPU, the plan is made
  // again with channels-first activations before giving up.
  Status prepare(const std::vector<Dims>& dims, const std::vector<DataType>& dtypes) {
    const GpuOptions& o = engine->options;
    Status st = prepare_with(dims, dtypes, o.channels_last);
    if (st.is_ok() || !o.channels_last) return st;
    Status retry = prepare_with(dims, dtypes, false);
    if (retry.is_ok()) {
      KILN_LOG_WARN("GPU engine: channels-last plan failed ({}); running channels-first", st.message());
      return retry;
    }
    return st;
  }

  Status prepare_with(const std::vector<Dims>& dims, const std::vector<DataType>& dtypes, bool channels_last) {
    const GpuOptions& o = engine->options;
    PlanOptions po;
    po.precision = o.precision;
    po.channels_last = channels_last;
    po.pad_small_channels = o.pad_small_channels;
    KILN_ASSIGN_OR_RETURN(Plan plan, build_plan(*engine->graph, dims, dtypes, po));
    auto sp = std::make_shared<SharedPlan>();
    sp->plan = std::move(plan);
    sp->input_dims = dims;
    const Plan& pl = sp->plan;
    sp->const_ptrs.assign(pl.values.size(), nullptr);
    for (size_t v = 0; v < pl.values.size(); ++v) {
      const PlanValue& pv = pl.values[v];
      if (!pv.persistent) continue;
      KILN_ASSIGN_OR_RETURN(DeviceBuffer b, DeviceBuffer::allocate(static_cast<size_t>(pv.host.nbytes())));
      if (pv.host.nbytes() > 0) {
        KILN_CUDA_CHECK(cudaMemcpy(b.get(), pv.host.raw_data(), pv.host.nbytes(), cudaMemcpyHostToDevice));
      }
      sp->const_ptrs[v] = b.get();
      sp->constants.push_back(std::move(b));
    }
    // build_plan puts every upload first and every download last; the steps
    // between them are the compute range (the CUDA graph).
    size_t uploads = 0, downloads = 0;
    while (uploads < pl.steps.size() && pl.steps[uploads].kind == StepKind::kUpload) ++uploads;
    while (downloads < pl.steps.size() - uploads &&
           pl.steps[pl.steps.size() - 1 - downloads].kind == StepKind::kDownload) {
      ++downloads;
    }
    sp->first_compute = uploads;
    sp->end_compute = pl.steps.size() - downloads;
    sp->ops.resize(pl.steps.size());
    // The steps are prepared (and timed) on this context's buffers.
    KILN_RETURN_IF_ERROR(attach(sp));
    ContextPlan* mine = current;
    ctx.conv_algos = &engine->conv_algos;
    for (size_t i = 0; i < pl.steps.size(); ++i) {
      const Step& s = pl.steps[i];
      bool inside = i >= sp->first_compute && i < sp->end_compute;
      Status st = Status::ok();
      if (inside && (s.kind == StepKind::kUpload || s.kind == StepKind::kDownload)) {
        st = internal_error("plan has a transfer step ({}) inside its compute range", s.label);
      } else if (s.kind == StepKind::kConv || s.kind == StepKind::kGemm) {
        auto op = s.kind == StepKind::kConv ? prepare_conv(pl, s, ctx) : prepare_gemm(pl, s, ctx);
        st = op.status();
        if (op.is_ok()) sp->ops[i] = std::move(op).value();
      }
      if (!st.is_ok()) {
        ctx.conv_algos = nullptr;
        forget(mine);
        return st;
      }
    }
    ctx.conv_algos = nullptr;
    Status checked = check_and_capture();
    if (!checked.is_ok()) {
      forget(mine);
      return checked;
    }
    if (engine->plans.size() >= kMaxPlans) engine->plans.erase(engine->plans.begin());
    engine->plans.push_back(std::move(sp));
    return Status::ok();
  }

  Result<std::vector<Tensor>> run(const std::vector<Tensor>& inputs) {
    std::lock_guard<std::mutex> lock(mu);
    const auto& gin = engine->graph->inputs();
    if (inputs.size() != gin.size()) {
      return invalid_argument("GPU engine: {} inputs given, the model has {}", inputs.size(), gin.size());
    }
    std::vector<Dims> dims;
    std::vector<DataType> dtypes;
    for (size_t i = 0; i < inputs.size(); ++i) {
      const Tensor& t = inputs[i];
      DataType want = gin[i]->type().dtype;
      if (!t.defined()) return invalid_argument("GPU engine: input '{}' is empty", gin[i]->name());
      if (want != DataType::kUndefined && t.dtype() != want) {
        return invalid_argument("GPU engine: input '{}' is {}, the model expects {}", gin[i]->name(),
                                data_type_name(t.dtype()), data_type_name(want));
      }
      if (gin[i]->type().shape.rank_known() && !gin[i]->type().shape.matches(t.dims())) {
        return invalid_argument("GPU engine: input '{}' has shape {}, the model expects {}", gin[i]->name(),
                                dims_to_string(t.dims()), gin[i]->type().shape.to_string());
      }
      dims.push_back(t.dims());
      dtypes.push_back(t.dtype());
    }
    KILN_RETURN_IF_ERROR(set_device(engine->options.device));
    KILN_RETURN_IF_ERROR(activate(dims, dtypes));
    ContextPlan& cp = *current;
    const SharedPlan& sp = shared();
    const Plan& pl = sp.plan;
    for (size_t i = 0; i < inputs.size(); ++i) {
      if (inputs[i].nbytes() > 0) std::memcpy(cp.in_staging[i].get(), inputs[i].raw_data(), inputs[i].nbytes());
    }
    KILN_RETURN_IF_ERROR(enqueue_range(0, sp.first_compute));
    KILN_RETURN_IF_ERROR(enqueue_compute());
    KILN_RETURN_IF_ERROR(enqueue_range(sp.end_compute, pl.steps.size()));
    KILN_RETURN_IF_ERROR(stream.synchronize());
    std::vector<Tensor> outs;
    for (size_t j = 0; j < pl.output_values.size(); ++j) {
      const PlanValue& v = pl.values[static_cast<size_t>(pl.output_values[j])];
      if (v.on_host) {
        outs.push_back(v.host.clone());
        continue;
      }
      KILN_ASSIGN_OR_RETURN(Tensor t, Tensor::allocate(v.dtype, v.dims));
      if (t.nbytes() > 0) std::memcpy(t.raw_data(), cp.out_staging[j].get(), t.nbytes());
      outs.push_back(std::move(t));
    }
    return outs;
  }
};

GpuExecutionContext::GpuExecutionContext(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GpuExecutionContext::~GpuExecutionContext() = default;

Result<std::vector<Tensor>> GpuExecutionContext::run(const std::vector<Tensor>& inputs) { return impl_->run(inputs); }

GpuEngine::GpuEngine(std::shared_ptr<Shared> shared, std::unique_ptr<GpuExecutionContext> context)
    : shared_(std::move(shared)), default_(std::move(context)) {}
GpuEngine::~GpuEngine() = default;

Result<std::unique_ptr<GpuEngine>> GpuEngine::create(const ir::Graph& graph, const GpuOptions& options) {
  KILN_RETURN_IF_ERROR(check_graph_supported(graph));
  // Shapes known now (graph or options) let create() plan; a plan failure is reported here.
  std::vector<Dims> dims;
  std::vector<DataType> dtypes;
  bool static_shapes = true;
  for (const ir::Value* in : graph.inputs()) {
    auto it = options.input_shapes.find(in->name());
    std::optional<Dims> d =
        it != options.input_shapes.end() ? std::optional<Dims>(it->second) : in->type().shape.concrete();
    if (!d || in->type().dtype == DataType::kUndefined) {
      static_shapes = false;
      break;
    }
    if (it != options.input_shapes.end() && in->type().shape.rank_known() && !in->type().shape.matches(*d)) {
      return invalid_argument("input '{}': shape {} does not fit the model's {}", in->name(), dims_to_string(*d),
                              in->type().shape.to_string());
    }
    dims.push_back(*d);
    dtypes.push_back(in->type().dtype);
  }
  if (device_count() == 0) {
    // Without a GPU, a plan error is still worth reporting before the absence of a GPU.
    if (static_shapes) {
      PlanOptions po;
      po.precision = options.precision;
      po.channels_last = options.channels_last;
      po.pad_small_channels = options.pad_small_channels;
      KILN_RETURN_IF_ERROR(build_plan(graph, dims, dtypes, po).status());
    }
    return failed_precondition("GPU engine: {}", no_gpu_reason());
  }
  if (options.device < 0 || options.device >= device_count()) {
    return invalid_argument("GPU engine: device {} does not exist ({} visible)", options.device, device_count());
  }
  auto shared = std::make_shared<Shared>();
  shared->graph = &graph;
  shared->options = options;
  KILN_ASSIGN_OR_RETURN(auto impl, GpuExecutionContext::Impl::create(shared));
  if (static_shapes) {
    std::lock_guard<std::mutex> lock(shared->mu);
    KILN_RETURN_IF_ERROR(impl->prepare(dims, dtypes));
  }
  std::unique_ptr<GpuExecutionContext> context(new GpuExecutionContext(std::move(impl)));
  return std::unique_ptr<GpuEngine>(new GpuEngine(std::move(shared), std::move(context)));
}

Result<std::unique_ptr<GpuExecutionContext>> GpuEngine::create_context() {
  KILN_ASSIGN_OR_RETURN(auto impl, GpuExecutionContext::Impl::create(shared_));
  return std::unique_ptr<GpuExecutionContext>(new GpuExecutionContext(std::move(impl)));
}

size_t GpuEngine::cached_plans() const {
  std::lock_guard<std::mutex> lock(shared_->mu);
  return shared_->plans.size();
}

Result<std::vector<Tensor>> GpuEngine::run(const std::vector<Tensor>& inputs) { return default_->run(inputs); }

Result<double> GpuEngine::time_steps(int warmup, int iterations) {
  GpuExecutionContext::Impl& m = *default_->impl_;
  std::lock_guard<std::mutex> lock(m.mu);
  if (m.current == nullptr) return failed_precondition("GPU engine: no plan yet (run once first)");
  if (iterations <= 0) return invalid_argument("iterations must be positive");
  KILN_RETURN_IF_ERROR(set_device(shared_->options.device));
  for (int i = 0; i < warmup; ++i) KILN_RETURN_IF_ERROR(m.enqueue_compute());
  KILN_ASSIGN_OR_RETURN(Event start, Event::create());
  KILN_ASSIGN_OR_RETURN(Event stop, Event::create());
  KILN_RETURN_IF_ERROR(start.record(m.stream.get()));
  for (int i = 0; i < iterations; ++i) KILN_RETURN_IF_ERROR(m.enqueue_compute());
  KILN_RETURN_IF_ERROR(stop.record(m.stream.get()));
  KILN_RETURN_IF_ERROR(m.stream.synchronize());
  KILN_ASSIGN_OR_RETURN(float ms, stop.elapsed_since(start));
  return static_cast<double>(ms) / iterations;
}

Result<std::vector<GpuEngine::StepTime>> GpuEngine::profile_steps(int iterations) {
  GpuExecutionContext::Impl& m = *default_->impl_;
  std::lock_guard<std::mutex> lock(m.mu);
  if (m.current == nullptr) return failed_precondition("GPU engine: no plan yet (run once first)");
  if (iterations <= 0) return invalid_argument("iterations must be positive");
  KILN_RETURN_IF_ERROR(set_device(shared_->options.device));
  const SharedPlan& p = m.shared();
  size_t n = p.end_compute - p.first_compute;
  std::vector<Event> marks;
  for (size_t i = 0; i <= n; ++i) {
    KILN_ASSIGN_OR_RETURN(Event e, Event::create());
    marks.push_back(std::move(e));
  }
  std::vector<double> total(n, 0.0);
  for (int it = 0; it < iterations; ++it) {
    KILN_RETURN_IF_ERROR(marks[0].record(m.stream.get()));
    for (size_t i = 0; i < n; ++i) {
      KILN_RETURN_IF_ERROR(m.enqueue_range(p.first_compute + i, p.first_compute + i + 1));
      KILN_RETURN_IF_ERROR(marks[i + 1].record(m.stream.get()));
    }
    KILN_RETURN_IF_ERROR(m.stream.synchronize());
    for (size_t i = 0; i < n; ++i) {
      KILN_ASSIGN_OR_RETURN(float ms, marks[i + 1].elapsed_since(marks[i]));
      total[i] += ms;
    }
  }
  std::vector<StepTime> out;
  for (size_t i = 0; i < n; ++i) {
    size_t s = p.first_compute + i;
    std::string label = fmt::format("{} {}", step_kind_name(p.plan.steps[s].kind), p.plan.steps[s].label);
    if (p.ops[s] != nullptr) label += " [" + p.ops[s]->describe() + "]";
    out.push_back({label, total[i] / iterations});
  }
  return out;
}

std::string GpuEngine::plan_summary() const {
  const auto* m = default_->impl_.get();
  return m->current == nullptr ? std::string() : m->current->shared->plan.to_string();
}

bool GpuEngine::uses_cuda_graph() const {
  const auto* m = default_->impl_.get();
  return m->current != nullptr && m->current->graph_exec != nullptr;
}

}  // namespace kiln::backends::cuda
