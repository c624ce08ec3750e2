// Plan files: save a Plan, load it back without the ONNX model.
//
// Layout (little-endian):
//   [0, 64)   header: magic "KILNPLAN", u32 format version, u32 header size,
//             u64 metadata offset, u64 metadata size, u64 weights offset,
//             u64 weights size, u64 file size, u64 FNV-1a checksum of the metadata
//   metadata  FlatBuffers (plan.fbs): Kiln version, target, libraries, the
//             optimized graph with subgraphs and attributes, per-layer tactic
//             and kernel state, the memory plan and the shape profiles
//   weights   every tensor's raw bytes, each 64-byte aligned; loaded by mmap,
//             so constants borrow the mapping instead of being copied
// A loader checks every offset, size, index and enum before use: a truncated,
// corrupt or hostile file gives an error naming the problem, never a crash.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "kiln/status.h"
#include "plan/plan.h"

namespace kiln::plan {

inline constexpr char kPlanMagic[8] = {'K', 'I', 'L', 'N', 'P', 'L', 'A', 'N'};
inline constexpr size_t kPlanHeaderSize = 64;

// True if `bytes` starts with the plan magic (a prefix of a file suffices).
bool has_plan_magic(std::string_view bytes);
// True if the file at `path` starts with the plan magic.
bool is_plan_file(const std::string& path);

Status save_plan(const Plan& plan, const std::string& path);
// The whole file in memory (tests, the fuzzer, sending a plan elsewhere).
Result<std::string> serialize_plan(const Plan& plan);

struct LoadOptions {
  bool check_target = true;  // refuse plans needing CPU features this machine lacks
};

// Maps the file and reads it; constants borrow the mapping (kept alive by Plan::mapping).
Result<Plan> load_plan(const std::string& path, const LoadOptions& options = {});
// Reads a plan from memory; `owner` keeps `data` alive for the plan's constants.
Result<Plan> load_plan_bytes(const uint8_t* data, size_t size, std::shared_ptr<void> owner,
                             const std::string& name = "<bytes>", const LoadOptions& options = {});

}  // namespace kiln::plan
