// What the training examples share: command-line flags, a tqdm-like progress bar and test-set
// evaluation. Kept out of the library: it prints, and the library never does.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <string>

#include <xtensor/xview.hpp>

#include <pynn/data/dataloader.hpp>
#include <pynn/data/idx.hpp>
#include <pynn/io/safetensors.hpp>
#include <pynn/pynn.hpp>

namespace examples {

struct Options {
    std::string data_dir = "/usr/share/datasets/fashion-mnist";
    std::size_t epochs = 10; // the MLP's default; the CNN's is 5
    std::size_t batch_size = 64;
    double lr = 0.001;
    std::uint64_t seed = 42;
    std::string checkpoint; // --checkpoint FILE: saved after every epoch
    bool resume = false;    // --resume: continue from --checkpoint's epoch
    bool help = false;
    bool epochs_given = false; // --epochs was on the command line
};

inline Options parse_options(int argc, char** argv, const char* program, double default_lr) {
    Options o;
    o.lr = default_lr;
    auto usage = [&]() {
        std::cout
            << "usage: " << program
            << " [--data DIR] [--epochs N] [--batch-size B] [--lr LR] [--seed S]\n"
               "       [--checkpoint FILE [--resume]]\n"
               "  --data DIR         folder with MNIST-format files (default "
            << o.data_dir
            << ")\n"
               "  --checkpoint FILE  save model, optimizer and data order after every epoch\n"
               "                     (safetensors, replaced atomically)\n"
               "  --resume           continue from FILE's last epoch up to --epochs; the\n"
               "                     result equals an uninterrupted run with the same flags\n";
    };
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::cerr << program << ": " << arg << " needs a value\n";
                usage();
                std::exit(2);
            }
            return argv[++i];
        };
        try {
            if (arg == "--data") {
                o.data_dir = value();
            } else if (arg == "--epochs") {
                o.epochs = std::stoul(value());
                o.epochs_given = true;
            } else if (arg == "--batch-size") {
                o.batch_size = std::stoul(value());
            } else if (arg == "--lr") {
                o.lr = std::stod(value());
            } else if (arg == "--seed") {
                o.seed = std::stoull(value());
            } else if (arg == "--checkpoint") {
                o.checkpoint = value();
            } else if (arg == "--resume") {
                o.resume = true;
            } else if (arg == "--help" || arg == "-h") {
                usage();
                o.help = true;
            } else {
                std::cerr << program << ": unknown option " << arg << "\n";
                usage();
                std::exit(2);
            }
        } catch (const std::logic_error&) {
            std::cerr << program << ": bad value for " << arg << "\n";
            std::exit(2);
        }
    }
    if (o.batch_size == 0) {
        std::cerr << program << ": --batch-size must be positive\n";
        std::exit(2);
    }
    if (o.resume && o.checkpoint.empty()) {
        std::cerr << program << ": --resume needs --checkpoint FILE (the file to resume from)\n";
        std::exit(2);
    }
    return o;
}

// --- checkpoints (--checkpoint FILE, --resume) ---
// One safetensors file (pynn::io::StateDict) with everything the rest of a run depends on: the
// model's weights and buffers ("model."), the optimizer's step count, lr and moments
// ("optimizer."), the data loader's epoch ("data.", so the next epoch shuffles as it would have),
// the global generator ("rng") and the epochs done ("epoch"); the caller adds its schedule.
// Written after every epoch, atomically: a crash leaves the previous epoch's file.
inline pynn::io::StateDict training_state(const char* program, std::size_t epochs_done,
                                          const pynn::models::Model& model,
                                          const pynn::optimizers::Optimizer& optimizer,
                                          const pynn::data::DataLoader& loader) {
    pynn::io::StateDict state;
    state.set_text("program", program);
    state.set_number("epoch", static_cast<double>(epochs_done));
    state.add("model", model.state_dict());
    state.add("optimizer", optimizer.state_dict(model.parameters()));
    state.add("data", loader.state_dict());
    std::ostringstream rng;
    rng << pynn::Generator::global().engine();
    state.set_text("rng", rng.str());
    return state;
}

// Reads `path` and restores model, optimizer, loader and the global generator from it (the caller
// then restores its schedule from state.part("schedule")). Returns the state; its "epoch" is
// where training goes on. Throws pynn::Error if the file is missing or was written for another
// program, model or data order.
inline pynn::io::StateDict resume_training(const std::string& path, const char* program,
                                           pynn::models::Model& model,
                                           pynn::optimizers::Optimizer& optimizer,
                                           pynn::data::DataLoader& loader) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
        throw pynn::IOError("--resume: " + path +
                            " does not exist; run once without --resume to start a run that "
                            "writes it");
    }
    const pynn::io::StateDict state = pynn::io::load_state_dict(path);
    try {
        if (state.text("program") != program) {
            throw pynn::ValueError("it was written by " + state.text("program") + ", not " +
                                   program);
        }
        model.load_state_dict(state.part("model"));
        optimizer.load_state_dict(model.parameters(), state.part("optimizer"));
        loader.load_state_dict(state.part("data"));
        std::istringstream rng(state.text("rng"));
        rng >> pynn::Generator::global().engine();
        if (rng.fail()) {
            throw pynn::ValueError("value \"rng\" is not a generator state");
        }
    } catch (const pynn::ValueError& e) {
        throw pynn::ValueError("--resume: " + path + ": " + e.what());
    }
    return state;
}

// Shifts and scales train and test images by the training set's mean and standard deviation.
inline void standardize(pynn::data::MnistData& ds) {
    const double n = static_cast<double>(ds.train_images.size());
    double total = 0, squares = 0;
    for (float v : ds.train_images) {
        total += v;
        squares += static_cast<double>(v) * v;
    }
    const double mean = total / n;
    const double stddev = std::sqrt(squares / n - mean * mean);
    pynn::data::normalize(ds.train_images, static_cast<float>(mean), static_cast<float>(stddev));
    pynn::data::normalize(ds.test_images, static_cast<float>(mean), static_cast<float>(stddev));
}

// Rows where argmax(pred) equals argmax(onehot) (or the class id when targets are ids).
inline std::size_t count_correct(const pynn::Tensor& pred, const pynn::Tensor& target) {
    auto p = pred.values<float>();
    auto t = target.values<float>();
    std::size_t correct = 0;
    const std::size_t rows = p.shape()[0];
    const std::size_t classes = p.shape()[1];
    for (std::size_t r = 0; r < rows; ++r) {
        const float* pr = p.data() + r * classes;
        const std::size_t guess = static_cast<std::size_t>(std::max_element(pr, pr + classes) - pr);
        std::size_t truth = 0;
        if (t.dimension() == 2) {
            const float* tr = t.data() + r * classes;
            truth = static_cast<std::size_t>(std::max_element(tr, tr + classes) - tr);
        } else {
            truth = static_cast<std::size_t>(t(r));
        }
        correct += guess == truth ? 1 : 0;
    }
    return correct;
}

template <class Model>
double evaluate(const Model& model, const xt::xarray<float>& images,
                const xt::xarray<float>& labels, std::size_t batch = 1000) {
    pynn::NoGradGuard no_grad;
    std::size_t correct = 0;
    const std::size_t n = images.shape()[0];
    for (std::size_t begin = 0; begin < n; begin += batch) {
        const std::size_t end = std::min(n, begin + batch);
        xt::xarray<float> x = xt::view(images, xt::range(begin, end));
        xt::xarray<float> y = xt::view(labels, xt::range(begin, end));
        correct += count_correct(model(pynn::Tensor::from_values(x)), pynn::Tensor::from_values(y));
    }
    return static_cast<double>(correct) / static_cast<double>(n);
}

// epoch 1/10: 100%|##########| 938/938 [00:02<00:00, 412.3it/s, loss=0.5123, acc=0.8134]
class ProgressBar {
public:
    ProgressBar(std::size_t epoch, std::size_t epochs, std::size_t total)
        : m_epoch(epoch), m_epochs(epochs), m_total(total),
          m_start(std::chrono::steady_clock::now()) {}
    std::size_t done() const { return m_done; }
    void step(double loss, double acc) {
        ++m_done;
        m_loss = loss;
        m_acc = acc;
        if (m_done == m_total || m_done % 20 == 0) {
            draw();
        }
    }
    double seconds() const {
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - m_start).count();
    }
    // Ends the bar and reports the epoch's wall time (training steps only, no evaluation).
    void finish() {
        draw();
        const double elapsed = seconds();
        std::printf("\nepoch %zu/%zu time: %.3f s (%.1f steps/s, %.3f ms/step)\n", m_epoch,
                    m_epochs, elapsed, elapsed > 0 ? static_cast<double>(m_done) / elapsed : 0.0,
                    m_done ? 1e3 * elapsed / static_cast<double>(m_done) : 0.0);
        std::fflush(stdout);
    }

private:
    void draw() const {
        const double elapsed = seconds();
        const double rate = elapsed > 0 ? static_cast<double>(m_done) / elapsed : 0.0;
        const double remaining = rate > 0 ? static_cast<double>(m_total - m_done) / rate : 0.0;
        const std::size_t width = 20;
        const std::size_t filled = m_total ? m_done * width / m_total : width;
        std::string bar(filled, '#');
        bar.resize(width, ' ');
        std::printf("\repoch %zu/%zu: %3zu%%|%s| %zu/%zu [%s<%s, %.1fit/s, loss=%.4f, acc=%.4f]",
                    m_epoch, m_epochs, m_total ? m_done * 100 / m_total : 100, bar.c_str(),
                    m_done, m_total, clock(elapsed).c_str(), clock(remaining).c_str(), rate,
                    m_loss, m_acc);
        std::fflush(stdout);
    }
    static std::string clock(double seconds) {
        const auto s = static_cast<long>(seconds);
        char buf[32];
        std::snprintf(buf, sizeof buf, "%02ld:%02ld", s / 60, s % 60);
        return buf;
    }
    std::size_t m_epoch, m_epochs, m_total;
    std::size_t m_done = 0;
    double m_loss = 0, m_acc = 0;
    std::chrono::steady_clock::time_point m_start;
};

} // namespace examples
