// ResponseCache: the server's response cache (Triton's local cache, enabled
// per model with response_cache { enable: true } and sized with
// --cache-config local,size=<bytes>). A response is keyed by the model,
// version, every input's name, datatype, shape and bytes, and the requested
// outputs; a hit answers without running the model. Least recently used
// entries are evicted to stay within the size.
#pragma once

#include <cstddef>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "server/inference.h"

namespace kiln::server {

class ResponseCache {
 public:
  explicit ResponseCache(size_t capacity_bytes) : capacity_(capacity_bytes) {}

  static std::string key(const InferRequest& request, const std::string& version);
  std::optional<std::vector<InferOutput>> lookup(const std::string& key);
  // Keeps a copy of `outputs` (their tensors share storage: cached tensors are never written).
  void insert(const std::string& key, const std::vector<InferOutput>& outputs);

  size_t capacity() const { return capacity_; }
  size_t bytes() const;
  size_t entries() const;

 private:
  struct Entry {
    std::string key;
    std::vector<InferOutput> outputs;
    size_t bytes = 0;
  };
  const size_t capacity_;
  mutable std::mutex mu_;
  std::list<Entry> lru_;  // front: most recent; guarded by mu_
  std::unordered_map<std::string, std::list<Entry>::iterator> index_;  // guarded by mu_
  size_t bytes_ = 0;                                                   // guarded by mu_
};

}  // namespace kiln::server
