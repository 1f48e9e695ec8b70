// Test support: central finite differences in float64 against pynn's symbolic gradients, and
// helpers to build float64 tensors from xtensor arrays.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <xtensor/xarray.hpp>
#include <xtensor/xbuilder.hpp>
#include <xtensor/xmath.hpp>

#include <pynn/pynn.hpp>

namespace pynn::testing {

// Random float64 values in [low, high), seeded so failures reproduce.
xt::xarray<double> random_array(const Shape& shape, std::uint64_t seed, double low = -1.0,
                                double high = 1.0);

// Checks d(sum(f(inputs) * w))/d(inputs[i]) for a fixed random weighting w (so every output
// element matters) against central differences with step `eps`. Inputs must be float64 arrays;
// they become leaves that require grad. Fails the enclosing Catch2 test on mismatch, naming the
// input and the element.
void check_gradients(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                     const std::vector<xt::xarray<double>>& inputs, double eps = 1e-6,
                     double tolerance = 1e-6);

// Element-wise comparison with a readable failure message.
void require_close(const xt::xarray<double>& actual, const xt::xarray<double>& expected,
                   double tolerance = 1e-12);
void require_close(const xt::xarray<float>& actual, const xt::xarray<float>& expected,
                   double tolerance = 1e-5);

// Short names the op tests share.
namespace shorthands {
using Array = xt::xarray<double>;
using Inputs = std::vector<Tensor>;
inline Tensor leaf(const Array& a) { return Tensor::from_values(a); }
inline xt::xarray<float> to_f32(const Array& a) { return xt::cast<float>(a); }
inline Array to_f64(const xt::xarray<float>& a) { return xt::cast<double>(a); }
} // namespace shorthands

} // namespace pynn::testing
