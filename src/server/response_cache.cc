#include "server/response_cache.h"

#include "server/tensor_codec.h"

namespace kiln::server {
namespace {

size_t tensor_bytes(const Tensor& t) {
  if (t.dtype() != DataType::kString) return t.nbytes();
  size_t n = 0;
  for (const std::string& s : t.span<std::string>()) n += s.size() + sizeof(std::string);
  return n;
}

void put_u64(std::string& out, uint64_t v) { out.append(reinterpret_cast<const char*>(&v), sizeof(v)); }

}  // namespace

std::string ResponseCache::key(const InferRequest& request, const std::string& version) {
  std::string k;
  auto put_str = [&](const std::string& s) {
    put_u64(k, s.size());
    k += s;
  };
  put_str(request.model_name);
  put_str(version);
  put_u64(k, request.inputs.size());
  for (const InferInput& in : request.inputs) {
    put_str(in.name);
    put_u64(k, static_cast<uint64_t>(in.tensor.dtype()));
    put_u64(k, in.tensor.dims().size());
    for (int64_t d : in.tensor.dims()) put_u64(k, static_cast<uint64_t>(d));
    std::string bytes;
    append_raw(in.tensor, bytes);
    put_str(bytes);
  }
  put_u64(k, request.requested_outputs.size());
  for (const std::string& o : request.requested_outputs) put_str(o);
  return k;
}

std::optional<std::vector<InferOutput>> ResponseCache::lookup(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = index_.find(key);
  if (it == index_.end()) return std::nullopt;
  lru_.splice(lru_.begin(), lru_, it->second);
  return it->second->outputs;
}

void ResponseCache::insert(const std::string& key, const std::vector<InferOutput>& outputs) {
  Entry e;
  e.key = key;
  e.bytes = key.size() * 2 + sizeof(Entry);
  for (const InferOutput& o : outputs) {
    e.outputs.push_back({o.name, o.tensor});
    e.bytes += o.name.size() + tensor_bytes(o.tensor);
  }
  if (e.bytes > capacity_) return;  // larger than the whole cache
  std::lock_guard<std::mutex> lock(mu_);
  if (index_.count(key)) return;
  while (bytes_ + e.bytes > capacity_ && !lru_.empty()) {
    bytes_ -= lru_.back().bytes;
    index_.erase(lru_.back().key);
    lru_.pop_back();
  }
  bytes_ += e.bytes;
  lru_.push_front(std::move(e));
  index_.emplace(key, lru_.begin());
}

size_t ResponseCache::bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return bytes_;
}

size_t ResponseCache::entries() const {
  std::lock_guard<std::mutex> lock(mu_);
  return lru_.size();
}

}  // namespace kiln::server
