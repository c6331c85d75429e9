#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz (ASPO_FUZZ: clang, ASan, UBSan) in build-fuzz/ and
# runs each on a fresh copy of its seed corpus (tests/fuzz/corpus/<target>/), with its
# dictionary (tests/fuzz/dict/<target>.dict) when it has one.
#
#   bash scripts/fuzz.sh                   every target for 30 s
#   bash scripts/fuzz.sh 3600              every target for an hour: a long run
#   bash scripts/fuzz.sh 60 image dataset  those targets for 60 s
#   FUZZ_JOBS=N      targets fuzzed at once (default: the number of CPUs)
#   FUZZ_TIMEOUT=S   seconds one input may take before it counts as a hang (default 5)
#   FUZZ_RSS_MB=M    memory limit of a target, and of one allocation (default 2048)
#
# Per target: executions, execs/s, libFuzzer's coverage (cov: edges, ft: features), the
# inputs it added to the corpus, and PASS or what it found. A finding (crash, ASan or UBSan
# report, leak, hang, out of memory) keeps the input and libFuzzer's report in
# fuzz-out/<target>/ (crash-*, leak-*, timeout-*, oom-*, and fuzz.log), beside the corpus the
# run grew (fuzz-out/<target>/corpus). Reproduce with build-fuzz/fuzz_<target> <input>;
# FUZZ_VERBOSE=1 prints what each loader said. Exits 1 if any target found something or did
# not run; without clang or libFuzzer's runtime it prints SKIP and exits 0.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ "${1:-}" == -h || "${1:-}" == --help ]]; then
    sed -n '2,19p' "$0"
    exit 0
fi
seconds=${1:-30}
[[ $# -gt 0 ]] && shift
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
    echo "fuzz.sh: SECONDS_PER_TARGET must be a positive integer, not '$seconds' (try --help)" >&2
    exit 2
fi
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
    for d in tests/fuzz/corpus/*/; do targets+=("$(basename "$d")"); done
fi
for t in "${targets[@]}"; do
    if [[ ! -f tests/fuzz/fuzz_$t.c || ! -d tests/fuzz/corpus/$t ]]; then
        echo "fuzz.sh: no target '$t' (tests/fuzz/fuzz_$t.c with tests/fuzz/corpus/$t/)" >&2
        exit 2
    fi
done

# libFuzzer comes with clang's runtime libraries (Debian: libclang-rt-14-dev), OpenMP with
# libomp (libomp-dev); a link of an empty target tells whether both are there.
skip() {
    echo "SKIP: $1 (bash scripts/setup.sh --fuzz installs it)"
    exit 0
}
command -v clang >/dev/null || skip "no clang"
work=$(mktemp -d "/dev/shm/aspo-fuzz.XXXXXX" 2>/dev/null || mktemp -d)
trap 'rm -rf "$work"' EXIT
echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return (int)(d && n) * 0; }' \
    >"$work/probe.c"
why() { grep -m1 -iE 'cannot find|not found|error' "$work/probe.log" || true; }
clang -fsanitize=fuzzer,address,undefined "$work/probe.c" -o "$work/probe" 2>"$work/probe.log" ||
    skip "clang cannot link libFuzzer's runtime: $(why)"
clang -fopenmp "$work/probe.c" -c -o "$work/probe.o" 2>"$work/probe.log" ||
    skip "clang has no OpenMP (libomp): $(why)"

echo "=== build-fuzz: clang, ASPO_FUZZ ==="
start=$SECONDS
if ! { CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DASPO_FUZZ=ON &&
       cmake --build build-fuzz --target fuzz_targets --parallel "$(nproc)"; } \
        >"$work/build.log" 2>&1; then
    cat "$work/build.log"
    echo "fuzz.sh: the build failed (log above)"
    exit 1
fi
echo "built in $((SECONDS - start)) s"

# stat::<name> of libFuzzer's final statistics (-print_final_stats) in a log.
final_stat() {
    sed -n "s/^stat::$1: *//p" "$2" | tail -1
}

# One target: fuzz-out/<target>/ holds its corpus copy, log and findings; result.txt one
# summary line.
fuzz_one() {
    local t=$1 out=fuzz-out/$1
    rm -rf "$out"
    mkdir -p "$out/corpus" "$work/tmp-$t"
    cp tests/fuzz/corpus/"$t"/* "$out/corpus/"
    local rc=0 dict=()
    [[ -f tests/fuzz/dict/$t.dict ]] && dict=(-dict="tests/fuzz/dict/$t.dict")
    TMPDIR=$work/tmp-$t OMP_NUM_THREADS=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        build-fuzz/fuzz_"$t" "$out/corpus" -max_total_time="$seconds" \
        -timeout="${FUZZ_TIMEOUT:-5}" -rss_limit_mb="${FUZZ_RSS_MB:-2048}" \
        -print_final_stats=1 -artifact_prefix="$out/" "${dict[@]}" >"$out/fuzz.log" 2>&1 || rc=$?
    local execs rate added cov ft
    execs=$(final_stat number_of_executed_units "$out/fuzz.log")
    rate=$(final_stat average_exec_per_sec "$out/fuzz.log")
    added=$(final_stat new_units_added "$out/fuzz.log")
    cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$out/fuzz.log" | tail -1 || true)
    ft=${cov##*ft: }
    cov=${cov#cov: }
    cov=${cov%% *}
    local found result
    found=$(find "$out" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' \
            -o -name 'timeout-*' -o -name 'oom-*' \) | head -1)
    if [[ -n "$found" ]]; then
        local what
        what=$(grep -m1 -E '^(fuzz: |==[0-9]+== ?ERROR: |.*: runtime error: |SUMMARY: )' \
               "$out/fuzz.log" | sed -E 's/^==[0-9]+== ?//' || true)
        result="FOUND ${found##*/} ($found): ${what:-see $out/fuzz.log}"
    elif [[ $rc -ne 0 ]]; then
        result="FAILED: exit $rc with no input kept ($out/fuzz.log)"
    else
        result=PASS
    fi
    printf '%-18s %10s %8s %7s %7s %5s  %s\n' "$t" "${execs:--}" "${rate:--}" "${cov:--}" \
        "${ft:--}" "${added:--}" "$result" | tee "$out/result.txt"
}

echo "=== fuzzing ${#targets[@]} targets for $seconds s each, ${FUZZ_JOBS:-$(nproc)} at once ==="
header=$(printf '%-18s %10s %8s %7s %7s %5s  %s' target execs exec/s cov ft new result)
echo "$header"
for t in "${targets[@]}"; do
    while [[ $(jobs -rp | wc -l) -ge ${FUZZ_JOBS:-$(nproc)} ]]; do wait -n || true; done
    fuzz_one "$t" &
done
wait

echo "Fuzz summary ($seconds s per target; findings and logs in fuzz-out/<target>/):"
echo "  $header"
status=0
for t in "${targets[@]}"; do
    line=$(cat "fuzz-out/$t/result.txt" 2>/dev/null || echo "$t: did not run")
    echo "  $line"
    [[ "$line" =~ \ PASS$ ]] || status=1
done
exit "$status"
