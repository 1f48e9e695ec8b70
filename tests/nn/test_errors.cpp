// Every error a user can cause, one SECTION per row of docs/ERRORS.md (same area, same
// situation): the exception's type and the parts of its message that tell the user what to do.
// Run with PYNN_SHOW_ERRORS=1 in the environment to print every message: that is where the
// table's examples come from.
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <string>
#include <vector>

#include <unistd.h>

#include <catch2/catch.hpp>
#include <xtensor/xarray.hpp>

#include <pynn/data/dataloader.hpp>
#include <pynn/data/idx.hpp>
#include <pynn/io/safetensors.hpp>
#include <pynn/pynn.hpp>

#include "support/temp_dir.hpp"

namespace fs = std::filesystem;
using pynn::testing::TempDir;
using namespace pynn;
using Catch::Contains;
using Catch::EndsWith;
using Catch::StartsWith;
using Bytes = std::vector<unsigned char>;

namespace {

// An exception matcher on what(), so REQUIRE_THROWS_MATCHES checks the type (its second argument)
// and the message (any string matcher, e.g. Contains(a) && Contains(b)) in one assertion.
class WhatMatches : public Catch::MatcherBase<std::exception> {
public:
    explicit WhatMatches(const Catch::MatcherBase<std::string>& m) : m_matcher(m) {}
    bool match(const std::exception& e) const override { return m_matcher.match(e.what()); }
    std::string describe() const override { return "what() " + m_matcher.toString(); }

private:
    const Catch::MatcherBase<std::string>& m_matcher;
};

template <class F>
void show(const char* type, const char* expression, F&& f) {
    static const bool enabled = std::getenv("PYNN_SHOW_ERRORS") != nullptr;
    if (!enabled) {
        return;
    }
    try {
        f();
    } catch (const std::exception& e) {
        std::cout << "[" << type << "] " << expression << "\n    " << e.what() << "\n";
    }
}

} // namespace

// The expression must throw exactly `Type` (or a subclass) with a message `matcher` accepts.
#define REQUIRE_ERROR(expression, Type, matcher)                                                   \
    do {                                                                                           \
        REQUIRE_THROWS_MATCHES(expression, Type, WhatMatches(matcher));                            \
        show(#Type, #expression, [&] { static_cast<void>(expression); });                          \
    } while (false)

namespace {

void write_raw(const std::string& path, const Bytes& bytes) {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
}

// A safetensors file: the 8-byte little-endian header length, the header, then `body`.
Bytes safetensors_bytes(const std::string& header, const Bytes& body) {
    Bytes out;
    for (int i = 0; i < 8; ++i) {
        out.push_back(static_cast<unsigned char>(std::uint64_t{header.size()} >> (8 * i)));
    }
    out.insert(out.end(), header.begin(), header.end());
    out.insert(out.end(), body.begin(), body.end());
    return out;
}

models::Model small_model(std::size_t in, std::size_t out) {
    Tensor x = Tensor::randn({4, in});
    return models::Model(x, layers::Dense(in, out)(x));
}

// A layer whose parameter_names() does not match its parameters(): a bug in user code.
class BadNamesLayer : public layers::Layer {
public:
    Tensor forward(const Tensor& x) override { return x * m_w; }
    std::vector<Tensor> parameters() const override { return {m_w}; }
    std::vector<std::string> parameter_names() const override { return {"w", "extra"}; }
    std::string name() const override { return "BadNames"; }

private:
    Tensor m_w = Tensor::ones({1}).set_requires_grad();
};

} // namespace

TEST_CASE("errors: tensors", "[errors]") {
    Tensor x = Tensor::zeros({2, 3});
    SECTION("an undefined Tensor as an operand") {
        REQUIRE_ERROR(Tensor() + x, ValueError,
                      StartsWith("add: a is an undefined Tensor") &&
                          Contains("default-constructed"));
    }
    SECTION("changing a computed tensor in place") {
        Tensor y = x + x;
        REQUIRE_ERROR(y.assign(x), ValueError,
                      StartsWith("assign: tensor (2, 3) is not a leaf (it is the result of add)"));
        REQUIRE_ERROR(y.set_requires_grad(), ValueError,
                      StartsWith("set_requires_grad: tensor (2, 3) is not a leaf"));
    }
    SECTION("assign from another shape") {
        REQUIRE_ERROR(x.assign(Tensor::zeros({3, 2})), ShapeError,
                      Contains("assign: target (2, 3) and source (3, 2): shapes differ"));
    }
    SECTION("assign from another dtype") {
        REQUIRE_ERROR(x.assign(Tensor::zeros({2, 3}, DType::Float64)), DTypeError,
                      Contains("assign: target (2, 3) is float32 but source (2, 3) is float64"));
    }
    SECTION("defer_assign of another shape") {
        REQUIRE_ERROR(x.defer_assign(x, Tensor::zeros({3})), ShapeError,
                      Contains("defer_assign: target (2, 3) and value (3): shapes differ"));
    }
    SECTION("values<T>() of the other element type") {
        REQUIRE_ERROR(x.values<double>(), DTypeError,
                      Contains("values: tensor (2, 3) is float32 but values<float64>() was asked "
                               "for"));
    }
    SECTION("item() of a tensor with more than one element") {
        REQUIRE_ERROR(x.item(), ShapeError,
                      Contains("item: tensor (2, 3) has 6 elements; item() needs exactly one"));
    }
    SECTION("bad arguments to randn, rand, arange") {
        REQUIRE_ERROR(Tensor::randn({2}, 0.0, -1.0), ValueError,
                      Contains("randn: stddev -1 is negative"));
        REQUIRE_ERROR(Tensor::rand({2}, 1.0, 1.0), ValueError,
                      Contains("rand: low 1 must be below high 1"));
        REQUIRE_ERROR(Tensor::arange(0.0, 1.0, 0.0), ValueError,
                      Contains("arange: step must not be 0"));
    }
    SECTION("a thread count below 1") {
        REQUIRE_ERROR(Flags::set_num_threads(0), ValueError,
                      Contains("Flags::set_num_threads: threads must be >= 1, got 0"));
    }
}

TEST_CASE("errors: autodiff", "[errors]") {
    Tensor w = Tensor::ones({2, 2}).set_requires_grad();
    SECTION("backward on a non-scalar without a seed gradient") {
        Tensor y = w * 3.0;
        REQUIRE_ERROR(y.backward(), ShapeError,
                      StartsWith("backward: loss (2, 2) has 4 elements") &&
                          Contains("needs a scalar") && Contains("sum() or mean()") &&
                          Contains("backward(seed)"));
    }
    SECTION("a seed gradient of another shape or dtype") {
        Tensor y = w * 3.0;
        REQUIRE_ERROR(y.backward(Tensor::ones({4})), ShapeError,
                      Contains("backward: loss (2, 2) and seed gradient (4): shapes differ"));
        REQUIRE_ERROR(y.backward(Tensor::ones({2, 2}, DType::Float64)), DTypeError,
                      Contains("backward: loss (2, 2) is float32 but seed gradient (2, 2) is "
                               "float64"));
    }
    SECTION("backward on a loss that does not require grad") {
        REQUIRE_ERROR(Tensor::ones({2}).sum().backward(), ValueError,
                      StartsWith("backward: loss () does not require grad") &&
                          Contains("NoGradGuard"));
    }
    SECTION("reading grad() before backward") {
        REQUIRE_ERROR(w.grad(), ValueError,
                      StartsWith("grad: tensor (2, 2) has no gradient yet") &&
                          Contains("call backward() first"));
        (w * w).sum().backward();
        REQUIRE(w.grad().values<float>()(0, 0) == 2.0F);
        w.zero_grad(); // cleared: the same error, which says so
        REQUIRE_ERROR(w.grad(), ValueError, Contains("cleared by zero_grad()"));
    }
    SECTION("grad() of a tensor that does not require grad") {
        REQUIRE_ERROR(Tensor::ones({3}).grad(), ValueError,
                      StartsWith("grad: tensor (3) does not require grad") &&
                          Contains("set_requires_grad(true) before backward()"));
    }
    SECTION("grad() of a computed tensor") {
        REQUIRE_ERROR((w * 2.0).grad(), ValueError,
                      Contains("grad: tensor (2, 2) is not a leaf: gradients are kept for leaves "
                               "only"));
    }
    SECTION("a ComputeGraph with no outputs") {
        REQUIRE_ERROR(ComputeGraph(std::vector<Tensor>{}), ValueError,
                      Contains("ComputeGraph: no outputs given"));
    }
    SECTION("write_dot to a path that cannot be written") {
        ComputeGraph g({w * 2.0});
        REQUIRE_ERROR(g.write_dot("/nonexistent-dir/plan.dot"), IOError,
                      Contains("write_dot: /nonexistent-dir/plan.dot: could not write the file"));
    }
}

TEST_CASE("errors: ops", "[errors]") {
    Tensor a = Tensor::zeros({2, 3});
    Tensor b = Tensor::zeros({4, 5});
    Tensor img = Tensor::zeros({1, 3, 8, 8});
    SECTION("elementwise operands that cannot broadcast") {
        REQUIRE_ERROR(a + b, ShapeError,
                      Contains("add: a (2, 3) and b (4, 5): shapes cannot be broadcast (axis 0: 2 "
                               "vs 4)"));
    }
    SECTION("operands of different dtypes") {
        REQUIRE_ERROR(a * Tensor::zeros({3}, DType::Float64), DTypeError,
                      Contains("mul: a (2, 3) is float32 but b (3) is float64") &&
                          Contains("convert one explicitly"));
    }
    SECTION("matmul inner dimensions that differ") {
        REQUIRE_ERROR(matmul(a, b), ShapeError,
                      Contains("matmul: a (2, 3) and b (4, 5): inner dimensions 3 and 4 differ"));
    }
    SECTION("matmul of a 1-D operand") {
        REQUIRE_ERROR(matmul(Tensor::zeros({3}), a), ShapeError,
                      Contains("matmul: a (3) and b (2, 3): both operands need at least 2 axes"));
    }
    SECTION("matmul batch axes that cannot broadcast") {
        REQUIRE_ERROR(matmul(Tensor::zeros({2, 2, 3}), Tensor::zeros({3, 3, 4})), ShapeError,
                      Contains("batch axes (2) and (3) cannot be broadcast"));
    }
    SECTION("an axis out of range") {
        REQUIRE_ERROR(sum(a, {2}), ValueError,
                      Contains("sum: axis 2 is out of range for x (2, 3) (2 axes)"));
    }
    SECTION("a reduction that repeats an axis") {
        REQUIRE_ERROR(sum(a, {0, -2}), ValueError,
                      Contains("sum: axes [0, -2] repeat an axis of x (2, 3)"));
    }
    SECTION("max or min of no values") {
        REQUIRE_ERROR(max(Tensor::zeros({0})), ValueError,
                      Contains("max: x (0) is empty: the maximum of no values is undefined"));
        REQUIRE_ERROR(min(Tensor::zeros({0, 2})), ValueError, Contains("min: x (0, 2) is empty"));
    }
    SECTION("max or argmax over an axis of size 0") {
        REQUIRE_ERROR(max(Tensor::zeros({2, 0}), {1}), ValueError,
                      Contains("max: x (2, 0) is empty"));
        REQUIRE_ERROR(max(Tensor::zeros({0, 2}), {0}), ValueError,
                      Contains("max: x (0, 2) is empty"));
        REQUIRE_ERROR(argmax(Tensor::zeros({2, 0}), 1), ValueError,
                      Contains("argmax: x (2, 0) has size 0 on axis 1"));
    }
    SECTION("argmax of a 0-d tensor") {
        REQUIRE_ERROR(argmax(Tensor::scalar(1.0), 0), ValueError,
                      Contains("argmax: x () is 0-d: there is no axis to search"));
    }
    SECTION("reshape to another number of elements") {
        REQUIRE_ERROR(reshape(a, {4}), ShapeError,
                      Contains("reshape: x (2, 3) has 6 elements, cannot view it as (4) (4 "
                               "elements)"));
    }
    SECTION("permute with the wrong number of axes or a repeated axis") {
        REQUIRE_ERROR(permute(a, {0}), ShapeError,
                      Contains("permute: x (2, 3) has 2 axes but the permutation [0] has 1"));
        REQUIRE_ERROR(permute(a, {1, 1}), ValueError,
                      Contains("permute: [1, 1] is not a permutation of the axes of x (2, 3)"));
    }
    SECTION("broadcast_to a shape that does not fit") {
        REQUIRE_ERROR(broadcast_to(a, {4, 3}), ShapeError,
                      Contains("broadcast_to: x (2, 3) cannot be broadcast to (4, 3)"));
    }
    SECTION("slice of a 0-d tensor, or with a step below 1") {
        REQUIRE_ERROR(slice(Tensor::scalar(1.0), 0, 0, 1), ShapeError,
                      Contains("slice: x () is 0-d: there is no axis to slice"));
        REQUIRE_ERROR(slice(a, 1, 0, 3, 0), ValueError,
                      Contains("slice: step 0 on axis 1 of x (2, 3) must be positive"));
    }
    SECTION("concat or stack of no tensors, or of shapes that differ") {
        REQUIRE_ERROR(concat({}), ValueError, Contains("concat: needs at least one tensor"));
        REQUIRE_ERROR(concat({Tensor::scalar(1.0)}), ShapeError,
                      Contains("concat: tensor 0 () is 0-d: there is no axis to join along"));
        REQUIRE_ERROR(concat({a, b}, 0), ShapeError,
                      Contains("concat: tensor 0 (2, 3) and tensor 1 (4, 5): shapes differ "
                               "outside axis 0"));
        REQUIRE_ERROR(stack({}), ValueError, Contains("stack: needs at least one tensor"));
        REQUIRE_ERROR(stack({a, a}, 3), ValueError,
                      Contains("stack: axis 3 is out of range for the result's 3 axes"));
        REQUIRE_ERROR(stack({a, b}), ShapeError,
                      Contains("stack: tensor 0 (2, 3) and tensor 1 (4, 5): shapes differ"));
    }
    SECTION("clip with low above high, one_hot with no classes") {
        REQUIRE_ERROR(clip(a, 1.0, 0.0), ValueError, Contains("clip: low 1 is above high 0"));
        REQUIRE_ERROR(one_hot(Tensor::zeros({3}), 0), ValueError,
                      Contains("one_hot: num_classes must be positive"));
    }
    SECTION("conv2d input or weight that is not 4-D") {
        REQUIRE_ERROR(conv2d(a, Tensor::zeros({4, 3, 3, 3})), ShapeError,
                      Contains("conv2d: x (2, 3) must be (batch, channels, height, width)"));
        REQUIRE_ERROR(conv2d(img, Tensor::zeros({4, 3, 3})), ShapeError,
                      Contains("conv2d: weight (4, 3, 3) must be (out_channels, in_channels, "
                               "kernel_h, kernel_w)"));
    }
    SECTION("conv2d channels that differ") {
        REQUIRE_ERROR(conv2d(img, Tensor::zeros({4, 2, 3, 3})), ShapeError,
                      Contains("conv2d: x (1, 3, 8, 8) and weight (4, 2, 3, 3): input channels 3 "
                               "and 2 differ"));
    }
    SECTION("conv2d with stride 0, or an input smaller than the kernel") {
        REQUIRE_ERROR(conv2d(img, Tensor::zeros({4, 3, 3, 3}), 0), ValueError,
                      Contains("conv2d: stride must be positive"));
        REQUIRE_ERROR(conv2d(img, Tensor::zeros({4, 3, 9, 9})), ShapeError,
                      Contains("conv2d: x (1, 3, 8, 8) with padding 0 is smaller than the kernel "
                               "of (4, 3, 9, 9)"));
    }
    SECTION("pooling of a non-4-D input, with a zero window, or larger than the input") {
        REQUIRE_ERROR(max_pool2d(a, 2), ShapeError,
                      Contains("max_pool2d: x (2, 3) must be (batch, channels, height, width)"));
        REQUIRE_ERROR(avg_pool2d(img, 0), ValueError,
                      Contains("avg_pool2d: kernel 0 and stride 0 must be positive"));
        REQUIRE_ERROR(max_pool2d(img, 9), ShapeError,
                      Contains("max_pool2d: x (1, 3, 8, 8) is smaller than the 9x9 window"));
    }
}

TEST_CASE("errors: layers and models", "[errors]") {
    manual_seed(3);
    SECTION("a Model called with a tensor of another shape than it was built with") {
        models::Model model = small_model(6, 2);
        REQUIRE_ERROR(model(Tensor::zeros({4, 7})), ShapeError,
                      Contains("Model: input (4, 7) float32 does not match the model's input (4, "
                               "6) float32 (only the batch axis may differ)"));
        REQUIRE(model(Tensor::zeros({9, 6})).shape() == Shape{9, 2}); // the batch axis may
    }
    SECTION("a Model called with another dtype") {
        models::Model model = small_model(6, 2);
        REQUIRE_ERROR(model(Tensor::zeros({4, 6}, DType::Float64)), DTypeError,
                      Contains("Model: input (4, 6) is float64 but the model was built for "
                               "float32"));
    }
    SECTION("a Model called with, or built from, an undefined tensor") {
        models::Model model = small_model(6, 2);
        REQUIRE_ERROR(model(Tensor()), ValueError, Contains("Model: input is an undefined Tensor"));
        REQUIRE_ERROR(models::Model(Tensor(), Tensor()), ValueError,
                      Contains("Model: input and output must be defined tensors"));
    }
    SECTION("a Model whose output is not made by layers from its input") {
        Tensor x = Tensor::zeros({4, 6});
        Tensor y = layers::Dense(6, 2)(x) * 2.0;
        REQUIRE_ERROR(models::Model(x, y), ValueError,
                      Contains("Model: output (4, 2) is not reached from the input (4, 6) through "
                               "layer calls") &&
                          Contains("layers::Lambda"));
    }
    SECTION("a layer called on an undefined tensor") {
        REQUIRE_ERROR(layers::Dense(6, 2)(Tensor()), ValueError,
                      Contains("Dense(6, 2): input is an undefined Tensor"));
    }
    SECTION("Dense given the wrong number of features") {
        REQUIRE_ERROR(layers::Dense(6, 2)(Tensor::zeros({4, 5})), ShapeError,
                      Contains("Dense(6, 2): input (4, 5) must end in 6 features"));
    }
    SECTION("layers built with sizes or rates out of range") {
        REQUIRE_ERROR(layers::Dense(0, 2), ValueError,
                      Contains("Dense: in_features 0 and out_features 2 must be positive"));
        REQUIRE_ERROR(layers::Conv2d(1, 0, 3), ValueError,
                      Contains("Conv2d: channels, kernel_size and stride must be positive"));
        REQUIRE_ERROR(layers::Dropout(1.0), ValueError, Contains("Dropout: p 1 must be in [0, 1)"));
        REQUIRE_ERROR(layers::BatchNorm1d(0), ValueError,
                      Contains("BatchNorm1d(0): num_features must be positive"));
    }
    SECTION("BatchNorm given the wrong input, or one value per channel in training") {
        layers::BatchNorm2d bn(3);
        REQUIRE_ERROR(
            bn(Tensor::zeros({2, 4, 5, 5})), ShapeError,
            Contains("BatchNorm2d(3): input (2, 4, 5, 5) must be (N, C, H, W) with C = 3"));
        layers::BatchNorm1d bn1(3);
        REQUIRE_ERROR(
            bn1(Tensor::zeros({1, 3})), ValueError,
            Contains("BatchNorm1d(3): training needs more than one value per channel, got "
                     "input (1, 3)"));
    }
    SECTION("a custom layer whose parameter_names() do not match its parameters()") {
        auto layer = std::make_shared<BadNamesLayer>();
        Tensor x = Tensor::zeros({4, 1});
        models::Model model(x, layers::call_layer(layer, x));
        REQUIRE_ERROR(model.named_parameters(), ValueError,
                      Contains("layer 0 BadNames: 2 parameter_names() for 1 parameters()"));
    }
}

TEST_CASE("errors: losses", "[errors]") {
    Tensor pred = Tensor::zeros({4, 3});
    SECTION("an undefined operand") {
        REQUIRE_ERROR(losses::mse_loss(pred, Tensor()), ValueError,
                      Contains("mse_loss: an operand is an undefined Tensor"));
    }
    SECTION("prediction and target of different shapes") {
        REQUIRE_ERROR(losses::mse_loss(pred, Tensor::zeros({4, 2})), ShapeError,
                      Contains("mse_loss: pred (4, 3) and target (4, 2): shapes differ"));
    }
    SECTION("scores that are not (batch, classes)") {
        REQUIRE_ERROR(losses::cross_entropy_with_logits(Tensor::zeros({4}), Tensor::zeros({4})),
                      ShapeError,
                      Contains("cross_entropy_with_logits: input (4) must be (batch, classes)"));
    }
    SECTION("a target that is neither class ids nor one-hot") {
        REQUIRE_ERROR(losses::cross_entropy_with_logits(pred, Tensor::zeros({5})), ShapeError,
                      Contains("cross_entropy_with_logits: input (4, 3) and target (5): target "
                               "must be class ids (batch) or one-hot (batch, classes)"));
    }
}

TEST_CASE("errors: optimizers", "[errors]") {
    Tensor p = Tensor::ones({2, 3}).set_requires_grad();
    SECTION("an optimizer given a tensor that does not require grad") {
        optimizers::Adam opt(0.01);
        const Tensor frozen = Tensor::ones({4, 5});
        REQUIRE_ERROR(opt.update({p, frozen}), ValueError,
                      Contains("optimizer: parameter 1 (4, 5) does not require grad; call "
                               "set_requires_grad(true) on parameters"));
        REQUIRE(opt.steps() == 0); // checked before anything changed
    }
    SECTION("an optimizer given a computed tensor, or an undefined one") {
        optimizers::SGD opt(0.1);
        REQUIRE_ERROR(opt.update({p * 2.0}), ValueError,
                      Contains("optimizer: parameter 0 (2, 3) is not a leaf"));
        REQUIRE_ERROR(opt.update({p, Tensor()}), ValueError,
                      Contains("optimizer: parameter 1 is an undefined Tensor"));
    }
    SECTION("hyper-parameters out of range") {
        REQUIRE_ERROR(optimizers::SGD(-0.1), ValueError,
                      Contains("optimizer: learning rate -0.1 must be >= 0"));
        REQUIRE_ERROR(optimizers::SGD(0.1, 0.0, 0.0, true), ValueError,
                      Contains("SGD: nesterov momentum needs momentum > 0 and dampening 0"));
        REQUIRE_ERROR(optimizers::Adam(0.1, 1.0), ValueError,
                      Contains("Adam: betas must be in [0, 1)"));
        optimizers::SGD opt(0.1);
        REQUIRE_ERROR(optimizers::StepLR(opt, 0), ValueError,
                      Contains("StepLR: step_size must be positive"));
        REQUIRE_ERROR(optimizers::CosineAnnealingLR(opt, 0), ValueError,
                      Contains("CosineAnnealingLR: t_max must be positive"));
    }
    SECTION("an optimizer state of another optimizer or for other parameters") {
        optimizers::Adam adam(0.01);
        (p * p).sum().backward();
        adam.update({p});
        const io::StateDict state = adam.state_dict({p});
        optimizers::SGD sgd(0.1, 0.9);
        REQUIRE_ERROR(
            sgd.load_state_dict({p}, state), ValueError,
            StartsWith("SGD::load_state_dict: the state was saved by Adam, this is SGD") &&
                Contains("SGD has no slot \"exp_avg\" (its slots: momentum_buffer)") &&
                EndsWith("the optimizer was not changed"));
        optimizers::Adam other(0.5);
        Tensor q = Tensor::ones({3, 2}).set_requires_grad();
        REQUIRE_ERROR(other.load_state_dict({q}, state), ValueError,
                      Contains("tensor \"0.exp_avg\" is (2, 3) float32 but parameter 0 is (3, 2) "
                               "float32"));
        REQUIRE_ERROR(other.load_state_dict({}, state), ValueError,
                      Contains("tensor \"0.exp_avg\": parameter 0 is out of range for 0 "
                               "parameters"));
        REQUIRE(other.lr() == 0.5);
    }
    SECTION("a schedule's state that is not one") {
        optimizers::SGD opt(0.1);
        optimizers::StepLR step(opt, 2);
        optimizers::CosineAnnealingLR cosine(opt, 5);
        REQUIRE_ERROR(step.load_state_dict(cosine.state_dict()), ValueError,
                      StartsWith("StepLR::load_state_dict: the state was saved by "
                                 "CosineAnnealingLR, this is StepLR"));
        io::StateDict bad = step.state_dict();
        bad.set_number("epoch", 1.5);
        REQUIRE_ERROR(step.load_state_dict(bad), ValueError,
                      Contains("\"epoch\" is 1.5, not a count (an integer >= 0)"));
    }
}

TEST_CASE("errors: data", "[errors]") {
    TempDir dir("pynn_test_errors_");
    const std::string apt_hint = "`apt-get install dataset-fashion-mnist` provides Fashion-MNIST "
                                 "in /usr/share/datasets/fashion-mnist";
    SECTION("the --data folder is missing") {
        const std::string missing = dir.file("fashion");
        REQUIRE_ERROR(data::load_fashion_mnist(missing), IOError,
                      StartsWith("load_fashion_mnist: " + missing + " does not exist") &&
                          Contains("looked for train-images-idx3-ubyte, train-labels-idx1-ubyte, "
                                   "t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte, each with "
                                   "or without .gz") &&
                          Contains(apt_hint));
    }
    SECTION("a file of the data set is missing") {
        REQUIRE_ERROR(data::load_fashion_mnist(dir.path().string()), IOError,
                      Contains(dir.path().string() +
                               ": found neither train-images-idx3-ubyte.gz nor "
                               "train-images-idx3-ubyte") &&
                          Contains(apt_hint));
    }
    SECTION("a truncated IDX file") {
        const std::string path = dir.file("train-images-idx3-ubyte");
        write_raw(path, {0, 0, 0x08, 3, 0, 0, 0, 1, 0});
        REQUIRE_ERROR(data::read_idx(path), IOError,
                      Contains("read_idx: " + path +
                               ": byte 4: expected 12 bytes of dimension sizes, file ends after "
                               "9 bytes"));
    }
    SECTION("an IDX file with a bad magic number") {
        const std::string path = dir.file("labels");
        write_raw(path, {0, 0, 0x42, 1, 0, 0, 0, 0});
        REQUIRE_ERROR(data::read_idx(path), IOError,
                      Contains("read_idx: " + path +
                               ": byte 2: expected a type code 0x08 "
                               "(ubyte)") &&
                          Contains("found 0x42"));
    }
    SECTION("an IDX path that cannot be opened") {
        const std::string path = dir.file("nothing.gz");
        REQUIRE_ERROR(data::read_idx(path), IOError,
                      Contains("read_idx: " + path + ": cannot open: No such file or directory"));
    }
    SECTION("a gzip file cut short") {
        const std::string path = dir.file("cut.gz");
        write_raw(path, {0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0x03, 0x63, 0x60});
        REQUIRE_ERROR(data::read_idx(path), IOError,
                      Contains("read_idx: " + path + ": compressed byte ") &&
                          Contains("expected more gzip data, file ends after 12 bytes"));
    }
    SECTION("images and labels of different lengths") {
        REQUIRE_ERROR(data::DataLoader(xt::xarray<float>(xt::zeros<float>({4, 2})),
                                       xt::xarray<float>(xt::zeros<float>({3})), 2),
                      ShapeError,
                      Contains("DataLoader: images (4, 2) and labels (3): sample counts 4 and 3 "
                               "differ"));
    }
    SECTION("images or labels without a sample axis") {
        REQUIRE_ERROR(data::DataLoader(Tensor::scalar(1.0), Tensor::zeros({1}), 1), ShapeError,
                      Contains("DataLoader: images () and labels (1): both need a first (sample) "
                               "dimension"));
    }
    SECTION("a batch size of 0, a batch index out of range") {
        const xt::xarray<float> x = xt::zeros<float>({4, 2});
        const xt::xarray<float> y = xt::zeros<float>({4});
        REQUIRE_ERROR(data::DataLoader(x, y, 0), ValueError,
                      Contains("DataLoader: batch_size must be positive"));
        data::DataLoader loader(x, y, 2);
        REQUIRE_ERROR(loader.batch(2), ValueError,
                      Contains("DataLoader: batch 2 is out of range for 2 batches"));
    }
    SECTION("scale or normalize by a bad number") {
        xt::xarray<float> x = xt::zeros<float>({2});
        REQUIRE_ERROR(data::scale(x, std::numeric_limits<float>::infinity()), ValueError,
                      Contains("scale: factor must be finite, got inf"));
        REQUIRE_ERROR(data::normalize(x, 0.0F, 0.0F), ValueError,
                      Contains("normalize: std must be positive and finite, got 0"));
        REQUIRE_ERROR(data::normalize(x, std::numeric_limits<float>::quiet_NaN(), 1.0F), ValueError,
                      Contains("normalize: mean must be finite, got nan"));
    }
    SECTION("a label that is not a class index") {
        REQUIRE_ERROR(data::one_hot(xt::xarray<float>{0.0F, 1.5F}, 3), ValueError,
                      Contains("one_hot: labels[1] = 1.5 is not an integer class index"));
        REQUIRE_ERROR(data::one_hot(xt::xarray<float>{0.0F, 3.0F}, 3), ValueError,
                      Contains("one_hot: labels[1] = 3 is outside [0, 3)"));
    }
    SECTION("a DataLoader state for another seed or batch size") {
        const xt::xarray<float> x = xt::zeros<float>({4, 2});
        const xt::xarray<float> y = xt::zeros<float>({4});
        data::DataLoader saved(x, y, 2, {.shuffle = true, .seed = 1});
        data::DataLoader loader(x, y, 4, {.shuffle = true, .seed = 2});
        REQUIRE_ERROR(loader.load_state_dict(saved.state_dict()), ValueError,
                      StartsWith("DataLoader::load_state_dict: the state has seed 1 but this "
                                 "loader has 2") &&
                          Contains("the state has batch_size 2 but this loader has 4") &&
                          EndsWith("the loader was not changed"));
    }
}

TEST_CASE("errors: checkpoints", "[errors]") {
    TempDir dir("pynn_test_errors_");
    manual_seed(4);
    SECTION("a safetensors header longer than the file") {
        const std::string path = dir.file("cut.safetensors");
        Bytes bytes = safetensors_bytes(std::string(120, ' '), {});
        bytes.resize(64);
        write_raw(path, bytes);
        REQUIRE_ERROR(io::load_safetensors(path), IOError,
                      Contains("load_safetensors: " + path +
                               ": byte 8: expected a 120-byte JSON header (the length at byte 0), "
                               "the file ends after 64 bytes"));
    }
    SECTION("a safetensors tensor of a dtype pynn does not read") {
        const std::string path = dir.file("half.safetensors");
        write_raw(path,
                  safetensors_bytes(R"({"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})",
                                    {0, 0, 0, 0}));
        REQUIRE_ERROR(io::load_safetensors(path), IOError,
                      Contains("load_safetensors: " + path +
                               ": byte 8: tensor \"w\": dtype \"F16\" is not supported; pynn reads "
                               "F32 and F64"));
    }
    SECTION("a safetensors file whose data is cut short") {
        const std::string path = dir.file("short.safetensors");
        write_raw(path,
                  safetensors_bytes(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                                    {0, 0, 0, 0}));
        REQUIRE_ERROR(io::load_safetensors(path), IOError,
                      StartsWith("load_safetensors: " + path + ": byte ") &&
                          Contains("tensor \"w\": expected 8 bytes of data"));
    }
    SECTION("a checkpoint path that cannot be opened") {
        const std::string path = dir.file("none.safetensors");
        REQUIRE_ERROR(
            io::load_safetensors(path), IOError,
            Contains("load_safetensors: " + path + ": cannot open: No such file or directory"));
    }
    SECTION("Model::load of a checkpoint of another model") {
        const std::string path = dir.file("m.safetensors");
        small_model(6, 2).save(path);
        models::Model other = small_model(6, 3);
        REQUIRE_ERROR(other.load(path), IOError,
                      StartsWith("Model::load: " + path) &&
                          Contains("tensor \"0.weight\" is (6, 2) float32 in the file but (6, 3) "
                                   "float32 in the model") &&
                          EndsWith("no weights were changed"));
    }
    SECTION("Model::load_state_dict of another model's state") {
        models::Model other = small_model(6, 3);
        REQUIRE_ERROR(other.load_state_dict(small_model(5, 3).state_dict()), ValueError,
                      StartsWith("Model::load_state_dict: tensor \"0.weight\" is (5, 3) float32 in "
                                 "the state dict but (6, 3) float32 in the model") &&
                          EndsWith("no weights were changed"));
    }
    SECTION("saving into a folder that does not exist") {
        const std::string path = dir.file("no/such/m.safetensors");
        REQUIRE_ERROR(
            small_model(2, 2).save(path), IOError,
            StartsWith("save_safetensors: " + path + ": cannot create the temporary file") &&
                Contains("No such file or directory") && EndsWith(" was not changed"));
    }
    SECTION("saving tensors with bad names") {
        const std::string path = dir.file("x.safetensors");
        const Tensor t = Tensor::ones({1});
        REQUIRE_ERROR(io::save_safetensors(path, {{"a", t}, {"a", t}}), ValueError,
                      Contains("save_safetensors: " + path +
                               ": the tensor name \"a\" appears "
                               "twice"));
        REQUIRE_ERROR(io::save_safetensors(path, {{"__metadata__", t}}), ValueError,
                      Contains("\"__metadata__\" is reserved for the metadata"));
        REQUIRE_ERROR(io::save_safetensors(path, {{"u", Tensor()}}), ValueError,
                      Contains("save_safetensors: " + path + ": tensor \"u\" is undefined"));
        REQUIRE_ERROR(io::save_safetensors(path, {{"\xff", t}}), ValueError,
                      Contains("a tensor name or metadata string is not valid UTF-8"));
        REQUIRE_FALSE(fs::exists(path));
    }
    SECTION("a StateDict without the value or tensor asked for") {
        io::StateDict s;
        s.set_number("steps", 3);
        s.set_text("name", "abc");
        REQUIRE_ERROR(s.number("lr"), ValueError,
                      Contains("StateDict: no value \"lr\" (it has \"name\", \"steps\")"));
        REQUIRE_ERROR(s.number("name"), ValueError,
                      Contains("StateDict: value \"name\" is \"abc\", not a number"));
        REQUIRE_ERROR(s.tensor("w"), ValueError, Contains("StateDict: no tensor \"w\""));
        io::StateDict outer;
        outer.add("opt", s);
        REQUIRE_ERROR(outer.add("opt", s), ValueError,
                      Contains("StateDict::add: \"opt.name\" is there already"));
    }
}
