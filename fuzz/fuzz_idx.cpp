// libFuzzer target for pynn::data::read_idx: the input is the file's bytes, raw or gzip. The
// reader must return an array whose shape accounts for the values, or throw pynn::Error (an
// IOError for a malformed file); anything else is a bug. A raw file that reads must read the same
// once gzip-compressed, which drives valid data through the gzip path too.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <xtensor/xarray.hpp>
#define ZLIB_CONST // next_in becomes `const Bytef*`
#include <zlib.h>

#include <pynn/data/idx.hpp>
#include <pynn/error.hpp>

#include "fuzz_support.hpp"

namespace {

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "fuzz_idx: %s\n", what);
    std::abort();
}

std::vector<std::uint8_t> gzip(const std::uint8_t* data, std::size_t size) {
    z_stream zs{};
    // 15 + 16: the largest window, with a gzip (not zlib) wrapper.
    if (deflateInit2(&zs, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        fail("deflateInit2 failed");
    }
    std::vector<std::uint8_t> out(deflateBound(&zs, size) + 64);
    zs.next_in = data;
    zs.avail_in = static_cast<uInt>(size);
    zs.next_out = out.data();
    zs.avail_out = static_cast<uInt>(out.size());
    if (deflate(&zs, Z_FINISH) != Z_STREAM_END) {
        fail("deflate did not finish");
    }
    out.resize(zs.total_out);
    deflateEnd(&zs);
    return out;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const pynn_fuzz::ScratchFile file(".idx");
    static const pynn_fuzz::ScratchFile gz_file(".idx.gz");
    file.write(data, size);
    xt::xarray<float> a;
    try {
        a = pynn::data::read_idx(file.path());
    } catch (const pynn::Error& e) {
        pynn_fuzz::check_user_error(e);
        return 0;
    }
    // A raw file holds a 4-byte magic, 4 bytes per dimension and then the values, so at least
    // one byte per value after the header (a gzip file can say more in fewer bytes).
    std::size_t count = 1;
    for (std::size_t d : a.shape()) {
        count *= d;
    }
    const bool is_gzip = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
    if (a.size() != count || a.dimension() == 0 ||
        (!is_gzip && count > size - 4 - 4 * a.dimension())) {
        fail("the array's shape does not account for the file's values");
    }
    volatile float sink = 0;
    for (float v : a) { // touch every value: ASan checks the storage really is that large
        sink = sink + v;
    }
    if (!is_gzip) {
        const std::vector<std::uint8_t> compressed = gzip(data, size);
        gz_file.write(compressed.data(), compressed.size());
        try {
            const xt::xarray<float> b = pynn::data::read_idx(gz_file.path());
            if (b.shape() != a.shape() ||
                (a.size() > 0 && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) != 0)) {
                fail("the gzip-compressed file reads differently");
            }
        } catch (const pynn::Error& e) {
            std::fprintf(stderr, "fuzz_idx: the gzip-compressed file throws: %s\n", e.what());
            std::abort();
        }
    }
    return 0;
}
