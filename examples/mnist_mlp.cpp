// The seed's MLP, line for line: Dense 784-256-128-32-10 (relu, softmax), categorical
// cross-entropy, Adam, batch 64, on Fashion-MNIST from Debian's dataset-fashion-mnist package.
//
//   mnist_mlp [--data DIR] [--epochs N] [--batch-size B] [--lr LR] [--seed S]
//
// Prints a progress bar per epoch, then `test accuracy: 0.XXXX`.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>

#include <xtensor/xview.hpp>

#include <pynn/data/dataloader.hpp>
#include <pynn/data/idx.hpp>
#include <pynn/pynn.hpp>

#include "example_support.hpp"

using namespace pynn;

int main(int argc, char** argv) {
    examples::Options opt = examples::parse_options(argc, argv, "mnist_mlp", /*lr=*/0.001);
    if (opt.help) {
        return 0;
    }
    try {
        manual_seed(opt.seed);
        data::MnistData ds = data::load_fashion_mnist(opt.data_dir);
        examples::standardize(ds); // torchvision's Normalize with the training set's mean/std
        const std::size_t batch_size = opt.batch_size;

        auto x_input = Tensor::randn({batch_size, 784}); // sample input that fixes the shapes
        auto x = layers::Dense(784, 256, relu)(x_input);
        x = layers::Dense(256, 128, relu)(x);
        x = layers::Dense(128, 32, relu)(x);
        x = layers::Dense(32, 10, softmax)(x);
        models::Model model(x_input, x);
        optimizers::Adam optimizer(opt.lr);
        optimizers::CosineAnnealingLR schedule(optimizer, static_cast<std::int64_t>(opt.epochs));
        std::cout << model.summary();

        data::DataLoader loader(ds.train_images, data::one_hot(ds.train_labels, 10), batch_size,
                                {.shuffle = true, .seed = opt.seed});
        for (std::size_t epoch = 0; epoch < opt.epochs; ++epoch) {
            examples::ProgressBar bar(epoch + 1, opt.epochs, loader.size());
            double eloss = 0;
            std::size_t correct = 0, seen = 0;
            for (const data::Batch& batch : loader) {
                Tensor pred = model(batch.x); // re-binds the input, still lazy
                Tensor loss = losses::categorical_cross_entropy(pred, batch.y);
                loss.zero_grad();
                // loss.backward(), also keeping the predictions for the running accuracy.
                ComputeGraph::backward(loss, Tensor(), {pred}).run();
                optimizer.update(model.parameters());
                eloss += loss.item();
                correct += examples::count_correct(pred, batch.y);
                seen += batch.x.shape()[0];
                bar.step(eloss / static_cast<double>(bar.done() + 1),
                         static_cast<double>(correct) / static_cast<double>(seen));
            }
            bar.finish();
            schedule.step();
        }

        model.eval();
        const double accuracy = examples::evaluate(model, ds.test_images, ds.test_labels);
        std::printf("test accuracy: %.4f\n", accuracy);
    } catch (const Error& e) {
        std::cerr << "mnist_mlp: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
