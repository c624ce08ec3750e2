#include "server/shared_memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"
#include "server/tensor_codec.h"

namespace kiln::server {
namespace {

constexpr size_t kMaxRegions = 4096;

bool add_overflows(uint64_t a, uint64_t b) { return a > UINT64_MAX - b; }

}  // namespace

ShmRegion::~ShmRegion() {
  if (map_ != nullptr) munmap(map_, map_size_);
}

Result<char*> ShmRegion::span(uint64_t offset, uint64_t size, const std::string& what) const {
  if (add_overflows(offset, size) || offset + size > info_.byte_size) {
    return invalid_argument(
        "{}: shared memory offset {} + byte size {} is outside region '{}' of {} bytes", what, offset, size,
        info_.name, info_.byte_size);
  }
  return base_ + offset;
}

Status SharedMemoryManager::check_enabled() const {
  if (enabled_) return Status::ok();
  return unavailable("system shared memory is disabled on this server (start kiln serve with --allow-client-shm true)");
}

Status SharedMemoryManager::register_region(const std::string& name, const std::string& key, uint64_t offset,
                                            uint64_t byte_size) {
  KILN_RETURN_IF_ERROR(check_enabled());
  if (name.empty()) return invalid_argument("a shared memory region needs a name");
  if (key.empty() || key.size() > 255) return invalid_argument("shared memory key must have 1 to 255 bytes");
  if (byte_size == 0) return invalid_argument("shared memory region '{}': byte_size must be > 0", name);
  if (add_overflows(offset, byte_size) || offset + byte_size > (uint64_t{1} << 46)) {
    return invalid_argument("shared memory region '{}': offset {} + byte_size {} is too large", name, offset, byte_size);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (regions_.count(name)) return invalid_argument("shared memory region '{}' already in manager", name);
    if (regions_.size() >= kMaxRegions) return resource_exhausted("more than {} shared memory regions", kMaxRegions);
  }
  int fd = shm_open(key.c_str(), O_RDWR, 0);
  if (fd < 0) {
    return invalid_argument("unable to open shared memory region '{}' with key '{}': {}", name, key,
                            std::strerror(errno));
  }
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    int err = errno;
    close(fd);
    return invalid_argument("unable to stat shared memory key '{}': {}", key, std::strerror(err));
  }
  if (static_cast<uint64_t>(st.st_size) < offset + byte_size) {
    close(fd);
    return invalid_argument(
        "shared memory region '{}': offset {} + byte_size {} is beyond the end of '{}' ({} bytes)", name, offset,
        byte_size, key, static_cast<uint64_t>(st.st_size));
  }
  size_t map_size = static_cast<size_t>(offset + byte_size);
  void* map = mmap(nullptr, map_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  int err = errno;
  close(fd);
  if (map == MAP_FAILED) {
    return invalid_argument("unable to map shared memory region '{}' (key '{}'): {}", name, key, std::strerror(err));
  }
  auto region = std::make_shared<ShmRegion>(ShmRegionInfo{name, key, offset, byte_size}, map, map_size,
                                            static_cast<char*>(map) + offset);
  std::lock_guard<std::mutex> lock(mu_);
  if (!regions_.emplace(name, std::move(region)).second) {
    return invalid_argument("shared memory region '{}' already in manager", name);
  }
  return Status::ok();
}

Status SharedMemoryManager::unregister(const std::string& name) {
  KILN_RETURN_IF_ERROR(check_enabled());
  std::lock_guard<std::mutex> lock(mu_);
  if (name.empty()) {
    regions_.clear();
    return Status::ok();
  }
  if (regions_.erase(name) == 0) return not_found("unable to find shared memory region: '{}'", name);
  return Status::ok();
}

Result<std::vector<ShmRegionInfo>> SharedMemoryManager::status(const std::string& name) const {
  KILN_RETURN_IF_ERROR(check_enabled());
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<ShmRegionInfo> out;
  if (!name.empty()) {
    auto it = regions_.find(name);
    if (it == regions_.end()) return not_found("unable to find system shared memory region: '{}'", name);
    out.push_back(it->second->info());
    return out;
  }
  for (const auto& [_, r] : regions_) out.push_back(r->info());
  return out;
}

Result<std::shared_ptr<ShmRegion>> SharedMemoryManager::get(const std::string& name) const {
  KILN_RETURN_IF_ERROR(check_enabled());
  std::lock_guard<std::mutex> lock(mu_);
  auto it = regions_.find(name);
  if (it == regions_.end()) return invalid_argument("unable to find shared memory region: '{}'", name);
  return it->second;
}

Result<std::map<std::string, std::shared_ptr<ShmRegion>>> SharedMemoryManager::resolve(InferRequest& request) const {
  for (InferInput& in : request.inputs) {
    if (!in.shm) continue;
    KILN_ASSIGN_OR_RETURN(std::shared_ptr<ShmRegion> region, get(in.shm->region));
    const std::string what = "input '" + in.name + "'";
    KILN_ASSIGN_OR_RETURN(char* data, region->span(in.shm->offset, in.shm->byte_size, what));
    KILN_ASSIGN_OR_RETURN(in.tensor, tensor_from_raw(in.name, in.shm_dtype, in.shm_shape,
                                                     std::string_view(data, static_cast<size_t>(in.shm->byte_size))));
    in.shm.reset();
  }
  std::map<std::string, std::shared_ptr<ShmRegion>> outputs;
  for (const auto& [name, ref] : request.output_shm) {
    KILN_ASSIGN_OR_RETURN(std::shared_ptr<ShmRegion> region, get(ref.region));
    KILN_RETURN_IF_ERROR(region->span(ref.offset, ref.byte_size, "output '" + name + "'").status());
    outputs.emplace(name, std::move(region));
  }
  return outputs;
}

Status SharedMemoryManager::write_outputs(const std::map<std::string, ShmRef>& refs,
                                          const std::map<std::string, std::shared_ptr<ShmRegion>>& regions,
                                          InferResponse& response) {
  std::string bytes;
  for (InferOutput& out : response.outputs) {
    auto ref = refs.find(out.name);
    if (ref == refs.end()) continue;
    bytes.clear();
    size_t n = append_raw(out.tensor, bytes);
    if (n > ref->second.byte_size) {
      return invalid_argument("output '{}' needs {} bytes but its shared_memory_byte_size is {}", out.name, n,
                              ref->second.byte_size);
    }
    const ShmRegion& region = *regions.at(out.name);
    KILN_ASSIGN_OR_RETURN(char* dst, region.span(ref->second.offset, n, "output '" + out.name + "'"));
    if (n > 0) std::memcpy(dst, bytes.data(), n);
    out.shm = ShmRef{ref->second.region, n, ref->second.offset};
  }
  return Status::ok();
}

}  // namespace kiln::server
