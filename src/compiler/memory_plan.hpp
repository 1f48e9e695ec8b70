// The memory-planning pass: gives every intermediate buffer an offset in one arena and sets
// Plan::arena_bytes (the peak) and Plan::naive_bytes (one region per intermediate). With reuse,
// buffers whose lifetimes do not overlap share bytes and an elementwise step may write over an
// input that dies there (Step::in_place_of); without it, each intermediate has its own region.
#pragma once

#include "compiler/plan.hpp"

namespace pynn::compiler {

void plan_memory(Plan& plan, bool reuse);

} // namespace pynn::compiler
