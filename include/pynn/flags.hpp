// Process-wide settings: the default dtype of new tensors and the compiler's switches.
#pragma once

#include "pynn/dtype.hpp"

namespace pynn {

class Flags {
public:
    static DType global_type();
    static void set_global_type(DType dtype);

    // Compiler switches. Each starts from an environment variable when set: PYNN_FUSION=0,
    // PYNN_SIMPLIFY=0 and PYNN_MEMPLAN=0 turn a pass off; PYNN_PROFILE=1 times every kernel and
    // prints a sorted per-kernel profile to stderr after each run (examples and debugging only).
    static bool fusion();
    static void set_fusion(bool enabled);
    static bool simplify();
    static void set_simplify(bool enabled);
    static bool memory_reuse();
    static void set_memory_reuse(bool enabled);
    static bool profile();
    static void set_profile(bool enabled);

    // Anomaly detection, as torch.autograd.detect_anomaly: every kernel's output is checked for
    // NaN/Inf and the first one found throws AnomalyError naming the kernel, the op and the layer
    // it came from (forward or backward). Plans are then compiled unfused and uncached, one kernel
    // per op, so this is for debugging. Starts from PYNN_DETECT_ANOMALY=1.
    static bool detect_anomaly();
    static void set_detect_anomaly(bool enabled);

    // Threads for pynn's kernels, BLAS included: one pool for both, so they never compete for
    // cores. Large GEMMs are split over the pool, each block a single-threaded OpenBLAS call
    // (pynn keeps OpenBLAS itself at one thread). Starts from PYNN_NUM_THREADS when set,
    // otherwise OPENBLAS_NUM_THREADS or the core count, as OpenBLAS would.
    static int num_threads();
    static void set_num_threads(int threads);

    // float32 GEMMs whose right operand fits in L2 (all of the MLP's and CNN's) run on pynn's
    // own register-tiled kernel, faster than OpenBLAS at those shapes; false sends every GEMM to
    // OpenBLAS (for comparison). Starts from PYNN_OWN_GEMM=0 when set.
    static bool own_gemm();
    static void set_own_gemm(bool enabled);

    // Flush denormals, as TensorFlow does by default and torch.set_flush_denormal(true) asks:
    // while a plan runs, results below float's smallest normal (~1.2e-38) become zero, and such
    // inputs read as zero (x86's FTZ and DAZ bits, for the calling thread and pynn's pool). On by
    // default because denormals cost ~100 cycles per operation: Adam's moments of units that get
    // no gradient decay into them within an epoch, which made the MLP's update ~45% slower.
    // The caller's floating-point mode is restored after each run. Starts from
    // PYNN_FLUSH_DENORMAL=0 when set. No effect on other CPUs than x86.
    static bool flush_denormal();
    static void set_flush_denormal(bool enabled);

    // Fused float32 elementwise regions run as machine code generated for them (x86-64 with
    // AVX-512 or AVX2, PYNN_JIT_ISA; the whole chain in registers), not through the op-by-op
    // interpreter. Regions with ops it has no code for (exp, log, tanh, sigmoid, pow) and other
    // CPUs always use the interpreter. Starts from PYNN_JIT=0 when set (for comparison and debugging).
    static bool jit();
    static void set_jit(bool enabled);
};

} // namespace pynn
