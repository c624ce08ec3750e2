#include "backends/cpu/isa.h"

#include <cstdlib>
#include <string>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define KILN_X86 1
#endif

namespace kiln::backends::cpu {
namespace {

#if KILN_X86
// XCR0: which register states the OS saves on context switch.
unsigned long long read_xcr0() {
  unsigned lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<unsigned long long>(hi) << 32) | lo;
}
#endif

CpuFeatures probe() {
  CpuFeatures f;
#if KILN_X86
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid_count(1, 0, a, b, c, d);
  const bool osxsave = (c >> 27) & 1;
  const bool avx = (c >> 28) & 1;
  const bool fma = (c >> 12) & 1;
  const bool f16c = (c >> 29) & 1;
  if (!osxsave || !avx) return f;
  const unsigned long long xcr0 = read_xcr0();
  const bool ymm_state = (xcr0 & 0x6) == 0x6;    // SSE and AVX state
  const bool zmm_state = (xcr0 & 0xe6) == 0xe6;  // plus opmask, ZMM_Hi256, Hi16_ZMM
  if (!ymm_state) return f;
  __cpuid_count(7, 0, a, b, c, d);
  f.avx2 = (b >> 5) & 1;
  f.fma = fma;
  f.f16c = f16c;
  unsigned a1 = 0, b1 = 0, c1 = 0, d1 = 0;
  __cpuid_count(7, 1, a1, b1, c1, d1);
  (void)b1, (void)c1, (void)d1;
  f.avxvnni = f.avx2 && ((a1 >> 4) & 1);
  if (zmm_state) {
    f.avx512f = (b >> 16) & 1;
    f.avx512dq = (b >> 17) & 1;
    f.avx512bw = (b >> 30) & 1;
    f.avx512vl = (b >> 31) & 1;
    f.avx512vnni = (c >> 11) & 1;
    f.avx512vbmi = (c >> 1) & 1;
    f.avx512bf16 = (a1 >> 5) & 1;
  }
#endif
  return f;
}

Isa best_isa(const CpuFeatures& f) {
  if (f.avx512f && f.avx512bw && f.avx512dq && f.avx512vl && f.avx2 && f.fma) return Isa::kAvx512;
  if (f.avx2 && f.fma) return Isa::kAvx2;
  return Isa::kGeneric;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = probe();
  return features;
}

Isa detect_isa() {
  static const Isa isa = [] {
    Isa best = best_isa(cpu_features());
    if (const char* cap = std::getenv("KILN_CPU_ISA")) {
      const std::string s(cap);
      Isa wanted = best;
      if (s == "generic") wanted = Isa::kGeneric;
      if (s == "avx2") wanted = Isa::kAvx2;
      if (s == "avx512") wanted = Isa::kAvx512;
      if (static_cast<int>(wanted) < static_cast<int>(best)) best = wanted;
    }
    return best;
  }();
  return isa;
}

bool bf16_dot_supported() { return detect_isa() == Isa::kAvx512 && cpu_features().avx512bf16; }

bool f16c_supported() {
  static const bool ok = detect_isa() >= Isa::kAvx2 && cpu_features().f16c;
  return ok;
}

std::vector<Isa> supported_isas() {
  std::vector<Isa> out;
  for (int i = static_cast<int>(detect_isa()); i >= 0; --i) out.push_back(static_cast<Isa>(i));
  return out;
}

std::string_view isa_name(Isa isa) {
  switch (isa) {
    case Isa::kGeneric:
      return "generic";
    case Isa::kAvx2:
      return "avx2";
    case Isa::kAvx512:
      return "avx512";
  }
  return "?";
}

}  // namespace kiln::backends::cpu
