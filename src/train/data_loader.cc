#include "train/data_loader.h"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <random>

#include "core/error.h"

namespace kiln::train {

Result<DataLoader> DataLoader::create(Tensor x, Tensor y, int64_t batch_size, bool shuffle, uint64_t seed,
                                      bool drop_last) {
  if (!x.defined() || !y.defined() || x.rank() < 1 || y.rank() < 1) {
    return invalid_argument("DataLoader needs samples and labels with a leading sample dim");
  }
  if (x.dim(0) != y.dim(0)) return invalid_argument("DataLoader: {} samples but {} labels", x.dim(0), y.dim(0));
  if (x.dtype() == DataType::kString || y.dtype() == DataType::kString) {
    return invalid_argument("DataLoader does not batch string tensors");
  }
  if (batch_size <= 0) return invalid_argument("batch size must be positive, got {}", batch_size);
  DataLoader d;
  d.x_ = std::move(x);
  d.y_ = std::move(y);
  d.batch_size_ = batch_size;
  d.shuffle_ = shuffle;
  d.seed_ = seed;
  d.drop_last_ = drop_last;
  d.set_epoch(0);
  return d;
}

int64_t DataLoader::num_batches() const {
  int64_t n = num_samples();
  return drop_last_ ? n / batch_size_ : (n + batch_size_ - 1) / batch_size_;
}

void DataLoader::set_epoch(int64_t epoch) {
  order_.resize(static_cast<size_t>(num_samples()));
  std::iota(order_.begin(), order_.end(), 0);
  if (!shuffle_) return;
  std::mt19937_64 rng(seed_ * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(epoch));
  // Fisher-Yates with our own index draw: std::shuffle's is implementation-defined.
  for (size_t i = order_.size(); i > 1; --i) {
    size_t j = static_cast<size_t>(rng() % i);
    std::swap(order_[i - 1], order_[j]);
  }
}

namespace {

Result<Tensor> gather_rows(const Tensor& t, const int64_t* rows, int64_t count) {
  Dims dims = t.dims();
  dims[0] = count;
  KILN_ASSIGN_OR_RETURN(Tensor out, Tensor::allocate(t.dtype(), dims));
  size_t row_bytes = t.dim(0) == 0 ? 0 : t.nbytes() / static_cast<size_t>(t.dim(0));
  const char* src = static_cast<const char*>(t.raw_data());
  char* dst = static_cast<char*>(out.raw_data());
  for (int64_t i = 0; i < count; ++i) {
    std::memcpy(dst + static_cast<size_t>(i) * row_bytes, src + static_cast<size_t>(rows[i]) * row_bytes, row_bytes);
  }
  return out;
}

}  // namespace

Result<Batch> DataLoader::batch(int64_t i) const {
  if (i < 0 || i >= num_batches()) return out_of_range("batch {} of {}", i, num_batches());
  int64_t begin = i * batch_size_;
  int64_t count = std::min(batch_size_, num_samples() - begin);
  Batch b;
  KILN_ASSIGN_OR_RETURN(b.x, gather_rows(x_, order_.data() + begin, count));
  KILN_ASSIGN_OR_RETURN(b.y, gather_rows(y_, order_.data() + begin, count));
  return b;
}

}  // namespace kiln::train
