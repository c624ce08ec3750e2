// Losses, always computed in fp32 or wider (AMP casts the model output up
// first): the mean over the batch and the gradient with respect to the input.
#pragma once

#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::train {

struct LossValue {
  double value = 0;
  Tensor grad;  // d loss / d input, same dims and dtype as the input (float32 or float64)
};

// Softmax cross-entropy of logits [N, C] against integer labels [N] (int64
// or int32, each in [0, C)), averaged over N; log-sum-exp accumulated in the
// logits' type with the max subtracted.
Result<LossValue> softmax_cross_entropy(const Tensor& logits, const Tensor& labels);

// Mean squared error of `pred` against `target` (same dims), averaged over all elements.
Result<LossValue> mse_loss(const Tensor& pred, const Tensor& target);

}  // namespace kiln::train
