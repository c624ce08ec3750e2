// Op family tensor_ops, part: Einsum.
//
// The equation is parsed into labels: letters, and '...' expanded into one
// label per broadcast dim (right-aligned across inputs, as numpy does). Each
// input then reads element sum_label coord[label] * stride[input][label],
// where a label's stride sums the strides of every dim carrying it: a repeated
// label in one input walks its diagonal. The kernel loops over the output
// labels and, inside, over the summed labels. Dims of size 1 broadcast.
#include <algorithm>
#include <array>
#include <map>

#include "core/error.h"
#include "ops/registry.h"
#include "ops/tensor_ops_internal.h"

namespace kiln::ops {
namespace {

constexpr int kEllipsis = -1;
constexpr int kLetters = 52;  // labels 0..51 are a-z then A-Z; ellipsis dims follow

// A term as written: letter labels and at most one kEllipsis.
Result<std::vector<int>> parse_term(const std::string& term) {
  std::vector<int> labels;
  bool seen_ellipsis = false;
  for (size_t i = 0; i < term.size(); ++i) {
    char c = term[i];
    if (c == '.') {
      if (seen_ellipsis || term.compare(i, 3, "...") != 0) return invalid_argument("bad '...' in term '{}'", term);
      seen_ellipsis = true;
      labels.push_back(kEllipsis);
      i += 2;
    } else if (c >= 'a' && c <= 'z') {
      labels.push_back(c - 'a');
    } else if (c >= 'A' && c <= 'Z') {
      labels.push_back(26 + (c - 'A'));
    } else {
      return invalid_argument("invalid character '{}' in term '{}'", c, term);
    }
  }
  return labels;
}

struct EinsumPlan {
  std::vector<std::vector<int>> inputs;  // full label list per input (one per dim)
  std::vector<int> output;               // output labels
  std::vector<int64_t> sizes;            // size per label id (-1 unused)
};

Result<EinsumPlan> plan_einsum(std::string equation, const std::vector<const Tensor*>& ins) {
  equation.erase(std::remove(equation.begin(), equation.end(), ' '), equation.end());
  size_t arrow = equation.find("->");
  std::string lhs = equation.substr(0, arrow);
  std::vector<std::string> terms;
  for (size_t start = 0;;) {
    size_t comma = lhs.find(',', start);
    terms.push_back(lhs.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (terms.size() != ins.size()) {
    return invalid_argument("equation '{}' has {} terms for {} inputs", equation, terms.size(), ins.size());
  }
  // Ellipsis dims per input, and the widest.
  std::vector<std::vector<int>> written;
  std::vector<int64_t> ell_dims;
  int64_t max_ell = 0;
  for (size_t k = 0; k < terms.size(); ++k) {
    KILN_ASSIGN_OR_RETURN(std::vector<int> t, parse_term(terms[k]));
    bool has_ell = std::count(t.begin(), t.end(), kEllipsis) > 0;
    int64_t letters = static_cast<int64_t>(t.size()) - (has_ell ? 1 : 0);
    int64_t rank = ins[k]->rank();
    if (has_ell ? rank < letters : rank != letters) {
      return invalid_argument("term '{}' does not fit input {} of rank {}", terms[k], k, rank);
    }
    ell_dims.push_back(has_ell ? rank - letters : 0);
    max_ell = std::max(max_ell, ell_dims.back());
    written.push_back(std::move(t));
  }
  EinsumPlan plan;
  plan.sizes.assign(static_cast<size_t>(kLetters + max_ell), -1);
  std::array<int, kLetters> count{};
  for (size_t k = 0; k < written.size(); ++k) {
    std::vector<int> full;
    for (int l : written[k]) {
      if (l != kEllipsis) {
        full.push_back(l);
        ++count[static_cast<size_t>(l)];
        continue;
      }
      for (int64_t e = max_ell - ell_dims[k]; e < max_ell; ++e) full.push_back(kLetters + static_cast<int>(e));
    }
    for (size_t d = 0; d < full.size(); ++d) {
      int64_t dim = ins[k]->dim(static_cast<int64_t>(d));
      int64_t& size = plan.sizes[static_cast<size_t>(full[d])];
      if (size == -1 || size == 1) {
        size = dim;
      } else if (dim != 1 && dim != size) {
        return invalid_argument("label in equation '{}' has sizes {} and {}", equation, size, dim);
      }
    }
    plan.inputs.push_back(std::move(full));
  }
  if (arrow == std::string::npos) {
    // Implicit output: the broadcast dims, then the letters used once, alphabetically.
    for (int64_t e = 0; e < max_ell; ++e) plan.output.push_back(kLetters + static_cast<int>(e));
    for (char c = 'A'; c <= 'z'; ++c) {
      int l = c >= 'a' ? c - 'a' : (c <= 'Z' ? 26 + (c - 'A') : -1);
      if (l >= 0 && count[static_cast<size_t>(l)] == 1) plan.output.push_back(l);
    }
  } else {
    KILN_ASSIGN_OR_RETURN(std::vector<int> t, parse_term(equation.substr(arrow + 2)));
    for (int l : t) {
      if (l == kEllipsis) {
        for (int64_t e = 0; e < max_ell; ++e) plan.output.push_back(kLetters + static_cast<int>(e));
        continue;
      }
      if (count[static_cast<size_t>(l)] == 0) {
        return invalid_argument("output label in '{}' does not appear in any input", equation);
      }
      if (std::count(plan.output.begin(), plan.output.end(), l) > 0) {
        return invalid_argument("output label repeats in '{}'", equation);
      }
      plan.output.push_back(l);
    }
  }
  return plan;
}

// Advances a multi-index over `sizes`; false once it wraps around.
bool next_coord(std::vector<int64_t>& coord, const std::vector<int64_t>& sizes) {
  for (size_t d = coord.size(); d-- > 0;) {
    if (++coord[d] < sizes[d]) return true;
    coord[d] = 0;
  }
  return false;
}

Status einsum_kernel(KernelContext& ctx) {
  std::vector<const Tensor*> ins;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    KILN_ASSIGN_OR_RETURN(const Tensor* t, ctx.tensor_input(i));
    if (t->dtype() != ctx.input(0).dtype()) {
      return ctx.error(invalid_argument("input {} is {}, input 0 is {}", i, t->debug_string(),
                                        ctx.input(0).debug_string()));
    }
    ins.push_back(t);
  }
  if (!ctx.node().has_attr("equation")) return ctx.error(invalid_argument("attribute 'equation' is required"));
  auto plan_r = plan_einsum(ctx.node().attr_string("equation"), ins);
  if (!plan_r.is_ok()) return ctx.error(plan_r.status());
  const EinsumPlan& plan = *plan_r;

  // Labels summed over: used by some input, absent from the output.
  std::vector<int> summed;
  for (int l = 0; l < static_cast<int>(plan.sizes.size()); ++l) {
    if (plan.sizes[static_cast<size_t>(l)] >= 0 && std::count(plan.output.begin(), plan.output.end(), l) == 0) {
      summed.push_back(l);
    }
  }
  Dims out_dims;
  for (int l : plan.output) out_dims.push_back(plan.sizes[static_cast<size_t>(l)]);
  std::vector<int64_t> sum_sizes;
  int64_t work = 1;
  for (int l : summed) {
    int64_t s = plan.sizes[static_cast<size_t>(l)];
    sum_sizes.push_back(s);
    if (s != 0 && work > (int64_t{1} << 50) / s) return ctx.error(resource_exhausted("Einsum is too large"));
    work *= s;
  }
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.allocate_output(0, ins[0]->dtype(), out_dims));
  if (out->numel() != 0 && work > (int64_t{1} << 50) / out->numel()) {
    return ctx.error(resource_exhausted("Einsum is too large"));
  }
  // Per input: stride of each output label and each summed label.
  std::vector<std::vector<int64_t>> out_stride(ins.size(), std::vector<int64_t>(plan.output.size(), 0));
  std::vector<std::vector<int64_t>> sum_stride(ins.size(), std::vector<int64_t>(summed.size(), 0));
  for (size_t k = 0; k < ins.size(); ++k) {
    std::vector<int64_t> strides = strides_of(ins[k]->dims());
    for (size_t d = 0; d < plan.inputs[k].size(); ++d) {
      if (ins[k]->dims()[d] == 1) continue;  // broadcast: always index 0
      int l = plan.inputs[k][d];
      auto oi = std::find(plan.output.begin(), plan.output.end(), l);
      if (oi != plan.output.end()) {
        out_stride[k][static_cast<size_t>(oi - plan.output.begin())] += strides[d];
      } else {
        auto si = std::find(summed.begin(), summed.end(), l);
        sum_stride[k][static_cast<size_t>(si - summed.begin())] += strides[d];
      }
    }
  }
  if (out->numel() == 0) return Status::ok();
  return ctx.error(visit_numeric(ins[0]->dtype(), "Einsum", [&](auto tag) -> Status {
    using T = decltype(tag);
    using C = compute_type_t<T>;
    std::vector<int64_t> oc(out_dims.size(), 0);
    int64_t pos = 0;
    do {
      std::vector<int64_t> base(ins.size(), 0);
      for (size_t k = 0; k < ins.size(); ++k) {
        for (size_t d = 0; d < oc.size(); ++d) base[k] += oc[d] * out_stride[k][d];
      }
      C acc = C(0);
      if (work > 0) {
        std::vector<int64_t> sc(summed.size(), 0);
        do {
          C prod = C(1);
          for (size_t k = 0; k < ins.size(); ++k) {
            int64_t at = base[k];
            for (size_t d = 0; d < sc.size(); ++d) at += sc[d] * sum_stride[k][d];
            prod = static_cast<C>(prod * static_cast<C>(ins[k]->data<T>()[at]));
          }
          acc = static_cast<C>(acc + prod);
        } while (next_coord(sc, sum_sizes));
      }
      out->data<T>()[pos++] = static_cast<T>(acc);
    } while (next_coord(oc, out_dims));
    return Status::ok();
  }));
}

// The output has the inputs' element type; its shape is left to run time.
Status einsum_infer(InferContext& ctx) {
  ctx.set_output_type(0, ir::ValueType::tensor(input_dtype(ctx, 0)));
  return Status::ok();
}

}  // namespace

void register_tensor_ops_einsum(Registry& r) {
  r.add({.name = "Einsum", .domain = "", .since_version = 12, .min_inputs = 1, .max_inputs = -1,
         .kernel = einsum_kernel, .infer = einsum_infer});
}

}  // namespace kiln::ops
