// DType names and shape printing, used by every error message.
#include "pynn/dtype.hpp"

#include "pynn/error.hpp"
#include "pynn/flags.hpp"

#include <cblas.h>

#include <algorithm>
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
bool g_detect_anomaly = env_flag("PYNN_DETECT_ANOMALY", false);
bool g_own_gemm = env_flag("PYNN_OWN_GEMM", true);
bool g_flush_denormal = env_flag("PYNN_FLUSH_DENORMAL", true);
bool g_jit = env_flag("PYNN_JIT", true);
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
bool Flags::detect_anomaly() { return g_detect_anomaly; }
void Flags::set_detect_anomaly(bool enabled) { g_detect_anomaly = enabled; }
bool Flags::own_gemm() { return g_own_gemm; }
void Flags::set_own_gemm(bool enabled) { g_own_gemm = enabled; }
bool Flags::flush_denormal() { return g_flush_denormal; }
void Flags::set_flush_denormal(bool enabled) { g_flush_denormal = enabled; }
bool Flags::jit() { return g_jit; }
void Flags::set_jit(bool enabled) { g_jit = enabled; }

namespace {
// pynn's thread count: PYNN_NUM_THREADS, else what OpenBLAS would have used (OPENBLAS_NUM_THREADS
// or the core count). OpenBLAS itself then runs single-threaded: pynn splits large GEMMs over
// its own pool (src/runtime/parallel.hpp), so one pool owns the cores.
int initial_threads() {
    int n = openblas_get_num_threads();
    const char* v = std::getenv("PYNN_NUM_THREADS");
    if (v != nullptr && *v != '\0' && std::atoi(v) >= 1) {
        n = std::atoi(v);
    }
    openblas_set_num_threads(1);
    return std::max(n, 1);
}
int g_threads = initial_threads();
} // namespace

int Flags::num_threads() { return g_threads; }
void Flags::set_num_threads(int threads) {
    if (threads < 1) {
        throw ValueError("Flags::set_num_threads: threads must be >= 1, got " +
                         std::to_string(threads));
    }
    g_threads = threads;
}

} // namespace pynn
