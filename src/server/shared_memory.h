// System shared memory (Triton's system_shared_memory extension): clients
// register a POSIX shared-memory object (shm_open key, offset, byte size)
// under a region name, then name regions in requests instead of sending
// tensor bytes: inputs are read from, and outputs written to, the region.
// Every offset and size a client gives is checked against the region and
// the object's real size, so hostile values get an error, never a fault.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/status.h"
#include "kiln/tensor.h"
#include "server/inference.h"

namespace kiln::server {

struct ShmRegionInfo {
  std::string name;
  std::string key;
  uint64_t offset = 0;
  uint64_t byte_size = 0;
};

// One mapped region; unmapped when the last user lets go of it, so an
// unregister during a request in flight is safe.
class ShmRegion {
 public:
  ShmRegion(ShmRegionInfo info, void* map, size_t map_size, char* base)
      : info_(std::move(info)), map_(map), map_size_(map_size), base_(base) {}
  ~ShmRegion();
  ShmRegion(const ShmRegion&) = delete;
  ShmRegion& operator=(const ShmRegion&) = delete;
  const ShmRegionInfo& info() const { return info_; }
  // [offset, offset + size) of the region, or an error naming `what` when it is out of bounds.
  Result<char*> span(uint64_t offset, uint64_t size, const std::string& what) const;

 private:
  ShmRegionInfo info_;
  void* map_;
  size_t map_size_;
  char* base_;  // map_ + info_.offset
};

class SharedMemoryManager {
 public:
  explicit SharedMemoryManager(bool enabled) : enabled_(enabled) {}

  Status register_region(const std::string& name, const std::string& key, uint64_t offset, uint64_t byte_size);
  // Empty name: every region. Unregistering an unknown name is an error.
  Status unregister(const std::string& name);
  // Empty name: every region; an unknown name is NotFound.
  Result<std::vector<ShmRegionInfo>> status(const std::string& name) const;
  Result<std::shared_ptr<ShmRegion>> get(const std::string& name) const;

  // Replaces the shared-memory inputs of `request` by tensors read from
  // their regions, and checks its shared-memory outputs' regions; returns
  // the regions the outputs will be written to.
  Result<std::map<std::string, std::shared_ptr<ShmRegion>>> resolve(InferRequest& request) const;
  // Writes the outputs that `request` asked for in shared memory into their
  // regions and marks them so the frontends send no data for them.
  static Status write_outputs(const std::map<std::string, ShmRef>& refs,
                              const std::map<std::string, std::shared_ptr<ShmRegion>>& regions,
                              InferResponse& response);

 private:
  Status check_enabled() const;
  const bool enabled_;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<ShmRegion>> regions_;  // guarded by mu_
};

}  // namespace kiln::server
