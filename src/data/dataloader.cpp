// DataLoader: owns row-major copies of the data, an order of sample indices (a seeded permutation
// per epoch when shuffling) and cuts batches from it by copying rows. Plus the host-side helpers
// scale, normalize and one_hot.
#include "pynn/data/dataloader.hpp"

#include <cmath>
#include <iterator>
#include <numeric>
#include <optional>
#include <sstream>
#include <string>
#include <utility>

#include "graph/node.hpp"
#include "graph/storage.hpp"
#include "ops/builder.hpp"
#include "pynn/error.hpp"

namespace pynn::data {
namespace {

static_assert(std::input_iterator<DataLoader::Iterator>);

template <class T>
Shape shape_of(const xt::xarray<T>& a) {
    return Shape(a.shape().begin(), a.shape().end());
}

// A uniform integer in [0, bound), bound > 0, by rejection on the engine's raw output. Not
// std::uniform_int_distribution or std::shuffle: their algorithms differ between standard
// libraries, and a seed must give the same order everywhere; mt19937_64's output is fixed by the
// standard.
std::uint64_t uniform_below(std::mt19937_64& engine, std::uint64_t bound) {
    // 2^64 mod bound: the low values that would make `r % bound` favour small results.
    const std::uint64_t threshold = (0 - bound) % bound;
    while (true) {
        const std::uint64_t r = engine();
        if (r >= threshold) {
            return r % bound;
        }
    }
}

// Fisher-Yates from the back: every permutation equally likely.
void shuffle_in_place(std::vector<std::size_t>& v, std::mt19937_64& engine) {
    for (std::size_t i = v.size(); i > 1; --i) {
        const auto j = static_cast<std::size_t>(uniform_below(engine, i));
        std::swap(v[i - 1], v[j]);
    }
}

// Rows order[begin..end) of `data` (N, ...) as a new (end - begin, ...) leaf. The rows are
// copied straight into the leaf's storage: no staging vector, and the block is one an earlier
// batch freed (Storage keeps large blocks), so a step costs no page faults for its input.
template <class T>
Tensor gather_rows(const xt::xarray<T>& data, const std::vector<std::size_t>& order,
                   std::size_t begin, std::size_t end) {
    Shape shape = shape_of(data);
    const std::size_t row = shape[0] == 0 ? 0 : data.size() / shape[0];
    shape[0] = end - begin;
    const StoragePtr storage = std::make_shared<Storage>(dtype_of<T>(), (end - begin) * row);
    T* out = storage->data<T>();
    // Shuffled rows are scattered over the whole data set (188 MB for Fashion-MNIST): each is
    // fetched from memory while an earlier one is copied, kAhead rows ahead.
    constexpr std::size_t kAhead = 4;
    auto prefetch_row = [&](std::size_t k) {
        for (std::size_t x = 0; x < row; x += 64 / sizeof(T)) {
            __builtin_prefetch(data.data() + order[k] * row + x);
        }
    };
    for (std::size_t k = begin; k < std::min(end, begin + kAhead); ++k) {
        prefetch_row(k);
    }
    for (std::size_t k = begin; k < end; ++k) {
        if (k + kAhead < end) {
            prefetch_row(k + kAhead);
        }
        std::copy_n(data.data() + order[k] * row, row, out + (k - begin) * row);
    }
    return Tensor(make_leaf(storage, shape));
}

std::variant<xt::xarray<float>, xt::xarray<double>> column_of(const Tensor& t, const char* label) {
    check_defined("DataLoader", t, label);
    if (t.dtype() == DType::Float64) {
        return t.values<double>();
    }
    return t.values<float>();
}

std::string index_string(const Shape& shape, std::size_t flat) {
    std::vector<std::size_t> index(shape.size());
    for (std::size_t d = shape.size(); d-- > 0;) {
        index[d] = flat % shape[d];
        flat /= shape[d];
    }
    std::ostringstream out;
    out << "labels[";
    for (std::size_t d = 0; d < index.size(); ++d) {
        out << (d > 0 ? ", " : "") << index[d];
    }
    out << "]";
    return out.str();
}

} // namespace

DataLoader::DataLoader(Column images, Column labels, std::size_t batch_size,
                       DataLoaderOptions options)
    : m_images(std::move(images)), m_labels(std::move(labels)), m_batch_size(batch_size),
      m_options(options), m_engine(options.seed) {
    const Shape x_shape = std::visit([](const auto& a) { return shape_of(a); }, m_images);
    const Shape y_shape = std::visit([](const auto& a) { return shape_of(a); }, m_labels);
    PYNN_CHECK(!x_shape.empty() && !y_shape.empty(), ShapeError, "DataLoader: images ",
               to_string(x_shape), " and labels ", to_string(y_shape),
               ": both need a first (sample) dimension");
    PYNN_CHECK(x_shape[0] == y_shape[0], ShapeError, "DataLoader: images ", to_string(x_shape),
               " and labels ", to_string(y_shape), ": sample counts ", x_shape[0], " and ",
               y_shape[0], " differ");
    PYNN_CHECK(batch_size > 0, ValueError, "DataLoader: batch_size must be positive");
    m_num_samples = x_shape[0];
    m_order.resize(m_num_samples);
    std::iota(m_order.begin(), m_order.end(), std::size_t{0});
}

DataLoader::DataLoader(xt::xarray<float> images, xt::xarray<float> labels, std::size_t batch_size,
                       DataLoaderOptions options)
    : DataLoader(Column(std::move(images)), Column(std::move(labels)), batch_size, options) {}

DataLoader::DataLoader(const Tensor& images, const Tensor& labels, std::size_t batch_size,
                       DataLoaderOptions options)
    : DataLoader(column_of(images, "images"), column_of(labels, "labels"), batch_size, options) {}

std::size_t DataLoader::size() const {
    if (m_options.drop_last) {
        return m_num_samples / m_batch_size;
    }
    return (m_num_samples + m_batch_size - 1) / m_batch_size;
}

DataLoader::Iterator DataLoader::begin() {
    ++m_epoch;
    if (m_options.shuffle) {
        // Each epoch shuffles 0..N-1 afresh, so the order depends only on the seed and the epoch.
        std::iota(m_order.begin(), m_order.end(), std::size_t{0});
        shuffle_in_place(m_order, m_engine);
    }
    return {this, 0};
}

DataLoader::Iterator DataLoader::end() const { return {this, size()}; }

// Note [DataLoader state] in the header.
void DataLoader::set_epoch(std::size_t epoch) {
    m_engine.seed(m_options.seed);
    std::iota(m_order.begin(), m_order.end(), std::size_t{0});
    if (m_options.shuffle) {
        for (std::size_t e = 0; e < epoch; ++e) {
            std::iota(m_order.begin(), m_order.end(), std::size_t{0});
            shuffle_in_place(m_order, m_engine);
        }
    }
    m_epoch = epoch;
}

io::StateDict DataLoader::state_dict() const {
    io::StateDict out;
    out.set_number("epoch", static_cast<double>(m_epoch));
    out.set_text("seed", std::to_string(m_options.seed));
    out.set_number("shuffle", m_options.shuffle ? 1.0 : 0.0);
    out.set_number("samples", static_cast<double>(m_num_samples));
    out.set_number("batch_size", static_cast<double>(m_batch_size));
    return out;
}

void DataLoader::load_state_dict(const io::StateDict& state) {
    std::vector<std::string> problems;
    const auto value_of = [&](const std::string& key) -> const std::string* {
        if (state.values.count(key) == 0) {
            problems.push_back("no value \"" + key + "\"");
            return nullptr;
        }
        return &state.text(key);
    };
    const auto number_of = [&](const std::string& key) -> std::optional<double> {
        std::optional<double> v;
        if (value_of(key) != nullptr) {
            try {
                v = state.number(key);
            } catch (const ValueError&) {
                problems.push_back("value \"" + key + "\" is \"" + state.text(key) +
                                   "\", not a number");
            }
        }
        return v;
    };
    const auto differs = [&](const std::string& key, const std::string& here,
                             const std::string& hint) {
        problems.push_back("the state has " + key + " " + state.text(key) +
                           " but this loader has " + here + hint);
    };
    const std::string* seed = value_of("seed");
    if (seed != nullptr && *seed != std::to_string(m_options.seed)) {
        differs("seed", std::to_string(m_options.seed),
                " (the order of every epoch depends on it)");
    }
    const std::optional<double> shuffle = number_of("shuffle");
    if (shuffle && *shuffle != (m_options.shuffle ? 1.0 : 0.0)) {
        differs("shuffle", m_options.shuffle ? "1" : "0", "");
    }
    const std::optional<double> samples = number_of("samples");
    if (samples && *samples != static_cast<double>(m_num_samples)) {
        differs("samples", std::to_string(m_num_samples), " (is it the same data?)");
    }
    const std::optional<double> batch = number_of("batch_size");
    if (batch && *batch != static_cast<double>(m_batch_size)) {
        differs("batch_size", std::to_string(m_batch_size), "");
    }
    const std::optional<double> epoch = number_of("epoch");
    if (epoch && !(*epoch >= 0.0 && *epoch <= 9007199254740992.0 && std::floor(*epoch) == *epoch)) {
        problems.push_back("\"epoch\" is " + state.text("epoch") +
                           ", not a count (an integer >= 0)");
    }
    if (!problems.empty()) {
        std::string msg = "DataLoader::load_state_dict: ";
        for (const std::string& p : problems) {
            msg += p + "; ";
        }
        throw ValueError(msg + "the loader was not changed");
    }
    set_epoch(static_cast<std::size_t>(*epoch));
}

Batch DataLoader::batch(std::size_t i) const {
    PYNN_CHECK(i < size(), ValueError, "DataLoader: batch ", i, " is out of range for ", size(),
               " batches");
    const std::size_t begin = i * m_batch_size;
    const std::size_t end = std::min(begin + m_batch_size, m_num_samples);
    const auto gather = [&](const auto& data) { return gather_rows(data, m_order, begin, end); };
    return {std::visit(gather, m_images), std::visit(gather, m_labels)};
}

void scale(xt::xarray<float>& x, float factor) {
    PYNN_CHECK(std::isfinite(factor), ValueError, "scale: factor must be finite, got ", factor);
    x *= factor;
}

void normalize(xt::xarray<float>& x, float mean, float std) {
    PYNN_CHECK(std::isfinite(mean), ValueError, "normalize: mean must be finite, got ", mean);
    PYNN_CHECK(std::isfinite(std) && std > 0.0F, ValueError,
               "normalize: std must be positive and finite, got ", std);
    x -= mean;
    x /= std;
}

xt::xarray<float> one_hot(const xt::xarray<float>& labels, std::size_t num_classes) {
    PYNN_CHECK(num_classes > 0, ValueError, "one_hot: num_classes must be positive");
    const Shape shape = shape_of(labels);
    Shape out_shape = shape;
    out_shape.push_back(num_classes);
    xt::xarray<float> out = xt::zeros<float>(out_shape);
    const float* src = labels.data();
    for (std::size_t i = 0; i < labels.size(); ++i) {
        const float v = src[i];
        PYNN_CHECK(std::isfinite(v) && std::floor(v) == v, ValueError,
                   "one_hot: ", index_string(shape, i), " = ", v, " is not an integer class index");
        PYNN_CHECK(v >= 0.0F && static_cast<double>(v) < static_cast<double>(num_classes),
                   ValueError, "one_hot: ", index_string(shape, i), " = ", v, " is outside [0, ",
                   num_classes, ")");
        out.data()[i * num_classes + static_cast<std::size_t>(v)] = 1.0F;
    }
    return out;
}

} // namespace pynn::data
