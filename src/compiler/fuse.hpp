// The fusion pass: rewrites a Plan so that connected regions of elementwise steps run as one
// kernel, and records why neighbouring steps were not fused.
#pragma once

#include "compiler/plan.hpp"

namespace pynn::compiler {

void fuse(Plan& plan);
// Records, for each pair of neighbouring kernels of the final schedule, why they are separate.
void explain_boundaries(Plan& plan);

} // namespace pynn::compiler
