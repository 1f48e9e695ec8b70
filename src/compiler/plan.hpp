// Plan: what the compiler hands the executor. A list of kernels (steps) in execution order over
// numbered buffers; each buffer is a bound leaf, a constant baked in by the compiler, or an
// intermediate the executor allocates. Later passes (fusion, memory planning) rewrite this.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "graph/node.hpp"

namespace pynn::compiler {

enum class BufferKind : std::uint8_t { Leaf, Constant, Intermediate };

struct BufferInfo {
    Shape shape;
    DType dtype = DType::Float32;
    BufferKind kind = BufferKind::Intermediate;
    std::size_t leaf_index = 0; // Leaf: position among the DAG's leaves
    StoragePtr constant;        // Constant: its data
    std::string label;          // the user's tensor name, when it has one
};

struct Step {
    Op op;
    std::vector<std::size_t> inputs; // buffer ids
    std::size_t output = 0;          // buffer id
};

struct Plan {
    std::vector<BufferInfo> buffers;
    std::vector<Step> steps;
    std::size_t num_leaves = 0;
    std::vector<std::size_t> outputs;                         // requested outputs -> buffer
    std::vector<std::pair<std::size_t, std::size_t>> grads;   // (leaf index, buffer)

    std::size_t intermediate_bytes() const;
    std::string to_string() const;
};

} // namespace pynn::compiler
