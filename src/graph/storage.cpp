// Aligned allocation for Storage. 64 bytes matches a cache line and AVX-512's widest load.
#include "graph/storage.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

namespace pynn {

namespace {
constexpr std::size_t kAlignment = 64;
}

Storage::Storage(DType dtype, std::size_t numel) : m_dtype(dtype), m_numel(numel) {
    std::size_t bytes = std::max<std::size_t>(numel * dtype_size(dtype), 1);
    bytes = (bytes + kAlignment - 1) / kAlignment * kAlignment;
    m_data = std::aligned_alloc(kAlignment, bytes);
    if (m_data == nullptr) {
        throw std::bad_alloc();
    }
}

Storage::~Storage() { std::free(m_data); }

void Storage::fill(double value) {
    if (m_dtype == DType::Float32) {
        std::fill_n(data<float>(), m_numel, static_cast<float>(value));
    } else {
        std::fill_n(data<double>(), m_numel, value);
    }
}

std::shared_ptr<Storage> Storage::clone() const {
    auto copy = std::make_shared<Storage>(m_dtype, m_numel);
    std::memcpy(copy->raw(), m_data, bytes());
    return copy;
}

} // namespace pynn
