// Loss functions, mean-reduced over the batch by default (as PyTorch's reduction="mean").
#pragma once

#include "pynn/tensor.hpp"

namespace pynn::losses {

// The seed's loss: probabilities (N, C) (e.g. a softmax output) against one-hot targets (N, C).
// Probabilities are clipped to [1e-7, 1 - 1e-7] before the log, as Keras does.
Tensor categorical_cross_entropy(const Tensor& pred_probs, const Tensor& onehot);
// Softmax + cross-entropy in one stable expression. `target` is class ids (N) or one-hot (N, C).
Tensor cross_entropy_with_logits(const Tensor& logits, const Tensor& target);
// Negative log-likelihood of log-probabilities (N, C) at class ids (N) or one-hot (N, C).
Tensor nll_loss(const Tensor& log_probs, const Tensor& target);
// Probabilities in (0, 1) against targets in [0, 1], same shape; clipped as above.
Tensor binary_cross_entropy(const Tensor& pred_probs, const Tensor& target);
Tensor mse_loss(const Tensor& pred, const Tensor& target);

} // namespace pynn::losses
