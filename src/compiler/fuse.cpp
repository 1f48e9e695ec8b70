// The fusion pass (see fuse.hpp).
#include "compiler/fuse.hpp"

namespace pynn::compiler {

void fuse(Plan&) {}

} // namespace pynn::compiler
