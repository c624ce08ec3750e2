#include "backends/cuda/engine.h"

#include <cstring>
#include <mutex>

#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/device.h"
#include "backends/cuda/step_ops.h"
#include "core/error.h"
#include "core/logging.h"

namespace kiln::backends::cuda {

// A plan with its device resources: arena, weights, staging, prepared steps
// and (optionally) the captured CUDA graph.
struct Prepared {
  Plan plan;
  std::vector<Dims> input_dims;
  DeviceBuffer arena;
  std::vector<DeviceBuffer> constants;
  std::vector<PinnedBuffer> in_staging, out_staging;
  std::vector<std::unique_ptr<PreparedStep>> ops;  // per step; null for simple steps
  std::vector<void*> ptrs;
  size_t first_compute = 0, end_compute = 0;  // steps [first, end) run between uploads and downloads
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t graph_exec = nullptr;

  ~Prepared() {
    if (graph_exec != nullptr) (void)cudaGraphExecDestroy(graph_exec);
    if (graph != nullptr) (void)cudaGraphDestroy(graph);
  }
};

struct GpuEngine::Impl {
  const ir::Graph* graph = nullptr;
  GpuOptions options;
  Stream stream;
  cudnnHandle_t cudnn = nullptr;
  cublasLtHandle_t lt = nullptr;
  DeviceBuffer workspace;
  GpuContext ctx;
  // Cleared when NVRTC cannot compile or load a kernel here (plans then do without).
  bool generated_kernels = true;
  std::unique_ptr<Prepared> prepared;
  std::mutex mu;  // serializes run() and time_steps()

  ~Impl() {
    prepared.reset();
    if (cudnn != nullptr) (void)cudnnDestroy(cudnn);
    if (lt != nullptr) (void)cublasLtDestroy(lt);
  }

  Status enqueue_range(size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      const Step& s = prepared->plan.steps[i];
      if (prepared->ops[i] != nullptr) {
        KILN_RETURN_IF_ERROR(prepared->ops[i]->enqueue(ctx));
      } else {
        KILN_RETURN_IF_ERROR(enqueue_simple(prepared->plan, s, ctx));
      }
    }
    return Status::ok();
  }

  Status enqueue_compute() {
    if (prepared->graph_exec != nullptr) {
      return check_cuda(cudaGraphLaunch(prepared->graph_exec, stream.get()), "cudaGraphLaunch");
    }
    return enqueue_range(prepared->first_compute, prepared->end_compute);
  }

  // Plans and prepares for these input shapes. Should cuDNN refuse a
  // channels-last convolution on this GPU, the plan is made again with
  // channels-first activations before giving up.
  Status prepare(const std::vector<Dims>& dims, const std::vector<DataType>& dtypes) {
    Status st = prepare_with(dims, dtypes, options.channels_last);
    if (st.is_ok() || !options.channels_last) return st;
    Status retry = prepare_with(dims, dtypes, false);
    if (retry.is_ok()) {
      KILN_LOG_WARN("GPU engine: channels-last plan failed ({}); running channels-first", st.message());
      return retry;
    }
    return st;
  }

  Status prepare_with(const std::vector<Dims>& dims, const std::vector<DataType>& dtypes, bool channels_last) {
    prepared.reset();
    PlanOptions po;
    po.precision = options.precision;
    po.channels_last = channels_last;
    po.pad_small_channels = options.pad_small_channels;
    po.generated_kernels = generated_kernels;
    KILN_ASSIGN_OR_RETURN(Plan plan, build_plan(*graph, dims, dtypes, po));
    auto p = std::make_unique<Prepared>();
    p->plan = std::move(plan);
    p->input_dims = dims;
    const Plan& pl = p->plan;
    KILN_ASSIGN_OR_RETURN(p->arena, DeviceBuffer::allocate(static_cast<size_t>(pl.arena_bytes)));
    p->ptrs.assign(pl.values.size(), nullptr);
    for (size_t v = 0; v < pl.values.size(); ++v) {
      const PlanValue& pv = pl.values[v];
      if (pv.persistent) {
        KILN_ASSIGN_OR_RETURN(DeviceBuffer b, DeviceBuffer::allocate(static_cast<size_t>(pv.host.nbytes())));
        if (pv.host.nbytes() > 0) {
          KILN_CUDA_CHECK(cudaMemcpy(b.get(), pv.host.raw_data(), pv.host.nbytes(), cudaMemcpyHostToDevice));
        }
        p->ptrs[v] = b.get();
        p->constants.push_back(std::move(b));
      } else if (!pv.on_host && pv.buffer >= 0) {
        p->ptrs[v] = static_cast<char*>(p->arena.get()) + pl.buffer_offsets[static_cast<size_t>(pv.buffer)];
      }
    }
    for (int v : pl.input_values) {
      KILN_ASSIGN_OR_RETURN(PinnedBuffer b,
                            PinnedBuffer::allocate(static_cast<size_t>(pl.values[static_cast<size_t>(v)].nbytes())));
      p->in_staging.push_back(std::move(b));
    }
    for (int v : pl.output_values) {
      const PlanValue& pv = pl.values[static_cast<size_t>(v)];
      KILN_ASSIGN_OR_RETURN(PinnedBuffer b, PinnedBuffer::allocate(pv.on_host ? 0 : static_cast<size_t>(pv.nbytes())));
      p->out_staging.push_back(std::move(b));
    }
    ctx.ptrs = p->ptrs;
    ctx.in_staging = &p->in_staging;
    ctx.out_staging = &p->out_staging;
    KILN_CUDNN_CHECK(cudnnSetStream(cudnn, stream.get()));
    p->ops.resize(pl.steps.size());
    // build_plan puts every upload first and every download last; the steps
    // between them are the compute range (the CUDA graph).
    size_t uploads = 0, downloads = 0;
    while (uploads < pl.steps.size() && pl.steps[uploads].kind == StepKind::kUpload) ++uploads;
    while (downloads < pl.steps.size() - uploads &&
           pl.steps[pl.steps.size() - 1 - downloads].kind == StepKind::kDownload) {
      ++downloads;
    }
    p->first_compute = uploads;
    p->end_compute = pl.steps.size() - downloads;
    for (size_t i = 0; i < pl.steps.size(); ++i) {
      const Step& s = pl.steps[i];
      bool inside = i >= p->first_compute && i < p->end_compute;
      if (inside && (s.kind == StepKind::kUpload || s.kind == StepKind::kDownload)) {
        return internal_error("plan has a transfer step ({}) inside its compute range", s.label);
      }
      if (s.kind == StepKind::kConv) {
        KILN_ASSIGN_OR_RETURN(p->ops[i], prepare_conv(pl, s, ctx));
      } else if (s.kind == StepKind::kGemm) {
        KILN_ASSIGN_OR_RETURN(p->ops[i], prepare_gemm(pl, s, ctx));
      } else if (s.kind == StepKind::kPointwise || s.kind == StepKind::kMaskedSoftmax) {
        Result<std::unique_ptr<PreparedStep>> op = prepare_generated(pl, s, ctx);
        if (!op.is_ok()) {  // no NVRTC here: plan again without generated kernels
          KILN_LOG_WARN("GPU engine: generated kernel unavailable ({}); planning without generated kernels",
                        op.status().message());
          generated_kernels = false;
          return prepare_with(dims, dtypes, channels_last);
        }
        p->ops[i] = std::move(*op);
      }
    }
    prepared = std::move(p);
    // One eager run checks every step before capture.
    KILN_RETURN_IF_ERROR(enqueue_range(prepared->first_compute, prepared->end_compute));
    KILN_RETURN_IF_ERROR(stream.synchronize());
    if (options.cuda_graph && prepared->end_compute > prepared->first_compute) {
      Status st = capture();
      if (!st.is_ok()) {  // a library call that cannot be captured: run the steps eagerly
        KILN_LOG_WARN("GPU engine: CUDA graph capture failed ({}); launching steps one by one", st.message());
        if (prepared->graph_exec != nullptr) (void)cudaGraphExecDestroy(prepared->graph_exec);
        if (prepared->graph != nullptr) (void)cudaGraphDestroy(prepared->graph);
        prepared->graph_exec = nullptr;
        prepared->graph = nullptr;
        (void)cudaGetLastError();
        KILN_RETURN_IF_ERROR(enqueue_range(prepared->first_compute, prepared->end_compute));
        KILN_RETURN_IF_ERROR(stream.synchronize());
      }
    }
    return Status::ok();
  }

  Status capture() {
    KILN_CUDA_CHECK(cudaStreamBeginCapture(stream.get(), cudaStreamCaptureModeThreadLocal));
    Status st = enqueue_range(prepared->first_compute, prepared->end_compute);
    cudaGraph_t g = nullptr;
    Status end = check_cuda(cudaStreamEndCapture(stream.get(), &g), "cudaStreamEndCapture");
    if (!st.is_ok() || !end.is_ok()) {
      if (g != nullptr) (void)cudaGraphDestroy(g);
      return !st.is_ok() ? st.with_context("CUDA graph capture") : end;
    }
    prepared->graph = g;
    KILN_CUDA_CHECK(cudaGraphInstantiate(&prepared->graph_exec, g, 0));
    return Status::ok();
  }
};

GpuEngine::GpuEngine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
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
  KILN_RETURN_IF_ERROR(set_device(options.device));
  auto impl = std::make_unique<Impl>();
  impl->graph = &graph;
  impl->options = options;
  KILN_ASSIGN_OR_RETURN(impl->stream, Stream::create());
  KILN_CUDNN_CHECK(cudnnCreate(&impl->cudnn));
  KILN_CUBLAS_CHECK(cublasLtCreate(&impl->lt));
  KILN_ASSIGN_OR_RETURN(impl->workspace, DeviceBuffer::allocate(options.workspace_bytes));
  impl->ctx.stream = impl->stream.get();
  impl->ctx.cudnn = impl->cudnn;
  impl->ctx.lt = impl->lt;
  impl->ctx.workspace = impl->workspace.get();
  impl->ctx.workspace_bytes = options.workspace_bytes;
  impl->ctx.precision = options.precision;
  impl->ctx.fuse_conv_epilogue = options.fuse_conv_epilogue;
  if (static_shapes) KILN_RETURN_IF_ERROR(impl->prepare(dims, dtypes));
  return std::unique_ptr<GpuEngine>(new GpuEngine(std::move(impl)));
}

Result<std::vector<Tensor>> GpuEngine::run(const std::vector<Tensor>& inputs) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> lock(m.mu);
  const auto& gin = m.graph->inputs();
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
  KILN_RETURN_IF_ERROR(set_device(m.options.device));
  if (m.prepared == nullptr || m.prepared->input_dims != dims) {
    KILN_RETURN_IF_ERROR(m.prepare(dims, dtypes));
  }
  Prepared& p = *m.prepared;
  const Plan& pl = p.plan;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].nbytes() > 0) std::memcpy(p.in_staging[i].get(), inputs[i].raw_data(), inputs[i].nbytes());
  }
  KILN_RETURN_IF_ERROR(m.enqueue_range(0, p.first_compute));
  KILN_RETURN_IF_ERROR(m.enqueue_compute());
  KILN_RETURN_IF_ERROR(m.enqueue_range(p.end_compute, pl.steps.size()));
  KILN_RETURN_IF_ERROR(m.stream.synchronize());
  std::vector<Tensor> outs;
  for (size_t j = 0; j < pl.output_values.size(); ++j) {
    const PlanValue& v = pl.values[static_cast<size_t>(pl.output_values[j])];
    if (v.on_host) {
      outs.push_back(v.host.clone());
      continue;
    }
    KILN_ASSIGN_OR_RETURN(Tensor t, Tensor::allocate(v.dtype, v.dims));
    if (t.nbytes() > 0) std::memcpy(t.raw_data(), p.out_staging[j].get(), t.nbytes());
    outs.push_back(std::move(t));
  }
  return outs;
}

Result<double> GpuEngine::time_steps(int warmup, int iterations) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> lock(m.mu);
  if (m.prepared == nullptr) return failed_precondition("GPU engine: no plan yet (run once first)");
  if (iterations <= 0) return invalid_argument("iterations must be positive");
  KILN_RETURN_IF_ERROR(set_device(m.options.device));
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
  Impl& m = *impl_;
  std::lock_guard<std::mutex> lock(m.mu);
  if (m.prepared == nullptr) return failed_precondition("GPU engine: no plan yet (run once first)");
  if (iterations <= 0) return invalid_argument("iterations must be positive");
  KILN_RETURN_IF_ERROR(set_device(m.options.device));
  Prepared& p = *m.prepared;
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
  return impl_->prepared == nullptr ? std::string() : impl_->prepared->plan.to_string();
}

bool GpuEngine::uses_cuda_graph() const { return impl_->prepared != nullptr && impl_->prepared->graph_exec != nullptr; }

}  // namespace kiln::backends::cuda
