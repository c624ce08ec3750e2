// Run-time CPU feature detection for the CPU backend's kernels.
//
// Kernels are compiled once per instruction set (per-file compiler flags, see
// src/CMakeLists.txt) and only called after detect_isa() says the CPU and
// the OS (XSAVE state enabled in XCR0) support it. Nothing in Kiln assumes an
// ISA at compile time.
#pragma once

#include <string_view>
#include <vector>

namespace kiln::backends::cpu {

// Ordered from least to most capable; each level implies the ones below it.
enum class Isa {
  kGeneric = 0,  // portable C++ (baseline x86-64 / any target)
  kAvx2 = 1,     // AVX2 + FMA3
  kAvx512 = 2,   // AVX-512 F, BW, DQ, VL
};

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;  // vcvtps2ph / vcvtph2ps (with AVX state)
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512dq = false;
  bool avx512vl = false;
  bool avx512vnni = false;
  bool avx512vbmi = false;  // vpermb / vpermi2b: byte table lookups
  bool avxvnni = false;  // AVX-VNNI: vpdpbusd on ymm (VEX encoded)
  bool avx512bf16 = false;
};

// What the CPU and OS support, read once.
const CpuFeatures& cpu_features();

// The best ISA this machine runs, capped by the environment variable
// KILN_CPU_ISA ("generic", "avx2" or "avx512") when set: tests and benchmarks
// use it to force a lower path. Read once per process.
Isa detect_isa();

// Every ISA level this machine runs, up to detect_isa(), best first.
std::vector<Isa> supported_isas();

// True when the bf16 GEMM kernel (AVX-512 BF16 vdpbf16ps) can run: the CPU
// has AVX-512 BF16 and detect_isa() is kAvx512 (so KILN_CPU_ISA caps it too).
bool bf16_dot_supported();

// True when the F16C conversions (vcvtph2ps / vcvtps2ph) can run: the CPU
// has F16C and detect_isa() is at least kAvx2 (so KILN_CPU_ISA caps it too).
bool f16c_supported();

// "generic", "avx2", "avx512"; the suffix of tactic names.
std::string_view isa_name(Isa isa);

}  // namespace kiln::backends::cpu
