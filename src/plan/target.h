// What a plan is built for: the CPU's architecture and ISA features.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "kiln/status.h"
#include "plan/plan.h"

namespace kiln::plan {

// This machine: "x86_64" (or the compiler's name for another architecture)
// and the CPU features that Kiln's kernels dispatch on, read once from cpuid:
// "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl",
// "avx512dq", "avx512_vnni", "avx512_bf16", "amx_tile", ...
const Target& host_target();

// The ISA feature a tactic name asks for by its last component
// ("own.conv.avx512" -> "avx512f", "own.gemm.avx2" -> "avx2"), or "" if none.
std::string tactic_isa(std::string_view tactic_name);

// OK if this machine can run a plan built for `target`; otherwise an error
// naming the architecture or the missing features.
Status check_target(const Target& target);

}  // namespace kiln::plan
