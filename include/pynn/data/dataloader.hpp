// Mini-batches for training: a DataLoader walks (images, labels) in batches, in order or in a
// fresh seeded permutation each epoch, and hands out each batch as new leaf tensors. Also the
// host-side preprocessing done on xtensor arrays before they become tensors: scale, normalize and
// one_hot.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <random>
#include <variant>
#include <vector>

#include <xtensor/xarray.hpp>

#include "pynn/io/safetensors.hpp"
#include "pynn/tensor.hpp"

namespace pynn::data {

// One mini-batch: rows of the images and the matching rows of the labels, in the loader's order.
struct Batch {
    Tensor x; // (B, ...) images' trailing shape
    Tensor y; // (B, ...) labels' trailing shape; (B) for class indices
};

struct DataLoaderOptions {
    bool shuffle = false;   // a new permutation each epoch, drawn from a generator seeded once
    std::uint64_t seed = 0; // same seed, same sequence of permutations, on every platform
    bool drop_last = false; // skip a last batch smaller than batch_size
};

// Usage:
//   data::DataLoader loader(images, labels, 64, {.shuffle = true, .seed = 42});
//   for (int epoch = 0; epoch < 10; ++epoch)
//       for (const data::Batch& b : loader) { ... b.x ... b.y ... }
//
// The loader keeps its own copy of the data (row-major), so batches are plain row copies; each
// batch is a new leaf (no gradient path back to `images` when they were given as a Tensor).
// A Tensor keeps its dtype (float32 or float64) in the batches; an xt::xarray<float> gives float32.
class DataLoader {
public:
    class Iterator;

    // images (N, ...) and labels (N, ...) must agree on N (ShapeError otherwise); batch_size must
    // be positive (ValueError otherwise).
    DataLoader(xt::xarray<float> images, xt::xarray<float> labels, std::size_t batch_size,
               DataLoaderOptions options = {});
    DataLoader(const Tensor& images, const Tensor& labels, std::size_t batch_size,
               DataLoaderOptions options = {});

    std::size_t size() const; // batches per epoch: ceil(N / batch_size), floor with drop_last
    std::size_t num_samples() const { return m_num_samples; }
    std::size_t batch_size() const { return m_batch_size; }
    const DataLoaderOptions& options() const { return m_options; }
    std::size_t epoch() const { return m_epoch; } // passes started so far

    // Starts a new epoch (every call does, even if the last pass did not finish): with shuffle,
    // the order becomes the next permutation from the seeded generator.
    Iterator begin();
    Iterator end() const;

    // Batch i (< size()) of the current epoch's order, copied out; before the first begin() the
    // order is 0..N-1.
    Batch batch(std::size_t i) const;
    // The current epoch's order: sample indices, batch after batch.
    const std::vector<std::size_t>& order() const { return m_order; }

    // --- resuming (Note [DataLoader state]) ---
    // Makes the loader what it was after `epoch` calls to begin(): the generator reseeded and
    // advanced through `epoch` permutations, order() the last of them (0..N-1 for 0), so the
    // next begin() draws the permutation of epoch `epoch + 1`.
    void set_epoch(std::size_t epoch);
    io::StateDict state_dict() const;
    void load_state_dict(const io::StateDict& state);

private:
    using Column = std::variant<xt::xarray<float>, xt::xarray<double>>;
    DataLoader(Column images, Column labels, std::size_t batch_size, DataLoaderOptions options);

    Column m_images;
    Column m_labels;
    std::size_t m_num_samples = 0;
    std::size_t m_batch_size = 0;
    DataLoaderOptions m_options;
    std::mt19937_64 m_engine;
    std::vector<std::size_t> m_order;
    std::size_t m_epoch = 0;
};

// Note [DataLoader state]
// A shuffling loader's order depends only on its seed and on how many epochs were started, so
// its state is that count: state_dict() holds "epoch" (epoch()), and, to catch a run resumed with
// other settings, "seed" (as text: a seed may not fit a double), "shuffle" (0 or 1), "samples"
// and "batch_size". load_state_dict() checks that those four match this loader, throwing
// ValueError naming each one that differs and changing nothing, then calls set_epoch(epoch).
// Replaying the permutations costs one pass of the generator over N per epoch, microseconds to
// milliseconds for data that fits in memory.

// An input iterator over the batches of one epoch; dereferencing copies the batch out.
class DataLoader::Iterator {
public:
    using iterator_category = std::input_iterator_tag;
    using value_type = Batch;
    using difference_type = std::ptrdiff_t;
    using reference = Batch;
    using pointer = void;

    Iterator() = default;
    Batch operator*() const { return m_loader->batch(m_index); }
    Iterator& operator++() {
        ++m_index;
        return *this;
    }
    void operator++(int) { ++m_index; }
    bool operator==(const Iterator& other) const = default;

private:
    friend class DataLoader;
    Iterator(const DataLoader* loader, std::size_t index) : m_loader(loader), m_index(index) {}

    const DataLoader* m_loader = nullptr;
    std::size_t m_index = 0;
};

// In place: x = x * factor, e.g. scale(images, 1.0F / 255) to map bytes to [0, 1]. ValueError if
// factor is not finite.
void scale(xt::xarray<float>& x, float factor);

// In place: x = (x - mean) / std. ValueError unless std is positive and finite and mean finite.
void normalize(xt::xarray<float>& x, float mean, float std);

// Class indices -> one-hot rows: labels of shape S give S + (num_classes), 1 at the label's
// position and 0 elsewhere. ValueError, naming the label and its index, for a label that is not
// an integer or lies outside [0, num_classes). The host-side twin of pynn::one_hot (math.hpp),
// which builds a graph node and does not check the values.
xt::xarray<float> one_hot(const xt::xarray<float>& labels, std::size_t num_classes);

} // namespace pynn::data
