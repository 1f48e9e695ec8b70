// The memory-planning pass: gives every intermediate buffer an offset in one arena and sets
// Plan::arena_bytes (the peak) and Plan::naive_bytes (one region per intermediate). With reuse,
// buffers whose lifetimes do not overlap share bytes and an elementwise step may write over an
// input that dies there (Step::in_place_of); without it, each intermediate has its own region.
#pragma once

#include "compiler/plan.hpp"

namespace pynn::compiler {

void plan_memory(Plan& plan, bool reuse);

// Sets Plan::overwrites: output i, stored by its run into leaf target_leaf[i] (a leaf index, or
// SIZE_MAX for none), may be computed straight into that leaf's storage when the step writing it
// is the last to read the leaf and reads each of its elements before writing the same element
// of the output. See Note [Writing into a leaf].
void plan_overwrites(Plan& plan, const std::vector<std::size_t>& target_leaf);

} // namespace pynn::compiler
