// oneDNN (Debian's libdnnl, 2.6) primitives as further tactic candidates:
// "onednn.matmul" (MatMul, kiln.FusedMatMul and Gemm / kiln.FusedGemm with a
// constant B) and "onednn.conv" / "onednn.conv_blocked" (Conv and
// kiln.FusedConv with constant weights; plain NCHW in and out, or oneDNN's
// preferred blocked layout with reorders around the primitive) and
// "onednn.pool" / "onednn.pool_blocked" (MaxPool, AveragePool and the global
// pools, so that a pool between blocked convolutions, resnet's stem pool,
// keeps the chain blocked). The fused
// epilogue becomes post-ops: sum (the residual, copied into the output
// first), then eltwise for the activation (or the other way round).
//
// Primitives depend on the input shape, so each kernel creates them on the
// first run of a shape and caches them (weights reordered once per shape).
// Every execution passes its own scratchpad (scratchpad_mode::user), so one
// kernel can run from several execution contexts at the same time.
//
// Threading: Debian's oneDNN runs on OpenMP (DNNL_CPU_RUNTIME == OMP). Each
// run sets the calling thread's OpenMP team size to the context's thread
// count (omp_set_num_threads is per calling thread), so a context with one
// thread runs oneDNN on one thread and several contexts do not multiply
// their teams beyond what their own thread counts ask for. How libgomp's
// idle workers wait between regions matters (OMP_WAIT_POLICY,
// GOMP_SPINCOUNT): the kiln executable and the Python package default to a
// short spin (tools/kiln/main.cc); a C++ program linking Kiln sets them itself.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <oneapi/dnnl/dnnl.hpp>
#include <string>
#include <utility>
#include <vector>

#include "backends/cpu/conv_geometry.h"
#include "backends/cpu/tactics.h"
#include "core/error.h"
#include "core/memory.h"
#include "core/thread_pool.h"
#include "ops/conv_window.h"
#include "ops/epilogue.h"

namespace kiln::backends::cpu {
namespace {

using dnnl::algorithm;
using dnnl::memory;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

const dnnl::engine& cpu_engine() {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// Memory for a primitive's packed weights in our own storage (huge pages
// for big ones, core/memory.h), which the returned pointer owns.
std::pair<memory, std::shared_ptr<void>> weights_memory(const memory::desc& desc) {
  std::shared_ptr<void> storage(allocate_aligned(desc.get_size()), std::free);
  if (!storage) throw std::bad_alloc();
  return {memory(desc, cpu_engine(), storage.get()), storage};
}

// Storage an execution borrows (scratchpad, reorder buffers), one per
// calling thread and use, kept from run to run: allocating it per run put a
// large buffer through malloc's mmap path, and so page faults, into every
// layer. Each context runs its kernels on its own thread, one at a time.
enum class Borrowed { kScratchpad, kSrc, kDst, kCount };
memory borrowed_memory(const memory::desc& desc, Borrowed use) {
  struct Buffer {
    std::unique_ptr<void, decltype(&std::free)> data{nullptr, std::free};
    size_t bytes = 0;
  };
  thread_local Buffer buffers[static_cast<int>(Borrowed::kCount)];
  Buffer& b = buffers[static_cast<int>(use)];
  const size_t need = std::max<size_t>(desc.get_size(), 64);
  if (need > b.bytes) {
    b.data.reset(allocate_aligned(need));
    if (!b.data) throw std::bad_alloc();
    b.bytes = need;
  }
  return memory(desc, cpu_engine(), b.data.get());
}

// Appends the fused epilogue as post-ops; false if oneDNN has no match.
bool build_post_ops(const ops::Epilogue& e, bool residual, dnnl::post_ops& po) {
  if (residual && !e.residual_after_activation) po.append_sum(1.0f);
  switch (e.activation) {
    case ops::Activation::kNone:
      break;
    case ops::Activation::kRelu:
      po.append_eltwise(1.0f, algorithm::eltwise_relu, 0.0f, 0.0f);
      break;
    case ops::Activation::kLeakyRelu:
      po.append_eltwise(1.0f, algorithm::eltwise_relu, e.alpha, 0.0f);
      break;
    case ops::Activation::kClip:
      po.append_eltwise(1.0f, algorithm::eltwise_clip, e.alpha, e.beta);
      break;
    case ops::Activation::kSigmoid:
      po.append_eltwise(1.0f, algorithm::eltwise_logistic, 0.0f, 0.0f);
      break;
    case ops::Activation::kTanh:
      po.append_eltwise(1.0f, algorithm::eltwise_tanh, 0.0f, 0.0f);
      break;
    case ops::Activation::kHardSigmoid:
      po.append_eltwise(1.0f, algorithm::eltwise_linear, e.alpha, e.beta);
      po.append_eltwise(1.0f, algorithm::eltwise_clip, 0.0f, 1.0f);
      break;
    case ops::Activation::kHardSwish:
      po.append_eltwise(1.0f, algorithm::eltwise_hardswish, 0.0f, 0.0f);
      break;
    case ops::Activation::kSilu:
      po.append_eltwise(1.0f, algorithm::eltwise_swish, 1.0f, 0.0f);
      break;
    case ops::Activation::kGelu:
      po.append_eltwise(1.0f, algorithm::eltwise_gelu_erf, 0.0f, 0.0f);
      break;
    case ops::Activation::kGeluTanh:
      po.append_eltwise(1.0f, algorithm::eltwise_gelu_tanh, 0.0f, 0.0f);
      break;
  }
  if (residual && e.residual_after_activation) po.append_sum(1.0f);
  return true;
}

void set_threads(ThreadPool* pool) { omp_set_num_threads(pool != nullptr ? pool->threads() : 1); }

// The calling thread's oneDNN stream (a stream is used by one thread at a
// time; making one per run allocated in every layer).
dnnl::stream& thread_stream() {
  thread_local dnnl::stream s(cpu_engine());
  return s;
}

// A reorder from the plan's layout of a value to a primitive's (or back),
// created once per shape with the primitive: creating it in each run was a
// primitive-cache lookup and a few allocations in every layer. Empty when
// the two agree (an empty handle).
dnnl::reorder reorder_between(const memory::desc& from, const memory::desc& to) {
  if (from == to) return {};
  return dnnl::reorder(dnnl::reorder::primitive_desc(cpu_engine(), from, cpu_engine(), to));
}

// How the plan stores a primitive's input x and output y against how the
// primitive reads and writes them, with the reorders between (none where
// they agree), prepared with the primitive.
struct PlanIo {
  memory::desc x_md, y_md;      // the plan's layouts
  memory::desc src_md, dst_md;  // the primitive's
  dnnl::reorder to_src, from_dst;  // empty handles where the layouts agree

  PlanIo() = default;
  PlanIo(const memory::desc& x, const memory::desc& y, const memory::desc& src, const memory::desc& dst)
      : x_md(x), y_md(y), src_md(src), dst_md(dst), to_src(reorder_between(x, src)), from_dst(reorder_between(dst, y)) {}

  // The primitive's source: x itself, or x reordered into the thread's buffer.
  memory source(dnnl::stream& s, const void* x) const {
    memory user(x_md, cpu_engine(), const_cast<void*>(x));
    if (!to_src) return user;
    memory src = borrowed_memory(src_md, Borrowed::kSrc);
    to_src.execute(s, user, src);
    return src;
  }
  // The primitive's destination: y itself, or the thread's buffer that finish() reorders into y.
  memory destination(void* y) const {
    return from_dst ? borrowed_memory(dst_md, Borrowed::kDst) : memory(y_md, cpu_engine(), y);
  }
  void finish(dnnl::stream& s, memory dst, void* y) const {
    if (!from_dst) return;
    memory user(y_md, cpu_engine(), y);
    from_dst.execute(s, dst, user);
  }
};

bool inputs_f32(ops::KernelContext& ctx) {
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    if (!ctx.has_input(i)) continue;
    if (!ctx.datum(i).is_tensor() || ctx.input(i).dtype() != DataType::kFloat32) return false;
  }
  return ctx.has_input(0) && ctx.has_input(1);
}

// ---- matmul ---------------------------------------------------------------------

// Y[rows, N] = A[rows, K] x W[K, N] (+ bias[N]) with post-ops. W is the
// constant B (Gemm: transposed as needed and scaled by alpha).
class OnednnMatMulKernel final : public Kernel {
 public:
  OnednnMatMulKernel(Tensor w, std::vector<float> const_bias, bool runtime_bias, ops::Epilogue epi, bool gemm)
      : w_(std::move(w)), const_bias_(std::move(const_bias)), runtime_bias_(runtime_bias), epi_(epi), gemm_(gemm) {}

  bool fills_outputs() const override { return true; }
  Status run(ops::KernelContext& ctx) const override {
    if (!inputs_f32(ctx)) return run_reference(ctx);
    const Tensor& a = ctx.input(0);
    const int64_t k = w_.dim(0), n = w_.dim(1);
    if (a.rank() < 1 || a.dims().back() != k || (gemm_ && a.rank() != 2)) return run_reference(ctx);
    const float* bias = const_bias_.empty() ? nullptr : const_bias_.data();
    if (runtime_bias_ && ctx.has_input(2)) {
      const Tensor& b = ctx.input(2);
      if (b.rank() != 1 || b.dim(0) != n) return run_reference(ctx);
      bias = b.data<float>();
    }
    Dims ydims(a.dims().begin(), a.dims().end() - 1);
    ydims.push_back(n);
    const Tensor* z = ctx.has_input(3) ? &ctx.input(3) : nullptr;
    if (z != nullptr && z->dims() != ydims) return run_reference(ctx);
    const int64_t rows = a.numel() / std::max<int64_t>(k, 1);
    if (k == 0 || rows == 0) return run_reference(ctx);
    KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.allocate_output(0, DataType::kFloat32, ydims));
    if (z != nullptr) std::memcpy(y->raw_data(), z->raw_data(), z->nbytes());
    try {
      set_threads(ctx.pool());
      const Prepared& p = prepared(rows, bias != nullptr, z != nullptr);
      memory src({{rows, k}, dt::f32, tag::ab}, cpu_engine(), const_cast<float*>(a.data<float>()));
      memory dst({{rows, n}, dt::f32, tag::ab}, cpu_engine(), y->data<float>());
      std::unordered_map<int, memory> args = {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, p.weights}, {DNNL_ARG_DST, dst}};
      if (bias != nullptr) {
        args.insert({DNNL_ARG_BIAS, memory({{1, n}, dt::f32, tag::ab}, cpu_engine(), const_cast<float*>(bias))});
      }
      args.insert({DNNL_ARG_SCRATCHPAD, borrowed_memory(p.pd.scratchpad_desc(), Borrowed::kScratchpad)});
      dnnl::stream& s = thread_stream();
      p.prim.execute(s, args);
      s.wait();
    } catch (const dnnl::error& e) {
      return ctx.error(internal_error("oneDNN matmul: {}", e.what()));
    }
    return Status::ok();
  }

 private:
  struct Prepared {
    dnnl::matmul::primitive_desc pd;
    dnnl::matmul prim;
    memory weights;
    std::shared_ptr<void> storage;  // the weights' bytes
  };

  const Prepared& prepared(int64_t rows, bool bias, bool residual) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = cache_.find(rows);
    if (it != cache_.end()) return it->second;
    const int64_t k = w_.dim(0), n = w_.dim(1);
    memory::desc src_md({rows, k}, dt::f32, tag::ab);
    memory::desc w_md({k, n}, dt::f32, tag::any);
    memory::desc dst_md({rows, n}, dt::f32, tag::ab);
    dnnl::post_ops po;
    build_post_ops(epi_, residual, po);
    dnnl::primitive_attr attr;
    attr.set_post_ops(po);
    // A scratchpad per execution: kernels run from several contexts at once.
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    auto desc = bias ? dnnl::matmul::desc(src_md, w_md, memory::desc({1, n}, dt::f32, tag::ab), dst_md)
                     : dnnl::matmul::desc(src_md, w_md, dst_md);
    dnnl::matmul::primitive_desc pd(desc, attr, cpu_engine());
    memory plain({{k, n}, dt::f32, tag::ab}, cpu_engine(), const_cast<float*>(w_.data<float>()));
    auto [packed, storage] = weights_memory(pd.weights_desc());
    dnnl::stream& s = thread_stream();
    dnnl::reorder(plain, packed).execute(s, plain, packed);
    s.wait();
    return cache_.emplace(rows, Prepared{pd, dnnl::matmul(pd), packed, storage}).first->second;
  }

  Tensor w_;  // [K, N]
  std::vector<float> const_bias_;
  bool runtime_bias_;
  ops::Epilogue epi_;
  bool gemm_;
  mutable std::mutex mu_;
  mutable std::map<int64_t, Prepared> cache_;  // by rows; guarded by mu_
};

class OnednnMatMulTactic final : public Tactic {
 public:
  std::string_view name() const override { return "onednn.matmul"; }
  std::string_view source() const override { return "onednn"; }

  bool supports(const ir::Node& node) const override {
    const std::string& op = node.op_type();
    const bool fused = op == "FusedMatMul" || op == "FusedGemm";
    if (op != "MatMul" && op != "Gemm" && !fused) return false;
    if (!is_f32(node.input(0)) || !is_f32(node.input(1)) || !node.input(1)->is_constant()) return false;
    if (node.input(1)->constant().rank() != 2) return false;
    if (fused && !ops::Epilogue::from_node(node).is_ok()) return false;
    if (op == "Gemm" || op == "FusedGemm") {
      if (node.attr_int("transA", 0) != 0) return false;
      if (const ir::Value* c = node.input(2)) {
        if (!c->is_constant() || !is_f32(c)) return false;
        const Tensor& ct = c->constant();
        const int64_t n =
            node.attr_int("transB", 0) != 0 ? node.input(1)->constant().dim(0) : node.input(1)->constant().dim(1);
        const bool row = ct.numel() == n && (ct.rank() == 1 || (ct.rank() == 2 && ct.dim(0) == 1));
        if (!row && ct.numel() != 1) return false;
      }
    } else if (node.input(2) != nullptr && !is_f32(node.input(2))) {
      return false;
    }
    return true;
  }

  Result<std::unique_ptr<Kernel>> prepare(const ir::Node& node) const override {
    if (!supports(node)) return invalid_argument("{}: not supported by onednn.matmul", node.describe());
    const std::string& op = node.op_type();
    const bool fused = op == "FusedMatMul" || op == "FusedGemm";
    const bool gemm = op == "Gemm" || op == "FusedGemm";
    ops::Epilogue epi;
    if (fused) {
      KILN_ASSIGN_OR_RETURN(epi, ops::Epilogue::from_node(node));
    }
    const Tensor& b = node.input(1)->constant();
    Tensor w;
    std::vector<float> bias;
    if (gemm) {
      const bool trans_b = node.attr_int("transB", 0) != 0;
      const float alpha = node.attr_float("alpha", 1.0f);
      const int64_t k = trans_b ? b.dim(1) : b.dim(0), n = trans_b ? b.dim(0) : b.dim(1);
      w = Tensor::empty(DataType::kFloat32, {k, n});
      for (int64_t i = 0; i < k; ++i) {
        for (int64_t j = 0; j < n; ++j) {
          w.data<float>()[i * n + j] = alpha * (trans_b ? b.data<float>()[j * k + i] : b.data<float>()[i * n + j]);
        }
      }
      const float beta = node.attr_float("beta", 1.0f);
      if (const ir::Value* c = node.input(2); c != nullptr && beta != 0.0f) {
        const Tensor& ct = c->constant();
        bias.resize(static_cast<size_t>(n));
        for (int64_t j = 0; j < n; ++j) bias[static_cast<size_t>(j)] = beta * ct.data<float>()[ct.numel() == 1 ? 0 : j];
      }
    } else {
      w = b.clone();
    }
    return std::unique_ptr<Kernel>(new OnednnMatMulKernel(std::move(w), std::move(bias), !gemm, epi, gemm));
  }
};

// ---- convolution ------------------------------------------------------------------

// Which of a conv's or pool's activations the builder keeps in the blocked
// layout (the node's "kiln_blocked" marks, ops::read_blocked_marks), with
// oneDNN's tag for that layout.
struct BlockedIo {
  bool src = false;
  bool residual = false;
  bool dst = false;
  tag layout = tag::undef;  // nChw8c or nChw16c
  bool any() const { return src || residual || dst; }
  int64_t block() const { return layout == tag::nChw16c ? 16 : 8; }  // channels per block
};

// oneDNN's tag for blocks of `block` (8 or 16) channels.
tag blocked_tag(int64_t block) { return block == 16 ? tag::nChw16c : tag::nChw8c; }

Result<BlockedIo> read_blocked_io(const ir::Node& node) {
  KILN_ASSIGN_OR_RETURN(ops::BlockedMarks m, ops::read_blocked_marks(node));
  BlockedIo io;
  io.src = m.src;
  io.residual = m.residual;
  io.dst = m.dst;
  if (m.block != 0) io.layout = blocked_tag(m.block);
  return io;
}

// Whether a kernel may read `t`, the value `v`, in blocks of `block`
// channels. Channels that are not whole blocks are read padded: at plan load
// plan::check_blocked_marks verified, from the channel count the plan
// declares for `v`, that the producer writes them padded (or that they are
// whole blocks). A tensor whose count differs from the declared one (a
// damaged plan) would be read past its end: the kernel refuses it.
bool padded_read_allowed(const ir::Value* v, const Tensor& t, int64_t block) {
  if (t.rank() != 4 || t.dim(1) % block == 0) return true;
  const ir::ValueType& type = v->type();
  return !(type.shape.rank_known() && type.shape.rank() == 4 && type.shape[1].known() &&
           type.shape[1].value != t.dim(1));
}

// The channel block oneDNN's convolutions use on this machine, and the name
// of that layout as Tactic::blocked_layout gives it.
int64_t conv_block_width() { return detect_isa() == Isa::kAvx512 ? 16 : 8; }
std::string blocked_layout_name() { return conv_block_width() == 16 ? "nChw16c" : "nChw8c"; }

// One reorder of a float32 NCHW value of `dims` to the blocked layout, as
// the blocked kernels do it when a neighbour keeps the value in NCHW: the
// thread's borrowed buffer for the blocked side and one prepared reorder;
// the median of five runs after one. Channels that are not
// whole blocks are padded.
std::optional<double> time_blocked_reorder(const Dims& dims, ThreadPool& pool) {
  const int64_t block = conv_block_width();
  if (dims.size() != 4) return std::nullopt;
  for (int64_t d : dims) {
    if (d <= 0) return std::nullopt;
  }
  try {
    set_threads(&pool);
    const memory::dims md(dims.begin(), dims.end());
    memory plain({md, dt::f32, tag::nchw}, cpu_engine());
    std::memset(plain.get_data_handle(), 0, plain.get_desc().get_size());
    const memory::desc blocked_md(md, dt::f32, blocked_tag(block));
    const dnnl::reorder reorder(dnnl::reorder::primitive_desc(cpu_engine(), plain.get_desc(), cpu_engine(), blocked_md));
    dnnl::stream& s = thread_stream();
    std::vector<double> times;
    for (int r = 0; r < 6; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      memory blocked = borrowed_memory(blocked_md, Borrowed::kDst);  // as the kernels reorder
      reorder.execute(s, plain, blocked);
      s.wait();
      const auto t1 = std::chrono::steady_clock::now();
      if (r > 0) times.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    }
    std::sort(times.begin(), times.end());
    return times[times.size() / 2];
  } catch (const dnnl::error&) {
    return std::nullopt;
  }
}

class OnednnConvKernel final : public Kernel {
 public:
  OnednnConvKernel(Tensor w, ops::Epilogue epi, bool blocked, BlockedIo io)
      : w_(std::move(w)), epi_(epi), blocked_(blocked), io_(io) {}

  bool fills_outputs() const override { return true; }
  Status run(ops::KernelContext& ctx) const override {
    // A value kept in the blocked layout means nothing to the reference kernel.
    auto fallback = [&]() -> Status {
      if (io_.any()) {
        return ctx.error(internal_error("the plan keeps this convolution's activations in a blocked layout, but "
                                        "the inputs at run time are not what it was built for"));
      }
      return run_reference(ctx);
    };
    if (!inputs_f32(ctx)) return fallback();
    const Tensor& x = ctx.input(0);
    if (x.rank() != 4 || ctx.input(1).dims() != w_.dims()) return fallback();
    auto geom = conv2d_geometry(ctx.node(), x.dims(), w_.dims());
    if (!geom.is_ok()) return fallback();
    const Conv2dGeom& g = *geom;
    const float* bias = nullptr;
    if (ctx.has_input(2)) {
      if (ctx.input(2).rank() != 1 || ctx.input(2).dim(0) != g.m) return fallback();
      bias = ctx.input(2).data<float>();
    }
    const Dims ydims = g.output_dims(4);
    const Tensor* z = ctx.has_input(3) ? &ctx.input(3) : nullptr;
    if (z != nullptr && z->dims() != ydims) return fallback();
    if (g.oh <= 0 || g.ow <= 0 || g.n == 0) return fallback();
    if ((io_.src && !padded_read_allowed(ctx.node().input(0), x, io_.block())) ||
        (io_.residual && z != nullptr && !padded_read_allowed(ctx.node().input(3), *z, io_.block()))) {
      return fallback();
    }
    KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.allocate_output(0, DataType::kFloat32, ydims));
    try {
      set_threads(ctx.pool());
      const Prepared& p = prepared(g, bias != nullptr, z != nullptr);
      dnnl::stream& s = thread_stream();
      memory src = p.io.source(s, x.data<float>());
      memory dst = p.io.destination(y->data<float>());
      if (z != nullptr) {
        memory z_user(p.residual_md, cpu_engine(), const_cast<float*>(z->data<float>()));
        // The memory plan may place the output over the residual: nothing to copy then.
        if (z_user.get_data_handle() != dst.get_data_handle() || p.residual_md != p.pd.dst_desc()) {
          p.residual_to_dst.execute(s, z_user, dst);
        }
      }
      std::unordered_map<int, memory> args = {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, p.weights}, {DNNL_ARG_DST, dst}};
      if (bias != nullptr) {
        args.insert({DNNL_ARG_BIAS, memory({{g.m}, dt::f32, tag::x}, cpu_engine(), const_cast<float*>(bias))});
      }
      args.insert({DNNL_ARG_SCRATCHPAD, borrowed_memory(p.pd.scratchpad_desc(), Borrowed::kScratchpad)});
      p.prim.execute(s, args);
      p.io.finish(s, dst, y->data<float>());
      s.wait();
    } catch (const dnnl::error& e) {
      return ctx.error(internal_error("oneDNN convolution: {}", e.what()));
    }
    return Status::ok();
  }

 private:
  struct Prepared {
    dnnl::convolution_forward::primitive_desc pd;
    dnnl::convolution_forward prim;
    memory weights;
    std::shared_ptr<void> storage;  // the weights' bytes
    PlanIo io;
    memory::desc residual_md;  // the plan's layout of the residual
    dnnl::reorder residual_to_dst;
  };

  const Prepared& prepared(const Conv2dGeom& g, bool bias, bool residual) const {
    const std::vector<int64_t> key = {g.n, g.h, g.w, g.oh, g.ow, g.pt, g.pl};
    std::lock_guard<std::mutex> lock(mu_);
    auto it = cache_.find(key);
    if (it != cache_.end()) return it->second;
    // One side kept blocked and the other left to oneDNN (`any`) can select its reference
    // implementation (seen for depthwise convolutions on AVX-512: src nChw16c with dst nhwc,
    // or src nhwc with dst nChw16c, 100-500x slower than the jit kernel the tuner timed in a
    // blocked chain). The other side takes the blocked layout too and is reordered from / to
    // NCHW around the convolution, unless its channels are not whole blocks (a network's
    // first layer, on 3 channels, reads NCHW).
    const tag io = blocked_ ? tag::any : tag::nchw;
    const bool src_blocked = io_.src || (io_.dst && g.c % io_.block() == 0);
    memory::desc src_md({g.n, g.c, g.h, g.w}, dt::f32, src_blocked ? io_.layout : io);
    memory::desc dst_md({g.n, g.m, g.oh, g.ow}, dt::f32, io_.dst || io_.src ? io_.layout : io);
    const memory::dims wdims =
        g.group == 1 ? memory::dims{g.m, g.c, g.kh, g.kw} : memory::dims{g.group, g.mg(), g.cg(), g.kh, g.kw};
    memory::desc w_md(wdims, dt::f32, tag::any);
    const int64_t pb = (g.oh - 1) * g.sh + (g.kh - 1) * g.dh + 1 - g.h - g.pt;
    const int64_t pr = (g.ow - 1) * g.sw + (g.kw - 1) * g.dw + 1 - g.w - g.pl;
    const memory::dims strides = {g.sh, g.sw}, dil = {g.dh - 1, g.dw - 1}, pad_l = {g.pt, g.pl}, pad_r = {pb, pr};
    dnnl::post_ops po;
    build_post_ops(epi_, residual, po);
    dnnl::primitive_attr attr;
    attr.set_post_ops(po);
    // A scratchpad per execution: kernels run from several contexts at once.
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    auto desc = bias
                    ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, algorithm::convolution_direct,
                                                      src_md, w_md, memory::desc({g.m}, dt::f32, tag::x), dst_md,
                                                      strides, dil, pad_l, pad_r)
                    : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, algorithm::convolution_direct,
                                                      src_md, w_md, dst_md, strides, dil, pad_l, pad_r);
    dnnl::convolution_forward::primitive_desc pd(desc, attr, cpu_engine());
    memory plain({wdims, dt::f32, g.group == 1 ? tag::oihw : tag::goihw}, cpu_engine(),
                 const_cast<float*>(w_.data<float>()));
    auto [packed, storage] = weights_memory(pd.weights_desc());
    dnnl::stream& s = thread_stream();
    dnnl::reorder(plain, packed).execute(s, plain, packed);
    s.wait();
    Prepared p;
    p.pd = pd;
    p.prim = dnnl::convolution_forward(pd);
    p.weights = packed;
    p.storage = storage;
    p.io = PlanIo(memory::desc({g.n, g.c, g.h, g.w}, dt::f32, io_.src ? io_.layout : tag::nchw),
                  memory::desc({g.n, g.m, g.oh, g.ow}, dt::f32, io_.dst ? io_.layout : tag::nchw), pd.src_desc(),
                  pd.dst_desc());
    if (residual) {
      p.residual_md = memory::desc({g.n, g.m, g.oh, g.ow}, dt::f32, io_.residual ? io_.layout : tag::nchw);
      // A copy even between equal layouts, unless the output is placed over the residual.
      p.residual_to_dst = dnnl::reorder(dnnl::reorder::primitive_desc(cpu_engine(), p.residual_md, cpu_engine(),
                                                                      pd.dst_desc()));
    }
    return cache_.emplace(key, std::move(p)).first->second;
  }

  Tensor w_;
  ops::Epilogue epi_;
  bool blocked_;
  BlockedIo io_;
  mutable std::mutex mu_;
  mutable std::map<std::vector<int64_t>, Prepared> cache_;  // by input geometry; guarded by mu_
};

// A convolution's input channels: the weight's [M, C/group, ...] times group.
int64_t conv_input_channels(const ir::Node& node) {
  return node.input(1)->constant().dim(1) * node.attr_int("group", 1);
}

class OnednnConvTactic final : public Tactic {
 public:
  explicit OnednnConvTactic(bool blocked) : blocked_(blocked) {}
  std::string_view name() const override { return blocked_ ? "onednn.conv_blocked" : "onednn.conv"; }
  std::string_view source() const override { return "onednn"; }

  bool supports(const ir::Node& node) const override {
    const bool fused = node.op_type() == "FusedConv";
    if (node.op_type() != "Conv" && !fused) return false;
    if (fused && !ops::Epilogue::from_node(node).is_ok()) return false;
    return conv_node_supported(node) && node.input(1)->constant().rank() == 4;
  }

  // oneDNN's own blocked layout, for ungrouped convolutions (channels that
  // are not whole blocks are padded: oneDNN's jit kernels read and write
  // padded blocks natively, mobilenetv2's 24 channels) and depthwise ones
  // whose channels are whole blocks (forcing it elsewhere could select a
  // slow implementation). A network's first layer, on 3 channels, reads its
  // NCHW graph input and writes blocked.
  std::string blocked_layout(const ir::Node& node) const override {
    if (!blocked_ || !supports(node)) return "";
    const ir::ValueType& t = node.input(0)->type();
    if (!t.shape.rank_known() || t.shape.rank() != 4) return "";
    const int64_t group = node.attr_int("group", 1);
    const int64_t m = node.input(1)->constant().dim(0), c = conv_input_channels(node), block = conv_block_width();
    if (group != 1 && (group != c || group != m || m % block != 0)) return "";
    return blocked_layout_name();
  }

  Result<std::unique_ptr<Kernel>> prepare(const ir::Node& node) const override {
    KILN_ASSIGN_OR_RETURN(BlockedIo io, read_blocked_io(node));
    if (io.any() && !blocked_) return invalid_argument("{}: kiln_blocked needs onednn.conv_blocked", node.describe());
    return make_kernel(node, io);
  }

  // oneDNN's sum post-op reads the residual from the destination: the
  // output can take the residual's storage, when both have one layout and
  // the residual is not also the input being read.
  int output_over_input(const ir::Node& node) const override {
    if (node.op_type() != "FusedConv" || node.num_inputs() < 4 || node.input(3) == nullptr) return -1;
    if (node.input(3) == node.input(0)) return -1;
    auto io = read_blocked_io(node);
    if (!io.is_ok() || io->residual != io->dst) return -1;
    return 3;
  }

  Result<std::unique_ptr<Kernel>> prepare_blocked(const ir::Node& node) const override {
    const std::string layout = blocked_layout(node);
    if (layout.empty()) return prepare(node);
    // Inside a chain the input is blocked too, unless it has fewer channels
    // than a block (a first layer on 3 channels reads its NCHW graph input).
    BlockedIo io;
    io.src = conv_input_channels(node) % conv_block_width() == 0 || conv_input_channels(node) > conv_block_width();
    io.dst = true;
    io.residual = node.input(3) != nullptr;
    io.layout = blocked_tag(conv_block_width());
    return make_kernel(node, io);
  }

  std::optional<double> time_layout_change(const Dims& dims, ThreadPool& pool) const override {
    if (!blocked_) return std::nullopt;
    return time_blocked_reorder(dims, pool);
  }

 private:
  Result<std::unique_ptr<Kernel>> make_kernel(const ir::Node& node, BlockedIo io) const {
    if (!supports(node)) return invalid_argument("{}: not supported by {}", node.describe(), name());
    // A grouped convolution's blocked values hold whole channel blocks; an
    // ungrouped one's may be padded (the memory plan and the output's
    // allocation size padded values; plan::check_blocked_marks checks at
    // load that a padded input is written padded).
    const Tensor& w = node.input(1)->constant();
    const int64_t m = w.dim(0), c = conv_input_channels(node);
    const int64_t block = io.block();
    if (node.attr_int("group", 1) != 1 && (((io.dst || io.residual) && m % block != 0) || (io.src && c % block != 0))) {
      return invalid_argument("{}: kiln_blocked keeps {} channels of a grouped convolution in blocks of {}",
                              node.describe(), io.src && c % block != 0 ? c : m, block);
    }
    ops::Epilogue epi;
    if (node.op_type() == "FusedConv") {
      KILN_ASSIGN_OR_RETURN(epi, ops::Epilogue::from_node(node));
    }
    return std::unique_ptr<Kernel>(new OnednnConvKernel(node.input(1)->constant().clone(), epi, blocked_, io));
  }

  bool blocked_;
};

// ---- pooling ----------------------------------------------------------------------

bool is_global(PoolKind k) { return k == PoolKind::kGlobalMax || k == PoolKind::kGlobalAverage; }

// One pooling of an input [n, c, h, w]: the window, its pads (the right and
// bottom ones as oneDNN wants them: what the output count reaches, ceil_mode
// included) and the oneDNN algorithm.
struct PoolGeom {
  int64_t n = 0, c = 0, h = 0, w = 0, oh = 0, ow = 0;
  int64_t kh = 1, kw = 1, sh = 1, sw = 1, pt = 0, pl = 0, pb = 0, pr = 0;
  algorithm alg = algorithm::pooling_max;
};

// Static conditions under which oneDNN's pooling computes what the
// reference does, whatever the input size: undilated 2-D windows whose
// pads are smaller than the window (so every window sees an input), and,
// for an average counting the padding, no ceil_mode (oneDNN would count
// the extra taps ceil_mode adds past the explicit pads; ONNX does not).
// NaN in a max window follows oneDNN's vmaxps rule, not the reference's
// (the own tactic sends such inputs to the reference).
bool pool_attrs_supported(const ir::Node& node, PoolKind kind) {
  if (is_global(kind)) return true;
  const std::vector<int64_t> kernel = node.attr_ints("kernel_shape");
  if (kernel.size() != 2) return false;
  auto win = ops::read_window(node, kernel, /*with_dilations=*/true);
  if (!win.is_ok()) return false;
  for (int64_t d : win->dilations) {
    if (d != 1) return false;
  }
  if (win->auto_pad == "NOTSET") {
    for (size_t axis = 0; axis < 2; ++axis) {
      if (win->pad_begin(axis) >= kernel[axis] || win->pad_end(axis) >= kernel[axis]) return false;
    }
  }
  if (kind == PoolKind::kAverage && node.attr_int("count_include_pad", 0) != 0 &&
      node.attr_int("ceil_mode", 0) != 0) {
    return false;
  }
  return true;
}

Result<PoolGeom> pool_geometry(const ir::Node& node, PoolKind kind, const Dims& x) {
  PoolGeom g;
  g.n = x[0], g.c = x[1], g.h = x[2], g.w = x[3];
  if (is_global(kind)) {
    g.kh = g.h, g.kw = g.w, g.oh = 1, g.ow = 1;
    g.alg = kind == PoolKind::kGlobalMax ? algorithm::pooling_max : algorithm::pooling_avg_exclude_padding;
    return g;
  }
  const std::vector<int64_t> kernel = node.attr_ints("kernel_shape");
  KILN_ASSIGN_OR_RETURN(ops::Window wd, ops::read_window(node, kernel, /*with_dilations=*/true));
  const bool ceil_mode = node.attr_int("ceil_mode", 0) != 0;
  KILN_ASSIGN_OR_RETURN(g.oh, ops::window_output_dim(g.h, 0, wd, ceil_mode));
  KILN_ASSIGN_OR_RETURN(g.ow, ops::window_output_dim(g.w, 1, wd, ceil_mode));
  g.kh = kernel[0], g.kw = kernel[1], g.sh = wd.strides[0], g.sw = wd.strides[1];
  g.pt = wd.pad_begin(0), g.pl = wd.pad_begin(1);
  // Where the last window ends (short of the input's end when the stride skips past it).
  g.pb = std::max<int64_t>((g.oh - 1) * g.sh + g.kh - g.h - g.pt, 0);
  g.pr = std::max<int64_t>((g.ow - 1) * g.sw + g.kw - g.w - g.pl, 0);
  // Every window must hold an input (see pool_attrs_supported; SAME pads are below the window too).
  if (g.oh <= 0 || g.ow <= 0 || g.pt >= g.kh || g.pl >= g.kw || g.pb >= g.kh || g.pr >= g.kw) {
    return unimplemented("{}: a window of this pooling sees only padding", node.describe());
  }
  if (kind == PoolKind::kMax) {
    g.alg = algorithm::pooling_max;
  } else {
    g.alg = node.attr_int("count_include_pad", 0) != 0 ? algorithm::pooling_avg_include_padding
                                                         : algorithm::pooling_avg_exclude_padding;
  }
  return g;
}

class OnednnPoolKernel final : public Kernel {
 public:
  OnednnPoolKernel(PoolKind kind, BlockedIo io) : kind_(kind), io_(io) {}

  bool fills_outputs() const override { return true; }
  Status run(ops::KernelContext& ctx) const override {
    auto fallback = [&]() -> Status {
      if (io_.any()) {
        return ctx.error(internal_error("the plan keeps this pooling's activations in a blocked layout, but the "
                                        "inputs at run time are not what it was built for"));
      }
      return run_reference(ctx);
    };
    if (!ctx.has_input(0) || !ctx.datum(0).is_tensor() || ctx.wants_output(1)) return fallback();
    const Tensor& x = ctx.input(0);
    if (x.dtype() != DataType::kFloat32 || x.rank() != 4 || x.numel() == 0) return fallback();
    if (io_.src && !padded_read_allowed(ctx.node().input(0), x, io_.block())) return fallback();
    auto geom = pool_geometry(ctx.node(), kind_, x.dims());
    if (!geom.is_ok()) return fallback();
    const PoolGeom& g = *geom;
    const Dims ydims = {g.n, g.c, g.oh, g.ow};
    const Prepared* prim = nullptr;
    try {
      prim = &prepared(g);
    } catch (const dnnl::error& e) {
      if (!io_.any()) return run_reference(ctx);  // a geometry oneDNN does not take
      return ctx.error(internal_error("oneDNN pooling: {}", e.what()));
    }
    const Prepared& p = *prim;
    KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.allocate_output(0, DataType::kFloat32, ydims));
    try {
      set_threads(ctx.pool());
      dnnl::stream& s = thread_stream();
      memory src = p.io.source(s, x.data<float>());
      memory dst = p.io.destination(y->data<float>());
      p.prim.execute(s, {{DNNL_ARG_SRC, src},
                         {DNNL_ARG_DST, dst},
                         {DNNL_ARG_SCRATCHPAD, borrowed_memory(p.pd.scratchpad_desc(), Borrowed::kScratchpad)}});
      p.io.finish(s, dst, y->data<float>());
      s.wait();
    } catch (const dnnl::error& e) {
      return ctx.error(internal_error("oneDNN pooling: {}", e.what()));
    }
    return Status::ok();
  }

 private:
  struct Prepared {
    dnnl::pooling_forward::primitive_desc pd;
    dnnl::pooling_forward prim;
    PlanIo io;
  };

  const Prepared& prepared(const PoolGeom& g) const {
    const std::vector<int64_t> key = {g.n, g.c, g.h, g.w};
    std::lock_guard<std::mutex> lock(mu_);
    auto it = cache_.find(key);
    if (it != cache_.end()) return it->second;
    // As for the convolution: one side blocked means both are (the other reordered), a
    // layout oneDNN's jit kernels read and write natively (padded blocks included).
    const bool blocked = io_.any();
    const tag layout = blocked ? io_.layout : tag::nchw;
    const memory::desc src_md({g.n, g.c, g.h, g.w}, dt::f32, layout);
    const memory::desc dst_md({g.n, g.c, g.oh, g.ow}, dt::f32, layout);
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    dnnl::pooling_forward::desc desc(dnnl::prop_kind::forward_inference, g.alg, src_md, dst_md, {g.sh, g.sw},
                                     {g.kh, g.kw}, {g.pt, g.pl}, {g.pb, g.pr});
    dnnl::pooling_forward::primitive_desc pd(desc, attr, cpu_engine());
    Prepared p;
    p.pd = pd;
    p.prim = dnnl::pooling_forward(pd);
    memory::desc y_md({g.n, g.c, g.oh, g.ow}, dt::f32, io_.dst ? io_.layout : tag::nchw);
    // A global pool's [n, c, 1, 1] output has the same bytes in NCHW and in whole channel blocks.
    if (blocked && g.oh == 1 && g.ow == 1 && g.c % io_.block() == 0) y_md = dst_md;
    p.io = PlanIo(memory::desc({g.n, g.c, g.h, g.w}, dt::f32, io_.src ? io_.layout : tag::nchw), y_md,
                  pd.src_desc(), pd.dst_desc());
    return cache_.emplace(key, std::move(p)).first->second;
  }

  PoolKind kind_;
  BlockedIo io_;
  mutable std::mutex mu_;
  mutable std::map<std::vector<int64_t>, Prepared> cache_;  // by input dims; guarded by mu_
};

class OnednnPoolTactic final : public Tactic {
 public:
  explicit OnednnPoolTactic(bool blocked) : blocked_(blocked) {}
  std::string_view name() const override { return blocked_ ? "onednn.pool_blocked" : "onednn.pool"; }
  std::string_view source() const override { return "onednn"; }

  // One tactic serves all four pooling ops under one name (registered under each).
  bool supports(const ir::Node& node) const override {
    const std::optional<PoolKind> kind = pool_kind(node);
    if (!kind || node.num_inputs() != 1 || !is_f32(node.input(0))) return false;
    if (*kind == PoolKind::kMax && node.num_outputs() > 1 && node.output(1) != nullptr) return false;
    const ir::ValueType& t = node.input(0)->type();
    if (t.shape.rank_known() && t.shape.rank() != 4) return false;
    return pool_attrs_supported(node, *kind);
  }

  // The convolutions' blocked layout (padded where the channels are not whole blocks).
  std::string blocked_layout(const ir::Node& node) const override {
    if (!blocked_ || !supports(node)) return "";
    const ir::ValueType& t = node.input(0)->type();
    if (!t.shape.rank_known() || t.shape.rank() != 4) return "";
    return blocked_layout_name();
  }

  Result<std::unique_ptr<Kernel>> prepare(const ir::Node& node) const override {
    KILN_ASSIGN_OR_RETURN(BlockedIo io, read_blocked_io(node));
    if (io.any() && !blocked_) return invalid_argument("{}: kiln_blocked needs onednn.pool_blocked", node.describe());
    return make_kernel(node, io);
  }

  Result<std::unique_ptr<Kernel>> prepare_blocked(const ir::Node& node) const override {
    const std::string layout = blocked_layout(node);
    if (layout.empty()) return prepare(node);
    BlockedIo io;
    io.src = io.dst = true;
    io.layout = blocked_tag(conv_block_width());
    return make_kernel(node, io);
  }

  std::optional<double> time_layout_change(const Dims& dims, ThreadPool& pool) const override {
    if (!blocked_) return std::nullopt;
    return time_blocked_reorder(dims, pool);
  }

 private:
  Result<std::unique_ptr<Kernel>> make_kernel(const ir::Node& node, BlockedIo io) const {
    if (!supports(node)) return invalid_argument("{}: not supported by {}", node.describe(), name());
    // No residual here. Blocked values may be padded (plan::check_blocked_marks
    // checks at load that a padded input is written padded).
    if (io.residual) return invalid_argument("{}: a pooling has no residual input to keep blocked", node.describe());
    return std::unique_ptr<Kernel>(new OnednnPoolKernel(*pool_kind(node), io));
  }

  bool blocked_;
};

}  // namespace

std::unique_ptr<Tactic> make_onednn_matmul_tactic() { return std::make_unique<OnednnMatMulTactic>(); }
std::unique_ptr<Tactic> make_onednn_conv_tactic(bool blocked) { return std::make_unique<OnednnConvTactic>(blocked); }

std::unique_ptr<Tactic> make_onednn_pool_tactic(bool blocked) { return std::make_unique<OnednnPoolTactic>(blocked); }

}  // namespace kiln::backends::cpu
