// With a fixed seed, two training runs give bit-identical losses and weights: pynn's kernels
// have a fixed reduction order, and the plan (and so the order of the work) depends only on the
// graph's structure.
#include <catch2/catch.hpp>

#include "support/gradcheck.hpp"

using namespace pynn;

namespace {

std::vector<double> train(std::uint64_t seed) {
    manual_seed(seed);
    Tensor x_input = Tensor::randn({32, 12});
    Tensor h = layers::Dense(12, 16, relu)(x_input);
    h = layers::Dropout(0.2, seed)(h);
    Tensor logits = layers::Dense(16, 3)(h);
    models::Model model(x_input, logits);
    optimizers::Adam opt(0.01);
    Generator data(seed + 1);
    std::vector<double> losses;
    for (int step = 0; step < 20; ++step) {
        Tensor x = Tensor::randn({32, 12}, 0.0, 1.0, DType::Float32, &data);
        Tensor y = Tensor::from_values(xt::xarray<float>(
            xt::cast<float>(xt::arange<int>(0, 32) % 3)));
        Tensor loss = losses::cross_entropy_with_logits(model(x), y);
        loss.zero_grad();
        loss.backward();
        opt.update(model.parameters());
        losses.push_back(loss.item());
    }
    for (const Tensor& p : model.parameters()) {
        for (float v : p.values<float>()) {
            losses.push_back(v);
        }
    }
    return losses;
}

} // namespace

TEST_CASE("two training runs with the same seed are bit-identical", "[nn][determinism]") {
    const std::vector<double> first = train(7);
    const std::vector<double> second = train(7);
    REQUIRE(first.size() == second.size());
    for (std::size_t i = 0; i < first.size(); ++i) {
        INFO("value " << i);
        REQUIRE(first[i] == second[i]); // exact: no tolerance
    }
    CHECK(train(8) != first); // and the seed matters
}
