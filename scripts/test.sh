#!/usr/bin/env bash
# Builds pynn with its tests and runs every test (the README's test command; CI runs it too).
# Installs missing Debian packages first. Build tree: build/ci (override with PYNN_BUILD_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
build_dir="${PYNN_BUILD_DIR:-build/ci}"
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DPYNN_BUILD_TESTS=ON \
      -DPYNN_BUILD_EXAMPLES=ON -DPYNN_WARNINGS_AS_ERRORS=ON
cmake --build "$build_dir" -j "$(nproc)"
ctest --test-dir "$build_dir" --output-on-failure -j "$(nproc)"
