#include "server/rate_limiter.h"

#include "core/error.h"

namespace kiln::server {

Status RateLimiter::declare(const ResourceNeeds& needs) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [name, count] : needs) {
    auto fixed = fixed_.find(name);
    if (fixed != fixed_.end()) {
      if (fixed->second < count) {
        return invalid_argument("rate limiter resource '{}': an instance needs {} but --rate-limit-resource gives {}",
                                name, count, fixed->second);
      }
      continue;
    }
    uint64_t& total = pool_[name];
    total = std::max(total, count);
  }
  cv_.notify_all();
  return Status::ok();
}

bool RateLimiter::fits(const ResourceNeeds& needs) const {
  for (const auto& [name, count] : needs) {
    auto total = pool_.find(name);
    auto used = used_.find(name);
    uint64_t in_use = used == used_.end() ? 0 : used->second;
    if (total == pool_.end() || in_use + count > total->second) return false;
  }
  return true;
}

void RateLimiter::acquire(const ResourceNeeds& needs, uint32_t priority) {
  std::unique_lock<std::mutex> lock(mu_);
  const auto me = std::make_pair(priority, next_ticket_++);
  waiters_.emplace(me, &needs);
  cv_.wait(lock, [&] {
    if (!fits(needs)) return false;
    for (const auto& [key, other] : waiters_) {
      if (key >= me) break;
      if (fits(*other)) return false;  // a better-placed waiter can run now
    }
    return true;
  });
  waiters_.erase(me);
  for (const auto& [name, count] : needs) used_[name] += count;
}

void RateLimiter::release(const ResourceNeeds& needs) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [name, count] : needs) used_[name] -= std::min(used_[name], count);
  }
  cv_.notify_all();
}

}  // namespace kiln::server
