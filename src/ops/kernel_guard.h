// Runs a kernel so that an allocation failure becomes an error, not an
// exception escaping into the caller: a hostile or corrupt model can ask a
// kernel for a scratch buffer larger than memory (e.g. an im2col of a huge
// dilated kernel) and must get a clear error back.
#pragma once

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

}  // namespace kiln::ops
