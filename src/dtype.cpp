// DType names and shape printing, used by every error message.
#include "pynn/dtype.hpp"

#include "pynn/flags.hpp"

#include <cstdlib>
#include <cstring>

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

bool env_flag(const char* name, bool fallback) {
    const char* v = std::getenv(name);
    if (v == nullptr || *v == '\0') {
        return fallback;
    }
    return !(std::strcmp(v, "0") == 0 || std::strcmp(v, "off") == 0 || std::strcmp(v, "false") == 0);
}

bool g_fusion = env_flag("PYNN_FUSION", true);
bool g_simplify = env_flag("PYNN_SIMPLIFY", true);
bool g_memory_reuse = env_flag("PYNN_MEMPLAN", true);
bool g_profile = env_flag("PYNN_PROFILE", false);
} // namespace

DType Flags::global_type() { return g_global_type; }
void Flags::set_global_type(DType dtype) { g_global_type = dtype; }
bool Flags::fusion() { return g_fusion; }
void Flags::set_fusion(bool enabled) { g_fusion = enabled; }
bool Flags::simplify() { return g_simplify; }
void Flags::set_simplify(bool enabled) { g_simplify = enabled; }
bool Flags::memory_reuse() { return g_memory_reuse; }
void Flags::set_memory_reuse(bool enabled) { g_memory_reuse = enabled; }
bool Flags::profile() { return g_profile; }
void Flags::set_profile(bool enabled) { g_profile = enabled; }

} // namespace pynn
