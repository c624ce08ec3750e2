// RateLimiter: Triton's rate limiter (kiln serve --rate-limit
// execution_count). Instances whose instance_group has a rate_limiter
// section execute only while they hold its resources; resources are shared
// by every model of the server. A resource's pool is the largest count any
// loaded instance asks for, unless --rate-limit-resource name:count sets it.
// When several instances wait, the one with the lowest rate_limiter priority
// value whose resources are free goes first (arrival order among equals).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "kiln/status.h"

namespace kiln::server {

using ResourceNeeds = std::map<std::string, uint64_t>;

class RateLimiter {
 public:
  explicit RateLimiter(std::map<std::string, uint64_t> fixed) : fixed_(fixed), pool_(std::move(fixed)) {}

  // Makes room for an instance that needs `needs` (a resource fixed by a
  // flag must be large enough, or the instance could never run).
  Status declare(const ResourceNeeds& needs);
  // Blocks until `needs` are free and no better-placed waiter can use them.
  void acquire(const ResourceNeeds& needs, uint32_t priority);
  void release(const ResourceNeeds& needs);

 private:
  bool fits(const ResourceNeeds& needs) const;

  const std::map<std::string, uint64_t> fixed_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, uint64_t> pool_;  // total per resource, guarded by mu_
  std::map<std::string, uint64_t> used_;  // guarded by mu_
  std::map<std::pair<uint32_t, uint64_t>, const ResourceNeeds*> waiters_;  // guarded by mu_
  uint64_t next_ticket_ = 0;                                                // guarded by mu_
};

}  // namespace kiln::server
