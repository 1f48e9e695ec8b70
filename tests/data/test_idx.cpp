// read_idx on files the tests write themselves (raw and gzip, every element type, and each way a
// file can be cut short or corrupt, pinning the error text), the MNIST-directory loaders on a
// small synthetic data set, and the real Fashion-MNIST when Debian's package is installed.
#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

#include <unistd.h>
#include <zlib.h>

#include <catch2/catch.hpp>
#include <xtensor/xarray.hpp>

#include <pynn/data/idx.hpp>
#include <pynn/error.hpp>

#include "support/temp_dir.hpp"

namespace fs = std::filesystem;
using pynn::testing::TempDir;
using Bytes = std::vector<unsigned char>;
using Catch::Matchers::Contains;
using Catch::Matchers::EndsWith;
using Catch::Matchers::Message;
using Catch::Matchers::StartsWith;
using pynn::data::read_idx;

namespace {

void put_u32(Bytes& b, std::uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) {
        b.push_back(static_cast<unsigned char>(v >> shift));
    }
}

// An IDX header for `dims` of `type`, followed by `payload`.
Bytes idx_bytes(unsigned char type, const std::vector<std::uint32_t>& dims, const Bytes& payload) {
    Bytes b{0, 0, type, static_cast<unsigned char>(dims.size())};
    for (std::uint32_t d : dims) {
        put_u32(b, d);
    }
    b.insert(b.end(), payload.begin(), payload.end());
    return b;
}

// A ubyte file of shape dims holding 0, 1, 2, ... (mod 256).
Bytes ubyte_idx(const std::vector<std::uint32_t>& dims) {
    std::size_t n = 1;
    for (std::uint32_t d : dims) {
        n *= d;
    }
    Bytes payload(n);
    for (std::size_t i = 0; i < n; ++i) {
        payload[i] = static_cast<unsigned char>(i % 256);
    }
    return idx_bytes(0x08, dims, payload);
}

// Big-endian bytes of each value of type T.
template <class T>
Bytes big_endian(const std::vector<T>& values) {
    Bytes out;
    for (T v : values) {
        unsigned char raw[sizeof(T)];
        std::memcpy(raw, &v, sizeof(T));
        if constexpr (std::endian::native == std::endian::little) {
            std::reverse(raw, raw + sizeof(T));
        }
        out.insert(out.end(), raw, raw + sizeof(T));
    }
    return out;
}

void write_raw(const std::string& path, const Bytes& b) {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
    REQUIRE(out.good());
}

// mode "wb" starts a file, "ab" appends a second gzip member.
void write_gz(const std::string& path, const Bytes& b, const char* mode = "wb") {
    gzFile f = gzopen(path.c_str(), mode);
    REQUIRE(f != nullptr);
    if (!b.empty()) {
        REQUIRE(gzwrite(f, b.data(), static_cast<unsigned>(b.size())) ==
                static_cast<int>(b.size()));
    }
    REQUIRE(gzclose(f) == Z_OK);
}

Bytes read_raw(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The message of the IOError that `f` throws (the test fails if it throws none).
std::string io_error_message(const std::function<void()>& f) {
    try {
        f();
    } catch (const pynn::IOError& e) {
        return e.what();
    }
    FAIL("no pynn::IOError was thrown");
    return {};
}

std::vector<std::size_t> shape_of(const xt::xarray<float>& a) {
    return std::vector<std::size_t>(a.shape().begin(), a.shape().end());
}

} // namespace

TEST_CASE("read_idx reads a raw ubyte file", "[io]") {
    TempDir dir("pynn_test_idx_");
    const std::string path = dir.file("images-idx3-ubyte");
    write_raw(path, ubyte_idx({2, 3, 4}));

    const xt::xarray<float> a = read_idx(path);
    REQUIRE(shape_of(a) == std::vector<std::size_t>{2, 3, 4});
    for (std::size_t i = 0; i < a.size(); ++i) {
        REQUIRE(a.data()[i] == static_cast<float>(i));
    }
}

TEST_CASE("read_idx reads a gzip file by its magic bytes, whatever its name", "[io]") {
    TempDir dir("pynn_test_idx_");
    const Bytes content = ubyte_idx({3, 5});
    const std::string path = GENERATE(as<std::string>{}, "labels-idx2-ubyte.gz", "no-suffix");
    write_gz(dir.file(path), content);

    const xt::xarray<float> a = read_idx(dir.file(path));
    REQUIRE(shape_of(a) == std::vector<std::size_t>{3, 5});
    for (std::size_t i = 0; i < a.size(); ++i) {
        REQUIRE(a.data()[i] == static_cast<float>(i));
    }
}

TEST_CASE("read_idx reads a gzip file of several members", "[io]") {
    TempDir dir("pynn_test_idx_");
    const std::string path = dir.file("two-members.gz");
    const Bytes content = ubyte_idx({4, 10});
    const auto half = static_cast<std::ptrdiff_t>(content.size() / 2);
    write_gz(path, Bytes(content.begin(), content.begin() + half), "wb");
    write_gz(path, Bytes(content.begin() + half, content.end()), "ab");

    const xt::xarray<float> a = read_idx(path);
    REQUIRE(shape_of(a) == std::vector<std::size_t>{4, 10});
    REQUIRE(a(3, 9) == 39.0F);
}

TEST_CASE("read_idx converts every IDX element type to float", "[io]") {
    TempDir dir("pynn_test_idx_");
    const std::string path = dir.file("typed.idx");
    xt::xarray<float> expected;
    SECTION("0x09 sbyte") {
        write_raw(path, idx_bytes(0x09, {3}, big_endian<std::int8_t>({-128, -1, 127})));
        expected = {-128.0F, -1.0F, 127.0F};
    }
    SECTION("0x0B short") {
        write_raw(path, idx_bytes(0x0B, {3}, big_endian<std::int16_t>({-300, 258, 32767})));
        expected = {-300.0F, 258.0F, 32767.0F};
    }
    SECTION("0x0C int") {
        write_raw(path, idx_bytes(0x0C, {3}, big_endian<std::int32_t>({-70000, 16777216, 1})));
        expected = {-70000.0F, 16777216.0F, 1.0F};
    }
    SECTION("0x0D float") {
        write_raw(path, idx_bytes(0x0D, {3}, big_endian<float>({1.5F, -0.25F, 3e38F})));
        expected = {1.5F, -0.25F, 3e38F};
    }
    SECTION("0x0E double") {
        write_raw(path, idx_bytes(0x0E, {3}, big_endian<double>({-2.25, 1e-3, 0.1})));
        expected = {-2.25F, 1e-3F, 0.1F};
    }
    const xt::xarray<float> a = read_idx(path);
    REQUIRE(shape_of(a) == std::vector<std::size_t>{3});
    for (std::size_t i = 0; i < 3; ++i) {
        REQUIRE(a(i) == expected(i));
    }
}

TEST_CASE("read_idx accepts a dimension of size zero", "[io]") {
    TempDir dir("pynn_test_idx_");
    const std::string path = dir.file("empty-idx2-ubyte");
    write_raw(path, ubyte_idx({0, 28}));
    const xt::xarray<float> a = read_idx(path);
    REQUIRE(shape_of(a) == std::vector<std::size_t>{0, 28});
}

TEST_CASE("read_idx rejects malformed raw files, naming the file and the byte", "[io]") {
    TempDir dir("pynn_test_idx_");
    const std::string path = dir.file("bad-idx");
    const std::string at = "read_idx: " + path + ": byte ";

    SECTION("a file shorter than the magic") {
        write_raw(path, {0, 0});
        REQUIRE_THROWS_MATCHES(
            read_idx(path), pynn::IOError,
            Message(at + "0: expected a 4-byte IDX magic number, file ends after 2 bytes"));
    }
    SECTION("a header cut inside the dimension sizes") {
        Bytes header = idx_bytes(0x08, {60000, 28, 28}, {});
        header.resize(9);
        write_raw(path, header);
        REQUIRE_THROWS_MATCHES(
            read_idx(path), pynn::IOError,
            Message(at + "4: expected 12 bytes of dimension sizes, file ends after 9 bytes"));
    }
    SECTION("a body cut short") {
        Bytes b = ubyte_idx({2, 28, 28});
        b.resize(b.size() - 100); // 16 header bytes + 1468 of the 1568 data bytes
        write_raw(path, b);
        REQUIRE_THROWS_MATCHES(read_idx(path), pynn::IOError,
                               Message(at + "16: expected 1568 bytes of data for (2, 28, 28) "
                                            "ubyte values, file ends after 1484 bytes"));
    }
    SECTION("a body of wider elements cut short") {
        write_raw(path, idx_bytes(0x0E, {2, 2}, big_endian<double>({1.0, 2.0, 3.0})));
        REQUIRE_THROWS_MATCHES(read_idx(path), pynn::IOError,
                               Message(at + "12: expected 32 bytes of data for (2, 2) double "
                                            "values, file ends after 36 bytes"));
    }
    SECTION("bytes after the last value") {
        Bytes b = ubyte_idx({2, 3});
        b.push_back(0xAB);
        b.push_back(0xCD);
        write_raw(path, b);
        REQUIRE_THROWS_MATCHES(read_idx(path), pynn::IOError,
                               Message(at + "18: expected the end of the data after (2, 3) ubyte "
                                            "values, found 2 more bytes"));
    }
    SECTION("a magic that does not start with two zero bytes") {
        Bytes b = ubyte_idx({2, 3});
        b[0] = 0x50; // "PK": a zip file, say
        b[1] = 0x4B;
        write_raw(path, b);
        REQUIRE_THROWS_MATCHES(read_idx(path), pynn::IOError,
                               Message(at + "0: expected an IDX magic number starting with two "
                                            "zero bytes, found 0x50 0x4B"));
    }
    SECTION("an unknown type code") {
        write_raw(path, idx_bytes(0x0A, {1}, {0}));
        REQUIRE_THROWS_MATCHES(
            read_idx(path), pynn::IOError,
            Message(at + "2: expected a type code 0x08 (ubyte), 0x09 (sbyte), 0x0B (short), "
                         "0x0C (int), 0x0D (float) or 0x0E (double), found 0x0A"));
    }
    SECTION("zero dimensions") {
        write_raw(path, idx_bytes(0x08, {}, {7}));
        REQUIRE_THROWS_MATCHES(read_idx(path), pynn::IOError,
                               Message(at + "3: expected at least 1 dimension, found 0"));
    }
    SECTION("dimension sizes whose product overflows") {
        write_raw(path, idx_bytes(0x0D, {0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF}, {}));
        REQUIRE_THROWS_MATCHES(
            read_idx(path), pynn::IOError,
            Message(at + "4: dimension sizes (4294967295, 4294967295, 4294967295) float describe "
                         "more bytes than can be addressed"));
    }
    SECTION("an empty file") {
        write_raw(path, {});
        REQUIRE_THROWS_MATCHES(
            read_idx(path), pynn::IOError,
            Message(at + "0: expected a 4-byte IDX magic number, file ends after 0 bytes"));
    }
}

// Found by fuzz/fuzz_idx (fuzz/regressions/fuzz_idx/): an empty array whose other sizes multiply
// past what strides can hold was accepted, and building its xtensor strides overflowed.
TEST_CASE("read_idx rejects an empty array whose strides would overflow", "[io]") {
    TempDir dir("pynn_test_idx_");
    const std::string path = dir.file("bad-idx");
    write_raw(path, idx_bytes(0x0B, {0, 36, 0x00FDFFFF, 0xFCFDFFFF, 0xF402CC00, 0x00010000}, {}));
    REQUIRE_THROWS_MATCHES(
        read_idx(path), pynn::IOError,
        Message("read_idx: " + path +
                ": byte 4: dimension sizes (0, 36, 16646143, 4244504575, 4093824000, 65536) short "
                "describe more bytes than can be addressed"));
    // Empty arrays whose strides fit still load.
    write_raw(path, idx_bytes(0x08, {0, 0xFFFFFFFF, 3}, {}));
    REQUIRE(shape_of(read_idx(path)) == std::vector<std::size_t>{0, 0xFFFFFFFF, 3});
}

TEST_CASE("read_idx gives offsets into the decompressed data for a malformed gzip file", "[io]") {
    TempDir dir("pynn_test_idx_");
    const std::string path = dir.file("bad-idx.gz");
    const std::string at = "read_idx: " + path + ": byte ";

    SECTION("a header cut inside the dimension sizes") {
        const Bytes full = ubyte_idx({60000, 28, 28});
        write_gz(path, Bytes(full.begin(), full.begin() + 9));
        REQUIRE_THROWS_MATCHES(read_idx(path), pynn::IOError,
                               Message(at + "4 (decompressed): expected 12 bytes of dimension "
                                            "sizes, decompressed data ends after 9 bytes"));
    }
    SECTION("a body cut short") {
        Bytes b = ubyte_idx({3, 4});
        b.pop_back();
        write_gz(path, b);
        REQUIRE_THROWS_MATCHES(read_idx(path), pynn::IOError,
                               Message(at + "12 (decompressed): expected 12 bytes of data for "
                                            "(3, 4) ubyte values, decompressed data ends after 23 "
                                            "bytes"));
    }
    SECTION("bytes after the last value") {
        Bytes b = ubyte_idx({3, 4});
        b.push_back(1);
        write_gz(path, b);
        REQUIRE_THROWS_MATCHES(read_idx(path), pynn::IOError,
                               Message(at + "24 (decompressed): expected the end of the data "
                                            "after (3, 4) ubyte values, found 1 more bytes"));
    }
    SECTION("a bad type code") {
        write_gz(path, idx_bytes(0x07, {1}, {0}));
        REQUIRE_THAT(io_error_message([&] { read_idx(path); }),
                     Contains(at + "2 (decompressed): expected a type code"));
    }
}

TEST_CASE("read_idx rejects a broken gzip stream with the compressed offset", "[io]") {
    TempDir dir("pynn_test_idx_");
    const std::string path = dir.file("broken.gz");
    write_gz(path, ubyte_idx({100, 100}));
    Bytes gz = read_raw(path);
    REQUIRE(gz.size() > 30);
    const std::string prefix = "read_idx: " + path + ": compressed byte ";

    SECTION("a truncated stream") {
        gz.resize(gz.size() / 2);
        write_raw(path, gz);
        REQUIRE_THROWS_MATCHES(read_idx(path), pynn::IOError,
                               Message(prefix + std::to_string(gz.size()) +
                                       ": expected more gzip data, file ends after " +
                                       std::to_string(gz.size()) + " bytes"));
    }
    SECTION("an invalid deflate block") {
        // gzopen writes a 10-byte header; byte 10 opens the first deflate block. 0x07 is a final
        // block of the reserved type 3.
        gz[10] = 0x07;
        write_raw(path, gz);
        REQUIRE_THROWS_MATCHES(
            read_idx(path), pynn::IOError,
            Message(prefix + "11: corrupt gzip data (zlib: invalid block type)"));
    }
    SECTION("a wrong checksum") {
        gz[gz.size() - 8] ^= 0xFF; // the trailer's CRC-32
        write_raw(path, gz);
        REQUIRE_THAT(io_error_message([&] { read_idx(path); }),
                     Contains(prefix) &&
                         Contains(": corrupt gzip data (zlib: incorrect data check)"));
    }
    SECTION("bytes after the gzip stream") {
        const std::size_t end = gz.size();
        gz.push_back(0);
        gz.push_back(0);
        gz.push_back(0);
        write_raw(path, gz);
        REQUIRE_THROWS_MATCHES(read_idx(path), pynn::IOError,
                               Message(prefix + std::to_string(end) +
                                       ": expected another gzip member or the end of the file, "
                                       "found 3 more bytes"));
    }
}

TEST_CASE("read_idx names a path it cannot open", "[io]") {
    TempDir dir("pynn_test_idx_");
    SECTION("a missing file") {
        const std::string path = dir.file("missing-idx3-ubyte.gz");
        REQUIRE_THROWS_MATCHES(
            read_idx(path), pynn::IOError,
            Message("read_idx: " + path + ": cannot open: No such file or directory"));
    }
    SECTION("a directory") {
        const std::string path = dir.path().string();
        REQUIRE_THROWS_MATCHES(read_idx(path), pynn::IOError,
                               Message("read_idx: " + path + ": cannot open: it is a directory"));
    }
}

TEST_CASE("load_mnist reads the four files, flattened and scaled to [0, 1]", "[io]") {
    TempDir dir("pynn_test_idx_");
    // Train: 3 images of 2x2, gzip; test: 2 images, raw (un-gzipped names are accepted too).
    write_gz(dir.file("train-images-idx3-ubyte.gz"),
             idx_bytes(0x08, {3, 2, 2}, {0, 51, 102, 255, 1, 2, 3, 4, 5, 6, 7, 8}));
    write_gz(dir.file("train-labels-idx1-ubyte.gz"), idx_bytes(0x08, {3}, {9, 0, 4}));
    write_raw(dir.file("t10k-images-idx3-ubyte"),
              idx_bytes(0x08, {2, 2, 2}, {255, 255, 0, 0, 10, 20, 30, 40}));
    write_raw(dir.file("t10k-labels-idx1-ubyte"), idx_bytes(0x08, {2}, {1, 2}));

    const pynn::data::MnistData d = pynn::data::load_mnist(dir.path().string());
    REQUIRE(shape_of(d.train_images) == std::vector<std::size_t>{3, 4});
    REQUIRE(shape_of(d.train_labels) == std::vector<std::size_t>{3});
    REQUIRE(shape_of(d.test_images) == std::vector<std::size_t>{2, 4});
    REQUIRE(shape_of(d.test_labels) == std::vector<std::size_t>{2});
    REQUIRE(d.train_images(0, 1) == Approx(0.2F));
    REQUIRE(d.train_images(0, 3) == 1.0F);
    REQUIRE(d.test_images(1, 2) == Approx(30.0F / 255.0F));
    REQUIRE(d.train_labels(0) == 9.0F);
    REQUIRE(d.test_labels(1) == 2.0F);
}

TEST_CASE("load_mnist and load_fashion_mnist say what they looked for", "[io]") {
    TempDir dir("pynn_test_idx_");
    const std::string hint = "`apt-get install dataset-fashion-mnist` provides Fashion-MNIST in "
                             "/usr/share/datasets/fashion-mnist";

    SECTION("a missing directory") {
        const std::string missing = dir.file("nowhere");
        REQUIRE_THROWS_MATCHES(
            pynn::data::load_fashion_mnist(missing), pynn::IOError,
            Message("load_fashion_mnist: " + missing +
                    " does not exist (looked for train-images-idx3-ubyte, "
                    "train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte, "
                    "each with or without .gz); " +
                    hint));
    }
    SECTION("a file instead of a directory") {
        write_raw(dir.file("plain"), {1});
        REQUIRE_THAT(
            io_error_message([&] { pynn::data::load_mnist(dir.file("plain")); }),
            StartsWith("load_mnist: " + dir.file("plain") + " is not a directory (looked for ") &&
                EndsWith(hint));
    }
    SECTION("a missing file") {
        write_gz(dir.file("train-images-idx3-ubyte.gz"), idx_bytes(0x08, {1, 1, 1}, {0}));
        write_gz(dir.file("train-labels-idx1-ubyte.gz"), idx_bytes(0x08, {1}, {0}));
        write_gz(dir.file("t10k-images-idx3-ubyte.gz"), idx_bytes(0x08, {1, 1, 1}, {0}));
        REQUIRE_THROWS_MATCHES(pynn::data::load_fashion_mnist(dir.path().string()), pynn::IOError,
                               Message("load_fashion_mnist: " + dir.path().string() +
                                       ": found neither t10k-labels-idx1-ubyte.gz nor "
                                       "t10k-labels-idx1-ubyte; " +
                                       hint));
    }
    SECTION("labels that do not match the images") {
        write_raw(dir.file("train-images-idx3-ubyte"), idx_bytes(0x08, {2, 1, 1}, {0, 1}));
        write_raw(dir.file("train-labels-idx1-ubyte"), idx_bytes(0x08, {3}, {0, 1, 2}));
        write_raw(dir.file("t10k-images-idx3-ubyte"), idx_bytes(0x08, {1, 1, 1}, {0}));
        write_raw(dir.file("t10k-labels-idx1-ubyte"), idx_bytes(0x08, {1}, {0}));
        REQUIRE_THROWS_MATCHES(pynn::data::load_mnist(dir.path().string()), pynn::IOError,
                               Message("load_mnist: " + dir.file("train-labels-idx1-ubyte") +
                                       ": expected 2 labels, one per image, found 3"));
    }
    SECTION("images that are not (N, rows, cols)") {
        write_raw(dir.file("train-images-idx3-ubyte"), idx_bytes(0x08, {2, 1}, {0, 1}));
        write_raw(dir.file("train-labels-idx1-ubyte"), idx_bytes(0x08, {2}, {0, 1}));
        write_raw(dir.file("t10k-images-idx3-ubyte"), idx_bytes(0x08, {1, 1, 1}, {0}));
        write_raw(dir.file("t10k-labels-idx1-ubyte"), idx_bytes(0x08, {1}, {0}));
        REQUIRE_THROWS_MATCHES(pynn::data::load_mnist(dir.path().string()), pynn::IOError,
                               Message("load_mnist: " + dir.file("train-images-idx3-ubyte") +
                                       ": expected images of shape (N, rows, cols), found (2, 1)"));
    }
}

TEST_CASE("the real Fashion-MNIST loads with the documented shapes", "[io]") {
    const std::string dir = pynn::data::debian_fashion_mnist_dir;
    if (!fs::is_directory(dir)) {
        WARN("skipped: " << dir << " not found (apt-get install dataset-fashion-mnist)");
        return;
    }
    const xt::xarray<float> raw = read_idx(dir + "/train-images-idx3-ubyte.gz");
    REQUIRE(shape_of(raw) == std::vector<std::size_t>{60000, 28, 28});

    const pynn::data::MnistData d = pynn::data::load_fashion_mnist(dir);
    REQUIRE(shape_of(d.train_images) == std::vector<std::size_t>{60000, 784});
    REQUIRE(shape_of(d.train_labels) == std::vector<std::size_t>{60000});
    REQUIRE(shape_of(d.test_images) == std::vector<std::size_t>{10000, 784});
    REQUIRE(shape_of(d.test_labels) == std::vector<std::size_t>{10000});

    const auto [lo, hi] = std::minmax_element(d.train_images.begin(), d.train_images.end());
    REQUIRE(*lo == 0.0F);
    REQUIRE(*hi == 1.0F);
    // Fashion-MNIST is balanced: 6000 training and 1000 test images of each of the 10 classes.
    const auto class_counts = [](const xt::xarray<float>& labels) {
        const auto [min, max] = std::minmax_element(labels.begin(), labels.end());
        REQUIRE(*min == 0.0F);
        REQUIRE(*max == 9.0F);
        std::vector<std::size_t> counts(10, 0);
        for (float label : labels) {
            ++counts[static_cast<std::size_t>(label)];
        }
        return counts;
    };
    REQUIRE(class_counts(d.train_labels) == std::vector<std::size_t>(10, 6000));
    REQUIRE(class_counts(d.test_labels) == std::vector<std::size_t>(10, 1000));
}
