// DType names and shape printing, used by every error message.
#include "pynn/dtype.hpp"

#include "pynn/flags.hpp"

namespace pynn {

std::string to_string(DType dtype) {
    switch (dtype) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    }
    return "unknown";
}

std::string to_string(const Shape& shape) {
    std::string s = "(";
    for (std::size_t i = 0; i < shape.size(); ++i) {
        s += (i ? ", " : "") + std::to_string(shape[i]);
    }
    return s + ")";
}

std::size_t dtype_size(DType dtype) { return dtype == DType::Float32 ? 4 : 8; }

std::size_t numel(const Shape& shape) {
    std::size_t n = 1;
    for (std::size_t d : shape) {
        n *= d;
    }
    return n;
}

namespace {
DType g_global_type = DType::Float32;
}

DType Flags::global_type() { return g_global_type; }
void Flags::set_global_type(DType dtype) { g_global_type = dtype; }

} // namespace pynn
