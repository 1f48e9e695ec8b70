// Resuming from a checkpoint: two epochs in one go and one epoch, a save, fresh objects, a load and
// one more epoch give bit-identical losses, weights and optimizer state, for every optimizer, with
// a schedule, a BatchNorm buffer, a Dropout generator and a shuffling DataLoader in the state. Plus
// the pieces on their own: StateDict, DataLoader::set_epoch and the schedules' state.
#include <filesystem>
#include <memory>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>

#include <catch2/catch.hpp>

#include <pynn/data/dataloader.hpp>
#include <pynn/io/safetensors.hpp>
#include <pynn/pynn.hpp>

namespace fs = std::filesystem;
using namespace pynn;

namespace {

enum class Kind { Adam, AdamW, SgdMomentum, SgdNesterov, RMSprop, PlainSgd };

std::string kind_name(Kind k) {
    switch (k) {
    case Kind::Adam: return "Adam + CosineAnnealingLR";
    case Kind::AdamW: return "AdamW";
    case Kind::SgdMomentum: return "SGD with momentum + StepLR";
    case Kind::SgdNesterov: return "SGD with Nesterov momentum";
    case Kind::RMSprop: return "RMSprop";
    case Kind::PlainSgd: return "SGD without momentum";
    }
    return "?";
}

// 44 samples of 6 features in 3 classes: batches of 8 leave a last batch of 4.
std::pair<xt::xarray<float>, xt::xarray<float>> synthetic_data() {
    Generator gen(123);
    xt::xarray<float> x = Tensor::randn({44, 6}, 0.0, 1.0, DType::Float32, &gen).values<float>();
    xt::xarray<float> y = xt::zeros<float>({44});
    for (std::size_t i = 0; i < 44; ++i) {
        y(i) = static_cast<float>((x(i, 0) + x(i, 1) > 0.0F ? 1 : 0) + (x(i, 2) > 0.5F ? 1 : 0));
    }
    return {x, y};
}

models::Model build_model(std::uint64_t init_seed) {
    manual_seed(init_seed);
    Tensor x_input = Tensor::randn({8, 6});
    Tensor h = layers::Dense(6, 10)(x_input);
    h = layers::BatchNorm1d(10)(h); // a buffer (running statistics) in the state
    h = layers::Lambda([](const Tensor& t) { return relu(t); }, "relu")(h);
    h = layers::Dropout(0.25, init_seed)(h); // its generator's state (extra state) too
    Tensor logits = layers::Dense(10, 3)(h);
    return models::Model(x_input, logits);
}

// Everything a training run holds; init_seed only changes the initial weights.
class Trainer {
public:
    Trainer(Kind kind, std::uint64_t init_seed)
        : m_model(build_model(init_seed)), m_loader(synthetic_data().first, synthetic_data().second,
                                                    8, {.shuffle = true, .seed = 5}) {
        switch (kind) {
        case Kind::Adam:
            m_optimizer = std::make_unique<optimizers::Adam>(0.01, 0.9, 0.999, 1e-8, 0.001);
            m_cosine = std::make_unique<optimizers::CosineAnnealingLR>(*m_optimizer, 3, 0.001);
            break;
        case Kind::AdamW: m_optimizer = std::make_unique<optimizers::AdamW>(0.01); break;
        case Kind::SgdMomentum:
            m_optimizer = std::make_unique<optimizers::SGD>(0.05, 0.9, 0.001, false, 0.1);
            m_step_lr = std::make_unique<optimizers::StepLR>(*m_optimizer, 1, 0.5);
            break;
        case Kind::SgdNesterov:
            m_optimizer = std::make_unique<optimizers::SGD>(0.05, 0.9, 0.0, true);
            break;
        case Kind::RMSprop: m_optimizer = std::make_unique<optimizers::RMSprop>(0.01); break;
        case Kind::PlainSgd: m_optimizer = std::make_unique<optimizers::SGD>(0.1); break;
        }
    }

    // One epoch; the loss of every step.
    std::vector<double> epoch() {
        std::vector<double> losses;
        for (const data::Batch& batch : m_loader) {
            Tensor loss = losses::cross_entropy_with_logits(m_model(batch.x), batch.y);
            loss.zero_grad();
            loss.backward();
            m_optimizer->update(m_model.parameters());
            losses.push_back(loss.item());
        }
        if (m_cosine) {
            m_cosine->step();
        }
        if (m_step_lr) {
            m_step_lr->step();
        }
        return losses;
    }

    io::StateDict state() const {
        io::StateDict s;
        s.add("model", m_model.state_dict());
        s.add("optimizer", m_optimizer->state_dict(m_model.parameters()));
        s.add("data", m_loader.state_dict());
        if (m_cosine) {
            s.add("schedule", m_cosine->state_dict());
        }
        if (m_step_lr) {
            s.add("schedule", m_step_lr->state_dict());
        }
        return s;
    }

    void load(const io::StateDict& s) {
        m_model.load_state_dict(s.part("model"));
        m_optimizer->load_state_dict(m_model.parameters(), s.part("optimizer"));
        m_loader.load_state_dict(s.part("data"));
        if (m_cosine) {
            m_cosine->load_state_dict(s.part("schedule"));
        }
        if (m_step_lr) {
            m_step_lr->load_state_dict(s.part("schedule"));
        }
    }

    double lr() const { return m_optimizer->lr(); }

private:
    models::Model m_model;
    data::DataLoader m_loader;
    std::unique_ptr<optimizers::Optimizer> m_optimizer;
    std::unique_ptr<optimizers::CosineAnnealingLR> m_cosine;
    std::unique_ptr<optimizers::StepLR> m_step_lr;
};

// A state's tensors as exact values, and its values, for comparison.
using Snapshot = std::pair<std::vector<std::pair<std::string, std::vector<double>>>, io::Metadata>;
Snapshot snapshot(const io::StateDict& s) {
    Snapshot out;
    for (const auto& [name, t] : s.tensors) {
        std::vector<double> v;
        if (t.dtype() == DType::Float64) {
            for (double x : t.values<double>()) {
                v.push_back(x);
            }
        } else {
            for (float x : t.values<float>()) {
                v.push_back(x);
            }
        }
        out.first.emplace_back(name, std::move(v));
    }
    out.second = s.values;
    return out;
}

std::string temp_file(const std::string& name) {
    const fs::path dir =
        fs::temp_directory_path() / ("pynn_test_resume_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    return (dir / name).string();
}

} // namespace

TEST_CASE("a run resumed from a checkpoint is bit-identical to an uninterrupted one", "[nn][io]") {
    const Kind kind = GENERATE(Kind::Adam, Kind::AdamW, Kind::SgdMomentum, Kind::SgdNesterov,
                               Kind::RMSprop, Kind::PlainSgd);
    INFO(kind_name(kind));
    const std::string path = temp_file("resume.safetensors");

    Trainer straight(kind, 1);
    const std::vector<double> first = straight.epoch();
    const std::vector<double> second = straight.epoch();

    std::vector<double> resumed_first, resumed_second;
    {
        Trainer before(kind, 1);
        resumed_first = before.epoch();
        io::save_state_dict(path, before.state());
    }
    Trainer after(kind, 99); // other initial weights: everything must come from the file
    CHECK(snapshot(after.state()) != snapshot(straight.state()));
    after.load(io::load_state_dict(path));
    resumed_second = after.epoch();

    REQUIRE(first.size() == 6);
    CHECK(first == resumed_first); // exact: no tolerance
    CHECK(second == resumed_second);
    CHECK(second != first);
    CHECK(after.lr() == straight.lr());
    const Snapshot a = snapshot(straight.state());
    const Snapshot b = snapshot(after.state());
    CHECK(a.second == b.second); // steps, lr, epochs, schedule
    REQUIRE(a.first.size() == b.first.size());
    for (std::size_t i = 0; i < a.first.size(); ++i) {
        INFO(a.first[i].first);
        CHECK(a.first[i] == b.first[i]); // weights, running statistics, optimizer moments
    }
    fs::remove_all(fs::path(path).parent_path());
}

TEST_CASE("Optimizer::state_dict names the state as torch.optim does, and copies it", "[nn][io]") {
    Tensor p = Tensor::from_values({1.0, 2.0}).set_requires_grad();
    Tensor q = Tensor::from_values({3.0}).set_requires_grad();
    optimizers::Adam adam(0.1);
    (p * p).sum().backward(); // q gets no gradient, so no state
    adam.update({p, q});
    io::StateDict s = adam.state_dict({p, q});
    CHECK(s.text("type") == "Adam");
    CHECK(s.number("steps") == 1.0);
    CHECK(s.number("lr") == 0.1);
    REQUIRE(s.tensors.size() == 2);
    CHECK(s.tensors[0].first == "0.exp_avg");
    CHECK(s.tensors[1].first == "0.exp_avg_sq");
    const xt::xarray<float> m = s.tensor("0.exp_avg").values<float>();
    p.zero_grad();
    (p * p).sum().backward();
    adam.update({p, q});
    const bool same = s.tensor("0.exp_avg").values<float>() == m; // a snapshot, not the live slot
    CHECK(same);
    const bool changed = adam.state_dict({p, q}).tensor("0.exp_avg").values<float>() != m;
    CHECK(changed);

    optimizers::SGD plain(0.1);
    CHECK(plain.state_dict({p}).tensors.empty());
    optimizers::SGD momentum(0.1, 0.9);
    momentum.update({p});
    CHECK(momentum.state_dict({p}).tensors.at(0).first == "0.momentum_buffer");
    CHECK(optimizers::RMSprop().slot_names() == std::vector<std::string>{"square_avg"});
    CHECK(optimizers::AdamW().name() == "AdamW");
}

TEST_CASE("a schedule's state is its epoch and base lr; t_max comes from its constructor",
          "[nn][io]") {
    optimizers::SGD short_opt(0.1);
    optimizers::CosineAnnealingLR short_run(short_opt, 1);
    short_run.step(); // the end of a 1-epoch run: lr 0
    CHECK(short_opt.lr() == 0.0);

    optimizers::SGD long_opt(0.1);
    optimizers::CosineAnnealingLR long_run(long_opt, 2);
    long_run.step();

    optimizers::SGD resumed_opt(0.5);
    optimizers::CosineAnnealingLR resumed(resumed_opt, 2);
    resumed_opt.load_state_dict({}, short_opt.state_dict({}));
    resumed.load_state_dict(short_run.state_dict()); // the 2-epoch schedule at epoch 1
    CHECK(resumed.epoch() == 1);
    CHECK(resumed_opt.lr() == long_opt.lr());
    resumed.step();
    long_run.step();
    CHECK(resumed_opt.lr() == long_opt.lr());

    optimizers::SGD step_opt(1.0);
    optimizers::StepLR step(step_opt, 2, 0.5);
    step.step();
    step.step();
    step.step();
    optimizers::SGD other_opt(7.0);
    optimizers::StepLR other(other_opt, 2, 0.5);
    other.load_state_dict(step.state_dict());
    CHECK(other_opt.lr() == 0.5);
    CHECK(other.state_dict().values == step.state_dict().values);
}

TEST_CASE("DataLoader::set_epoch replays the seeded permutations", "[data][io]") {
    const auto [x, y] = synthetic_data();
    data::DataLoader a(x, y, 8, {.shuffle = true, .seed = 11});
    std::vector<std::vector<std::size_t>> orders;
    for (int e = 0; e < 4; ++e) {
        a.begin();
        orders.push_back(a.order());
    }
    CHECK(orders[0] != orders[1]);
    data::DataLoader b(x, y, 8, {.shuffle = true, .seed = 11});
    b.set_epoch(2);
    CHECK(b.epoch() == 2);
    CHECK(b.order() == orders[1]);
    b.begin();
    CHECK(b.order() == orders[2]);

    data::DataLoader c(x, y, 8, {.shuffle = true, .seed = 11});
    c.begin();
    c.load_state_dict(a.state_dict()); // back to after epoch 4, forwards from epoch 1
    CHECK(c.epoch() == 4);
    c.begin();
    a.begin();
    CHECK(c.order() == a.order());
    b.set_epoch(0);
    std::vector<std::size_t> in_order(44);
    std::iota(in_order.begin(), in_order.end(), std::size_t{0});
    CHECK(b.order() == in_order);
}

TEST_CASE("StateDict keeps numbers exactly and joins parts under prefixes", "[io]") {
    io::StateDict s;
    s.set_number("lr", 0.1 * 3.0); // 0.30000000000000004
    s.set_number("steps", 9007199254740992.0);
    s.set_number("tiny", 5e-324);
    s.set_text("name", "x");
    CHECK(s.values.at("steps") == "9007199254740992");
    io::StateDict outer;
    outer.add("opt", s);
    outer.tensors.emplace_back("w", Tensor::ones({2}));
    const std::string path = temp_file("numbers.safetensors");
    io::save_state_dict(path, outer);
    const io::StateDict back = io::load_state_dict(path);
    const io::StateDict part = back.part("opt");
    CHECK(part.number("lr") == 0.1 * 3.0);
    CHECK(part.number("steps") == 9007199254740992.0);
    CHECK(part.number("tiny") == 5e-324);
    CHECK(part.text("name") == "x");
    CHECK(part.tensors.empty());
    CHECK(back.contains("w"));
    CHECK(back.contains("opt.lr"));
    CHECK_FALSE(back.contains("lr"));
    CHECK(back.part("nothing").values.empty());
    fs::remove_all(fs::path(path).parent_path());
}

TEST_CASE("load_state_dict sets a layer's extra state, all or nothing", "[nn][io]") {
    auto build = [](std::uint64_t seed) {
        manual_seed(seed);
        Tensor x = Tensor::randn({4, 5});
        Tensor y = layers::Dense(3, 2)(layers::Dropout(0.5, seed)(layers::Dense(5, 3)(x)));
        return std::pair{models::Model(x, y), x};
    };
    auto [model, x] = build(1);
    auto masks = [](const models::Model& m, const Tensor& in) {
        std::vector<xt::xarray<float>> out;
        for (int i = 0; i < 3; ++i) {
            out.push_back(m(in).values<float>());
        }
        return out;
    };
    (void)model(x).values<float>(); // the generator moves on
    const io::StateDict saved = model.state_dict();
    REQUIRE(saved.contains("1._extra_state"));
    const auto expected = masks(model, x);

    auto [other, x2] = build(2);
    other.load_state_dict(saved);
    CHECK(masks(other, x) == expected); // same weights and the same next masks

    // A missing, an unexpected and an unreadable extra state: ValueError, nothing changed.
    auto [third, x3] = build(3);
    const io::StateDict before = third.state_dict();
    io::StateDict missing = saved;
    missing.values.erase("1._extra_state");
    CHECK_THROWS_MATCHES(third.load_state_dict(missing), ValueError,
                         Catch::Message("Model::load_state_dict: the state dict has no "
                                        "\"1._extra_state\" (Dropout(0.5)'s extra state); no "
                                        "weights were changed"));
    io::StateDict unexpected = saved;
    unexpected.set_text("0._extra_state", "x");
    CHECK_THROWS_MATCHES(third.load_state_dict(unexpected), ValueError,
                         Catch::Message("Model::load_state_dict: unexpected \"0._extra_state\": "
                                        "Dense(5, 3) has no extra state; no weights were changed"));
    io::StateDict stray = saved;
    stray.set_text("7._extra_state", "x");
    CHECK_THROWS_MATCHES(third.load_state_dict(stray), ValueError,
                         Catch::Message("Model::load_state_dict: unexpected \"7._extra_state\": "
                                        "there are 3 layers; no weights were changed"));
    io::StateDict unreadable = saved;
    unreadable.set_text("1._extra_state", "12 not a generator");
    CHECK_THROWS_MATCHES(
        third.load_state_dict(unreadable), ValueError,
        Catch::Message("Model::load_state_dict: \"1._extra_state\": Dropout(0.5): the extra "
                       "state is not a generator state (18 characters); no weights were changed"));
    // Tensors that do not fit: the extra state, set first, is put back.
    io::StateDict bad_tensor = saved;
    bad_tensor.tensors.pop_back();
    CHECK_THROWS_AS(third.load_state_dict(bad_tensor), ValueError);
    CHECK(snapshot(third.state_dict()) == snapshot(before));
}
