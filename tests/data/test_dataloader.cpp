// DataLoader: batch counts, every sample once per epoch, seeded and per-epoch orders, rows kept
// with their labels, dtypes and the error messages; and the host-side scale, normalize and
// one_hot.
#include <algorithm>
#include <cstddef>
#include <limits>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <xtensor/xarray.hpp>
#include <xtensor/xbuilder.hpp>

#include <pynn/data/dataloader.hpp>
#include <pynn/error.hpp>
#include <pynn/tensor.hpp>

using Catch::Matchers::Message;
using pynn::Tensor;
using pynn::data::Batch;
using pynn::data::DataLoader;

namespace {

// n samples of shape (2, 3): sample i holds 100 * i + 0..5, so every row names its sample.
xt::xarray<float> numbered_images(std::size_t n) {
    xt::xarray<float> x = xt::zeros<float>({n, std::size_t{2}, std::size_t{3}});
    for (std::size_t i = 0; i < n; ++i) {
        for (std::size_t k = 0; k < 6; ++k) {
            x.data()[i * 6 + k] = static_cast<float>(100 * i + k);
        }
    }
    return x;
}

xt::xarray<float> numbered_labels(std::size_t n) {
    xt::xarray<float> y = xt::zeros<float>({n});
    for (std::size_t i = 0; i < n; ++i) {
        y(i) = static_cast<float>(i);
    }
    return y;
}

// The sample indices one pass visits, read back from the labels (label i = sample i).
std::vector<std::size_t> one_epoch(DataLoader& loader) {
    std::vector<std::size_t> seen;
    for (const Batch& b : loader) {
        const xt::xarray<float> y = b.y.values();
        for (float v : y) {
            seen.push_back(static_cast<std::size_t>(v));
        }
    }
    return seen;
}

std::vector<std::size_t> shape_of(const xt::xarray<float>& a) {
    return std::vector<std::size_t>(a.shape().begin(), a.shape().end());
}

} // namespace

TEST_CASE("DataLoader counts batches with and without drop_last", "[io]") {
    const auto [n, batch, expected, expected_drop] =
        GENERATE(table<std::size_t, std::size_t, std::size_t, std::size_t>({
            {10, 3, 4, 3},
            {9, 3, 3, 3},
            {2, 5, 1, 0},
            {1, 1, 1, 1},
            {0, 4, 0, 0},
        }));
    DataLoader keep(numbered_images(n), numbered_labels(n), batch);
    DataLoader drop(numbered_images(n), numbered_labels(n), batch, {.drop_last = true});
    REQUIRE(keep.size() == expected);
    REQUIRE(drop.size() == expected_drop);
    REQUIRE(keep.num_samples() == n);

    std::size_t batches = 0;
    std::size_t samples = 0;
    for (const Batch& b : drop) {
        REQUIRE(b.x.shape() == pynn::Shape{batch, 2, 3});
        REQUIRE(b.y.shape() == pynn::Shape{batch});
        ++batches;
        samples += b.x.shape()[0];
    }
    REQUIRE(batches == expected_drop);
    REQUIRE(samples == expected_drop * batch);

    batches = 0;
    samples = 0;
    for (const Batch& b : keep) {
        ++batches;
        samples += b.x.shape()[0];
    }
    REQUIRE(batches == expected);
    REQUIRE(samples == n);
}

TEST_CASE("DataLoader's last batch holds the remainder", "[io]") {
    DataLoader loader(numbered_images(10), numbered_labels(10), 4);
    loader.begin();
    const Batch last = loader.batch(2);
    REQUIRE(last.x.shape() == pynn::Shape{2, 2, 3});
    REQUIRE((last.y.values() == xt::xarray<float>{8.0F, 9.0F}));
}

TEST_CASE("DataLoader without shuffle keeps the data's order every epoch", "[io]") {
    DataLoader loader(numbered_images(7), numbered_labels(7), 3);
    std::vector<std::size_t> identity(7);
    std::iota(identity.begin(), identity.end(), std::size_t{0});
    REQUIRE(one_epoch(loader) == identity);
    REQUIRE(one_epoch(loader) == identity);
    REQUIRE(loader.epoch() == 2);
}

TEST_CASE("DataLoader shows every sample exactly once per epoch", "[io]") {
    const std::size_t n = 53;
    DataLoader loader(numbered_images(n), numbered_labels(n), 8, {.shuffle = true, .seed = 7});
    std::vector<std::size_t> identity(n);
    std::iota(identity.begin(), identity.end(), std::size_t{0});
    for (int epoch = 0; epoch < 5; ++epoch) {
        std::vector<std::size_t> seen = one_epoch(loader);
        REQUIRE(seen.size() == n);
        std::sort(seen.begin(), seen.end());
        REQUIRE(seen == identity);
    }
}

TEST_CASE("DataLoader with drop_last shows each sample at most once", "[io]") {
    const std::size_t n = 53;
    DataLoader loader(numbered_images(n), numbered_labels(n), 8,
                      {.shuffle = true, .seed = 3, .drop_last = true});
    const std::vector<std::size_t> seen = one_epoch(loader);
    REQUIRE(seen.size() == 48);
    REQUIRE(std::set<std::size_t>(seen.begin(), seen.end()).size() == 48);
}

TEST_CASE("DataLoader's order follows the seed and changes every epoch", "[io]") {
    const std::size_t n = 40;
    DataLoader a(numbered_images(n), numbered_labels(n), 6, {.shuffle = true, .seed = 42});
    DataLoader b(numbered_images(n), numbered_labels(n), 6, {.shuffle = true, .seed = 42});
    DataLoader c(numbered_images(n), numbered_labels(n), 6, {.shuffle = true, .seed = 43});

    const std::vector<std::size_t> a1 = one_epoch(a);
    const std::vector<std::size_t> a2 = one_epoch(a);
    const std::vector<std::size_t> a3 = one_epoch(a);
    SECTION("same seed, same sequence of orders") {
        REQUIRE(one_epoch(b) == a1);
        REQUIRE(one_epoch(b) == a2);
        REQUIRE(one_epoch(b) == a3);
    }
    SECTION("a new permutation each epoch") {
        REQUIRE(a1 != a2);
        REQUIRE(a2 != a3);
        REQUIRE(a1 != a3);
    }
    SECTION("another seed, another order") { REQUIRE(one_epoch(c) != a1); }
    SECTION("order() is the current epoch's order") { REQUIRE(a.order() == a3); }
}

TEST_CASE("DataLoader's permutation is pinned for a seed on every standard library", "[io]") {
    // Shuffling uses mt19937_64's raw output (fixed by the standard) and pynn's own Fisher-Yates,
    // not std::shuffle, so these orders hold with libstdc++, libc++ and MSVC alike.
    DataLoader loader(numbered_images(10), numbered_labels(10), 10, {.shuffle = true, .seed = 42});
    REQUIRE(one_epoch(loader) == std::vector<std::size_t>{1, 7, 9, 0, 3, 8, 4, 2, 5, 6});
    REQUIRE(one_epoch(loader) == std::vector<std::size_t>{1, 2, 8, 0, 5, 4, 3, 6, 9, 7});
}

TEST_CASE("DataLoader keeps every row with its label", "[io]") {
    const std::size_t n = 25;
    DataLoader loader(numbered_images(n), numbered_labels(n), 4, {.shuffle = true, .seed = 11});
    for (int epoch = 0; epoch < 2; ++epoch) {
        for (const Batch& b : loader) {
            const xt::xarray<float> x = b.x.values();
            const xt::xarray<float> y = b.y.values();
            REQUIRE(x.shape(0) == y.shape(0));
            for (std::size_t r = 0; r < y.shape(0); ++r) {
                for (std::size_t k = 0; k < 6; ++k) {
                    REQUIRE(x.data()[r * 6 + k] == 100.0F * y(r) + static_cast<float>(k));
                }
            }
        }
    }
}

TEST_CASE("DataLoader takes tensors and keeps their dtype", "[io]") {
    SECTION("float64") {
        xt::xarray<double> x = {{1.0, 2.0}, {3.0, 4.0}, {5.0, 6.0}};
        xt::xarray<double> y = {{1.0, 0.0}, {0.0, 1.0}, {1.0, 0.0}}; // one-hot labels
        DataLoader loader(Tensor::from_values(x), Tensor::from_values(y), 2);
        auto it = loader.begin();
        const Batch first = *it;
        REQUIRE(first.x.dtype() == pynn::DType::Float64);
        REQUIRE(first.y.dtype() == pynn::DType::Float64);
        REQUIRE(first.y.shape() == pynn::Shape{2, 2});
        ++it;
        REQUIRE(((*it).x.values<double>() == xt::xarray<double>{{5.0, 6.0}}));
        ++it;
        REQUIRE(it == loader.end());
    }
    SECTION("float32, computed lazily") {
        Tensor x = Tensor::arange(0.0, 6.0).reshape({3, 2}) * 2.0;
        Tensor y = Tensor::arange(0.0, 3.0);
        DataLoader loader(x, y, 3);
        const Batch b = *loader.begin();
        REQUIRE(b.x.dtype() == pynn::DType::Float32);
        REQUIRE((b.x.values() == xt::xarray<float>{{0.0F, 2.0F}, {4.0F, 6.0F}, {8.0F, 10.0F}}));
        REQUIRE(b.x.is_leaf());
    }
}

TEST_CASE("DataLoader reports bad arguments", "[io]") {
    SECTION("different sample counts") {
        REQUIRE_THROWS_MATCHES(DataLoader(numbered_images(5), numbered_labels(4), 2),
                               pynn::ShapeError,
                               Message("DataLoader: images (5, 2, 3) and labels (4): sample "
                                       "counts 5 and 4 differ"));
    }
    SECTION("scalar data") {
        REQUIRE_THROWS_MATCHES(DataLoader(xt::xarray<float>(1.0F), numbered_labels(1), 2),
                               pynn::ShapeError,
                               Message("DataLoader: images () and labels (1): both need a first "
                                       "(sample) dimension"));
    }
    SECTION("a zero batch size") {
        REQUIRE_THROWS_MATCHES(DataLoader(numbered_images(5), numbered_labels(5), 0),
                               pynn::ValueError,
                               Message("DataLoader: batch_size must be positive"));
    }
    SECTION("a batch index past the end") {
        DataLoader loader(numbered_images(5), numbered_labels(5), 2);
        REQUIRE_THROWS_MATCHES(loader.batch(3), pynn::ValueError,
                               Message("DataLoader: batch 3 is out of range for 3 batches"));
    }
}

TEST_CASE("scale and normalize work in place", "[io]") {
    xt::xarray<float> x = {0.0F, 127.5F, 255.0F};
    pynn::data::scale(x, 1.0F / 255.0F);
    REQUIRE(x(0) == 0.0F);
    REQUIRE(x(1) == Approx(0.5F));
    REQUIRE(x(2) == Approx(1.0F));

    pynn::data::normalize(x, 0.5F, 0.25F);
    REQUIRE(x(0) == Approx(-2.0F));
    REQUIRE(x(1) == Approx(0.0F).margin(1e-6));
    REQUIRE(x(2) == Approx(2.0F));

    REQUIRE_THROWS_MATCHES(pynn::data::normalize(x, 0.0F, 0.0F), pynn::ValueError,
                           Message("normalize: std must be positive and finite, got 0"));
    REQUIRE_THROWS_MATCHES(pynn::data::normalize(x, 0.0F, -1.0F), pynn::ValueError,
                           Message("normalize: std must be positive and finite, got -1"));
    REQUIRE_THROWS_MATCHES(pynn::data::scale(x, std::numeric_limits<float>::infinity()),
                           pynn::ValueError, Message("scale: factor must be finite, got inf"));
}

TEST_CASE("data::one_hot turns class indices into rows", "[io]") {
    const xt::xarray<float> labels = {2.0F, 0.0F, 1.0F, 2.0F};
    const xt::xarray<float> expected = {
        {0.0F, 0.0F, 1.0F}, {1.0F, 0.0F, 0.0F}, {0.0F, 1.0F, 0.0F}, {0.0F, 0.0F, 1.0F}};
    REQUIRE((pynn::data::one_hot(labels, 3) == expected));

    const xt::xarray<float> grid = {{1.0F, 0.0F}, {0.0F, 1.0F}};
    const xt::xarray<float> g = pynn::data::one_hot(grid, 2);
    REQUIRE(shape_of(g) == std::vector<std::size_t>{2, 2, 2});
    REQUIRE(g(1, 1, 1) == 1.0F);
    REQUIRE(g(1, 1, 0) == 0.0F);
}

TEST_CASE("data::one_hot rejects labels that are not class indices", "[io]") {
    SECTION("out of range") {
        REQUIRE_THROWS_MATCHES(pynn::data::one_hot(xt::xarray<float>{0.0F, 10.0F}, 10),
                               pynn::ValueError,
                               Message("one_hot: labels[1] = 10 is outside [0, 10)"));
        REQUIRE_THROWS_MATCHES(
            pynn::data::one_hot(xt::xarray<float>{{0.0F, 1.0F}, {2.0F, -1.0F}}, 10),
            pynn::ValueError, Message("one_hot: labels[1, 1] = -1 is outside [0, 10)"));
    }
    SECTION("not an integer") {
        REQUIRE_THROWS_MATCHES(pynn::data::one_hot(xt::xarray<float>{1.0F, 2.5F}, 10),
                               pynn::ValueError,
                               Message("one_hot: labels[1] = 2.5 is not an integer class index"));
        REQUIRE_THROWS_MATCHES(
            pynn::data::one_hot(xt::xarray<float>{std::numeric_limits<float>::quiet_NaN()}, 10),
            pynn::ValueError, Message("one_hot: labels[0] = nan is not an integer class index"));
    }
    SECTION("no classes") {
        REQUIRE_THROWS_MATCHES(pynn::data::one_hot(xt::xarray<float>{0.0F}, 0), pynn::ValueError,
                               Message("one_hot: num_classes must be positive"));
    }
}
