// Op family: matrix products. Gemm, MatMul and MatMulInteger.
//
// All three run on gemm_accumulate (ops/gemm_kernel.h). 16-bit floats are
// computed in float and rounded once at the end; integer products wrap.
#include <algorithm>

#include "core/error.h"
#include "core/thread_pool.h"
#include "ops/families.h"
#include "ops/gemm_kernel.h"
#include "ops/op_util.h"
#include "ops/registry.h"

namespace kiln::ops {
namespace {

bool is_half(DataType t) { return t == DataType::kFloat16 || t == DataType::kBFloat16; }

// Calls f(T{}) for the types gemm_accumulate computes in.
template <class F>
Status visit_gemm_type(DataType dtype, const std::string& what, F&& f) {
  switch (dtype) {
    case DataType::kFloat32: return f(float{});
    case DataType::kFloat64: return f(double{});
    case DataType::kInt32: return f(int32_t{});
    case DataType::kInt64: return f(int64_t{});
    case DataType::kUInt32: return f(uint32_t{});
    case DataType::kUInt64: return f(uint64_t{});
    default: break;
  }
  return unimplemented("{}: element type {} is not supported", what, data_type_name(dtype));
}

// Broadcast of two possibly symbolic dims for shape inference; unknown when undecidable.
Dim broadcast_dim(const Dim& a, const Dim& b) {
  if (a.known() && a.value == 1) return b;
  if (b.known() && b.value == 1) return a;
  if (a == b) return a;
  if (a.known() && b.known()) return Dim();  // a contradiction the kernel reports
  return Dim();
}

// ---- MatMul ------------------------------------------------------------------

// The batched product that numpy's matmul describes: 1-D operands are promoted
// (A to [1, K], B to [K, 1]) and the added dim is removed from the result.
struct MatMulPlan {
  Dims out;
  int64_t m = 0, n = 0, k = 0;
  std::vector<int64_t> a_offsets;  // element offset of each batch's A matrix
  std::vector<int64_t> b_offsets;
  bool fold_batch = false;  // B is one matrix and A's batches are contiguous rows
};

Result<MatMulPlan> plan_matmul(Dims a, Dims b) {
  if (a.empty() || b.empty()) {
    return invalid_argument("operands must have rank >= 1, got {} and {}", dims_to_string(a), dims_to_string(b));
  }
  const bool a_vec = a.size() == 1;
  const bool b_vec = b.size() == 1;
  const Dims a_orig = a, b_orig = b;
  if (a_vec) a.insert(a.begin(), 1);
  if (b_vec) b.push_back(1);
  MatMulPlan p;
  p.m = a[a.size() - 2];
  p.k = a.back();
  p.n = b.back();
  if (b[b.size() - 2] != p.k) {
    return invalid_argument("inner dimensions differ: A is {} and B is {}", dims_to_string(a_orig),
                            dims_to_string(b_orig));
  }
  Dims batch_a(a.begin(), a.end() - 2);
  Dims batch_b(b.begin(), b.end() - 2);
  KILN_ASSIGN_OR_RETURN(Dims batch, broadcast_dims(batch_a, batch_b));
  KILN_ASSIGN_OR_RETURN(int64_t batches, checked_numel(batch));
  p.out = batch;
  if (!a_vec) p.out.push_back(p.m);
  if (!b_vec) p.out.push_back(p.n);
  KILN_ASSIGN_OR_RETURN(int64_t out_numel, checked_numel(p.out));
  (void)out_numel;
  int64_t b_batches = 1;
  for (int64_t d : batch_b) b_batches *= d;
  p.fold_batch = b_batches == 1 && batch_a == batch;
  BroadcastIterator it(batch, {batch_a, batch_b});
  for (int64_t i = 0; i < batches; ++i) {
    p.a_offsets.push_back(it.offset(0) * p.m * p.k);
    p.b_offsets.push_back(it.offset(1) * p.k * p.n);
    if (i + 1 < batches) it.next();
  }
  return p;
}

template <class T>
void matmul_typed(const T* a, const T* b, T* y, const MatMulPlan& p, ThreadPool* pool) {
  const int64_t batches = static_cast<int64_t>(p.a_offsets.size());
  if (p.fold_batch) {
    gemm_accumulate<T>(batches * p.m, p.n, p.k, a, p.k, b, p.n, y, p.n, pool);
    return;
  }
  auto run = [&](int64_t begin, int64_t end, ThreadPool* inner) {
    for (int64_t i = begin; i < end; ++i) {
      gemm_accumulate<T>(p.m, p.n, p.k, a + p.a_offsets[static_cast<size_t>(i)], p.k,
                         b + p.b_offsets[static_cast<size_t>(i)], p.n, y + i * p.m * p.n, p.n, inner);
    }
  };
  if (pool != nullptr && pool->threads() > 1 && batches >= pool->threads()) {
    pool->parallel_for(batches, 1, [&](int64_t b0, int64_t b1) { run(b0, b1, nullptr); });
  } else {
    run(0, batches, pool);
  }
}

// Y = A x B for tensors of one computable type (not 16-bit floats).
Result<Tensor> matmul_tensors(const Tensor& a, const Tensor& b, ThreadPool* pool) {
  KILN_ASSIGN_OR_RETURN(MatMulPlan plan, plan_matmul(a.dims(), b.dims()));
  KILN_ASSIGN_OR_RETURN(Tensor y, Tensor::allocate(a.dtype(), plan.out));
  KILN_RETURN_IF_ERROR(visit_gemm_type(a.dtype(), "MatMul", [&](auto tag) -> Status {
    using T = decltype(tag);
    matmul_typed<T>(a.data<T>(), b.data<T>(), y.data<T>(), plan, pool);
    return Status::ok();
  }));
  return y;
}

// MatMul of float16/bfloat16 tensors, computed in float and rounded once.
Result<Tensor> matmul_half(const Tensor& a, const Tensor& b, ThreadPool* pool) {
  KILN_ASSIGN_OR_RETURN(Tensor af, to_float32(a));
  KILN_ASSIGN_OR_RETURN(Tensor bf, to_float32(b));
  KILN_ASSIGN_OR_RETURN(Tensor yf, matmul_tensors(af, bf, pool));
  return cast_tensor(yf, a.dtype());
}

Status matmul_kernel(KernelContext& ctx) {
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  if (a.dtype() != b.dtype()) {
    return ctx.error(invalid_argument("A is {} but B is {}", data_type_name(a.dtype()), data_type_name(b.dtype())));
  }
  Result<Tensor> y = is_half(a.dtype()) ? matmul_half(a, b, ctx.pool()) : matmul_tensors(a, b, ctx.pool());
  if (!y.is_ok()) return ctx.error(y.status());
  ctx.set_output(0, std::move(y).value());
  return Status::ok();
}

// Output shape of numpy matmul on possibly symbolic shapes.
Shape matmul_shape(const Shape& a, const Shape& b) {
  if (!a.rank_known() || !b.rank_known() || a.rank() == 0 || b.rank() == 0) return Shape();
  std::vector<Dim> da = a.dims(), db = b.dims();
  const bool a_vec = da.size() == 1, b_vec = db.size() == 1;
  if (a_vec) da.insert(da.begin(), Dim(1));
  if (b_vec) db.push_back(Dim(1));
  size_t batch_a = da.size() - 2, batch_b = db.size() - 2;
  size_t batch = std::max(batch_a, batch_b);
  std::vector<Dim> out;
  for (size_t i = 0; i < batch; ++i) {
    Dim x = i < batch - batch_a ? Dim(1) : da[i - (batch - batch_a)];
    Dim y = i < batch - batch_b ? Dim(1) : db[i - (batch - batch_b)];
    out.push_back(broadcast_dim(x, y));
  }
  if (!a_vec) out.push_back(da[da.size() - 2]);
  if (!b_vec) out.push_back(db.back());
  return Shape(out);
}

Status matmul_infer(InferContext& ctx) {
  const auto& a = ctx.input_type(0);
  const auto& b = ctx.input_type(1);
  ctx.set_output_type(0, ir::ValueType::tensor(a.dtype, matmul_shape(a.shape, b.shape)));
  return Status::ok();
}

// ---- MatMulInteger -------------------------------------------------------------

// x - zero_point as int32. `zp` is a scalar, or one value per row of A
// (`per_row`: [M] or [..., M, 1]) or per column of B ([N] or [..., 1, N]).
Result<Tensor> subtract_zero_point(const Tensor& x, const Tensor* zp, bool per_row, const char* name) {
  KILN_ASSIGN_OR_RETURN(Tensor xi, cast_tensor(x, DataType::kInt32));
  if (zp == nullptr) return xi;
  if (zp->dtype() != x.dtype()) {
    return invalid_argument("{} zero point is {} but the input is {}", name, data_type_name(zp->dtype()),
                            data_type_name(x.dtype()));
  }
  KILN_ASSIGN_OR_RETURN(Tensor zi, cast_tensor(*zp, DataType::kInt32));
  const bool row_vector = zi.rank() == 1 && per_row && x.rank() >= 2 && zi.dim(0) == x.dim(x.rank() - 2);
  const Dims zd = row_vector ? Dims{zi.dim(0), 1} : zi.dims();
  // A's zero point may vary only along rows (its last dim is 1), B's only along columns.
  const bool scalar = zi.numel() == 1;
  const bool along_allowed_axis =
      !zd.empty() && (per_row ? zd.back() == 1 : zd.size() < 2 || zd[zd.size() - 2] == 1);
  auto b = broadcast_dims(zd, x.dims());
  if (!b.is_ok() || *b != x.dims() || (!scalar && !along_allowed_axis)) {
    return invalid_argument("{} zero point of shape {} does not fit the input of shape {}", name,
                            dims_to_string(zp->dims()), dims_to_string(x.dims()));
  }
  BroadcastIterator it(x.dims(), {zd});
  int32_t* d = xi.data<int32_t>();
  const int32_t* z = zi.data<int32_t>();
  for (int64_t i = 0; i < xi.numel(); ++i) {
    d[i] -= z[it.offset(0)];
    if (i + 1 < xi.numel()) it.next();
  }
  return xi;
}

Status matmul_integer_kernel(KernelContext& ctx) {
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  for (const Tensor* t : {&a, &b}) {
    if (t->dtype() != DataType::kUInt8 && t->dtype() != DataType::kInt8) {
      return ctx.error(invalid_argument("inputs must be uint8 or int8, got {}", data_type_name(t->dtype())));
    }
  }
  const Tensor* azp = ctx.has_input(2) ? &ctx.input(2) : nullptr;
  const Tensor* bzp = ctx.has_input(3) ? &ctx.input(3) : nullptr;
  auto ai = subtract_zero_point(a, azp, /*per_row=*/true, "a");
  if (!ai.is_ok()) return ctx.error(ai.status());
  auto bi = subtract_zero_point(b, bzp, /*per_row=*/false, "b");
  if (!bi.is_ok()) return ctx.error(bi.status());
  auto y = matmul_tensors(*ai, *bi, ctx.pool());
  if (!y.is_ok()) return ctx.error(y.status());
  ctx.set_output(0, std::move(y).value());
  return Status::ok();
}

Status matmul_integer_infer(InferContext& ctx) {
  ctx.set_output_type(0, ir::ValueType::tensor(DataType::kInt32,
                                               matmul_shape(ctx.input_type(0).shape, ctx.input_type(1).shape)));
  return Status::ok();
}

// ---- Gemm --------------------------------------------------------------------

// Row-major copy of the transpose of a [rows, cols] matrix.
template <class T>
std::vector<T> transposed(const T* x, int64_t rows, int64_t cols) {
  std::vector<T> out(static_cast<size_t>(rows * cols));
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) out[static_cast<size_t>(j * rows + i)] = x[i * cols + j];
  }
  return out;
}

// Y = alpha * op(A) op(B) + beta * C on tensors of one computable type.
template <class T>
Status gemm_typed(const Tensor& a, const Tensor& b, const Tensor* c, bool trans_a, bool trans_b, double alpha,
                  double beta, Tensor& y, ThreadPool* pool) {
  const int64_t m = y.dim(0), n = y.dim(1);
  const int64_t k = trans_a ? a.dim(0) : a.dim(1);
  std::vector<T> at, bt;
  const T* ap = a.data<T>();
  const T* bp = b.data<T>();
  if (trans_a) {
    at = transposed(ap, k, m);
    ap = at.data();
  }
  if (trans_b) {
    bt = transposed(bp, n, k);
    bp = bt.data();
  }
  T* yp = y.data<T>();
  gemm_accumulate<T>(m, n, k, ap, k, bp, n, yp, n, pool);
  const bool unit_alpha = alpha == 1.0;
  if (!unit_alpha) {
    for (int64_t i = 0; i < m * n; ++i) yp[i] = static_cast<T>(alpha * static_cast<double>(yp[i]));
  }
  if (c != nullptr && beta != 0.0) {
    BroadcastIterator it(y.dims(), {c->dims()});
    const T* cp = c->data<T>();
    for (int64_t i = 0; i < m * n; ++i) {
      if (beta == 1.0) {
        yp[i] = static_cast<T>(yp[i] + cp[it.offset(0)]);
      } else {
        yp[i] = static_cast<T>(static_cast<double>(yp[i]) + beta * static_cast<double>(cp[it.offset(0)]));
      }
      if (i + 1 < m * n) it.next();
    }
  }
  return Status::ok();
}

Status gemm_kernel(KernelContext& ctx) {
  const auto& node = ctx.node();
  Tensor a = ctx.input(0);
  Tensor b = ctx.input(1);
  const bool has_c = ctx.has_input(2);
  if (!has_c && ctx.opset() < 11) return ctx.error(invalid_argument("input C is required before opset 11"));
  Tensor c = has_c ? ctx.input(2) : Tensor();
  if (a.rank() != 2 || b.rank() != 2) {
    return ctx.error(invalid_argument("A and B must be 2-D, got {} and {}", dims_to_string(a.dims()),
                                      dims_to_string(b.dims())));
  }
  if (a.dtype() != b.dtype() || (has_c && c.dtype() != a.dtype())) {
    return ctx.error(invalid_argument("A, B and C must have one element type"));
  }
  const bool trans_a = node.attr_int("transA", 0) != 0;
  const bool trans_b = node.attr_int("transB", 0) != 0;
  const int64_t m = trans_a ? a.dim(1) : a.dim(0);
  const int64_t k = trans_a ? a.dim(0) : a.dim(1);
  const int64_t kb = trans_b ? b.dim(1) : b.dim(0);
  const int64_t n = trans_b ? b.dim(0) : b.dim(1);
  if (k != kb) {
    return ctx.error(invalid_argument("inner dimensions differ: op(A) is [{},{}] and op(B) is [{},{}]", m, k, kb, n));
  }
  if (has_c) {
    auto bc = broadcast_dims(c.dims(), {m, n});
    if (c.rank() > 2 || !bc.is_ok() || *bc != Dims{m, n}) {
      return ctx.error(invalid_argument("C of shape {} does not broadcast to [{},{}]", dims_to_string(c.dims()), m, n));
    }
  }
  const double alpha = node.attr_float("alpha", 1.0f);
  const double beta = node.attr_float("beta", 1.0f);
  const DataType out_type = a.dtype();
  if (is_half(out_type)) {
    KILN_ASSIGN_OR_RETURN(a, to_float32(a));
    KILN_ASSIGN_OR_RETURN(b, to_float32(b));
    if (has_c) {
      KILN_ASSIGN_OR_RETURN(c, to_float32(c));
    }
  }
  auto y = Tensor::allocate(a.dtype(), {m, n});
  if (!y.is_ok()) return ctx.error(y.status());
  KILN_RETURN_IF_ERROR(ctx.error(visit_gemm_type(a.dtype(), "Gemm", [&](auto tag) -> Status {
    using T = decltype(tag);
    return gemm_typed<T>(a, b, has_c ? &c : nullptr, trans_a, trans_b, alpha, beta, *y, ctx.pool());
  })));
  if (out_type != a.dtype()) {
    KILN_ASSIGN_OR_RETURN(Tensor back, cast_tensor(*y, out_type));
    ctx.set_output(0, std::move(back));
  } else {
    ctx.set_output(0, std::move(y).value());
  }
  return Status::ok();
}

Status gemm_infer(InferContext& ctx) {
  const auto& a = ctx.input_type(0);
  const auto& b = ctx.input_type(1);
  Shape out = Shape::unknown_dims(2);
  const bool trans_a = ctx.node().attr_int("transA", 0) != 0;
  const bool trans_b = ctx.node().attr_int("transB", 0) != 0;
  if (a.shape.rank_known() && a.shape.rank() == 2) out[0] = a.shape[trans_a ? 1 : 0];
  if (b.shape.rank_known() && b.shape.rank() == 2) out[1] = b.shape[trans_b ? 0 : 1];
  ctx.set_output_type(0, ir::ValueType::tensor(a.dtype, out));
  return Status::ok();
}

}  // namespace

void register_matmul(Registry& r) {
  r.add({.name = "Gemm", .domain = "", .since_version = 1, .min_inputs = 2, .max_inputs = 3,
         .kernel = gemm_kernel, .infer = gemm_infer});
  r.add({.name = "MatMul", .domain = "", .since_version = 1, .min_inputs = 2, .max_inputs = 2,
         .kernel = matmul_kernel, .infer = matmul_infer});
  r.add({.name = "MatMulInteger", .domain = "", .since_version = 10, .min_inputs = 2, .max_inputs = 4,
         .kernel = matmul_integer_kernel, .infer = matmul_integer_infer});
}

}  // namespace kiln::ops
