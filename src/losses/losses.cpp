// Losses as composites of public ops: the compiler differentiates (and later fuses) them.
#include "pynn/losses.hpp"

#include "pynn/error.hpp"
#include "pynn/math.hpp"

namespace pynn::losses {

namespace {

constexpr double kProbEpsilon = 1e-7;

void check_same_shape(const char* op, const Tensor& a, const Tensor& b, const char* la,
                      const char* lb) {
    if (!a.defined() || !b.defined()) {
        throw ValueError(std::string(op) + ": an operand is an undefined Tensor");
    }
    if (a.shape() != b.shape()) {
        throw ShapeError(std::string(op) + ": " + la + " " + to_string(a.shape()) + " and " + lb +
                         " " + to_string(b.shape()) + ": shapes differ");
    }
}

// (N, C) one-hot targets from class ids (N) or an (N, C) one-hot tensor.
Tensor as_onehot(const char* op, const Tensor& scores, const Tensor& target) {
    if (!scores.defined() || !target.defined()) {
        throw ValueError(std::string(op) + ": an operand is an undefined Tensor");
    }
    if (scores.dim() != 2) {
        throw ShapeError(std::string(op) + ": input " + to_string(scores.shape()) +
                         " must be (batch, classes)");
    }
    if (target.dim() == 1 && target.shape()[0] == scores.shape()[0]) {
        return one_hot(target, scores.shape()[1]);
    }
    if (target.shape() == scores.shape()) {
        return target;
    }
    throw ShapeError(std::string(op) + ": input " + to_string(scores.shape()) + " and target " +
                     to_string(target.shape()) +
                     ": target must be class ids (batch) or one-hot (batch, classes)");
}

} // namespace

Tensor categorical_cross_entropy(const Tensor& pred_probs, const Tensor& onehot) {
    check_same_shape("categorical_cross_entropy", pred_probs, onehot, "pred", "target");
    Tensor p = clip(pred_probs, kProbEpsilon, 1.0 - kProbEpsilon);
    return -mean(sum(onehot * log(p), {-1}));
}

Tensor cross_entropy_with_logits(const Tensor& logits, const Tensor& target) {
    Tensor onehot = as_onehot("cross_entropy_with_logits", logits, target);
    return -mean(sum(onehot * log_softmax(logits, -1), {-1}));
}

Tensor nll_loss(const Tensor& log_probs, const Tensor& target) {
    Tensor onehot = as_onehot("nll_loss", log_probs, target);
    return -mean(sum(onehot * log_probs, {-1}));
}

Tensor binary_cross_entropy(const Tensor& pred_probs, const Tensor& target) {
    check_same_shape("binary_cross_entropy", pred_probs, target, "pred", "target");
    Tensor p = clip(pred_probs, kProbEpsilon, 1.0 - kProbEpsilon);
    return -mean(target * log(p) + (1.0 - target) * log(1.0 - p));
}

Tensor mse_loss(const Tensor& pred, const Tensor& target) {
    check_same_shape("mse_loss", pred, target, "pred", "target");
    return mean(square(pred - target));
}

} // namespace pynn::losses
