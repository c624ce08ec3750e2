// libFuzzer target: arbitrary bytes through the plan loader and, when a plan
// loads, engine creation (tactic lookup, memory plan checks). Any crash,
// sanitizer report or abort is a bug: malformed plans must come back as
// error Statuses. Seed the corpus with real plans (kiln build) so that the
// fuzzer mutates valid FlatBuffers metadata rather than the header only.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "core/logging.h"
#include "plan/plan_file.h"
#include "runtime/engine.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool quiet = [] {
    kiln::set_log_level("off");
    return true;
  }();
  (void)quiet;
  // A 64-byte aligned private copy, as mmap would give.
  std::shared_ptr<uint8_t> copy(static_cast<uint8_t*>(std::aligned_alloc(64, (size + 64) / 64 * 64)), std::free);
  if (!copy) return 0;
  if (size > 0) std::memcpy(copy.get(), data, size);
  auto plan = kiln::plan::load_plan_bytes(copy.get(), size, copy, "fuzz.plan");
  if (!plan.is_ok()) return 0;
  auto engine = kiln::runtime::Engine::create_from_plan(std::move(plan).value(), {.threads = 1});
  (void)engine;
  return 0;
}
