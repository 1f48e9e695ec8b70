// Process-wide settings: the default dtype of new tensors and the compiler's switches.
#pragma once

#include "pynn/dtype.hpp"

namespace pynn {

class Flags {
public:
    static DType global_type();
    static void set_global_type(DType dtype);
};

} // namespace pynn
