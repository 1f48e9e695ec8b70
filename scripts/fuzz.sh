#!/usr/bin/env bash
# Builds the libFuzzer targets in fuzz/ with clang (ASan + UBSan + libFuzzer) in build/fuzz, replays
# the committed crash reproducers in fuzz/regressions/<target>/, then fuzzes each target for a
# bounded time on a copy of its seed corpus fuzz/corpus/<target>/ (the repository is not changed).
# Prints, per target, the executions, the inputs in the corpus at the end and whether it crashed;
# exits non-zero if any reproducer or fuzzing run crashed, leaked, ran out of memory or timed out.
#   PYNN_FUZZ_SECONDS    seconds of fuzzing per target (default 30)
#   PYNN_FUZZ_BUILD_DIR  build tree (default build/fuzz); the runs go to <build tree>/fuzz-runs/
#   PYNN_FUZZ_TARGETS    which targets (default "fuzz_idx fuzz_safetensors fuzz_graph")
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh --with-fuzz

seconds="${PYNN_FUZZ_SECONDS:-30}"
build_dir="${PYNN_FUZZ_BUILD_DIR:-build/fuzz}"
targets="${PYNN_FUZZ_TARGETS:-fuzz_idx fuzz_safetensors fuzz_graph}"
jobs="$(nproc)"

# Generic x86-64 code (any CI machine); RelWithDebInfo for speed with usable stack traces.
CC=clang CXX=clang++ cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DPYNN_FUZZ=ON -DPYNN_NATIVE=OFF -DPYNN_BUILD_TESTS=OFF -DPYNN_BUILD_EXAMPLES=OFF \
    -DPYNN_BUILD_BENCH=OFF
cmake --build "$build_dir" -j "$jobs"

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"

# Per target: the longest input (enough for the format's structure, short enough to stay fast),
# and for fuzz_graph, whose library code yields tens of thousands of coverage features, the plain
# power schedule: the entropic one spends half the time updating feature frequencies there.
options() {
    case "$1" in
        fuzz_graph) echo "-max_len=2048 -entropic=0" ;;
        *) echo "-max_len=8192" ;;
    esac
}

failed=()
summary=()
for target in $targets; do
    bin="$build_dir/fuzz/$target"
    run_dir="$build_dir/fuzz-runs/$target"
    rm -rf "$run_dir"
    mkdir -p "$run_dir/corpus" "$run_dir/artifacts"

    # 1. Every committed reproducer must pass (a libFuzzer binary given a file runs it once). One
    #    run per file, so that each one that still crashes is named.
    for input in fuzz/regressions/"$target"/*; do
        [ -e "$input" ] || continue
        log="$run_dir/regression-$(basename "$input").log"
        if ! "$bin" -rss_limit_mb=2048 -timeout=60 "$input" >"$log" 2>&1; then
            grep -E 'ERROR|runtime error|internal error|terminate|what\(\)|^fuzz_' "$log" |
                head -n 5 || true
            echo "fuzz.sh: $target: regression input $input crashes (log: $log)"
            failed+=("$target: $input")
        else
            cp "$input" "$run_dir/corpus/" # a good seed; one that crashes would stop the fuzzing
        fi
    done

    # 2. Fuzz for a bounded time from the seeds (and the reproducers, good seeds too).
    cp fuzz/corpus/"$target"/* "$run_dir/corpus/"
    dict=()
    if [ -f "fuzz/$target.dict" ]; then dict=(-dict="fuzz/$target.dict"); fi
    echo "fuzz.sh: $target: fuzzing for ${seconds} s"
    status=0
    # shellcheck disable=SC2046 # options() is a list of words
    "$bin" "$run_dir/corpus" "${dict[@]}" $(options "$target") -max_total_time="$seconds" \
        -rss_limit_mb=2048 -timeout=30 -print_final_stats=1 -artifact_prefix="$run_dir/artifacts/" \
        >"$run_dir/fuzz.log" 2>&1 || status=$?
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$run_dir/fuzz.log")"
    inputs="$(find "$run_dir/corpus" -type f | wc -l)"
    artifacts="$(find "$run_dir/artifacts" -type f | wc -l)"
    if [ "$status" -ne 0 ] || [ "$artifacts" -ne 0 ]; then
        grep -v -E '^#[0-9]+ +(NEW|REDUCE|pulse)' "$run_dir/fuzz.log" | tail -n 60 || true
        echo "fuzz.sh: $target: CRASHED (exit $status); reproducer(s) in $run_dir/artifacts/:"
        ls "$run_dir/artifacts/"
        failed+=("$target")
        result="CRASH"
    else
        result="no crash"
    fi
    summary+=("$(printf '%-18s %10s executions %6s inputs in corpus   %s' "$target" "${execs:-?}" \
                 "$inputs" "$result")")
done

echo "fuzz.sh: ${seconds} s per target"
printf '  %s\n' "${summary[@]}"
if [ ${#failed[@]} -ne 0 ]; then
    echo "fuzz.sh: FAILED:"
    printf '  %s\n' "${failed[@]}"
    exit 1
fi
