// Builds a small MLP-like graph lazily, runs backward, prints the gradients and the compiled
// schedule. Run: ./build/examples/autograd_basics
#include <iostream>

#include <xtensor/xio.hpp>

#include <pynn/pynn.hpp>

using namespace pynn;

int main() {
    manual_seed(42);
    Tensor x = Tensor::randn({4, 3}).set_name("x");
    Tensor w = Tensor::randn({3, 2}, 0.0, 0.5).set_requires_grad().set_name("w");
    Tensor b = Tensor::zeros({2}).set_requires_grad().set_name("b");

    Tensor h = relu(matmul(x, w) + b); // nothing computed yet: this only builds the DAG
    Tensor loss = mean(square(h));

    loss.backward(); // compile forward + backward into one plan, run it
    std::cout << "loss: " << loss.item() << "\n";
    std::cout << "dloss/dw:\n" << w.grad().values() << "\n";
    std::cout << "dloss/db:\n" << b.grad().values() << "\n\n";

    std::cout << ComputeGraph::backward(loss).to_string();
    return 0;
}
