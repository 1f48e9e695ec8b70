// safetensors: byte strings built here from the format's specification (independent of the
// writer) load with the right values; the writer's bytes match the specification; round trips of
// tensors and of Model/Sequential checkpoints; every kind of malformed file, with the error text
// pinned; failed loads leave weights untouched; saves are atomic and clean up after themselves.
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

#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <xtensor/xarray.hpp>

#include <pynn/error.hpp>
#include <pynn/flags.hpp>
#include <pynn/io/safetensors.hpp>
#include <pynn/layers.hpp>
#include <pynn/models.hpp>

#include "support/temp_dir.hpp"

namespace fs = std::filesystem;
using pynn::testing::TempDir;
using Bytes = std::vector<unsigned char>;
using namespace pynn;

namespace {

void put_u64_le(Bytes& b, std::uint64_t v) {
    for (int i = 0; i < 8; ++i) {
        b.push_back(static_cast<unsigned char>(v >> (8 * i)));
    }
}

// A safetensors file: the 8-byte little-endian length of `header`, `header`, then `data`.
Bytes safetensors_bytes(const std::string& header, const Bytes& data) {
    Bytes b;
    put_u64_le(b, header.size());
    b.insert(b.end(), header.begin(), header.end());
    b.insert(b.end(), data.begin(), data.end());
    return b;
}

// Little-endian bytes of each value, from the bit pattern (not memcpy of the host's layout).
template <class T>
Bytes little_endian(const std::vector<T>& values) {
    using U = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
    Bytes out;
    for (T v : values) {
        const U bits = std::bit_cast<U>(v);
        for (std::size_t i = 0; i < sizeof(T); ++i) {
            out.push_back(static_cast<unsigned char>(bits >> (8 * i)));
        }
    }
    return out;
}

void write_raw(const std::string& path, const Bytes& b) {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
    REQUIRE(out.good());
}

Bytes read_raw(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The message of the exception of type E that `f` throws (the test fails if it throws none).
template <class E = IOError>
std::string error_message(const std::function<void()>& f) {
    try {
        f();
    } catch (const E& e) {
        return e.what();
    }
    FAIL("the expected exception was not thrown");
    return {};
}

std::vector<std::string> names_of(const io::NamedTensors& tensors) {
    std::vector<std::string> names;
    for (const auto& nt : tensors) {
        names.push_back(nt.first);
    }
    return names;
}

// Every parameter's values, as float64 so float32 and float64 models compare alike.
std::vector<xt::xarray<double>> snapshot(const std::vector<Tensor>& params) {
    std::vector<xt::xarray<double>> out;
    for (const Tensor& p : params) {
        if (p.dtype() == DType::Float64) {
            out.push_back(p.values<double>());
        } else {
            out.push_back(xt::cast<double>(p.values<float>()));
        }
    }
    return out;
}

// The functional model of the round-trip tests: 4 -> 3 (relu) -> 2.
models::Model small_model(std::uint64_t seed, std::size_t hidden = 3) {
    manual_seed(seed);
    Tensor x = Tensor::zeros({1, 4}, Flags::global_type());
    Tensor h = layers::Dense(4, hidden, relu)(x);
    Tensor y = layers::Dense(hidden, 2)(h);
    return models::Model(x, y);
}

// Restores the global dtype at the end of a scope.
class GlobalTypeGuard {
public:
    explicit GlobalTypeGuard(DType dtype) : m_saved(Flags::global_type()) {
        Flags::set_global_type(dtype);
    }
    ~GlobalTypeGuard() { Flags::set_global_type(m_saved); }
    GlobalTypeGuard(const GlobalTypeGuard&) = delete;
    GlobalTypeGuard& operator=(const GlobalTypeGuard&) = delete;

private:
    DType m_saved;
};

// A layer with two unnamed parameters, to see the default names.
class TwoParams : public layers::Layer {
public:
    Tensor forward(const Tensor& x) override { return x * m_a + m_b; }
    std::vector<Tensor> parameters() const override { return {m_a, m_b}; }
    std::string name() const override { return "TwoParams"; }

private:
    Tensor m_a = Tensor::full({}, 2.0);
    Tensor m_b = Tensor::full({}, 3.0);
};

} // namespace

TEST_CASE("a safetensors file written by hand from the spec loads with its values", "[io]") {
    TempDir dir("pynn_test_safetensors_");
    const std::string path = dir.file("hand.safetensors");
    // Bit patterns spelled out: F64 1.5 = 0x3FF8000000000000, -2.25 = 0xC002000000000000;
    // F32 1.0 = 0x3F800000, 2.0 = 0x40000000, -0.5 = 0xBF000000, 0.25 = 0x3E800000.
    const Bytes data{0, 0, 0,    0,    0, 0, 0xF8, 0x3F, 0, 0, 0, 0,    0, 0, 0x02, 0xC0,
                     0, 0, 0x80, 0x3F, 0, 0, 0,    0x40, 0, 0, 0, 0xBF, 0, 0, 0x80, 0x3E};
    SECTION("unpadded header, keys not in data order, metadata first") {
        const std::string header = R"({"__metadata__":{"format":"pt"},)"
                                   R"("w":{"dtype":"F32","shape":[2,2],"data_offsets":[16,32]},)"
                                   R"("b":{"dtype":"F64","shape":[2],"data_offsets":[0,16]}})";
        REQUIRE(header.size() % 8 != 0); // so the F32 data is not 4-byte aligned in the file
        write_raw(path, safetensors_bytes(header, data));
        const io::SafetensorsFile f = io::read_safetensors(path);
        REQUIRE(names_of(f.tensors) == std::vector<std::string>{"b", "w"}); // data order
        const Tensor& b = f.tensors[0].second;
        const Tensor& w = f.tensors[1].second;
        CHECK(b.dtype() == DType::Float64);
        CHECK(b.shape() == Shape{2});
        CHECK((b.values<double>() == xt::xarray<double>{1.5, -2.25}));
        CHECK(w.dtype() == DType::Float32);
        CHECK(w.shape() == Shape{2, 2});
        CHECK((w.values<float>() == xt::xarray<float>{{1.0F, 2.0F}, {-0.5F, 0.25F}}));
        CHECK_FALSE(w.requires_grad());
        CHECK(f.metadata == io::Metadata{{"format", "pt"}});
    }
    SECTION("header padded with spaces, a scalar and an empty tensor") {
        std::string header = R"({"s":{"dtype":"F64","shape":[],"data_offsets":[0,8]},)"
                             R"("e":{"dtype":"F32","shape":[0,3],"data_offsets":[8,8]}})";
        header.append(8 - header.size() % 8, ' ');
        write_raw(path, safetensors_bytes(header, Bytes(data.begin(), data.begin() + 8)));
        const io::NamedTensors t = io::load_safetensors(path);
        REQUIRE(names_of(t) == std::vector<std::string>{"s", "e"});
        CHECK(t[0].second.shape() == Shape{});
        CHECK(t[0].second.item() == 1.5);
        CHECK(t[1].second.shape() == Shape{0, 3});
    }
    SECTION("no tensors at all") {
        write_raw(path, safetensors_bytes("{}", {}));
        CHECK(io::load_safetensors(path).empty());
    }
}

TEST_CASE("save_safetensors writes the bytes the spec describes", "[io]") {
    TempDir dir("pynn_test_safetensors_");
    const std::string path = dir.file("x.safetensors");
    io::save_safetensors(path, {{"x", Tensor::from_values({1.0, -0.5}, DType::Float32)}});
    std::string header = R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
    header.append((8 - header.size() % 8) % 8, ' ');
    CHECK(read_raw(path) == safetensors_bytes(header, {0, 0, 0x80, 0x3F, 0, 0, 0, 0xBF}));
}

TEST_CASE("save_safetensors and load_safetensors round-trip float32 and float64", "[io]") {
    TempDir dir("pynn_test_safetensors_");
    const std::string path = dir.file("t.safetensors");
    xt::xarray<double> d{{1.0 / 3.0, -1e-300, 1e300}, {0.1, 2.5, -7.0}};
    xt::xarray<float> f{1.0F / 3.0F, -1e-30F, 3e38F, 0.1F, 7.0F};
    const io::Metadata meta{{"epoch", "3"}, {"note", "päth ✓"}};
    io::save_safetensors(path,
                         {{"f32", Tensor::from_values(f)},
                          {"f64", Tensor::from_values(d)},
                          {"scalar", Tensor::scalar(4.5, DType::Float64)},
                          {"empty", Tensor::zeros({2, 0}, DType::Float32)},
                          {"lazy", Tensor::from_values(f) * 2.0}}, // computed while saving
                         meta);

    const Bytes raw = read_raw(path);
    std::uint64_t header_size = 0;
    for (int i = 0; i < 8; ++i) {
        header_size |= std::uint64_t{raw[static_cast<std::size_t>(i)]} << (8 * i);
    }
    CHECK(header_size % 8 == 0); // padded, so F64 data starts 8-byte aligned
    CHECK(raw[8 + header_size - 1] == ' ');

    const io::SafetensorsFile file = io::read_safetensors(path);
    // F64 tensors first (alignment), then F32, each group in the order given.
    REQUIRE(names_of(file.tensors) ==
            std::vector<std::string>{"f64", "scalar", "f32", "empty", "lazy"});
    CHECK((file.tensors[0].second.values<double>() == d));
    CHECK(file.tensors[1].second.item() == 4.5);
    CHECK((file.tensors[2].second.values<float>() == f));
    CHECK(file.tensors[3].second.shape() == Shape{2, 0});
    CHECK((file.tensors[4].second.values<float>() == xt::xarray<float>(f * 2.0F)));
    CHECK(file.metadata == meta);
}

TEST_CASE("save_safetensors rejects bad names before touching the disk", "[io]") {
    TempDir dir("pynn_test_safetensors_");
    const std::string path = dir.file("n.safetensors");
    const Tensor t = Tensor::zeros({2});
    CHECK(error_message<ValueError>([&] {
              io::save_safetensors(path, {{"a", t}, {"a", t}});
          }) == "save_safetensors: " + path + ": the tensor name \"a\" appears twice");
    CHECK(error_message<ValueError>([&] {
              io::save_safetensors(path, {{"__metadata__", t}});
          }) == "save_safetensors: " + path +
                    ": \"__metadata__\" is reserved for the metadata and cannot name a tensor");
    CHECK(error_message<ValueError>([&] {
              io::save_safetensors(path, {{"u", Tensor()}});
          }) == "save_safetensors: " + path + ": tensor \"u\" is undefined");
    CHECK(error_message<ValueError>([&] {
              io::save_safetensors(path, {{"bad\xff", t}});
          }) ==
          "save_safetensors: " + path + ": a tensor name or metadata string is not valid UTF-8");
    CHECK(dir.entries().empty());
}

TEST_CASE("load_safetensors rejects malformed files, naming the file, byte and expectation",
          "[io]") {
    TempDir dir("pynn_test_safetensors_");
    const std::string path = dir.file("bad.safetensors");
    const std::string prefix = "load_safetensors: " + path + ": ";
    auto load_error = [&](const Bytes& bytes) {
        write_raw(path, bytes);
        return error_message([&] { io::load_safetensors(path); });
    };
    // Two F32 tensors of shape (2): "a" at [0, 8) and "b" at [8, 16).
    const std::string two = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                            R"("b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})";
    const Bytes sixteen = little_endian<float>({1, 2, 3, 4});
    auto entry = [](const std::string& fields) { return R"({"a":{)" + fields + "}}"; };
    const std::string shape2 = R"("shape":[2])";
    const std::string offsets8 = R"("data_offsets":[0,8])";
    const Bytes eight = little_endian<float>({1, 2});

    SECTION("the file cannot be opened") {
        CHECK(error_message([&] { io::load_safetensors(dir.file("none")); }) ==
              "load_safetensors: " + dir.file("none") + ": cannot open: No such file or directory");
        CHECK(error_message([&] { io::load_safetensors(dir.path().string()); }) ==
              "load_safetensors: " + dir.path().string() + ": cannot read: it is a directory");
    }
    SECTION("shorter than the 8-byte length") {
        CHECK(load_error({1, 2, 3, 4, 5}) == prefix + "byte 0: expected an 8-byte little-endian "
                                                      "header length, the file has only 5 bytes");
        CHECK(load_error({}) == prefix + "byte 0: expected an 8-byte little-endian header length, "
                                         "the file has only 0 bytes");
    }
    SECTION("header length past the end of the file") {
        Bytes b;
        put_u64_le(b, 1000);
        b.insert(b.end(), 12, '{');
        CHECK(load_error(b) == prefix + "byte 8: expected a 1000-byte JSON header (the length at "
                                        "byte 0), the file ends after 20 bytes");
        Bytes huge;
        put_u64_le(huge, ~std::uint64_t{0});
        CHECK(load_error(huge) == prefix + "byte 8: expected a 18446744073709551615-byte JSON "
                                           "header (the length at byte 0), the file ends after 8 "
                                           "bytes");
    }
    SECTION("invalid JSON") {
        const std::string msg = load_error(safetensors_bytes(R"({"a": {"dtype" "F32"}})", {}));
        // The byte where the parser noticed (the end of the "F32" token), counted in the file.
        CHECK_THAT(msg, Catch::StartsWith(prefix + "byte 27: expected a valid JSON header: parse "
                                                   "error at line 1, column 20: syntax error "
                                                   "while parsing object separator"));
        CHECK_THAT(load_error(safetensors_bytes("", {})),
                   Catch::StartsWith(prefix + "byte 8: expected a valid JSON header: "));
        CHECK_THAT(load_error(safetensors_bytes("{\"a\xff\":1}", {})),
                   Catch::StartsWith(prefix + "byte 11: expected a valid JSON header: "));
    }
    SECTION("a header that is not an object, or repeats a key") {
        CHECK(load_error(safetensors_bytes("[1, 2]", {})) ==
              prefix + "byte 8: expected the JSON header to be an object, found array");
        CHECK(load_error(safetensors_bytes(
                  R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{}})", eight)) ==
              prefix + "byte 8: the JSON header repeats the key \"a\"");
        CHECK(load_error(safetensors_bytes(
                  entry(R"("dtype":"F32","dtype":"F32",)" + shape2 + "," + offsets8), eight)) ==
              prefix + "byte 8: the JSON header repeats the key \"dtype\"");
    }
    SECTION("a tensor entry with a missing or mistyped field") {
        CHECK(load_error(safetensors_bytes(R"({"a":[1]})", {})) ==
              prefix + "byte 8: tensor \"a\": expected an object with \"dtype\", \"shape\" and "
                       "\"data_offsets\", found array");
        CHECK(load_error(safetensors_bytes(entry(shape2 + "," + offsets8), eight)) ==
              prefix + "byte 8: tensor \"a\": expected a \"dtype\" field");
        CHECK(load_error(
                  safetensors_bytes(entry(R"("dtype":4,)" + shape2 + "," + offsets8), eight)) ==
              prefix + "byte 8: tensor \"a\": expected \"dtype\" to be a string, found number");
        CHECK(load_error(safetensors_bytes(entry(R"("dtype":"F32",)" + offsets8), eight)) ==
              prefix + "byte 8: tensor \"a\": expected a \"shape\" field");
        CHECK(load_error(
                  safetensors_bytes(entry(R"("dtype":"F32","shape":[2,-1],)" + offsets8), eight)) ==
              prefix + "byte 8: tensor \"a\": expected \"shape\" to be an array of non-negative "
                       "integers, found [2,-1]");
        CHECK(load_error(
                  safetensors_bytes(entry(R"("dtype":"F32","shape":[2.0],)" + offsets8), eight)) ==
              prefix + "byte 8: tensor \"a\": expected \"shape\" to be an array of non-negative "
                       "integers, found [2.0]");
        CHECK(load_error(safetensors_bytes(entry(R"("dtype":"F32",)" + shape2), eight)) ==
              prefix + "byte 8: tensor \"a\": expected a \"data_offsets\" field");
        CHECK(load_error(safetensors_bytes(
                  entry(R"("dtype":"F32",)" + shape2 + R"(,"data_offsets":[0,8,16])"), eight)) ==
              prefix + "byte 8: tensor \"a\": expected \"data_offsets\" to be an array of two "
                       "non-negative integers [begin, end], found [0,8,16]");
    }
    SECTION("dtypes other than F32 and F64") {
        for (const std::string dtype : {"F16", "BF16", "I64", "U8", "BOOL", "f32"}) {
            CHECK(load_error(safetensors_bytes(
                      entry(R"("dtype":")" + dtype + R"(",)" + shape2 + "," + offsets8), eight)) ==
                  prefix + "byte 8: tensor \"a\": dtype \"" + dtype +
                      "\" is not supported; pynn reads F32 and F64");
        }
    }
    SECTION("offsets that run backwards or do not match shape * dtype size") {
        CHECK(load_error(safetensors_bytes(
                  entry(R"("dtype":"F32",)" + shape2 + R"(,"data_offsets":[8,0])"), eight)) ==
              prefix + "byte 8: tensor \"a\": data_offsets [8, 0) end before they begin");
        CHECK(load_error(safetensors_bytes(
                  entry(R"("dtype":"F64",)" + shape2 + R"(,"data_offsets":[0,8])"), eight)) ==
              prefix + "byte 8: tensor \"a\": F64 (2) needs 16 bytes, but data_offsets [0, 8) "
                       "span 8");
        CHECK(load_error(safetensors_bytes(
                  entry(R"("dtype":"F32","shape":[4294967296,4294967296],)" + offsets8), eight)) ==
              prefix + "byte 8: tensor \"a\": shape [4294967296,4294967296] has "
                       "more than 2^64 bytes");
    }
    SECTION("offsets that overlap, leave a gap, or leave bytes over") {
        const std::string overlap = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                    R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})";
        const std::uint64_t data_start = 8 + overlap.size();
        CHECK(load_error(safetensors_bytes(overlap, little_endian<float>({1, 2, 3}))) ==
              prefix + "byte " + std::to_string(data_start + 4) +
                  ": tensor \"b\": data_offsets [4, 12) overlap those of tensor \"a\" [0, 8)");
        const std::string gap = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                R"("b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}})";
        CHECK(load_error(safetensors_bytes(gap, little_endian<float>({1, 2, 0, 3, 4}))) ==
              prefix + "byte " + std::to_string(8 + gap.size() + 8) +
                  ": expected the data of a tensor at data offset 8, but the next tensor, \"b\", "
                  "begins at 12 (data_offsets must cover the data buffer without gaps)");
        Bytes extra = sixteen;
        extra.insert(extra.end(), {9, 9, 9});
        CHECK(load_error(safetensors_bytes(two, extra)) ==
              prefix + "byte " + std::to_string(8 + two.size() + 16) +
                  ": expected the end of the file after the data of tensor \"b\", found 3 more "
                  "bytes that belong to no tensor");
        CHECK(load_error(safetensors_bytes("{}", {7})) ==
              prefix + "byte 10: expected the end of the file after the header, found 1 more "
                       "bytes that belong to no tensor");
    }
    SECTION("a truncated body") {
        const Bytes cut(sixteen.begin(), sixteen.begin() + 12);
        const std::uint64_t data_start = 8 + two.size();
        CHECK(load_error(safetensors_bytes(two, cut)) ==
              prefix + "byte " + std::to_string(data_start + 8) +
                  ": tensor \"b\": expected 8 bytes of data (data_offsets [8, 16)), the file ends "
                  "after " +
                  std::to_string(data_start + 12) + " bytes (truncated?)");
        CHECK_THAT(load_error(safetensors_bytes(two, {})),
                   Catch::Contains("tensor \"a\": expected 8 bytes of data"));
    }
    SECTION("metadata that is not a map of strings") {
        CHECK(load_error(safetensors_bytes(R"({"__metadata__":{"epoch":3}})", {})) ==
              prefix + "byte 8: \"__metadata__\": expected the value of \"epoch\" to be a "
                       "string, found number 3");
        CHECK(load_error(safetensors_bytes(R"({"__metadata__":"x"})", {})) ==
              prefix + "byte 8: expected \"__metadata__\" to be an object of strings, found "
                       "string");
    }
    SECTION("a valid file still loads (the cases above differ from it in one way each)") {
        write_raw(path, safetensors_bytes(two, sixteen));
        CHECK(io::load_safetensors(path).size() == 2);
    }
}

// Found by fuzz/fuzz_safetensors; the inputs are in fuzz/regressions/fuzz_safetensors/.
TEST_CASE("load_safetensors turns every malformed header the fuzzer found into an IOError",
          "[io]") {
    TempDir dir("pynn_test_safetensors_");
    const std::string path = dir.file("fuzzed.safetensors");
    const std::string prefix = "load_safetensors: " + path + ": ";
    auto load_error = [&](const Bytes& bytes) {
        write_raw(path, bytes);
        return error_message([&] { io::load_safetensors(path); });
    };
    SECTION("a number beyond double's range (nlohmann throws out_of_range, not parse_error)") {
        CHECK(load_error(safetensors_bytes("57e527.5'75", {})) ==
              prefix + "byte 8: expected a valid JSON header: number overflow parsing '57e527'");
    }
    SECTION("a shape nested too deep to print recursively") {
        const std::size_t depth = 100000;
        const std::string shape = std::string(depth, '[') + std::string(depth, ']');
        CHECK(load_error(safetensors_bytes(
                  R"({"a":{"dtype":"F32","shape":)" + shape + R"(,"data_offsets":[0,0]}})", {})) ==
              prefix + "byte 8: tensor \"a\": expected \"shape\" to be an array of non-negative "
                       "integers, found [... (nested more than 32 levels deep)");
    }
    SECTION("an empty shape whose other sizes overflow the strides") {
        CHECK(load_error(safetensors_bytes(R"({"a":{"dtype":"F32","shape":[0,4611686018427387904,)"
                                           R"(4611686018427387904],"data_offsets":[0,0]}})",
                                           {})) ==
              prefix + "byte 8: tensor \"a\": shape [0,4611686018427387904,4611686018427387904] "
                       "cannot be addressed: its sizes (0 counted as 1) multiply to more than "
                       "2^63 bytes");
        // An empty tensor whose strides fit still loads.
        write_raw(path,
                  safetensors_bytes(
                      R"({"a":{"dtype":"F64","shape":[3,0,65536],"data_offsets":[0,0]}})", {}));
        const io::NamedTensors loaded = io::load_safetensors(path);
        REQUIRE(loaded.size() == 1);
        CHECK(loaded[0].second.shape() == Shape{3, 0, 65536});
    }
}

TEST_CASE("Layer::parameter_names: Dense names its weight and bias, others number them", "[io]") {
    CHECK(layers::Dense(2, 3).parameter_names() == std::vector<std::string>{"weight", "bias"});
    CHECK(layers::Dense(2, 3, none, false).parameter_names() == std::vector<std::string>{"weight"});
    CHECK(layers::Flatten().parameter_names().empty());
    layers::LayerHandle two(std::make_shared<TwoParams>());
    CHECK(two.parameter_names() == std::vector<std::string>{"param0", "param1"});
    models::Sequential seq{layers::Flatten(), two, layers::Dense(1, 1, none, false)};
    CHECK(names_of(seq.named_parameters()) ==
          std::vector<std::string>{"1.param0", "1.param1", "2.weight"});
}

TEST_CASE("Model::save / load round-trips the weights into a freshly built model", "[io]") {
    TempDir dir("pynn_test_safetensors_");
    const std::string path = dir.file("model.safetensors");
    models::Model a = small_model(1);
    a.save(path);
    CHECK(dir.entries() == std::vector<std::string>{"model.safetensors"}); // no temp file left

    const io::NamedTensors file = io::load_safetensors(path);
    CHECK(names_of(file) == std::vector<std::string>{"0.weight", "0.bias", "1.weight", "1.bias"});
    CHECK(file[0].second.shape() == Shape{4, 3});

    models::Model b = small_model(2); // different init
    REQUIRE(snapshot(b.parameters()) != snapshot(a.parameters()));
    b.load(path);
    CHECK(snapshot(b.parameters()) == snapshot(a.parameters()));
    const Tensor x = Tensor::randn({5, 4});
    CHECK((b(x).values<float>() == a(x).values<float>()));
    CHECK(b.parameters()[0].requires_grad()); // still a trainable leaf
}

TEST_CASE("Model checkpoints round-trip in float64", "[io]") {
    TempDir dir("pynn_test_safetensors_");
    const std::string path = dir.file("model64.safetensors");
    GlobalTypeGuard f64(DType::Float64);
    models::Model a = small_model(3);
    REQUIRE(a.parameters()[0].dtype() == DType::Float64);
    a.save(path);
    CHECK(io::load_safetensors(path)[0].second.dtype() == DType::Float64);
    models::Model b = small_model(4);
    b.load(path);
    CHECK(snapshot(b.parameters()) == snapshot(a.parameters()));
}

TEST_CASE("Sequential::save / load names parameters by layer position", "[io]") {
    TempDir dir("pynn_test_safetensors_");
    const std::string path = dir.file("seq.safetensors");
    manual_seed(5);
    models::Sequential a{layers::Flatten(), layers::Dense(4, 3, relu), layers::Dropout(0.1),
                         layers::Dense(3, 2, none, false)};
    a.save(path);
    CHECK(names_of(io::load_safetensors(path)) ==
          std::vector<std::string>{"1.weight", "1.bias", "3.weight"});
    manual_seed(6);
    models::Sequential b{layers::Flatten(), layers::Dense(4, 3, relu), layers::Dropout(0.1),
                         layers::Dense(3, 2, none, false)};
    b.load(path);
    CHECK(snapshot(b.parameters()) == snapshot(a.parameters()));
}

TEST_CASE("a checkpoint that does not fit the model throws and changes no weight", "[io]") {
    TempDir dir("pynn_test_safetensors_");
    const std::string path = dir.file("a.safetensors");
    small_model(1).save(path);
    const std::string prefix = "Model::load: " + path + ": ";

    auto check_untouched = [&](models::Model& m, const std::string& expected) {
        const auto before = snapshot(m.parameters());
        CHECK(error_message([&] { m.load(path); }) == expected);
        CHECK(snapshot(m.parameters()) == before);
    };
    SECTION("missing tensors") {
        manual_seed(7);
        Tensor x = Tensor::zeros({1, 4});
        Tensor y = layers::Dense(2, 2)(layers::Dense(3, 2)(layers::Dense(4, 3, relu)(x)));
        models::Model m(x, y);
        check_untouched(m, prefix + "tensor \"2.weight\" (2, 2) float32 is missing from the file; "
                                    "tensor \"2.bias\" (2) float32 is missing from the file; "
                                    "no weights were changed");
    }
    SECTION("extra tensors") {
        manual_seed(7);
        Tensor x = Tensor::zeros({1, 4});
        models::Model m(x, layers::Dense(4, 3, relu)(x));
        check_untouched(m, prefix +
                               "tensor \"1.weight\" (3, 2) float32 in the file is not a "
                               "parameter of the model; tensor \"1.bias\" (2) float32 in the file "
                               "is not a parameter of the model; no weights were changed");
    }
    SECTION("wrong shapes") {
        models::Model m = small_model(7, 5);
        check_untouched(m, prefix +
                               "tensor \"0.weight\" is (4, 3) float32 in the file but (4, 5) "
                               "float32 in the model; tensor \"0.bias\" is (3) float32 in the "
                               "file but (5) float32 in the model; tensor \"1.weight\" is (3, 2) "
                               "float32 in the file but (5, 2) float32 in the model; no weights "
                               "were changed");
    }
    SECTION("a bias the model does not have, and a wrong dtype") {
        GlobalTypeGuard f64(DType::Float64);
        manual_seed(7);
        Tensor x = Tensor::zeros({1, 4});
        Tensor y = layers::Dense(3, 2)(layers::Dense(4, 3, relu, false)(x));
        models::Model m(x, y);
        check_untouched(
            m, prefix +
                   "tensor \"0.weight\" is (4, 3) float32 in the file but (4, 3) float64 in the "
                   "model; tensor \"1.weight\" is (3, 2) float32 in the file but (3, 2) float64 "
                   "in the model; tensor \"1.bias\" is (2) float32 in the file but (2) float64 in "
                   "the model; tensor \"0.bias\" (3) float32 in the file is not a parameter of "
                   "the model; no weights were changed");
    }
    SECTION("a corrupt file: only the last tensor's data is cut short") {
        Bytes bytes = read_raw(path);
        REQUIRE(bytes.size() > 4);
        bytes.erase(bytes.end() - 4, bytes.end());
        write_raw(path, bytes);
        models::Model m = small_model(7);
        const auto before = snapshot(m.parameters());
        CHECK_THAT(error_message([&] { m.load(path); }),
                   Catch::StartsWith("load_safetensors: " + path + ": byte ") &&
                       Catch::Contains("tensor \"1.bias\": expected 8 bytes of data"));
        CHECK(snapshot(m.parameters()) == before);
    }
    SECTION("Sequential says so in its errors") {
        models::Sequential s{layers::Dense(4, 3, relu)};
        const auto before = snapshot(s.parameters());
        CHECK_THAT(error_message([&] { s.load(path); }),
                   Catch::StartsWith("Sequential::load: " + path + ": tensor \"1.weight\""));
        CHECK(snapshot(s.parameters()) == before);
    }
}

TEST_CASE("saves are atomic: a failed save leaves the old file and no temporary file", "[io]") {
    TempDir dir("pynn_test_safetensors_");
    const std::string path = dir.file("m.safetensors");
    models::Model first = small_model(1);
    first.save(path);
    const Bytes original = read_raw(path);

    SECTION("a successful save replaces the file and leaves no temporary file") {
        models::Model second = small_model(2);
        second.save(path);
        CHECK(read_raw(path) != original);
        CHECK(dir.entries() == std::vector<std::string>{"m.safetensors"});
        models::Model check = small_model(3);
        check.load(path);
        CHECK(snapshot(check.parameters()) == snapshot(second.parameters()));
    }
    SECTION("into a directory that does not exist") {
        const std::string missing = dir.file("no/such/dir/m.safetensors");
        CHECK(error_message([&] { first.save(missing); }) ==
              "save_safetensors: " + missing + ": cannot create the temporary file " + missing +
                  ".tmp." + std::to_string(::getpid()) + ": No such file or directory; " + missing +
                  " was not changed");
        CHECK(read_raw(path) == original);
    }
    SECTION("over a directory: the rename fails after the data was written") {
        const std::string target = dir.file("occupied");
        fs::create_directories(fs::path(target) / "keep");
        CHECK_THAT(error_message([&] { first.save(target); }),
                   Catch::StartsWith("save_safetensors: " + target +
                                     ": cannot rename the temporary file " + target + ".tmp." +
                                     std::to_string(::getpid()) + " to " + target + ": "));
        CHECK(fs::is_directory(fs::path(target) / "keep"));
        CHECK(dir.entries() == std::vector<std::string>{"m.safetensors", "occupied"});
        CHECK(read_raw(path) == original);
    }
    SECTION("into a directory without write permission") {
        if (::geteuid() == 0) {
            WARN("running as root, which may write anywhere: skipped");
        } else {
            fs::permissions(dir.path(), fs::perms::owner_read | fs::perms::owner_exec);
            models::Model second = small_model(2);
            CHECK_THAT(error_message([&] { second.save(path); }),
                       Catch::Contains("cannot create the temporary file") &&
                           Catch::Contains("Permission denied"));
            fs::permissions(dir.path(), fs::perms::owner_all);
            CHECK(read_raw(path) == original);
        }
    }
    SECTION("with a bad tensor name: nothing is written") {
        CHECK_THROWS_AS(io::save_safetensors(path, {{"x", Tensor()}}), ValueError);
        CHECK(read_raw(path) == original);
    }
    const std::vector<std::string> left = dir.entries();
    CHECK(std::none_of(left.begin(), left.end(),
                       [](const std::string& n) { return n.find(".tmp.") != std::string::npos; }));
}
