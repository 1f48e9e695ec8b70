// Writes the seed MLP's training step (forward + backward, batch 64) as a Graphviz file, fused
// kernels drawn as clusters, prints the plan as text, and renders a PNG when `dot` is installed.
//
//   plan_graph [OUT.dot]      (default mlp_step.dot; PYNN_FUSION=0 shows the unfused graph)
#include <cstdlib>
#include <iostream>
#include <string>

#include <pynn/pynn.hpp>

using namespace pynn;

int main(int argc, char** argv) {
    const std::string path = argc > 1 ? argv[1] : "mlp_step.dot";
    auto x_input = Tensor::randn({64, 784});
    auto x = layers::Dense(784, 256, relu)(x_input);
    x = layers::Dense(256, 128, relu)(x);
    x = layers::Dense(128, 32, relu)(x);
    x = layers::Dense(32, 10, softmax)(x);
    models::Model model(x_input, x);
    Tensor labels = Tensor::zeros({64});
    Tensor loss = losses::categorical_cross_entropy(model(Tensor::randn({64, 784})),
                                                    one_hot(labels, 10));
    ComputeGraph step = ComputeGraph::backward(loss);
    std::cout << step.to_string();
    step.write_dot(path);
    std::cout << "wrote " << path << "\n";
    if (std::system("command -v dot > /dev/null 2>&1") == 0) {
        const std::string png = path.substr(0, path.rfind('.')) + ".png";
        if (std::system(("dot -Tpng '" + path + "' -o '" + png + "'").c_str()) == 0) {
            std::cout << "rendered " << png << "\n";
        }
    } else {
        std::cout << "install graphviz (apt-get install graphviz) to render it: dot -Tpng "
                  << path << " -o mlp_step.png\n";
    }
    return 0;
}
