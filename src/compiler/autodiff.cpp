// The autodiff pass. Gradient contributions from several users of a node are summed with add
// nodes; the new nodes are built under NoGradGuard (pynn does first-order gradients only).
#include "compiler/autodiff.hpp"

#include <optional>

#include "ops/builder.hpp"
#include "pynn/flags.hpp"
#include "pynn/math.hpp"

namespace pynn::compiler {

std::unordered_map<Node*, Tensor> autodiff(const Tensor& loss, const Tensor& seed,
                                           const std::vector<Node*>& order) {
    NoGradGuard no_grad;
    std::unordered_map<Node*, Tensor> grads;
    grads[loss.node().get()] = seed;
    std::unordered_map<Node*, Tensor> leaf_grads;
    for (auto it = order.rbegin(); it != order.rend(); ++it) {
        Node* node = *it;
        auto found = grads.find(node);
        if (found == grads.end() || !node->requires_grad) {
            continue;
        }
        Tensor grad_out = found->second;
        grads.erase(found);
        if (node->is_leaf()) {
            leaf_grads[node] = grad_out;
            continue;
        }
        std::vector<Tensor> inputs;
        inputs.reserve(node->inputs.size());
        for (const NodePtr& in : node->inputs) {
            inputs.emplace_back(in);
        }
        Tensor output(node->shared_from_this());
        GradArgs args{inputs, output, grad_out};
        std::optional<NodeScope> scope; // anomaly reports: which forward op this gradient is of
        if (Flags::detect_anomaly()) {
            scope.emplace(std::make_shared<const std::string>(
                "backward of " + std::string(op_name(node->op)) +
                (node->scope ? " in " + *node->scope : std::string())));
        }
        std::vector<Tensor> input_grads =
            std::visit([&](const auto& op) { return op.backward(args); }, node->op);
        PYNN_ASSERT(input_grads.size() == inputs.size(), op_name(node->op), " backward returned ",
                    input_grads.size(), " gradients for ", inputs.size(), " inputs");
        for (std::size_t i = 0; i < inputs.size(); ++i) {
            Node* in = node->inputs[i].get();
            const Tensor& g = input_grads[i];
            if (!in->requires_grad || !g.defined()) {
                continue;
            }
            PYNN_ASSERT(g.shape() == in->shape, op_name(node->op), " backward gave input ", i,
                        " a gradient of shape ", to_string(g.shape()), " for an input of shape ",
                        to_string(in->shape));
            auto [slot, inserted] = grads.try_emplace(in, g);
            if (!inserted) {
                slot->second = slot->second + g;
            }
        }
    }
    return leaf_grads;
}

} // namespace pynn::compiler

namespace pynn {

std::vector<Tensor> gradients(const Tensor& loss, const std::vector<Tensor>& wrt,
                              const Tensor& seed) {
    check_defined("gradients", loss, "loss");
    PYNN_CHECK(loss.requires_grad(), ValueError, "gradients: loss ", to_string(loss.shape()),
               " does not require grad: no leaf it depends on has requires_grad set (or it was "
               "built under NoGradGuard)");
    Tensor s = seed;
    if (s.defined()) {
        PYNN_CHECK(s.shape() == loss.shape(), ShapeError, "gradients: loss ",
                   to_string(loss.shape()), " and seed gradient ", to_string(s.shape()),
                   ": shapes differ");
        check_same_dtype("gradients", loss, s, "loss", "seed gradient");
        s = s.detach();
    } else {
        PYNN_CHECK(loss.numel() == 1, ShapeError, "gradients: loss ", to_string(loss.shape()),
                   " has ", loss.numel(),
                   " elements; without a seed gradient it must be a scalar (reduce it with "
                   "sum() or mean(), or pass a seed)");
        NoGradGuard no_grad;
        s = Tensor::ones(loss.shape(), loss.dtype());
    }
    for (std::size_t i = 0; i < wrt.size(); ++i) {
        check_defined("gradients", wrt[i], "wrt[" + std::to_string(i) + "]");
        PYNN_CHECK(wrt[i].is_leaf() && wrt[i].requires_grad(), ValueError, "gradients: wrt[", i,
                   "] ", to_string(wrt[i].shape()),
                   wrt[i].is_leaf() ? " does not require grad"
                                    : " is not a leaf (gradients are taken with respect to "
                                      "leaves, e.g. parameters)");
    }
    const std::vector<Node*> order = topological_order({loss.node().get()});
    std::unordered_map<Node*, Tensor> grads = compiler::autodiff(loss, s, order);
    std::vector<Tensor> result;
    for (const Tensor& w : wrt) {
        auto it = grads.find(w.node().get());
        NoGradGuard no_grad;
        result.push_back(it != grads.end() ? it->second : Tensor::zeros(w.shape(), w.dtype()));
    }
    return result;
}

} // namespace pynn
