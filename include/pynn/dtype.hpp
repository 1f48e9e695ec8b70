// Element types and shapes. pynn computes in float32 (the default) or float64; mixing them in one
// op is an error rather than a silent promotion.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace pynn {

enum class DType : std::uint8_t { Float32, Float64 };

using Shape = std::vector<std::size_t>;

std::string to_string(DType dtype);
std::string to_string(const Shape& shape); // "(2, 3)"
std::size_t dtype_size(DType dtype);
std::size_t numel(const Shape& shape);

template <class T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() {
    return DType::Float32;
}
template <>
constexpr DType dtype_of<double>() {
    return DType::Float64;
}

} // namespace pynn
