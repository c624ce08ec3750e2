#include "backends/cpu/gemm.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "core/error.h"
#include "core/float_types.h"
#include "core/memory.h"
#include "core/thread_pool.h"

namespace kiln::backends::cpu {
namespace {

// Activations the microkernels apply in registers, and their parameters.
bool to_tile_activation(const ops::Epilogue& e, TileArgs& t) {
  t.p0 = e.alpha;
  t.p1 = e.beta;
  switch (e.activation) {
    case ops::Activation::kNone:
      t.act = TileActivation::kNone;
      return true;
    case ops::Activation::kRelu:
      t.act = TileActivation::kRelu;
      return true;
    case ops::Activation::kClip:
      t.act = TileActivation::kClip;
      return true;
    case ops::Activation::kLeakyRelu:
      t.act = TileActivation::kLeakyRelu;
      return true;
    case ops::Activation::kHardSigmoid:
      t.act = TileActivation::kHardSigmoid;
      return true;
    case ops::Activation::kHardSwish:
      t.act = TileActivation::kHardSwish;
      return true;
    default:
      t.act = TileActivation::kNone;
      return false;
  }
}

// How the epilogue of a full tile is split between microkernel and driver.
enum class EpilogueMode {
  kKernel,         // the microkernel applies all of it
  kKernelThenAct,  // the microkernel adds scale/bias/pre-activation terms; the driver activates and adds the residual
                   // after
  kDriver,         // the microkernel stores the raw sum; the driver applies everything
};

struct Plan {
  const GemmConfig* cfg;
  int64_t m, n, k;
  const GemmOperand* a;
  const GemmOperand* b;
  float* c;
  int64_t ldc;
  const GemmEpilogue* e;
  EpilogueMode mode;
  TileArgs base;  // activation fields of the kernel epilogue
};

struct Scratch {
  AlignedFloats a;
  AlignedFloats b;
  AlignedFloats tile;
};

Scratch& thread_scratch() {
  thread_local Scratch s;
  return s;
}

// The vectorized tile pass for an activation, if there is one.
bool to_transcendental(ops::Activation a, TileTranscendental& t) {
  switch (a) {
    case ops::Activation::kSigmoid:
      t = TileTranscendental::kSigmoid;
      return true;
    case ops::Activation::kTanh:
      t = TileTranscendental::kTanh;
      return true;
    case ops::Activation::kSilu:
      t = TileTranscendental::kSilu;
      return true;
    case ops::Activation::kGelu:
      t = TileTranscendental::kGelu;
      return true;
    case ops::Activation::kGeluTanh:
      t = TileTranscendental::kGeluTanh;
      return true;
    default:
      return false;
  }
}

// The driver's part of the epilogue on a stored tile region in kKernelThenAct mode.
void finish_activation(const GemmConfig& cfg, const GemmEpilogue& e, float* c, int64_t ldc, int64_t i0, int64_t j0,
                       int64_t rows, int64_t cols) {
  const bool post = e.residual != nullptr && e.residual_after_activation;
  TileTranscendental t;
  if (cfg.activate != nullptr && to_transcendental(e.activation.activation, t)) {
    cfg.activate(c, ldc, rows, cols, t);
    if (post) {
      for (int64_t i = 0; i < rows; ++i) {
        for (int64_t j = 0; j < cols; ++j) c[i * ldc + j] += e.residual[(i0 + i) * e.ldr + j0 + j];
      }
    }
    return;
  }
  for (int64_t i = 0; i < rows; ++i) {
    float* row = c + i * ldc;
    for (int64_t j = 0; j < cols; ++j) {
      float y = e.activation.activate(row[j]);
      if (post) y += e.residual[(i0 + i) * e.ldr + j0 + j];
      row[j] = y;
    }
  }
}

// Runs one tile whose top-left corner is (i0, j0) in C.
void run_tile(const Plan& p, const float* ap, const float* bp, int64_t kc, bool load_c, bool last, int64_t i0,
              int64_t j0, int64_t rows, int64_t cols, float* tmp, const float* prefetch_b) {
  const int mr = p.cfg->kernel.mr;
  const int nr = p.cfg->kernel.nr;
  float* c = p.c + i0 * p.ldc + j0;
  TileArgs t;
  t.kc = kc;
  t.a = ap;
  t.b = bp;
  t.prefetch_b = prefetch_b;
  if (rows == mr && cols == nr) {
    t.c = c;
    t.ldc = p.ldc;
    t.load_c = load_c;
    const GemmEpilogue& e = *p.e;
    if (last && p.mode != EpilogueMode::kDriver) {
      t.epilogue = true;
      t.scale = e.scale;
      t.bias_row = e.bias_row != nullptr ? e.bias_row + i0 : nullptr;
      t.bias_col = e.bias_col != nullptr ? e.bias_col + j0 : nullptr;
      if (e.addend != nullptr) {
        t.residual = e.addend + i0 * e.lda + j0;
        t.ldr = e.lda;
      } else if (e.residual != nullptr && !e.residual_after_activation) {
        t.residual = e.residual + i0 * e.ldr + j0;
        t.ldr = e.ldr;
      }
      if (p.mode == EpilogueMode::kKernel) {
        t.act = p.base.act;
        t.p0 = p.base.p0;
        t.p1 = p.base.p1;
        if (e.residual != nullptr && e.residual_after_activation) {
          t.residual2 = e.residual + i0 * e.ldr + j0;
          t.ldr2 = e.ldr;
        }
      }
    }
    p.cfg->kernel.fn(t);
    if (last && p.mode == EpilogueMode::kKernelThenAct) finish_activation(*p.cfg, e, c, p.ldc, i0, j0, rows, cols);
    if (last && p.mode == EpilogueMode::kDriver) {
      for (int64_t i = 0; i < rows; ++i) {
        for (int64_t j = 0; j < cols; ++j) c[i * p.ldc + j] = apply_epilogue(e, c[i * p.ldc + j], i0 + i, j0 + j);
      }
    }
    return;
  }
  // A partial tile: the kernel writes the raw sums to `tmp`, the driver merges.
  t.c = tmp;
  t.ldc = nr;
  p.cfg->kernel.fn(t);
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) {
      float v = tmp[i * nr + j];
      if (load_c) v += c[i * p.ldc + j];
      if (last) v = apply_epilogue(*p.e, v, i0 + i, j0 + j);
      c[i * p.ldc + j] = v;
    }
  }
}

// C rows [m0, m1) x columns [n0, n1); m0 and n0 are multiples of MR and NR.
void run_block(const Plan& p, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const GemmConfig& cfg = *p.cfg;
  const int mr = cfg.kernel.mr;
  const int nr = cfg.kernel.nr;
  Scratch& s = thread_scratch();
  s.tile.reserve_discard(static_cast<int64_t>(mr) * nr);
  const int64_t nc_step = p.b->packed != nullptr ? n1 - n0 : cfg.nc;
  for (int64_t jc = n0; jc < n1; jc += nc_step) {
    const int64_t nc = std::min(nc_step, n1 - jc);
    for (int64_t pc = 0; pc < p.k; pc += cfg.kc) {
      const int64_t kc = std::min(cfg.kc, p.k - pc);
      const bool last = pc + kc >= p.k;
      const float* bbase;
      int64_t bstride;
      if (p.b->packed != nullptr) {
        bbase = p.b->packed->panel(jc / nr) + pc * nr;
        bstride = p.k * nr;
      } else {
        s.b.reserve_discard((nc + nr - 1) / nr * nr * kc);
        p.b->pack(jc, nc, pc, kc, nr, s.b.data());
        bbase = s.b.data();
        bstride = kc * nr;
      }
      for (int64_t ic = m0; ic < m1; ic += cfg.mc) {
        const int64_t mc = std::min(cfg.mc, m1 - ic);
        const float* abase;
        int64_t astride;
        if (p.a->packed != nullptr) {
          abase = p.a->packed->panel(ic / mr) + pc * mr;
          astride = p.k * mr;
        } else {
          s.a.reserve_discard((mc + mr - 1) / mr * mr * kc);
          p.a->pack(ic, mc, pc, kc, mr, s.a.data());
          abase = s.a.data();
          astride = kc * mr;
        }
        for (int64_t jr = 0; jr < nc; jr += nr) {
          const float* bp = bbase + (jr / nr) * bstride;
          const int64_t cols = std::min<int64_t>(nr, nc - jr);
          // The first tile of a B panel fetches the next panel into cache as it
          // goes: prepacked panels lie K * NR floats apart, a jump the hardware
          // prefetchers do not follow, and a 3072-column B is bigger than L3.
          const float* next_b = jr + nr < nc ? bp + bstride : nullptr;
          for (int64_t ir = 0; ir < mc; ir += mr) {
            const float* ap = abase + (ir / mr) * astride;
            const int64_t rows = std::min<int64_t>(mr, mc - ir);
            run_tile(p, ap, bp, kc, pc > 0, last, ic + ir, jc + jr, rows, cols, s.tile.data(),
                     ir == 0 ? next_b : nullptr);
          }
        }
      }
    }
  }
}

}  // namespace

void AlignedFloats::Free::operator()(float* p) const { std::free(p); }

void AlignedFloats::reserve_discard(int64_t n) {
  if (n <= capacity_) {
    size_ = std::max(size_, n);
    return;
  }
  resize(n);
}

void AlignedFloats::resize(int64_t n) {
  const size_t bytes = static_cast<size_t>(std::max<int64_t>(n, 1)) * sizeof(float);
  data_.reset(static_cast<float*>(allocate_aligned(bytes)));
  size_ = n;
  capacity_ = n;
}

GemmConfig gemm_config(Isa isa) {
  GemmConfig c;
  c.isa = isa;
  switch (isa) {
    case Isa::kAvx512:
      c.kernel = microkernel_avx512();
      c.activate = activate_tile_avx2;
      c.kc = 256;
      c.mc = 14 * 12;
      c.nc = 32 * 64;
      break;
    case Isa::kAvx2:
      c.kernel = microkernel_avx2();
      c.activate = activate_tile_avx2;
      c.kc = 256;
      c.mc = 6 * 24;
      c.nc = 16 * 128;
      break;
    case Isa::kGeneric:
      c.kernel = microkernel_generic();
      c.kc = 256;
      c.mc = 4 * 32;
      c.nc = 8 * 256;
      break;
  }
  return c;
}

GemmConfig gemm_config_bf16() {
  GemmConfig c = gemm_config(Isa::kAvx512);  // the same tile and blocking of C
  c.kernel = microkernel_avx512bf16();
  // kc counts 32-bit slots (two K values): 384 slots hold a 768-deep product
  // in one block; bert_base b8 ran ~6% faster than with 256 (128: slower).
  c.kc = 384;
  return c;
}

std::vector<uint8_t> PackedMatrix::serialize() const {
  const int64_t header[3] = {rows, depth, width};
  const size_t n = static_cast<size_t>(bytes());
  std::vector<uint8_t> out(sizeof(header) + n);
  std::memcpy(out.data(), header, sizeof(header));
  if (n > 0) std::memcpy(out.data() + sizeof(header), data.data(), n);
  return out;
}

Result<PackedMatrix> PackedMatrix::deserialize(std::span<const uint8_t> bytes, int64_t rows, int64_t depth, int width,
                                               bool f16) {
  int64_t header[3];
  if (bytes.size() < sizeof(header)) return invalid_argument("packed weights: {} bytes is too short", bytes.size());
  std::memcpy(header, bytes.data(), sizeof(header));
  if (header[0] != rows || header[1] != depth || header[2] != width) {
    return invalid_argument("packed weights hold [{}, {}] in panels of {}, expected [{}, {}] in panels of {}",
                            header[0], header[1], header[2], rows, depth, width);
  }
  PackedMatrix p;
  p.rows = rows;
  p.depth = depth;
  p.width = width;
  p.f16 = f16;
  const size_t n = static_cast<size_t>(p.bytes());
  if (bytes.size() != sizeof(header) + n) {
    return invalid_argument("packed weights: {} bytes, expected {}", bytes.size(), sizeof(header) + n);
  }
  p.data.resize((p.bytes() + 3) / 4);
  if (n > 0) std::memcpy(p.data.data(), bytes.data() + sizeof(header), n);
  return p;
}

void pack_strided(const StridedMatrix& m, int64_t r0, int64_t n, int64_t k0, int64_t kc, int width, float* dst) {
  for (int64_t p0 = 0; p0 < n; p0 += width) {
    const int64_t rows = std::min<int64_t>(width, n - p0);
    float* d = dst + (p0 / width) * kc * width;
    const float* s = m.src + (r0 + p0) * m.row_stride + k0 * m.depth_stride;
    if (m.row_stride == 1) {
      for (int64_t k = 0; k < kc; ++k) {
        const float* sk = s + k * m.depth_stride;
        float* dk = d + k * width;
        std::memcpy(dk, sk, static_cast<size_t>(rows) * sizeof(float));
        for (int64_t r = rows; r < width; ++r) dk[r] = 0.0f;
      }
    } else if (m.depth_stride == 1) {
      for (int64_t r = 0; r < rows; ++r) {
        const float* sr = s + r * m.row_stride;
        for (int64_t k = 0; k < kc; ++k) d[k * width + r] = sr[k];
      }
      for (int64_t r = rows; r < width; ++r) {
        for (int64_t k = 0; k < kc; ++k) d[k * width + r] = 0.0f;
      }
    } else {
      for (int64_t k = 0; k < kc; ++k) {
        for (int64_t r = 0; r < width; ++r) {
          d[k * width + r] = r < rows ? s[r * m.row_stride + k * m.depth_stride] : 0.0f;
        }
      }
    }
  }
}

namespace {

// A whole operand of `rows` rows packed panel by panel by
// pack(r0, n, dst) into panels of `depth` (floats or slots) x `width`;
// `work` (rows x K) decides whether the pool shares the panels.
template <typename PackPanel>
PackedMatrix pack_panels(int64_t rows, int64_t depth, int width, int64_t work, ThreadPool* pool,
                         const PackPanel& pack) {
  PackedMatrix p;
  p.rows = rows;
  p.depth = depth;
  p.width = width;
  p.data.resize(p.panels() * depth * width);
  auto run = [&](int64_t begin, int64_t end) {
    for (int64_t panel = begin; panel < end; ++panel) {
      const int64_t r0 = panel * width;
      pack(r0, std::min<int64_t>(width, rows - r0), p.data.data() + panel * depth * width);
    }
  };
  if (pool != nullptr && pool->threads() > 1 && work > (1 << 16)) {
    pool->parallel_for(p.panels(), 1, run);
  } else {
    run(0, p.panels());
  }
  return p;
}

}  // namespace

PackedMatrix pack_matrix(const StridedMatrix& m, int64_t rows, int64_t depth, int width, ThreadPool* pool) {
  return pack_panels(rows, depth, width, rows * depth, pool, [&](int64_t r0, int64_t n, float* dst) {
    pack_strided(m, r0, n, 0, depth, width, dst);
  });
}

void pair_slots_bf16(const float* rows, int64_t row_stride, int64_t k_count, int64_t sc, int width, float* dst) {
  for (int64_t s = 0; s < sc; ++s) {
    const int64_t k = 2 * s;
    if (k >= k_count) {
      std::memset(dst + s * width, 0, static_cast<size_t>(width) * sizeof(float));
      continue;
    }
    const float* even = rows + k * row_stride;
    pair_rows_bf16_avx512(even, k + 1 < k_count ? even + row_stride : nullptr, width, dst + s * width);
  }
}

void pack_strided_bf16(const StridedMatrix& m, int64_t depth, int64_t r0, int64_t n, int64_t s0, int64_t sc, int width,
                       float* dst) {
  const int64_t k0 = 2 * s0, k_end = std::min(depth, 2 * (s0 + sc));
  for (int64_t p0 = 0; p0 < n; p0 += width) {
    const int64_t rows = std::min<int64_t>(width, n - p0);
    float* d = dst + (p0 / width) * sc * width;
    if (m.depth_stride == 1 && bf16_dot_supported()) {
      pack_rows_bf16_avx512(m.src + (r0 + p0) * m.row_stride, m.row_stride, rows, k0, k_end, sc, width, d);
      continue;
    }
    if (m.row_stride == 1 && rows == width && bf16_dot_supported()) {
      // Rows are contiguous along each K row (a 1x1 convolution's X): pair two K rows at a time.
      pair_slots_bf16(m.src + (r0 + p0) + k0 * m.depth_stride, m.depth_stride, k_end - k0, sc, width, d);
      continue;
    }
    uint32_t* du = reinterpret_cast<uint32_t*>(d);
    for (int64_t s = 0; s < sc; ++s) {
      const int64_t k = k0 + 2 * s;
      for (int64_t r = 0; r < width; ++r) {
        uint32_t pair = 0;
        if (r < rows) {
          const float* x = m.src + (r0 + p0 + r) * m.row_stride;
          if (k < k_end) pair = BFloat16(x[k * m.depth_stride]).bits;
          if (k + 1 < k_end) pair |= static_cast<uint32_t>(BFloat16(x[(k + 1) * m.depth_stride]).bits) << 16;
        }
        du[s * width + r] = pair;
      }
    }
  }
}

PackedMatrix pack_matrix_bf16(const StridedMatrix& m, int64_t rows, int64_t depth, int width, ThreadPool* pool) {
  const int64_t slots = bf16_slots(depth);
  return pack_panels(rows, slots, width, rows * depth, pool, [&](int64_t r0, int64_t n, float* dst) {
    pack_strided_bf16(m, depth, r0, n, 0, slots, width, dst);
  });
}

void widen_halves(const uint16_t* src, float* dst, int64_t n) {
  if (f16c_supported()) return widen_halves_f16c(src, dst, n);
  for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(Float16::from_bits(src[i]));
}

void narrow_to_halves(const float* src, uint16_t* dst, int64_t n) {
  if (f16c_supported()) return narrow_to_halves_f16c(src, dst, n);
  for (int64_t i = 0; i < n; ++i) dst[i] = Float16(src[i]).bits;
}

const float* widen_halves_to_thread_buffer(const uint16_t* src, int64_t n) {
  thread_local AlignedFloats widened;
  widened.reserve_discard(n);
  widen_halves(src, widened.data(), n);
  return widened.data();
}

PackedMatrix pack_matrix_f16(const StridedMatrix& m, int64_t rows, int64_t depth, int width, ThreadPool* pool) {
  PackedMatrix p = pack_matrix(m, rows, depth, width, pool);
  AlignedFloats halves((p.elements() + 1) / 2);
  narrow_to_halves(p.data.data(), reinterpret_cast<uint16_t*>(halves.data()), p.elements());
  p.data = std::move(halves);
  p.f16 = true;
  return p;
}

GemmOperand GemmOperand::prepacked_f16(const PackedMatrix& p) {
  const PackedMatrix* pm = &p;
  // The driver asks for whole panels (r0 a multiple of the width) over
  // depth [k0, k0 + kc): within a [depth][width] panel those are kc * width
  // contiguous values, widened into the block.
  GemmOperand o = custom([pm](int64_t r0, int64_t n, int64_t k0, int64_t kc, int width, float* dst) {
    const int64_t first = r0 / width, count = (n + width - 1) / width;
    for (int64_t q = 0; q < count; ++q) {
      widen_halves(pm->panel_f16(first + q) + k0 * width, dst + q * kc * width, kc * width);
    }
  });
  o.halves = pm;
  return o;
}

GemmOperand GemmOperand::strided_bf16(StridedMatrix m, int64_t depth) {
  return custom([m, depth](int64_t r0, int64_t n, int64_t s0, int64_t sc, int width, float* dst) {
    pack_strided_bf16(m, depth, r0, n, s0, sc, width, dst);
  });
}

GemmOperand GemmOperand::strided(StridedMatrix m) {
  return custom([m](int64_t r0, int64_t n, int64_t k0, int64_t kc, int width, float* dst) {
    pack_strided(m, r0, n, k0, kc, width, dst);
  });
}

float apply_epilogue(const GemmEpilogue& e, float acc, int64_t i, int64_t j) {
  float y = acc;
  if (e.scale != 1.0f) y *= e.scale;
  if (e.bias_row != nullptr) y += e.bias_row[i];
  if (e.bias_col != nullptr) y += e.bias_col[j];
  if (e.addend != nullptr) y += e.addend[i * e.lda + j];
  const bool has_res = e.residual != nullptr;
  if (has_res && !e.residual_after_activation) y += e.residual[i * e.ldr + j];
  y = e.activation.activate(y);
  if (has_res && e.residual_after_activation) y += e.residual[i * e.ldr + j];
  return y;
}

void gemm(const GemmConfig& cfg, int64_t m, int64_t n, int64_t k, const GemmOperand& a, const GemmOperand& b, float* c,
          int64_t ldc, const GemmEpilogue& epilogue, ThreadPool* pool, GemmSplit split) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = apply_epilogue(epilogue, 0.0f, i, j);
    }
    return;
  }
  Plan p{&cfg, m, n, k, &a, &b, c, ldc, &epilogue, EpilogueMode::kKernel, TileArgs{}};
  const bool simple_act = to_tile_activation(epilogue.activation, p.base);
  const bool two_pre_terms =
      epilogue.addend != nullptr && epilogue.residual != nullptr && !epilogue.residual_after_activation;
  if (two_pre_terms) {
    p.mode = EpilogueMode::kDriver;
  } else if (!simple_act) {
    p.mode = EpilogueMode::kKernelThenAct;
  }

  const int mr = cfg.kernel.mr;
  const int nr = cfg.kernel.nr;
  const int64_t m_panels = (m + mr - 1) / mr;
  const int64_t n_panels = (n + nr - 1) / nr;
  int64_t threads = pool != nullptr ? pool->threads() : 1;
  // Below ~1 MFLOP the hand-off to another thread costs more than it saves.
  if (2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k) < 1e6) threads = 1;
  if (split == GemmSplit::kAuto) {
    if (b.halves != nullptr && a.packed == nullptr) {
      split = n >= m ? GemmSplit::kColumns : GemmSplit::kRows;
    } else {
      split = (a.packed != nullptr && b.packed == nullptr) ? GemmSplit::kColumns : GemmSplit::kRows;
    }
  }
  int64_t tm = 1, tn = 1;
  if (threads > 1) {
    const int64_t first = split == GemmSplit::kRows ? m_panels : n_panels;
    const int64_t second = split == GemmSplit::kRows ? n_panels : m_panels;
    int64_t t1 = std::min(threads, first);
    int64_t t2 = 1;
    if (t1 < threads) t2 = std::min(threads / t1, second);
    tm = split == GemmSplit::kRows ? t1 : t2;
    tn = split == GemmSplit::kRows ? t2 : t1;
  }
  const int64_t m_chunk = (m_panels + tm - 1) / tm * mr;
  const int64_t n_chunk = (n_panels + tn - 1) / tn * nr;
  auto task = [&](int64_t t) {
    const int64_t mi = t / tn, ni = t % tn;
    const int64_t m0 = mi * m_chunk, n0 = ni * n_chunk;
    const int64_t m1 = std::min(m, m0 + m_chunk), n1 = std::min(n, n0 + n_chunk);
    if (m0 < m1 && n0 < n1) run_block(p, m0, m1, n0, n1);
  };
  const int64_t tasks = tm * tn;
  if (tasks == 1) {
    task(0);
  } else {
    pool->parallel_for(tasks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) task(t);
    });
  }
}

}  // namespace kiln::backends::cpu
