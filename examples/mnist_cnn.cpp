// A small CNN on Fashion-MNIST: Conv2d(1,32,3,pad 1)+ReLU+MaxPool2 -> Conv2d(32,64,3,pad 1)+ReLU
// +MaxPool2 -> Flatten -> Dense(3136,128,relu) -> Dense(128,10), cross-entropy with logits, Adam.
//
//   mnist_cnn [--data DIR] [--epochs N] [--batch-size B] [--lr LR] [--seed S]
//             [--checkpoint FILE [--resume]]
//
// Prints a progress bar per epoch, then `test accuracy: 0.XXXX`. --checkpoint and --resume as in
// mnist_mlp.
#include <cstdio>
#include <iostream>

#include <pynn/data/dataloader.hpp>
#include <pynn/data/idx.hpp>
#include <pynn/pynn.hpp>

#include "example_support.hpp"

using namespace pynn;

int main(int argc, char** argv) {
    examples::Options opt = examples::parse_options(argc, argv, "mnist_cnn", /*lr=*/0.001);
    if (opt.help) {
        return 0;
    }
    opt.epochs = opt.epochs_given ? opt.epochs : 5;
    try {
        manual_seed(opt.seed);
        data::MnistData ds = data::load_fashion_mnist(opt.data_dir);
        const std::size_t batch_size = opt.batch_size;

        auto x_input = Tensor::randn({batch_size, 784});
        auto x = layers::Lambda(
            [](const Tensor& t) { return reshape(t, {t.shape()[0], 1, 28, 28}); },
            "to_nchw")(x_input);
        x = layers::Conv2d(1, 32, 3, 1, 1, relu)(x);
        x = layers::MaxPool2d(2)(x);
        x = layers::Conv2d(32, 64, 3, 1, 1, relu)(x);
        x = layers::MaxPool2d(2)(x);
        x = layers::Flatten()(x);
        x = layers::Dense(3136, 128, relu)(x);
        x = layers::Dense(128, 10)(x);
        models::Model model(x_input, x);
        optimizers::Adam optimizer(opt.lr);
        std::cout << model.summary();

        data::DataLoader loader(ds.train_images, ds.train_labels, batch_size,
                                {.shuffle = true, .seed = opt.seed});
        std::size_t first_epoch = 0;
        if (opt.resume) {
            const io::StateDict state =
                examples::resume_training(opt.checkpoint, "mnist_cnn", model, optimizer, loader);
            first_epoch = static_cast<std::size_t>(state.number("epoch"));
            std::printf("resumed from %s after epoch %zu of %zu\n", opt.checkpoint.c_str(),
                        first_epoch, opt.epochs);
        }
        for (std::size_t epoch = first_epoch; epoch < opt.epochs; ++epoch) {
            examples::ProgressBar bar(epoch + 1, opt.epochs, loader.size());
            double eloss = 0;
            std::size_t correct = 0, seen = 0;
            for (const data::Batch& batch : loader) {
                Tensor logits = model(batch.x);
                Tensor loss = losses::cross_entropy_with_logits(logits, batch.y);
                loss.zero_grad();
                ComputeGraph::backward(loss, Tensor(), {logits}).run();
                optimizer.update(model.parameters());
                eloss += loss.item();
                correct += examples::count_correct(logits, batch.y);
                seen += batch.x.shape()[0];
                bar.step(eloss / static_cast<double>(bar.done() + 1),
                         static_cast<double>(correct) / static_cast<double>(seen));
            }
            bar.finish();
            if (!opt.checkpoint.empty()) {
                io::save_state_dict(
                    opt.checkpoint,
                    examples::training_state("mnist_cnn", epoch + 1, model, optimizer, loader));
                std::printf("saved epoch %zu to %s (mean loss %.10f)\n", epoch + 1,
                            opt.checkpoint.c_str(), eloss / static_cast<double>(bar.done()));
            }
        }

        model.eval();
        const double accuracy = examples::evaluate(model, ds.test_images, ds.test_labels, 500);
        std::printf("test accuracy: %.4f\n", accuracy);
    } catch (const Error& e) {
        std::cerr << "mnist_cnn: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
