// Split as contiguous copies: each output is `outer` runs of size x inner
// elements, taken from X at a running offset along the axis. The outputs'
// sizes come from ops/split.h, as the reference kernel's do; the copies are
// split over the pool by (output, run). Any element type but strings;
// bit-exact. Anything the sizes reject goes to the reference, which reports it.
#include <algorithm>
#include <cstring>
#include <vector>

#include "backends/cpu/tactics.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "ops/op_util.h"
#include "ops/split.h"

namespace kiln::backends::cpu {
namespace {

class SplitKernel final : public Kernel {
 public:
  bool fills_outputs() const override { return true; }

  Status run(ops::KernelContext& ctx) const override {
    if (!ctx.has_input(0) || !ctx.datum(0).is_tensor()) return run_reference(ctx);
    const Tensor& x = ctx.input(0);
    if (x.dtype() == DataType::kString || x.rank() == 0) return run_reference(ctx);
    int64_t axis = ctx.node().attr_int("axis", 0);
    if (axis < 0) axis += x.rank();
    if (axis < 0 || axis >= x.rank()) return run_reference(ctx);
    if (ctx.has_input(1) && !ctx.datum(1).is_tensor()) return run_reference(ctx);
    auto sizes = ops::split_sizes_for(ctx.node(), x.dim(axis), ctx.has_input(1) ? &ctx.input(1) : nullptr);
    if (!sizes.is_ok() || sizes->size() != ctx.num_outputs()) return run_reference(ctx);

    const size_t esize = element_size(x.dtype());
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < axis; ++d) outer *= x.dim(d);
    for (int64_t d = axis + 1; d < x.rank(); ++d) inner *= x.dim(d);
    const auto* src = static_cast<const uint8_t*>(x.raw_data());
    const int64_t row = x.dim(axis) * inner;  // elements of X per outer index
    std::vector<uint8_t*> dst(sizes->size(), nullptr);
    std::vector<int64_t> offset(sizes->size(), 0);
    int64_t start = 0;
    for (size_t k = 0; k < sizes->size(); ++k) {
      Dims dims = x.dims();
      dims[static_cast<size_t>(axis)] = (*sizes)[k];
      if (ctx.wants_output(k)) {
        KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.allocate_output(k, x.dtype(), dims));
        dst[k] = static_cast<uint8_t*>(out->raw_data());
      }
      offset[k] = start;
      start += (*sizes)[k];
    }
    const int64_t outputs = static_cast<int64_t>(sizes->size());
    auto copy = [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t k = t / outer, o = t % outer;
        const size_t kk = static_cast<size_t>(k);
        const int64_t len = (*sizes)[kk] * inner;
        if (dst[kk] == nullptr || len == 0) continue;
        std::memcpy(dst[kk] + static_cast<size_t>(o * len) * esize,
                    src + static_cast<size_t>(o * row + offset[kk] * inner) * esize, static_cast<size_t>(len) * esize);
      }
    };
    const int64_t tasks = outputs * outer;
    ThreadPool* pool = ctx.pool();
    // Below ~64 KiB a hand-off costs more than the copy.
    if (pool != nullptr && pool->threads() > 1 && x.nbytes() >= (size_t{1} << 16) && tasks > 1) {
      pool->parallel_for(tasks, std::max<int64_t>(1, tasks / (4 * pool->threads())), copy);
    } else {
      copy(0, tasks);
    }
    return Status::ok();
  }
};

class SplitTactic final : public Tactic {
 public:
  std::string_view name() const override { return "own.split"; }
  std::string_view source() const override { return "own"; }
  bool supports(const ir::Node& node) const override {
    if (!node.domain().empty() || node.op_type() != "Split" || node.input(0) == nullptr) return false;
    const ir::ValueType& t = node.input(0)->type();
    return t.is_tensor() && t.dtype != DataType::kString && t.dtype != DataType::kUndefined;
  }
  Result<std::unique_ptr<Kernel>> prepare(const ir::Node& node) const override {
    if (!supports(node)) return invalid_argument("{}: not supported by own.split", node.describe());
    return std::unique_ptr<Kernel>(new SplitKernel());
  }
};

}  // namespace

std::unique_ptr<Tactic> make_split_tactic() { return std::make_unique<SplitTactic>(); }

}  // namespace kiln::backends::cpu
