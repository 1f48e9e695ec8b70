// Storage: one contiguous, 64-byte aligned block of float32 or float64 values. Leaves own one;
// the executor hands raw pointers into storages (and later an arena) to the kernels.
#pragma once

#include <cstddef>
#include <memory>

#include "pynn/dtype.hpp"

namespace pynn {

class Storage {
public:
    Storage(DType dtype, std::size_t numel);
    ~Storage();
    Storage(const Storage&) = delete;
    Storage& operator=(const Storage&) = delete;

    DType dtype() const { return m_dtype; }
    std::size_t numel() const { return m_numel; }
    std::size_t bytes() const { return m_numel * dtype_size(m_dtype); }
    void* raw() { return m_data; }
    const void* raw() const { return m_data; }
    template <class T>
    T* data() {
        return static_cast<T*>(m_data);
    }
    template <class T>
    const T* data() const {
        return static_cast<const T*>(m_data);
    }
    void fill(double value);
    std::shared_ptr<Storage> clone() const;

private:
    DType m_dtype;
    std::size_t m_numel;
    void* m_data;
};

using StoragePtr = std::shared_ptr<Storage>;

} // namespace pynn
