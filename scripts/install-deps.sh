#!/usr/bin/env bash
# Installs pynn's build dependencies from Debian's archive, only what is missing (idempotent).
# Usage: scripts/install-deps.sh [--with-data] [--with-torch] [--with-dnnl] [--with-fuzz]
#   --with-dnnl  oneDNN, a second GEMM reference for bench/bench_kernels
#   --with-fuzz  clang and libFuzzer (libclang_rt.fuzzer), for scripts/fuzz.sh
set -euo pipefail

packages=(build-essential cmake pkg-config libxtensor-dev libxsimd-dev xtl-dev libxtensor-blas-dev
          libopenblas-dev catch2 libbenchmark-dev zlib1g-dev nlohmann-json3-dev)
# xbyak (header-only assembler) for the fused-region code generator, on x86-64 only
case "$(uname -m)" in x86_64|amd64) packages+=(libxbyak-dev) ;; esac
for arg in "$@"; do
    case "$arg" in
        --with-data) packages+=(dataset-fashion-mnist) ;;
        --with-torch) packages+=(libtorch-dev) ;;
        --with-dnnl) packages+=(libdnnl-dev) ;;
        --with-fuzz) packages+=(clang libclang-rt-14-dev) ;;
        *) echo "install-deps.sh: unknown option '$arg'" >&2; exit 2 ;;
    esac
done

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
echo "install-deps.sh: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
