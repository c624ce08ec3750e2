// Gradient rules for Flatten, Reshape and Transpose.
#include "core/error.h"
#include "train/grad_rule.h"

namespace kiln::train {

namespace {

Result<Tensor> reshape_copy(const Tensor& t, const Dims& dims) {
  KILN_ASSIGN_OR_RETURN(Tensor view, t.reshaped(dims));
  return view.clone();
}

Status flatten_forward(NodeRecord& rec) {
  const Tensor& x = rec.inputs[0];
  int64_t axis = rec.node->attr_int("axis", 1);
  if (axis < 0) axis += x.rank();
  if (axis < 0 || axis > x.rank()) return invalid_argument("Flatten axis out of range for rank {}", x.rank());
  int64_t outer = 1;
  for (int64_t i = 0; i < axis; ++i) outer *= x.dim(i);
  int64_t inner = outer == 0 ? 0 : x.numel() / outer;
  KILN_ASSIGN_OR_RETURN(Tensor y, reshape_copy(x, {outer, inner}));
  rec.outputs = {y};
  return Status::ok();
}

Result<Dims> reshape_target(const NodeRecord& rec) {
  const Tensor& x = rec.inputs[0];
  if (rec.inputs.size() < 2 || !rec.inputs[1].defined() || rec.inputs[1].dtype() != DataType::kInt64) {
    return invalid_argument("Reshape needs an int64 shape input");
  }
  const Tensor& s = rec.inputs[1];
  bool allow_zero = rec.node->attr_int("allowzero", 0) != 0;
  Dims out(s.data<int64_t>(), s.data<int64_t>() + s.numel());
  int64_t known = 1;
  int inferred = -1;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == 0 && !allow_zero) {
      if (static_cast<int64_t>(i) >= x.rank()) return invalid_argument("Reshape copies dim {} of a rank-{} input", i, x.rank());
      out[i] = x.dim(static_cast<int64_t>(i));
    }
    if (out[i] == -1) {
      if (inferred >= 0) return invalid_argument("Reshape has more than one -1");
      inferred = static_cast<int>(i);
    } else if (out[i] < 0) {
      return invalid_argument("Reshape dim {} is negative", out[i]);
    } else {
      known *= out[i];
    }
  }
  if (inferred >= 0) {
    if (known == 0 || x.numel() % known != 0) return invalid_argument("Reshape cannot infer the -1 dim");
    out[static_cast<size_t>(inferred)] = x.numel() / known;
  }
  return out;
}

Status reshape_forward(NodeRecord& rec) {
  KILN_ASSIGN_OR_RETURN(Dims out, reshape_target(rec));
  KILN_ASSIGN_OR_RETURN(Tensor y, reshape_copy(rec.inputs[0], out));
  rec.outputs = {y};
  return Status::ok();
}

// Flatten and Reshape: the gradient is dy with the input's dims.
Status reshape_backward(const NodeRecord& rec, std::span<const Tensor> dy, const std::vector<bool>& need,
                        std::vector<Tensor>& dx) {
  if (!need[0]) return Status::ok();
  KILN_ASSIGN_OR_RETURN(dx[0], reshape_copy(dy[0], rec.inputs[0].dims()));
  return Status::ok();
}

Result<std::vector<int64_t>> transpose_perm(const NodeRecord& rec) {
  int64_t rank = rec.inputs[0].rank();
  std::vector<int64_t> perm;
  for (int64_t i = rank; i-- > 0;) perm.push_back(i);
  perm = rec.node->attr_ints("perm", perm);
  if (static_cast<int64_t>(perm.size()) != rank) return invalid_argument("Transpose perm has {} entries for rank {}", perm.size(), rank);
  std::vector<bool> seen(static_cast<size_t>(rank), false);
  for (int64_t p : perm) {
    if (p < 0 || p >= rank || seen[static_cast<size_t>(p)]) return invalid_argument("Transpose perm is not a permutation");
    seen[static_cast<size_t>(p)] = true;
  }
  return perm;
}

// out[i0, i1, ...] = in[...] with out dim k being in dim perm[k].
template <class T>
Result<Tensor> permute(const Tensor& in, const std::vector<int64_t>& perm) {
  const int64_t rank = in.rank();
  if (rank == 0) return in.clone();
  Dims out_dims(perm.size());
  Dims in_stride(perm.size(), 1);
  for (int64_t i = 0; i < rank; ++i) out_dims[static_cast<size_t>(i)] = in.dim(perm[static_cast<size_t>(i)]);
  for (int64_t i = rank - 1; i > 0; --i) in_stride[static_cast<size_t>(i - 1)] = in_stride[static_cast<size_t>(i)] * in.dim(i);
  Dims step(perm.size());
  for (int64_t k = 0; k < rank; ++k) step[static_cast<size_t>(k)] = in_stride[static_cast<size_t>(perm[static_cast<size_t>(k)])];
  KILN_ASSIGN_OR_RETURN(Tensor out, new_tensor(in.dtype(), out_dims));
  Dims idx(perm.size(), 0);
  const T* src = in.data<T>();
  T* dst = out.data<T>();
  int64_t off = 0;
  for (int64_t n = 0; n < out.numel(); ++n) {
    dst[n] = src[off];
    for (int64_t k = rank - 1; k >= 0; --k) {
      size_t uk = static_cast<size_t>(k);
      off += step[uk];
      if (++idx[uk] < out_dims[uk]) break;
      off -= step[uk] * idx[uk];
      idx[uk] = 0;
    }
  }
  return out;
}

Status transpose_forward(NodeRecord& rec) {
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> perm, transpose_perm(rec));
  const Tensor& x = rec.inputs[0];
  KILN_ASSIGN_OR_RETURN(Tensor y, rec.f64() ? permute<double>(x, perm) : permute<float>(x, perm));
  rec.outputs = {y};
  return Status::ok();
}

Status transpose_backward(const NodeRecord& rec, std::span<const Tensor> dy, const std::vector<bool>& need,
                          std::vector<Tensor>& dx) {
  if (!need[0]) return Status::ok();
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> perm, transpose_perm(rec));
  std::vector<int64_t> inverse(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) inverse[static_cast<size_t>(perm[i])] = static_cast<int64_t>(i);
  KILN_ASSIGN_OR_RETURN(dx[0], rec.f64() ? permute<double>(dy[0], inverse) : permute<float>(dy[0], inverse));
  return Status::ok();
}

const GradRule kRules[] = {
    {"Flatten", flatten_forward, reshape_backward},
    {"Reshape", reshape_forward, reshape_backward, OpClass::kPromote, 0b10u},
    {"Transpose", transpose_forward, transpose_backward},
};

}  // namespace

std::span<const GradRule> shape_rules() { return kRules; }

}  // namespace kiln::train
