// The memory-planning pass: gives every intermediate buffer an offset in one arena. With reuse,
// buffers whose lifetimes do not overlap share bytes; without it, each has its own.
#pragma once

#include "compiler/plan.hpp"

namespace pynn::compiler {

void plan_memory(Plan& plan, bool reuse);

} // namespace pynn::compiler
