#!/usr/bin/env bash
# Builds pynn with its tests and runs every test (the README's test command; CI runs it too).
# Installs missing Debian packages first. Build tree: build/ci (override with PYNN_BUILD_DIR).
#   scripts/test.sh              Release build, all tests (the benchmarks and examples are built,
#                                so they keep compiling, but not run); on an AVX-512 CPU the
#                                tests run twice, the second time with PYNN_JIT_ISA=avx2
#   scripts/test.sh --sanitize   the same suite built with -fsanitize=address,undefined (no
#                                recovery, leak checks on) in build/asan
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
jobs="$(nproc)"
if [ "${1:-}" = "--sanitize" ]; then
    build_dir="${PYNN_BUILD_DIR:-build/asan}"
    # RelWithDebInfo: xsimd 8's AVX-512 code does not compile at -O0, and optimised sanitizer
    # builds keep CI short. Generic x86-64 code, so the sanitizer build runs on any CI machine.
    cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPYNN_SANITIZE=ON \
          -DPYNN_NATIVE=OFF -DPYNN_BUILD_TESTS=ON -DPYNN_BUILD_EXAMPLES=OFF
    cmake --build "$build_dir" -j "$jobs"
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        ctest --test-dir "$build_dir" --output-on-failure -j "$jobs"
    exit 0
fi
build_dir="${PYNN_BUILD_DIR:-build/ci}"
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DPYNN_BUILD_TESTS=ON \
      -DPYNN_BUILD_EXAMPLES=ON -DPYNN_BUILD_BENCH=ON -DPYNN_WARNINGS_AS_ERRORS=ON
cmake --build "$build_dir" -j "$jobs"
ctest --test-dir "$build_dir" --output-on-failure -j "$jobs"
# On an AVX-512 CPU the suite above runs AVX-512 code for fused regions; run it once more with the
# AVX2 code that CPUs without AVX-512 get (compiler/jit.cpp), so both paths run end to end.
if grep -qw avx512f /proc/cpuinfo 2>/dev/null && grep -qw avx2 /proc/cpuinfo; then
    echo "test.sh: the suite again with PYNN_JIT_ISA=avx2"
    PYNN_JIT_ISA=avx2 ctest --test-dir "$build_dir" --output-on-failure -j "$jobs"
fi
