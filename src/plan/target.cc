#include "plan/target.h"

#include <algorithm>

#include "core/error.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace kiln::plan {
namespace {

#if defined(__x86_64__) || defined(__i386__)
struct Regs {
  unsigned a = 0, b = 0, c = 0, d = 0;
};

Regs cpuid(unsigned leaf, unsigned sub) {
  Regs r;
  if (__get_cpuid_count(leaf, sub, &r.a, &r.b, &r.c, &r.d) == 0) return Regs{};
  return r;
}

// XCR0: which register states the OS saves (AVX needs bits 1-2, AVX-512 bits 5-7, AMX 17-18).
unsigned long long xcr0() {
  unsigned eax = 0, edx = 0;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<unsigned long long>(edx) << 32) | eax;
}

std::vector<std::string> read_features() {
  std::vector<std::string> f;
  const Regs l1 = cpuid(1, 0);
  const Regs l7 = cpuid(7, 0);
  const Regs l7s1 = cpuid(7, 1);
  const bool osxsave = (l1.c >> 27) & 1;
  const unsigned long long xcr = osxsave ? xcr0() : 0;
  const bool os_avx = (xcr & 0x6) == 0x6;
  const bool os_avx512 = os_avx && (xcr & 0xe0) == 0xe0;
  const bool os_amx = (xcr & 0x60000) == 0x60000;
  auto add = [&](bool on, const char* name) {
    if (on) f.emplace_back(name);
  };
  add((l1.c >> 20) & 1, "sse4_2");
  add(os_avx && ((l1.c >> 28) & 1), "avx");
  add(os_avx && ((l1.c >> 12) & 1), "fma");
  add(os_avx && ((l1.c >> 29) & 1), "f16c");
  add(os_avx && ((l7.b >> 5) & 1), "avx2");
  add(os_avx512 && ((l7.b >> 16) & 1), "avx512f");
  add(os_avx512 && ((l7.b >> 17) & 1), "avx512dq");
  add(os_avx512 && ((l7.b >> 30) & 1), "avx512bw");
  add(os_avx512 && ((l7.b >> 31) & 1), "avx512vl");
  add(os_avx512 && ((l7.c >> 11) & 1), "avx512_vnni");
  add(os_avx512 && ((l7s1.a >> 5) & 1), "avx512_bf16");
  add(os_avx512 && ((l7.d >> 23) & 1), "avx512_fp16");
  add(os_avx && ((l7s1.a >> 4) & 1), "avx_vnni");
  add(os_amx && ((l7.d >> 24) & 1), "amx_tile");
  add(os_amx && ((l7.d >> 25) & 1), "amx_int8");
  add(os_amx && ((l7.d >> 22) & 1), "amx_bf16");
  return f;
}
#else
std::vector<std::string> read_features() { return {}; }
#endif

const char* arch_name() {
#if defined(__x86_64__)
  return "x86_64";
#elif defined(__aarch64__)
  return "aarch64";
#else
  return "unknown";
#endif
}

}  // namespace

const Target& host_target() {
  static const Target target = [] {
    Target t;
    t.arch = arch_name();
    t.isa = read_features();
    return t;
  }();
  return target;
}

std::string tactic_isa(std::string_view tactic_name) {
  size_t dot = tactic_name.rfind('.');
  if (dot == std::string_view::npos) return "";
  std::string_view last = tactic_name.substr(dot + 1);
  // Tactic names say "avx512" for the AVX-512 foundation; other names are the feature's own.
  if (last == "avx512") return "avx512f";
  static const char* const kKnown[] = {"sse4_2",      "avx",         "avx2",        "fma",      "f16c",
                                       "avx512f",     "avx512dq",    "avx512bw",    "avx512vl", "avx512_vnni",
                                       "avx512_bf16", "avx512_fp16", "avx_vnni",    "amx_tile", "amx_int8",
                                       "amx_bf16"};
  for (const char* k : kKnown) {
    if (last == k) return k;
  }
  return "";
}

Status check_target(const Target& target) {
  const Target& host = host_target();
  if (!target.arch.empty() && target.arch != host.arch) {
    return failed_precondition("the plan was built for {}, this machine is {}; rebuild it here", target.arch,
                               host.arch);
  }
  std::vector<std::string> missing;
  for (const std::string& f : target.required) {
    if (std::find(host.isa.begin(), host.isa.end(), f) == host.isa.end()) missing.push_back(f);
  }
  if (!missing.empty()) {
    return failed_precondition("the plan needs CPU features this machine lacks: {} (this machine has: {}); "
                               "rebuild the plan here",
                               fmt::join(missing, ", "), fmt::join(host.isa, ", "));
  }
  return Status::ok();
}

std::string kiln_version() {
#ifdef KILN_VERSION
  return KILN_VERSION;
#else
  return "0.0.0";
#endif
}

}  // namespace kiln::plan
