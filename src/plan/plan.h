// Plan: an optimized model lowered to kernels, ready to run or to save.
//
// A Plan holds the optimized graph (weights as constants), the chosen tactic
// and serialized kernel state of every top-level node, the memory plan of its
// activations, the input shape profiles and what it was built for. The
// builder (builder.h) makes one from an ir::Model; plan_file.h saves and
// loads it; runtime::Engine runs it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "kiln/tensor.h"

namespace kiln::backends {
class Kernel;
}

namespace kiln::plan {

// The plan file format version this build writes and the newest it reads.
// History: 1 - first format (header, FlatBuffers metadata, weight section);
// 2 - kernel state moved from the metadata into the weight section.
inline constexpr uint32_t kFormatVersion = 2;

// The lowering of one top-level node.
struct Layer {
  std::string tactic;              // Tactic::name()
  std::vector<uint8_t> state;      // Kernel::serialize() at build time
  double time_ms = -1.0;           // measured on the opt shapes; -1 when not timed
  int candidates = 0;              // how many tactics supported the node
};

// How an activation's block is used.
enum class BlockKind : int8_t {
  kOwn = 0,      // the value owns its block; the kernel writes it from zero-filled memory
  kInPlace = 1,  // shares the block of an input that dies at this node (elementwise ops)
  kView = 2,     // a view of an input's storage (Reshape, Flatten, ...): never allocated itself
  kConcat = 3,   // a Concat output whose inputs were written straight into their slices of it
};

struct MemoryBlock {
  std::string value;  // top-level value name
  int64_t offset = 0;
  int64_t size = 0;   // bytes, at the profile's max shapes
  BlockKind kind = BlockKind::kOwn;
};

// Offsets of activations in one arena per execution context.
struct MemoryPlan {
  int64_t arena_bytes = 0;   // the peak: the arena's size
  int64_t naive_bytes = 0;   // the sum of all planned intermediates' sizes
  int64_t in_place = 0;      // values that reuse an input's block
  int64_t views = 0;         // values that are views of another value's block
  int64_t concats = 0;       // Concat nodes eliminated (inputs written in place)
  std::vector<MemoryBlock> blocks;
};

// One input's optimization profile: any shape with min <= dims <= max runs;
// timing uses opt, the memory plan max.
struct InputProfile {
  std::string name;
  Dims min, opt, max;
};

struct Target {
  std::string arch;                    // "x86_64"
  std::vector<std::string> isa;        // CPU features of the build machine
  std::vector<std::string> required;   // features the chosen tactics need
};

struct Plan {
  ir::Model model;                     // the optimized graph; constants may live in `mapping`
  std::vector<Layer> layers;           // one per top-level node, in graph order
  MemoryPlan memory;
  std::vector<InputProfile> profiles;
  Target target;
  std::string kiln_version;
  std::string precision = "fp32";
  int threads = 0;                     // the thread count tactics were timed with
  int64_t onnx_nodes = 0;              // node count of the source model
  std::map<std::string, std::string> libraries;
  std::shared_ptr<void> mapping;       // the mmap'd file that constants borrow from, if loaded
  // Kernels prepared by the builder, one per layer (not saved; empty after a
  // load, when the engine rebuilds them from each layer's tactic and state).
  std::vector<std::shared_ptr<const backends::Kernel>> kernels;
};

// This build's Kiln version ("0.1.0").
std::string kiln_version();

}  // namespace kiln::plan
