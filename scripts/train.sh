#!/usr/bin/env bash
# Builds pynn in Release and runs the main example. Installs missing Debian packages first,
# including the Fashion-MNIST dataset. Extra arguments go to the example.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh --with-data
build_dir="${PYNN_BUILD_DIR:-build/release}"
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DPYNN_BUILD_TESTS=OFF \
      -DPYNN_BUILD_EXAMPLES=ON
cmake --build "$build_dir" -j "$(nproc)"
if [ -x "$build_dir/examples/mnist_mlp" ]; then
    exec "$build_dir/examples/mnist_mlp" "$@"
fi
exec "$build_dir/examples/autograd_basics" "$@"
