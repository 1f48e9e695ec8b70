// pynn and libtorch (Debian's libtorch-dev) side by side in one process: the seed MLP (batch 64
// and 256) and the example CNN (batch 64), one training step and one inference pass each, with
// the same shapes, initial weights, batch and thread counts; prints per model both medians and
// the pynn/libtorch ratio. Built only with PYNN_BENCH_TORCH=ON when CMake finds Torch; the
// library itself never links libtorch. Kept in one translation unit: torch's headers are heavy.
//
//   vs_torch [--rounds R] [--block-seconds S] [--models mlp64,mlp256,cnn64] [--tasks train,infer]
//   vs_torch --config    (libtorch's build configuration and thread settings)
//
// Note [Timing the side-by-side]
// A manual loop rather than Google Benchmark. A ratio of two frameworks on a shared, noisy
// 2-core machine means something only if both sides see the same background load, and Google
// Benchmark runs each benchmark to completion before the next. So every (model, task) runs R
// rounds; a round runs one block per setting (pynn with 1 and 2 threads, libtorch with 1 or 2
// intra-op threads x 1 or 2 OpenBLAS threads), the order rotated each round; a block is two
// untimed warm-up steps, then steps timed one by one for about S seconds (at least 5). Blocks
// are separated by a 0.25 s sleep so that the spinning workers of the previous block (OpenMP's,
// OpenBLAS's: its idle threads spin for about 2^28 cycles) have gone to sleep. Medians and p90s are
// over all of a setting's steps.
//
// Threads: pynn's setting n is pynn::Flags::set_num_threads(n), with OpenBLAS's thread count put
// back to what pynn set at start-up (pynn decides how it uses OpenBLAS: today it keeps OpenBLAS
// at one thread and splits work over its own pool). libtorch runs its parallel loops and oneDNN
// convolutions on OpenMP (torch::set_num_threads) and its Linear layers on the same OpenBLAS as
// pynn (its libblas.so.3 is OpenBLAS here), whose thread count torch does not set; so a libtorch
// setting is (torch threads T, OpenBLAS threads B), and its "best 2-core setting" is the fastest
// of T, B in {1, 2}. Inter-op threads are 1 (nothing here forks).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <cblas.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <pynn/pynn.hpp>

#include "bench_support.hpp"

namespace {

using pynn_bench::ModelKind;

// --- settings ---

struct Setting {
    std::string name;
    bool torch;
    int threads;      // pynn: Flags threads; torch: intra-op threads
    int blas_threads; // torch only
};

const std::vector<Setting>& settings() {
    static const std::vector<Setting> s = {
        {"pynn 1", false, 1, 1},     {"pynn 2", false, 2, 2},     {"torch T1/B1", true, 1, 1},
        {"torch T1/B2", true, 1, 2}, {"torch T2/B1", true, 2, 1}, {"torch T2/B2", true, 2, 2}};
    return s;
}
constexpr std::size_t k_pynn1 = 0, k_pynn2 = 1, k_torch11 = 2;

// OpenBLAS's thread count as pynn set it up (read before anything else changes it).
int g_pynn_blas_threads = 1;

void apply(const Setting& s) {
    if (s.torch) {
        torch::set_num_threads(s.threads);
        openblas_set_num_threads(s.blas_threads);
    } else {
        openblas_set_num_threads(g_pynn_blas_threads);
        pynn::Flags::set_num_threads(s.threads);
    }
}

// --- the models in libtorch ---

struct TorchMlp : torch::nn::Module {
    TorchMlp()
        : l1(register_module("l1", torch::nn::Linear(784, 256))),
          l2(register_module("l2", torch::nn::Linear(256, 128))),
          l3(register_module("l3", torch::nn::Linear(128, 32))),
          l4(register_module("l4", torch::nn::Linear(32, 10))) {}
    torch::Tensor forward(const torch::Tensor& x) {
        torch::Tensor h = torch::relu(l1->forward(x));
        h = torch::relu(l2->forward(h));
        h = torch::relu(l3->forward(h));
        return torch::softmax(l4->forward(h), 1);
    }
    torch::nn::Linear l1, l2, l3, l4;
};

struct TorchCnn : torch::nn::Module {
    TorchCnn()
        : c1(register_module("c1",
                             torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 32, 3).padding(1)))),
          c2(register_module("c2",
                             torch::nn::Conv2d(torch::nn::Conv2dOptions(32, 64, 3).padding(1)))),
          d1(register_module("d1", torch::nn::Linear(3136, 128))),
          d2(register_module("d2", torch::nn::Linear(128, 10))) {}
    torch::Tensor forward(const torch::Tensor& x) {
        torch::Tensor h = x.view({x.size(0), 1, 28, 28});
        h = torch::max_pool2d(torch::relu(c1->forward(h)), 2);
        h = torch::max_pool2d(torch::relu(c2->forward(h)), 2);
        h = torch::relu(d1->forward(h.flatten(1)));
        return d2->forward(h);
    }
    torch::nn::Conv2d c1, c2;
    torch::nn::Linear d1, d2;
};

torch::Tensor to_torch(const xt::xarray<float>& v) {
    std::vector<std::int64_t> shape(v.shape().begin(), v.shape().end());
    return torch::from_blob(const_cast<float*>(v.data()), shape, torch::kFloat32).clone();
}

// The same model, weights, optimizer and batch on both sides.
struct SideBySide {
    ModelKind kind;
    std::size_t batch;
    std::unique_ptr<pynn_bench::PynnModel> pynn_model;
    std::shared_ptr<torch::nn::Module> torch_module;
    std::function<torch::Tensor(const torch::Tensor&)> torch_forward;
    std::unique_ptr<torch::optim::Adam> torch_optimizer;
    torch::Tensor x, onehot, labels;

    SideBySide(ModelKind k, std::size_t b) : kind(k), batch(b) {
        const pynn_bench::Batch data = pynn_bench::make_batch(b);
        pynn::manual_seed(0);
        pynn_model = std::make_unique<pynn_bench::PynnModel>(k, b, data);
        if (k == ModelKind::Mlp) {
            auto m = std::make_shared<TorchMlp>();
            torch_forward = [m](const torch::Tensor& in) { return m->forward(in); };
            torch_module = m;
        } else {
            auto m = std::make_shared<TorchCnn>();
            torch_forward = [m](const torch::Tensor& in) { return m->forward(in); };
            torch_module = m;
        }
        copy_weights();
        torch_optimizer = std::make_unique<torch::optim::Adam>(torch_module->parameters(),
                                                               torch::optim::AdamOptions(1e-3));
        x = to_torch(data.x);
        onehot = to_torch(data.onehot);
        std::vector<std::int64_t> ids(data.labels.begin(), data.labels.end());
        labels = torch::tensor(ids, torch::kInt64);
    }

    // pynn's parameters, in layer order, into torch's (registration order). A Dense weight is
    // (in, out), torch's Linear weight (out, in); conv weights are (out, in, kh, kw) on both.
    void copy_weights() {
        const std::vector<pynn::Tensor> src = pynn_model->model.parameters();
        std::vector<torch::Tensor> dst = torch_module->parameters();
        if (src.size() != dst.size()) {
            throw std::runtime_error("vs_torch: parameter counts differ");
        }
        torch::NoGradGuard no_grad;
        for (std::size_t i = 0; i < src.size(); ++i) {
            torch::Tensor v = to_torch(src[i].values<float>());
            if (v.dim() == 2) {
                v = v.t().contiguous();
            }
            if (v.sizes() != dst[i].sizes()) {
                std::ostringstream msg;
                msg << "vs_torch: parameter " << i << " pynn " << v.sizes() << " torch "
                    << dst[i].sizes();
                throw std::runtime_error(msg.str());
            }
            dst[i].copy_(v);
        }
    }

    torch::Tensor torch_loss(const torch::Tensor& out) const {
        if (kind == ModelKind::Mlp) { // pynn's categorical_cross_entropy: clip, log, mean
            return -(onehot * out.clamp(1e-7, 1.0 - 1e-7).log()).sum(1).mean();
        }
        return torch::nll_loss(torch::log_softmax(out, 1), labels);
    }

    float torch_train_step() {
        torch_module->zero_grad(/*set_to_none=*/true);
        torch::Tensor loss = torch_loss(torch_forward(x));
        loss.backward();
        torch_optimizer->step();
        return loss.item<float>();
    }

    float torch_infer() const {
        torch::NoGradGuard no_grad;
        torch::Tensor out = torch_forward(x);
        return out.data_ptr<float>()[0];
    }

    std::string name() const { return pynn_bench::model_name(kind) + " b" + std::to_string(batch); }

    // The first inference outputs and the first three training losses must agree.
    void check_equivalence() {
        apply({"pynn 1", false, 1, 1});
        torch::set_num_threads(1);
        const xt::xarray<float> p_out = [&] {
            pynn::NoGradGuard no_grad;
            return pynn_model->model(pynn_model->x).values<float>();
        }();
        torch::Tensor t_out;
        {
            torch::NoGradGuard no_grad;
            t_out = torch_forward(x).contiguous();
        }
        double out_diff = 0;
        for (std::size_t i = 0; i < p_out.size(); ++i) {
            out_diff =
                std::max(out_diff, std::abs(static_cast<double>(p_out.data()[i]) -
                                            static_cast<double>(t_out.data_ptr<float>()[i])));
        }
        double loss_diff = 0;
        std::string losses;
        for (int step = 0; step < 3; ++step) {
            const float lp = pynn_model->train_step();
            const float lt = torch_train_step();
            loss_diff = std::max(loss_diff, std::abs(static_cast<double>(lp) - lt));
            char buf[64];
            std::snprintf(buf, sizeof buf, "%s%.6f/%.6f", step ? ", " : "", lp, lt);
            losses += buf;
        }
        const bool ok = out_diff <= 1e-4 && loss_diff <= 1e-4;
        std::printf("%s %-9s inference max |diff| %.2e; first 3 losses pynn/torch %s (max |diff| "
                    "%.2e)\n",
                    ok ? "check ok:" : "WARNING: pynn and libtorch disagree:", name().c_str(),
                    out_diff, losses.c_str(), loss_diff);
    }
};

// --- timing ---

volatile float g_sink = 0; // keeps step results alive

void run_block(const std::function<float()>& step, double block_seconds,
               std::vector<double>& samples) {
    float acc = step();
    const auto t0 = std::chrono::steady_clock::now();
    acc += step();
    const double warm = pynn_bench::seconds_since(t0);
    const int n = std::clamp(static_cast<int>(block_seconds / std::max(warm, 1e-7)), 5, 500);
    for (int i = 0; i < n; ++i) {
        const auto t = std::chrono::steady_clock::now();
        acc += step();
        samples.push_back(pynn_bench::seconds_since(t));
    }
    g_sink = g_sink + acc;
}

struct Stats {
    double median = 0, p90 = 0;
    std::size_t count = 0;
};
Stats stats(const std::vector<double>& s) {
    return {pynn_bench::quantile(s, 0.5), pynn_bench::quantile(s, 0.9), s.size()};
}

struct Row {
    std::string model, task;
    int threads;
    Stats pynn, torch;
    std::string torch_setting;
    double goal;
};

std::string ms(double s) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3f", s * 1e3);
    return buf;
}

struct Options {
    int rounds = 7;
    double block_seconds = 0.15;
    std::vector<std::string> models = {"mlp64", "mlp256", "cnn64"};
    std::vector<std::string> tasks = {"train", "infer"};
};

std::vector<std::string> split(const std::string& s) {
    std::vector<std::string> out;
    std::stringstream ss(s);
    for (std::string item; std::getline(ss, item, ',');) {
        out.push_back(item);
    }
    return out;
}

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "vs_torch: %s needs a value\n", a.c_str());
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--rounds") {
            o.rounds = std::max(1, std::atoi(value().c_str()));
        } else if (a == "--block-seconds") {
            o.block_seconds = std::atof(value().c_str());
        } else if (a == "--models") {
            o.models = split(value());
        } else if (a == "--tasks") {
            o.tasks = split(value());
        } else if (a == "--config") { // how this libtorch was built, and its threads
            std::printf("%s\n%s", at::show_config().c_str(), at::get_parallel_info().c_str());
            std::exit(0);
        } else {
            std::fprintf(stderr,
                         "usage: vs_torch [--rounds R] [--block-seconds S] "
                         "[--models mlp64,mlp256,cnn64] [--tasks train,infer] [--config]\n");
            std::exit(a == "--help" || a == "-h" ? 0 : 2);
        }
    }
    return o;
}

// The goals issue 5 sets (pynn/libtorch time ratio); 0 where it sets none.
double goal_for(ModelKind kind, std::size_t batch, bool train, int threads) {
    if (!train) {
        return 0.7;
    }
    if (kind == ModelKind::Cnn) {
        return threads == 1 ? 0.7 : 0.8;
    }
    return batch == 64 || threads == 1 ? 0.6 : 0.0;
}

void print_rows(const std::vector<Row>& rows) {
    std::printf("\n%-10s %-6s %-7s %10s %10s %7s %10s %9s %9s  %s\n", "model", "task", "cores",
                "pynn ms", "torch ms", "ratio", "goal", "pynn p90", "torch p90",
                "torch setting (p90 as x median)");
    for (const Row& r : rows) {
        const double ratio = r.pynn.median / r.torch.median;
        char goal[24] = "-";
        if (r.goal > 0) {
            std::snprintf(goal, sizeof goal, "<=%.2f %s", r.goal, ratio <= r.goal ? "ok" : "MISS");
        }
        const double p90 = r.pynn.p90 / r.pynn.median;
        // Issue 5 also asks the MLP's 2-core training step for a p90 within 1.3x of its median.
        const bool p90_goal = r.model == "mlp b64" && r.task == "train" && r.threads == 2;
        std::printf(
            "%-10s %-6s %-7d %10s %10s %7.3f %10s %8.2fx %8.2fx  %s%s\n", r.model.c_str(),
            r.task.c_str(), r.threads, ms(r.pynn.median).c_str(), ms(r.torch.median).c_str(), ratio,
            goal, p90, r.torch.p90 / r.torch.median, r.torch_setting.c_str(),
            p90_goal ? (p90 <= 1.3 ? "; pynn p90 <=1.30x ok" : "; pynn p90 <=1.30x MISS") : "");
    }
}

} // namespace

int main(int argc, char** argv) {
    g_pynn_blas_threads = openblas_get_num_threads();
    const Options opt = parse(argc, argv);
    torch::set_num_interop_threads(1);
    std::printf("libtorch %s, mkldnn %s; OpenBLAS: %s\n", TORCH_VERSION,
                at::globalContext().userEnabledMkldnn() ? "on" : "off", openblas_get_config());
    std::printf("%d rounds x %zu settings per (model, task), blocks of ~%.2f s; times per step\n",
                opt.rounds, settings().size(), opt.block_seconds);

    std::vector<Row> rows;
    try {
        for (const std::string& m : opt.models) {
            const ModelKind kind = m.rfind("cnn", 0) == 0 ? ModelKind::Cnn : ModelKind::Mlp;
            const auto batch = static_cast<std::size_t>(std::stoul(m.substr(3)));
            SideBySide pair(kind, batch);
            pair.check_equivalence();
            for (const std::string& task : opt.tasks) {
                const bool train = task == "train";
                const std::function<float()> pynn_step = [&] {
                    return train ? pair.pynn_model->train_step() : pair.pynn_model->infer();
                };
                const std::function<float()> torch_step = [&] {
                    return train ? pair.torch_train_step() : pair.torch_infer();
                };
                std::vector<std::vector<double>> samples(settings().size());
                for (int r = 0; r < opt.rounds; ++r) {
                    for (std::size_t k = 0; k < settings().size(); ++k) {
                        const std::size_t i = (k + static_cast<std::size_t>(r)) % settings().size();
                        apply(settings()[i]);
                        std::this_thread::sleep_for(std::chrono::milliseconds(250));
                        run_block(settings()[i].torch ? torch_step : pynn_step, opt.block_seconds,
                                  samples[i]);
                    }
                }
                // The fastest of libtorch's settings on two cores (by median).
                std::size_t best = k_torch11;
                std::string all;
                for (std::size_t i = k_torch11; i < settings().size(); ++i) {
                    const Stats s = stats(samples[i]);
                    if (s.median < stats(samples[best]).median) {
                        best = i;
                    }
                    all += (i == k_torch11 ? "" : ", ") + settings()[i].name.substr(6) + " " +
                           ms(s.median) + " ms";
                }
                std::printf("%-9s %-5s libtorch on 2 cores: %s; best %s\n", pair.name().c_str(),
                            task.c_str(), all.c_str(), settings()[best].name.c_str());
                std::fflush(stdout);
                rows.push_back({pair.name(), task, 1, stats(samples[k_pynn1]),
                                stats(samples[k_torch11]), "T1/B1",
                                goal_for(kind, batch, train, 1)});
                rows.push_back({pair.name(), task, 2, stats(samples[k_pynn2]), stats(samples[best]),
                                "best: " + settings()[best].name.substr(6),
                                goal_for(kind, batch, train, 2)});
            }
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "vs_torch: %s\n", e.what());
        return 1;
    }
    print_rows(rows);
    return 0;
}
