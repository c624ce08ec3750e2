// Runs a kernel so that an allocation failure becomes an error, not an
// exception escaping into the caller: a hostile or corrupt model can ask a
// kernel for a scratch buffer larger than memory (e.g. an im2col of a huge
// dilated kernel) and must get a clear error back.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <new>
#include <stdexcept>

#include "core/error.h"
#include "ir/graph.h"

namespace kiln::ops {

template <class F>
Status run_kernel_guarded(const ir::Node& node, F&& kernel) {
  try {
    return kernel();
  } catch (const std::bad_alloc&) {
    return resource_exhausted("{}: out of memory (the inputs or attributes ask for more than can be allocated)",
                              node.describe());
  } catch (const std::length_error&) {
    return resource_exhausted("{}: a buffer larger than the largest possible allocation was asked for",
                              node.describe());
  }
}

// An error when a kernel's scratch buffer of count x elem_size bytes could
// never fit in this machine's physical memory: refused before asking the
// allocator, which may overcommit (and be killed later) or, under ASan, abort.
inline Status check_scratch(int64_t count, int64_t elem_size, const char* what) {
  int64_t bytes = 0;
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
  const int64_t memory = pages > 0 && page > 0 ? static_cast<int64_t>(pages) * page : INT64_MAX;
  if (count < 0 || __builtin_mul_overflow(count, elem_size, &bytes) || bytes > memory) {
    return resource_exhausted("the {} would need {} elements of {} bytes, more than this machine's memory", what,
                              count, elem_size);
  }
  return Status::ok();
}

}  // namespace kiln::ops
