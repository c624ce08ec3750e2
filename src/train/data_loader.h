// DataLoader: mini-batches over in-memory samples with seeded shuffling.
//
// `x` holds N samples along its first dim (any dtype), `y` N labels or
// targets. Epoch e visits a permutation drawn from (seed, e), so a run is
// reproducible and every epoch differs; without shuffling samples come in order.
#pragma once

#include <cstdint>
#include <vector>

#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::train {

struct Batch {
  Tensor x;
  Tensor y;
};

class DataLoader {
 public:
  static Result<DataLoader> create(Tensor x, Tensor y, int64_t batch_size, bool shuffle = true, uint64_t seed = 0,
                                   bool drop_last = false);

  int64_t num_samples() const { return x_.dim(0); }
  int64_t batch_size() const { return batch_size_; }
  int64_t num_batches() const;
  // Draws the order of epoch `epoch` (call before the epoch's batches).
  void set_epoch(int64_t epoch);
  // Batch i of the current epoch (copies of the selected samples).
  Result<Batch> batch(int64_t i) const;

 private:
  Tensor x_, y_;
  int64_t batch_size_ = 1;
  bool shuffle_ = true;
  uint64_t seed_ = 0;
  bool drop_last_ = false;
  std::vector<int64_t> order_;
};

}  // namespace kiln::train
