// GPU tactics for the builder: cuBLASLt MatMul/Gemm (and kiln.FusedMatMul/FusedGemm) kernels that copy their
// inputs to the device and the result back per node, so that the builder can
// time them against CPU tactics. Each prepared kernel owns a GpuEngine for a
// one-node graph holding the node's constant inputs (weights).
#include <cstring>

#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/engine.h"
#include "backends/tactic.h"
#include "core/error.h"

namespace kiln::backends::cuda {
namespace {

// A one-node copy of `node`: constant inputs stay constants, the others
// become graph inputs in input order.
struct NodeGraph {
  ir::Graph graph;
  std::vector<size_t> runtime_inputs;  // node input index of each graph input
};

Result<std::unique_ptr<NodeGraph>> copy_node(const ir::Node& node) {
  auto ng = std::make_unique<NodeGraph>();
  ir::Graph& g = ng->graph;
  g.set_opset_imports(node.graph() != nullptr ? node.graph()->opset_imports() : std::map<std::string, int64_t>{});
  std::vector<ir::Value*> ins;
  for (size_t i = 0; i < node.num_inputs(); ++i) {
    const ir::Value* v = node.input(i);
    if (v == nullptr) {
      ins.push_back(nullptr);
      continue;
    }
    if (v->is_constant()) {
      KILN_ASSIGN_OR_RETURN(ir::Value * c, g.add_constant(v->name(), v->constant()));
      ins.push_back(c);
    } else {
      KILN_ASSIGN_OR_RETURN(ir::Value * in, g.add_value(v->name(), v->type()));
      g.add_input(in);
      ng->runtime_inputs.push_back(i);
      ins.push_back(in);
    }
  }
  KILN_ASSIGN_OR_RETURN(ir::Value * out, g.add_value(node.output(0)->name(), node.output(0)->type()));
  ir::Node* copy = g.add_node(node.op_type(), ins, {out}, node.name(), node.domain());
  copy->set_opset(node.opset());
  for (const auto& [name, attr] : node.attributes()) copy->set_attr(attr);
  g.add_output(out);
  return ng;
}

class GpuGemmKernel final : public Kernel {
 public:
  GpuGemmKernel(std::unique_ptr<NodeGraph> graph, std::unique_ptr<GpuEngine> engine)
      : graph_(std::move(graph)), engine_(std::move(engine)) {}

  Status run(ops::KernelContext& ctx) const override {
    std::vector<Tensor> inputs;
    for (size_t i : graph_->runtime_inputs) {
      KILN_ASSIGN_OR_RETURN(const Tensor* t, ctx.tensor_input(i));
      inputs.push_back(*t);
    }
    KILN_ASSIGN_OR_RETURN(std::vector<Tensor> outs, engine_->run(inputs));  // GpuEngine::run is serialized
    if (outs.size() != 1) return ctx.error(internal_error("GPU kernel returned {} outputs", outs.size()));
    KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.allocate_output(0, outs[0].dtype(), outs[0].dims()));
    if (y->nbytes() > 0) std::memcpy(y->raw_data(), outs[0].raw_data(), y->nbytes());
    return Status::ok();
  }

 private:
  std::unique_ptr<NodeGraph> graph_;
  std::unique_ptr<GpuEngine> engine_;
};

class CublasLtTactic final : public Tactic {
 public:
  CublasLtTactic(std::string name, Precision precision) : name_(std::move(name)), precision_(precision) {}
  std::string_view name() const override { return name_; }
  std::string_view source() const override { return "cuda"; }

  bool supports(const ir::Node& node) const override {
    if (device_count() == 0) return false;
    if (node.num_outputs() != 1 || node.output(0) == nullptr) return false;
    for (const ir::Value* v : node.inputs()) {
      if (v != nullptr && v->type().dtype != DataType::kFloat32) return false;
    }
    return node.input(0) != nullptr && node.input(1) != nullptr;
  }

  Result<std::unique_ptr<Kernel>> prepare(const ir::Node& node) const override {
    KILN_ASSIGN_OR_RETURN(auto ng, copy_node(node));
    GpuOptions o;
    o.precision = precision_;
    o.cuda_graph = false;
    o.workspace_bytes = size_t{32} << 20;
    KILN_ASSIGN_OR_RETURN(auto engine, GpuEngine::create(ng->graph, o));
    return std::unique_ptr<Kernel>(new GpuGemmKernel(std::move(ng), std::move(engine)));
  }

 private:
  std::string name_;
  Precision precision_;
};

}  // namespace

void register_tactics(TacticRegistry& registry) {
  // The optimizer's kiln.FusedMatMul / kiln.FusedGemm (bias, residual and
  // activation epilogues) lower to the same cuBLASLt steps.
  struct Op {
    const char* domain;
    const char* type;
    const char* name;
  };
  for (const Op& op : {Op{"", "MatMul", "matmul"}, Op{"", "Gemm", "gemm"}, Op{"kiln", "FusedMatMul", "fused_matmul"},
                       Op{"kiln", "FusedGemm", "fused_gemm"}}) {
    std::string base = std::string("cuda.cublaslt_") + op.name;
    registry.add(op.domain, op.type, std::make_unique<CublasLtTactic>(base + ".fp32", Precision::kFp32));
    registry.add(op.domain, op.type, std::make_unique<CublasLtTactic>(base + ".tf32", Precision::kTf32));
  }
}

}  // namespace kiln::backends::cuda
