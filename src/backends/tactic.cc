#include "backends/tactic.h"

#include "backends/cpu/cpu_backend.h"
#ifdef KILN_HAVE_CUDA
#include "backends/cuda/cuda_backend.h"
#endif
#include "core/error.h"
#include "ops/registry.h"

namespace kiln::backends {
namespace {

class ReferenceKernel final : public Kernel {
 public:
  explicit ReferenceKernel(ops::KernelFn fn) : fn_(fn) {}
  Status run(ops::KernelContext& ctx) const override { return fn_(ctx); }

 private:
  ops::KernelFn fn_;
};

class ReferenceTactic final : public Tactic {
 public:
  std::string_view name() const override { return "reference"; }
  std::string_view source() const override { return "reference"; }
  bool supports(const ir::Node& node) const override { return find_def(node) != nullptr; }
  Result<std::unique_ptr<Kernel>> prepare(const ir::Node& node) const override {
    const ops::OpDef* def = find_def(node);
    if (def == nullptr) {
      return unimplemented("no reference kernel for {}", node.describe());
    }
    return std::unique_ptr<Kernel>(new ReferenceKernel(def->kernel));
  }

 private:
  static const ops::OpDef* find_def(const ir::Node& node) {
    const ops::OpDef* def = ops::Registry::global().find(node.domain(), node.op_type(), node.opset());
    return def != nullptr && def->kernel != nullptr ? def : nullptr;
  }
};

}  // namespace

TacticRegistry::TacticRegistry() : reference_(std::make_unique<ReferenceTactic>()) {}
TacticRegistry::~TacticRegistry() = default;

const TacticRegistry& TacticRegistry::global() {
  static const TacticRegistry* registry = [] {
    auto* r = new TacticRegistry();
    cpu::register_tactics(*r);
#ifdef KILN_HAVE_CUDA
    cuda::register_tactics(*r);
#endif
    return r;
  }();
  return *registry;
}

void TacticRegistry::add(std::string_view domain, std::string_view op_type, std::unique_ptr<Tactic> tactic) {
  entries_.push_back({std::string(ops::canonical_domain(domain)), std::string(op_type), std::move(tactic)});
}

std::vector<const Tactic*> TacticRegistry::candidates(const ir::Node& node) const {
  std::vector<const Tactic*> out;
  std::string_view domain = ops::canonical_domain(node.domain());
  for (const Entry& e : entries_) {
    if (e.domain == domain && e.op_type == node.op_type() && e.tactic->supports(node)) {
      out.push_back(e.tactic.get());
    }
  }
  if (reference_->supports(node)) {
    out.push_back(reference_.get());
  }
  return out;
}

const Tactic* TacticRegistry::find(std::string_view name) const {
  if (name == reference_->name()) {
    return reference_.get();
  }
  for (const Entry& e : entries_) {
    if (e.tactic->name() == name) {
      return e.tactic.get();
    }
  }
  return nullptr;
}

}  // namespace kiln::backends
