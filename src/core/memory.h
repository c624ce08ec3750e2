// Storage for large, long-lived buffers: packed weights, activation arenas,
// big tensors.
#pragma once

#include <cstddef>

namespace kiln {

// `bytes` (rounded up) of 64-byte aligned memory; free it with std::free.
// From 2 MiB up the block is aligned to 2 MiB and marked for transparent huge
// pages (madvise): a GEMM streaming a 9 MiB weight matrix panel by panel
// otherwise misses the TLB every 4 KiB (bert_base's 768x3072 layers ran 6%
// faster so). nullptr when out of memory.
void* allocate_aligned(size_t bytes);

}  // namespace kiln
