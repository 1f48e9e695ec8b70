// libFuzzer target for pynn::io::read_safetensors: the input is the file's bytes. A file that
// loads must also survive a round trip (save, load again, same names, shapes, dtypes, bytes and
// metadata); a file that does not must throw pynn::Error. Anything else is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <xtensor/xarray.hpp>

#include <pynn/error.hpp>
#include <pynn/io/safetensors.hpp>

#include "fuzz_support.hpp"

namespace {

template <class T>
bool same_values(const pynn::Tensor& a, const pynn::Tensor& b) {
    const xt::xarray<T> va = a.values<T>();
    const xt::xarray<T> vb = b.values<T>();
    // Bytes, not ==: NaNs must round-trip too.
    return va.size() == vb.size() &&
           (va.size() == 0 || std::memcmp(va.data(), vb.data(), va.size() * sizeof(T)) == 0);
}

bool same_tensor(const pynn::Tensor& a, const pynn::Tensor& b) {
    if (a.shape() != b.shape() || a.dtype() != b.dtype()) {
        return false;
    }
    return a.dtype() == pynn::DType::Float32 ? same_values<float>(a, b) : same_values<double>(a, b);
}

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "fuzz_safetensors: %s\n", what);
    std::abort();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const pynn_fuzz::ScratchFile in(".safetensors");
    static const pynn_fuzz::ScratchFile out(".resaved.safetensors");
    in.write(data, size);
    pynn::io::SafetensorsFile loaded;
    try {
        loaded = pynn::io::read_safetensors(in.path());
    } catch (const pynn::Error& e) {
        pynn_fuzz::check_user_error(e);
        return 0;
    }
    // Whatever loads is valid, so saving it and loading it back must work and change nothing.
    try {
        pynn::io::save_safetensors(out.path(), loaded.tensors, loaded.metadata);
        const pynn::io::SafetensorsFile again = pynn::io::read_safetensors(out.path());
        if (again.metadata != loaded.metadata || again.tensors.size() != loaded.tensors.size()) {
            fail("the round trip changed the metadata or the number of tensors");
        }
        // save_safetensors puts F64 before F32, so the order may change; names are unique.
        for (const auto& [name, t] : loaded.tensors) {
            bool found = false;
            for (const auto& [name2, t2] : again.tensors) {
                if (name2 == name) {
                    found = true;
                    if (!same_tensor(t, t2)) {
                        fail("the round trip changed a tensor");
                    }
                }
            }
            if (!found) {
                fail("the round trip lost a tensor");
            }
        }
    } catch (const pynn::Error& e) {
        std::fprintf(stderr, "fuzz_safetensors: the round trip of a loaded file threw: %s\n",
                     e.what());
        std::abort();
    }
    return 0;
}
