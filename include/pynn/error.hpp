// pynn's exception hierarchy. Every error pynn throws derives from pynn::Error (a
// std::runtime_error), so callers can catch one type; the subclasses say what went wrong.
#pragma once

#include <stdexcept>
#include <string>

namespace pynn {

class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// An operand has a shape the op cannot accept (thrown when the op is written, not when it runs).
class ShapeError : public Error {
public:
    using Error::Error;
};

// Operands of one op have different dtypes, or a dtype the op cannot handle.
class DTypeError : public Error {
public:
    using Error::Error;
};

// An argument has a bad value (an axis out of range, a negative size, a missing gradient ...).
class ValueError : public Error {
public:
    using Error::Error;
};

// Flags::set_detect_anomaly(true): a kernel produced NaN or Inf. The message names the kernel,
// the op, the layer it was written in and whether it belongs to the forward or backward pass.
class AnomalyError : public Error {
public:
    using Error::Error;
};

// A file could not be read or written, or its contents are malformed.
class IOError : public Error {
public:
    using Error::Error;
};

} // namespace pynn
