// Transpose tactic ("own.transpose"): any rank, any permutation, any
// fixed-size element type (copied as 1, 2, 4, 8 or 16-byte words, so the
// result is bit-exact with the reference). String tensors and anything
// else the kernel cannot copy as plain bytes go to the reference kernel.
//
// The permutation is first simplified: axes of size 1 are dropped and
// output axes that are adjacent and in order in the input are merged, so
// e.g. [0,2,1,3] on [B,S,H,D] becomes a 3-D [S,H,D] -> [H,S,D] copy. Then:
//   - the last axis stays last: every output row is one contiguous copy of
//     the input (memcpy), rows split over the pool;
//   - otherwise the input's contiguous axis and the output's contiguous axis
//     form a 2-D plane per remaining (outer) index, transposed in square
//     tiles that fit in L1 (writes contiguous, reads of a tile's few cache
//     lines reused; 4-byte elements moved as SSE2 4x4 blocks), strips of
//     tile rows split over the pool.
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "backends/cpu/tactics.h"
#include "core/error.h"
#include "core/thread_pool.h"

namespace kiln::backends::cpu {
namespace {

// Below this many bytes a transpose stays on the calling thread.
constexpr int64_t kParallelBytes = int64_t{1} << 16;

// A transpose reduced to its simplest equivalent form: output axis i has
// extent dims[i] and input stride in_strides[i] (in elements); the output
// is dense row-major over dims.
struct Reduced {
  std::vector<int64_t> dims;
  std::vector<int64_t> in_strides;
};

Reduced reduce(const Dims& in_dims, const std::vector<int64_t>& perm) {
  const size_t rank = in_dims.size();
  std::vector<int64_t> in_strides(rank, 1);
  for (size_t d = rank; d-- > 1;) in_strides[d - 1] = in_strides[d] * in_dims[d];
  Reduced r;
  int64_t prev_axis = -2;
  for (int64_t p : perm) {
    const int64_t extent = in_dims[static_cast<size_t>(p)];
    if (extent == 1) continue;
    // Merges with the previous output axis when it is the input axis just before p
    // (size-1 axes between them do not matter: they were skipped).
    bool merge = false;
    if (prev_axis >= 0 && !r.dims.empty()) {
      int64_t q = prev_axis + 1;
      while (q < p && in_dims[static_cast<size_t>(q)] == 1) ++q;
      merge = q == p;
    }
    if (merge) {
      r.dims.back() *= extent;
      r.in_strides.back() = in_strides[static_cast<size_t>(p)];
    } else {
      r.dims.push_back(extent);
      r.in_strides.push_back(in_strides[static_cast<size_t>(p)]);
    }
    prev_axis = p;
  }
  return r;
}

// Walks the multi-index over `dims` (row-major, last fastest), keeping the
// input offset (strides `in`) and output offset (strides `out`) in elements.
class Odometer {
 public:
  Odometer(std::vector<int64_t> dims, std::vector<int64_t> in, std::vector<int64_t> out, int64_t start)
      : dims_(std::move(dims)), in_(std::move(in)), out_(std::move(out)), idx_(dims_.size(), 0) {
    for (size_t d = dims_.size(); d-- > 0;) {
      idx_[d] = start % dims_[d];
      start /= dims_[d];
      src_ += idx_[d] * in_[d];
      dst_ += idx_[d] * out_[d];
    }
  }
  int64_t src() const { return src_; }
  int64_t dst() const { return dst_; }
  void next() {
    for (size_t d = dims_.size(); d-- > 0;) {
      src_ += in_[d];
      dst_ += out_[d];
      if (++idx_[d] < dims_[d]) return;
      src_ -= idx_[d] * in_[d];
      dst_ -= idx_[d] * out_[d];
      idx_[d] = 0;
    }
  }

 private:
  std::vector<int64_t> dims_, in_, out_, idx_;
  int64_t src_ = 0;
  int64_t dst_ = 0;
};

template <class F>
void split(ThreadPool* pool, int64_t units, int64_t bytes, F&& fn) {
  if (pool != nullptr && pool->threads() > 1 && units > 1 && bytes >= kParallelBytes) {
    pool->parallel_for(units, 1, [&](int64_t b, int64_t e) { fn(b, e); });
  } else {
    fn(int64_t{0}, units);
  }
}

// Output rows of `inner` contiguous elements, each copied from a contiguous input run.
void copy_rows(const Reduced& r, const char* src, char* dst, size_t esize, ThreadPool* pool) {
  const size_t outer_rank = r.dims.size() - 1;
  const int64_t inner = r.dims.back();
  std::vector<int64_t> dims(r.dims.begin(), r.dims.begin() + static_cast<int64_t>(outer_rank));
  std::vector<int64_t> in(r.in_strides.begin(), r.in_strides.begin() + static_cast<int64_t>(outer_rank));
  std::vector<int64_t> out(outer_rank, inner);
  for (size_t d = outer_rank; d-- > 1;) out[d - 1] = out[d] * dims[d];
  int64_t rows = 1;
  for (int64_t d : dims) rows *= d;
  const size_t row_bytes = static_cast<size_t>(inner) * esize;
  split(pool, rows, rows * static_cast<int64_t>(row_bytes), [&](int64_t b, int64_t e) {
    Odometer it(dims, in, out, b);
    for (int64_t row = b; row < e; ++row, it.next()) {
      std::memcpy(dst + it.dst() * static_cast<int64_t>(esize), src + it.src() * static_cast<int64_t>(esize),
                  row_bytes);
    }
  });
}

struct Bytes16 {
  uint64_t lo, hi;
};

#if defined(__SSE2__)
// A 4x4 block of 4-byte elements in SSE2 registers (x86-64's baseline, so
// no run-time check): src row j holds i .. i+3, dst row i holds j .. j+3.
void block_4x4(const uint32_t* src, int64_t lds, uint32_t* dst, int64_t ldd) {
  const __m128i r0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src));
  const __m128i r1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + lds));
  const __m128i r2 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * lds));
  const __m128i r3 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 3 * lds));
  const __m128i t0 = _mm_unpacklo_epi32(r0, r1), t1 = _mm_unpacklo_epi32(r2, r3);
  const __m128i t2 = _mm_unpackhi_epi32(r0, r1), t3 = _mm_unpackhi_epi32(r2, r3);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), _mm_unpacklo_epi64(t0, t1));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + ldd), _mm_unpackhi_epi64(t0, t1));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 2 * ldd), _mm_unpacklo_epi64(t2, t3));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 3 * ldd), _mm_unpackhi_epi64(t2, t3));
}
#endif

// One tile: dst[i * ldd + j] = src[i + j * lds] for i in [ib, ie), j in [jb, je).
template <class T>
void transpose_tile(const T* src, int64_t lds, T* dst, int64_t ldd, int64_t ib, int64_t ie, int64_t jb, int64_t je) {
  int64_t i = ib;
#if defined(__SSE2__)
  if constexpr (sizeof(T) == 4) {
    for (; i + 4 <= ie; i += 4) {
      int64_t j = jb;
      for (; j + 4 <= je; j += 4) block_4x4(src + i + j * lds, lds, dst + i * ldd + j, ldd);
      for (; j < je; ++j) {
        for (int64_t k = i; k < i + 4; ++k) dst[k * ldd + j] = src[k + j * lds];
      }
    }
  }
#endif
  for (; i < ie; ++i) {
    T* d = dst + i * ldd;
    const T* s = src + i;
    for (int64_t j = jb; j < je; ++j) d[j] = s[j * lds];
  }
}

// dst[i * ldd + j] = src[i + j * lds] for i in [i0, i1), j < n_j, in tiles
// of kTile x kTile (a tile's source lines stay in L1 while it is read).
template <class T>
void transpose_plane(const T* src, int64_t lds, T* dst, int64_t ldd, int64_t i0, int64_t i1, int64_t n_j) {
  constexpr int64_t kTile = 64 / static_cast<int64_t>(sizeof(T)) < 8 ? 8 : 64 / static_cast<int64_t>(sizeof(T));
  for (int64_t jb = 0; jb < n_j; jb += kTile) {
    const int64_t je = std::min(n_j, jb + kTile);
    for (int64_t ib = i0; ib < i1; ib += kTile)
      transpose_tile(src, lds, dst, ldd, ib, std::min(i1, ib + kTile), jb, je);
  }
}

// The plane of output axis `a` (input-contiguous) and the last output axis
// (output-contiguous), for every index of the other axes.
template <class T>
void transpose_tiles(const Reduced& r, const T* src, T* dst, ThreadPool* pool) {
  const size_t rank = r.dims.size();
  size_t a = 0;
  while (r.in_strides[a] != 1) ++a;
  std::vector<int64_t> out_strides(rank, 1);
  for (size_t d = rank; d-- > 1;) out_strides[d - 1] = out_strides[d] * r.dims[d];
  std::vector<int64_t> dims, in, out;
  for (size_t d = 0; d + 1 < rank; ++d) {
    if (d == a) continue;
    dims.push_back(r.dims[d]);
    in.push_back(r.in_strides[d]);
    out.push_back(out_strides[d]);
  }
  int64_t outer = 1;
  for (int64_t d : dims) outer *= d;
  const int64_t n_i = r.dims[a], n_j = r.dims.back();
  const int64_t lds = r.in_strides.back(), ldd = out_strides[a];
  // Work units: strips of up to 64 rows of the plane (i), over every outer index.
  constexpr int64_t kStrip = 64;
  const int64_t strips = (n_i + kStrip - 1) / kStrip;
  const int64_t bytes = outer * n_i * n_j * static_cast<int64_t>(sizeof(T));
  split(pool, outer * strips, bytes, [&](int64_t b, int64_t e) {
    Odometer it(dims, in, out, b / strips);
    int64_t o = b / strips;
    for (int64_t u = b; u < e; ++u) {
      const int64_t o_u = u / strips;
      while (o < o_u) {
        it.next();
        ++o;
      }
      const int64_t s = u % strips;
      transpose_plane<T>(src + it.src(), lds, dst + it.dst(), ldd, s * kStrip, std::min(n_i, (s + 1) * kStrip), n_j);
    }
  });
}

// The permutation of the node, or false where the attribute is not one
// (the reference reports that).
bool node_perm(const ir::Node& node, int64_t rank, std::vector<int64_t>& perm) {
  perm.clear();
  if (!node.has_attr("perm")) {
    for (int64_t i = rank - 1; i >= 0; --i) perm.push_back(i);
    return true;
  }
  perm = node.attr_ints("perm");
  if (static_cast<int64_t>(perm.size()) != rank) return false;
  std::vector<bool> seen(static_cast<size_t>(rank), false);
  for (int64_t p : perm) {
    if (p < 0 || p >= rank || seen[static_cast<size_t>(p)]) return false;
    seen[static_cast<size_t>(p)] = true;
  }
  return true;
}

bool copyable(DataType t) {
  if (t == DataType::kString || t == DataType::kUndefined) return false;
  const size_t s = element_size(t);
  return s == 1 || s == 2 || s == 4 || s == 8 || s == 16;
}

class TransposeKernel final : public Kernel {
 public:
  bool fills_outputs() const override { return true; }
  Status run(ops::KernelContext& ctx) const override {
    if (!ctx.has_input(0) || !ctx.datum(0).is_tensor() || !copyable(ctx.input(0).dtype())) return run_reference(ctx);
    const Tensor& x = ctx.input(0);
    std::vector<int64_t> perm;
    if (!node_perm(ctx.node(), x.rank(), perm)) return run_reference(ctx);
    Dims out_dims;
    for (int64_t p : perm) out_dims.push_back(x.dim(p));
    KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.allocate_output(0, x.dtype(), out_dims));
    if (x.numel() == 0) return Status::ok();
    const size_t esize = element_size(x.dtype());
    const Reduced r = reduce(x.dims(), perm);
    const char* src = static_cast<const char*>(x.raw_data());
    char* dst = static_cast<char*>(y->raw_data());
    if (r.dims.size() <= 1) {
      std::memcpy(dst, src, x.nbytes());
    } else if (r.in_strides.back() == 1) {
      copy_rows(r, src, dst, esize, ctx.pool());
    } else {
      switch (esize) {
        case 1:
          transpose_tiles<uint8_t>(r, x.data<uint8_t>(), y->data<uint8_t>(), ctx.pool());
          break;
        case 2:
          transpose_tiles<uint16_t>(r, x.data<uint16_t>(), y->data<uint16_t>(), ctx.pool());
          break;
        case 4:
          transpose_tiles<uint32_t>(r, x.data<uint32_t>(), y->data<uint32_t>(), ctx.pool());
          break;
        case 8:
          transpose_tiles<uint64_t>(r, x.data<uint64_t>(), y->data<uint64_t>(), ctx.pool());
          break;
        default:
          transpose_tiles<Bytes16>(r, x.data<Bytes16>(), y->data<Bytes16>(), ctx.pool());
          break;
      }
    }
    return Status::ok();
  }
};

class TransposeTactic final : public Tactic {
 public:
  std::string_view name() const override { return "own.transpose"; }
  std::string_view source() const override { return "own"; }
  bool supports(const ir::Node& node) const override {
    if (node.op_type() != "Transpose" || node.input(0) == nullptr) return false;
    const ir::ValueType& t = node.input(0)->type();
    return t.is_tensor() && copyable(t.dtype);
  }
  Result<std::unique_ptr<Kernel>> prepare(const ir::Node& node) const override {
    if (!supports(node)) return invalid_argument("{}: not supported by own.transpose", node.describe());
    return std::unique_ptr<Kernel>(new TransposeKernel());
  }
};

}  // namespace

std::unique_ptr<Tactic> make_transpose_tactic() { return std::make_unique<TransposeTactic>(); }

}  // namespace kiln::backends::cpu
