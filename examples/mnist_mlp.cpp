// The seed's MLP, line for line: Dense 784-256-128-32-10 (relu, softmax), categorical
// cross-entropy, Adam, batch 64, on Fashion-MNIST from Debian's dataset-fashion-mnist package.
//
//   mnist_mlp [--data DIR] [--epochs N] [--batch-size B] [--lr LR] [--seed S]
//             [--checkpoint FILE [--resume]]
//
// Prints a progress bar per epoch, then `test accuracy: 0.XXXX`. With --checkpoint, saves the
// whole training state after every epoch; --resume continues from it, bit for bit as if the run
// had not stopped (with the same flags and one BLAS thread).
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
        std::size_t first_epoch = 0;
        if (opt.resume) {
            const io::StateDict state =
                examples::resume_training(opt.checkpoint, "mnist_mlp", model, optimizer, loader);
            schedule.load_state_dict(state.part("schedule")); // after the optimizer: sets its lr
            first_epoch = static_cast<std::size_t>(state.number("epoch"));
            std::printf("resumed from %s after epoch %zu of %zu\n", opt.checkpoint.c_str(),
                        first_epoch, opt.epochs);
        }
        for (std::size_t epoch = first_epoch; epoch < opt.epochs; ++epoch) {
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
            if (!opt.checkpoint.empty()) {
                io::StateDict state =
                    examples::training_state("mnist_mlp", epoch + 1, model, optimizer, loader);
                state.add("schedule", schedule.state_dict());
                io::save_state_dict(opt.checkpoint, state);
                std::printf("saved epoch %zu to %s (mean loss %.10f)\n", epoch + 1,
                            opt.checkpoint.c_str(), eloss / static_cast<double>(bar.done()));
            }
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
