// IDX reading: the whole file is read into memory, inflated if it starts with the gzip magic, then
// the header is validated field by field and the big-endian values are converted to float. The
// MNIST loaders find the four standard files in a directory and shape them for training.
#include "pynn/data/idx.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iomanip>
#include <limits>
#include <memory>
#include <new>
#include <sstream>
#include <string_view>
#include <vector>

#define ZLIB_CONST // next_in becomes `const Bytef*`, so no const_cast is needed
#include <zlib.h>

#include "ops/builder.hpp"
#include "pynn/error.hpp"

namespace pynn::data {
namespace {

using Bytes = std::vector<unsigned char>;

constexpr std::size_t chunk_size = std::size_t{1} << 20;

std::string hex_byte(unsigned char b) {
    std::ostringstream out;
    out << "0x" << std::hex << std::uppercase << std::setw(2) << std::setfill('0')
        << static_cast<unsigned>(b);
    return out.str();
}

Bytes read_file(const std::string& path) {
    std::error_code ec;
    PYNN_CHECK(!std::filesystem::is_directory(path, ec), IOError, "read_idx: ", path,
               ": cannot open: it is a directory");
    const std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"),
                                                               &std::fclose);
    PYNN_CHECK(file != nullptr, IOError, "read_idx: ", path,
               ": cannot open: ", std::strerror(errno));
    // Small files are read in one step of their size (+ 1, to see the end), rather than into a
    // zero-filled chunk of 1 MiB; the size is only a hint (a pipe has none, a file may grow).
    std::size_t step = chunk_size;
    if (const std::uintmax_t hint = std::filesystem::file_size(path, ec); !ec) {
        step = static_cast<std::size_t>(std::min<std::uintmax_t>(hint + 1, chunk_size));
    }
    Bytes bytes;
    std::size_t size = 0;
    while (true) {
        bytes.resize(size + step);
        const std::size_t got = std::fread(bytes.data() + size, 1, step, file.get());
        size += got;
        if (got < step) {
            break;
        }
        step = chunk_size;
    }
    PYNN_CHECK(!std::ferror(file.get()), IOError, "read_idx: ", path, ": read error after ", size,
               " bytes: ", std::strerror(errno));
    bytes.resize(size);
    return bytes;
}

bool is_gzip(const Bytes& bytes) {
    return bytes.size() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b;
}

// Inflates every gzip member in `compressed` (gzip allows several, concatenated). Offsets in the
// errors are into the compressed file, the only place they can be found with a hex dump.
Bytes gunzip(const std::string& path, const Bytes& compressed) {
    z_stream zs{};
    // 15 + 16: the largest window, and expect a gzip (not zlib) wrapper.
    PYNN_ASSERT(inflateInit2(&zs, 15 + 16) == Z_OK, "read_idx: zlib's inflateInit2 failed");
    const std::unique_ptr<z_stream, int (*)(z_stream*)> guard(&zs, &inflateEnd);

    Bytes out;
    // The gzip trailer's last 4 bytes hold the uncompressed size mod 2^32 (of the last member);
    // trusted only as a first guess, bounded by deflate's best ratio of about 1032:1.
    if (compressed.size() >= 18) {
        const std::size_t n = compressed.size();
        const std::size_t isize =
            std::size_t{compressed[n - 4]} | (std::size_t{compressed[n - 3]} << 8) |
            (std::size_t{compressed[n - 2]} << 16) | (std::size_t{compressed[n - 1]} << 24);
        out.resize(std::min(isize, n * 1032) + 1);
    }
    std::size_t produced = 0;
    std::size_t fed = 0;
    while (true) {
        if (zs.avail_in == 0 && fed < compressed.size()) {
            const std::size_t n = std::min(chunk_size, compressed.size() - fed);
            zs.next_in = compressed.data() + fed;
            zs.avail_in = static_cast<uInt>(n);
            fed += n;
        }
        if (produced == out.size()) {
            out.resize(std::max(out.size() * 2, chunk_size));
        }
        const std::size_t room = std::min<std::size_t>(out.size() - produced, UINT_MAX);
        zs.next_out = out.data() + produced;
        zs.avail_out = static_cast<uInt>(room);
        const int ret = inflate(&zs, Z_NO_FLUSH);
        produced += room - zs.avail_out;
        const std::size_t consumed = fed - zs.avail_in;

        if (ret == Z_STREAM_END) {
            if (consumed == compressed.size()) {
                break;
            }
            const std::size_t rest = compressed.size() - consumed;
            PYNN_CHECK(rest >= 2 && compressed[consumed] == 0x1f &&
                           compressed[consumed + 1] == 0x8b,
                       IOError, "read_idx: ", path, ": compressed byte ", consumed,
                       ": expected another gzip member or the end of the file, found ", rest,
                       " more bytes");
            PYNN_ASSERT(inflateReset(&zs) == Z_OK, "read_idx: zlib's inflateReset failed");
            continue;
        }
        if (ret == Z_MEM_ERROR) {
            throw std::bad_alloc();
        }
        // Z_BUF_ERROR with room left in `out` means inflate needs input that is not there.
        PYNN_CHECK(ret != Z_BUF_ERROR, IOError, "read_idx: ", path, ": compressed byte ", consumed,
                   ": expected more gzip data, file ends after ", compressed.size(), " bytes");
        PYNN_CHECK(ret == Z_OK, IOError, "read_idx: ", path, ": compressed byte ", consumed,
                   ": corrupt gzip data (zlib: ", zs.msg != nullptr ? zs.msg : "unknown error",
                   ")");
    }
    out.resize(produced);
    return out;
}

struct TypeInfo {
    unsigned char code;
    std::size_t size;
    const char* name;
};

constexpr std::array<TypeInfo, 6> idx_types{{{0x08, 1, "ubyte"},
                                             {0x09, 1, "sbyte"},
                                             {0x0B, 2, "short"},
                                             {0x0C, 4, "int"},
                                             {0x0D, 4, "float"},
                                             {0x0E, 8, "double"}}};

// Converts n big-endian values of type T starting at `src` to float.
template <class T>
void convert_big_endian(const unsigned char* src, float* dst, std::size_t n) {
    std::array<unsigned char, sizeof(T)> raw{};
    for (std::size_t i = 0; i < n; ++i, src += sizeof(T)) {
        std::copy_n(src, sizeof(T), raw.begin());
        if constexpr (std::endian::native == std::endian::little) {
            std::reverse(raw.begin(), raw.end());
        }
        T value;
        std::memcpy(&value, raw.data(), sizeof(T));
        dst[i] = static_cast<float>(value);
    }
}

xt::xarray<float> parse_idx(const std::string& path, const Bytes& b, bool decompressed) {
    const std::string at = "read_idx: " + path + ": byte ";
    const char* where = decompressed ? " (decompressed): " : ": ";
    const char* ends = decompressed ? "decompressed data ends after " : "file ends after ";
    const std::size_t size = b.size();

    PYNN_CHECK(size >= 4, IOError, at, 0, where, "expected a 4-byte IDX magic number, ", ends, size,
               " bytes");
    PYNN_CHECK(b[0] == 0 && b[1] == 0, IOError, at, 0, where,
               "expected an IDX magic number starting with two zero bytes, found ", hex_byte(b[0]),
               " ", hex_byte(b[1]));
    const auto type = std::find_if(idx_types.begin(), idx_types.end(),
                                   [&](const TypeInfo& t) { return t.code == b[2]; });
    PYNN_CHECK(type != idx_types.end(), IOError, at, 2, where,
               "expected a type code 0x08 (ubyte), 0x09 (sbyte), 0x0B (short), 0x0C (int), 0x0D "
               "(float) or 0x0E (double), found ",
               hex_byte(b[2]));
    const std::size_t rank = b[3];
    PYNN_CHECK(rank > 0, IOError, at, 3, where, "expected at least 1 dimension, found 0");

    const std::size_t header = 4 + 4 * rank;
    PYNN_CHECK(size >= header, IOError, at, 4, where, "expected ", 4 * rank,
               " bytes of dimension sizes, ", ends, size, " bytes");
    std::vector<std::size_t> shape(rank);
    // The product of the sizes with zeros counted as ones: strides are products of sizes, so even
    // an empty array, (0, 2^32 - 1, 2^32 - 1, 2^32 - 1) say, must not overflow it.
    std::size_t extent = 1;
    bool empty = false;
    bool overflow = false;
    constexpr auto max_extent =
        static_cast<std::size_t>(std::numeric_limits<std::ptrdiff_t>::max());
    for (std::size_t d = 0; d < rank; ++d) {
        const unsigned char* p = b.data() + 4 + 4 * d;
        shape[d] = (std::size_t{p[0]} << 24) | (std::size_t{p[1]} << 16) |
                   (std::size_t{p[2]} << 8) | std::size_t{p[3]};
        empty = empty || shape[d] == 0;
        const std::size_t factor = std::max<std::size_t>(shape[d], 1);
        overflow = overflow || extent > max_extent / type->size / factor;
        extent = overflow ? extent : extent * factor;
    }
    const std::string described = to_string(Shape(shape.begin(), shape.end())) + " " + type->name;
    PYNN_CHECK(!overflow, IOError, at, 4, where, "dimension sizes ", described,
               " describe more bytes than can be addressed");
    const std::size_t count = empty ? 0 : extent;
    const std::size_t data_bytes = count * type->size;

    PYNN_CHECK(size - header >= data_bytes, IOError, at, header, where, "expected ", data_bytes,
               " bytes of data for ", described, " values, ", ends, size, " bytes");
    PYNN_CHECK(size - header == data_bytes, IOError, at, header + data_bytes, where,
               "expected the end of the data after ", described, " values, found ",
               size - header - data_bytes, " more bytes");

    xt::xarray<float> result = xt::xarray<float>::from_shape(shape);
    const unsigned char* src = b.data() + header;
    float* dst = result.data();
    switch (type->code) {
    case 0x08:
        std::transform(src, src + count, dst,
                       [](unsigned char v) { return static_cast<float>(v); });
        break;
    case 0x09: convert_big_endian<std::int8_t>(src, dst, count); break;
    case 0x0B: convert_big_endian<std::int16_t>(src, dst, count); break;
    case 0x0C: convert_big_endian<std::int32_t>(src, dst, count); break;
    case 0x0D: convert_big_endian<float>(src, dst, count); break;
    case 0x0E: convert_big_endian<double>(src, dst, count); break;
    default: PYNN_ASSERT(false, "read_idx: type code ", hex_byte(type->code), " has no converter");
    }
    return result;
}

// --- MNIST-format data sets ---

constexpr std::array<const char*, 4> mnist_files{
    "train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte"};

constexpr const char* install_hint =
    "`apt-get install dataset-fashion-mnist` provides Fashion-MNIST in "
    "/usr/share/datasets/fashion-mnist";

std::string find_mnist_file(std::string_view function, const std::string& dir,
                            const std::string& name) {
    for (const std::string& candidate : {name + ".gz", name}) {
        const std::filesystem::path p = std::filesystem::path(dir) / candidate;
        std::error_code ec;
        if (std::filesystem::is_regular_file(p, ec)) {
            return p.string();
        }
    }
    PYNN_CHECK(false, IOError, function, ": ", dir, ": found neither ", name, ".gz nor ", name,
               "; ", install_hint);
    return {};
}

// (N, rows, cols) ubyte images -> (N, rows * cols) in [0, 1].
xt::xarray<float> load_images(std::string_view function, const std::string& path) {
    xt::xarray<float> images = read_idx(path);
    const Shape shape(images.shape().begin(), images.shape().end());
    PYNN_CHECK(images.dimension() == 3, IOError, function, ": ", path,
               ": expected images of shape (N, rows, cols), found ", to_string(shape));
    images.reshape({shape[0], shape[1] * shape[2]});
    images /= 255.0F;
    return images;
}

xt::xarray<float> load_labels(std::string_view function, const std::string& path,
                              std::size_t count) {
    xt::xarray<float> labels = read_idx(path);
    const Shape shape(labels.shape().begin(), labels.shape().end());
    PYNN_CHECK(labels.dimension() == 1, IOError, function, ": ", path,
               ": expected labels of shape (N), found ", to_string(shape));
    PYNN_CHECK(shape[0] == count, IOError, function, ": ", path, ": expected ", count,
               " labels, one per image, found ", shape[0]);
    return labels;
}

MnistData load_mnist_format(std::string_view function, const std::string& dir) {
    namespace fs = std::filesystem;
    std::error_code ec;
    const bool exists = fs::exists(dir, ec);
    const bool is_dir = fs::is_directory(dir, ec);
    PYNN_CHECK(is_dir, IOError, function, ": ", dir,
               exists ? " is not a directory" : " does not exist", " (looked for ", mnist_files[0],
               ", ", mnist_files[1], ", ", mnist_files[2], " and ", mnist_files[3],
               ", each with or without .gz); ", install_hint);
    std::array<std::string, 4> paths;
    for (std::size_t i = 0; i < paths.size(); ++i) {
        paths[i] = find_mnist_file(function, dir, mnist_files[i]);
    }
    MnistData data;
    data.train_images = load_images(function, paths[0]);
    data.train_labels = load_labels(function, paths[1], data.train_images.shape(0));
    data.test_images = load_images(function, paths[2]);
    data.test_labels = load_labels(function, paths[3], data.test_images.shape(0));
    return data;
}

} // namespace

xt::xarray<float> read_idx(const std::string& path) {
    Bytes bytes = read_file(path);
    if (is_gzip(bytes)) {
        return parse_idx(path, gunzip(path, bytes), true);
    }
    return parse_idx(path, bytes, false);
}

MnistData load_mnist(const std::string& dir) { return load_mnist_format("load_mnist", dir); }

MnistData load_fashion_mnist(const std::string& dir) {
    return load_mnist_format("load_fashion_mnist", dir);
}

} // namespace pynn::data
