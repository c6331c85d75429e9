# The driver that bench/run_*.sh share; sourced, not run (it cds to the repository root).
#
# A script sets its defaults, parses its flags with bench_flag for the common ones, calls
# bench_build TARGET, sets aspo_cmd=(...) and torch_cmd=(...), and calls bench_rounds
# BINARY then bench_table KIND. Every benchmark command runs under bench_quiet: env -u
# OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE, since a machine that sets them can halve sgemm
# speed (tests and CI keep the environment as it is).
#
# Each round runs aspo_cmd, then torch_cmd three ways: as configured (torch and OpenBLAS
# threads = N, Debian's default pthread OpenBLAS), with OMP_WAIT_POLICY=passive, and on the
# OpenMP build of OpenBLAS that aspo links (LD_LIBRARY_PATH); the last two are tuned setups
# that remove PyTorch's thread contention (docs/PERFORMANCE.md). Every JSON line gets its
# round and configuration; bench/bench_table.py prints each configuration's best round (the
# least disturbed by other load on the machine) and the median round.
# (The variables are the scripts' to set and read: shellcheck cannot see that.)
# shellcheck shell=bash disable=SC2034,SC2154
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

threads=2 steps=5 rounds=3 python=${TORCH_PYTHON:-/usr/bin/python3} losses=()
build_dir=${BUILD_DIR:-build}
openmp_blas=/usr/lib/$(gcc -dumpmachine)/openblas-openmp # libblas.so.3 of the OpenMP build
bench_results=$(mktemp)
trap 'rm -f "$bench_results"' EXIT

# bench_flag FLAG VALUE: sets threads, steps, rounds, python or losses (--loss dpo|aspo|both)
# and returns 0, or returns 1 for a flag that is not one of these.
bench_flag() {
    case "$1" in
        --threads) threads=$2 ;;
        --steps) steps=$2 ;;
        --rounds) rounds=$2 ;;
        --python) python=$2 ;;
        --loss) if [[ $2 == both ]]; then losses=(dpo aspo); else losses=("$2"); fi ;;
        *) return 1 ;;
    esac
}

# bench_need_python SCRIPT MODULE...: exits 2 when $python cannot import them all.
bench_need_python() {
    local script=$1 modules
    shift
    modules=$(printf '%s, ' "$@")
    modules=${modules%, }
    if ! "$python" -c "import $modules" 2>/dev/null; then
        echo "$script: $python cannot import $modules; give --python a venv that has them" \
             "(see bench/train_step_torch.py for how to make one)" >&2
        exit 2
    fi
}

# bench_build TARGET: the packages (scripts/setup.sh --bench), then TARGET in Release in
# $build_dir ($BUILD_DIR, default build/).
bench_build() {
    bash scripts/setup.sh --bench
    cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DASPO_SANITIZE=OFF >/dev/null
    cmake --build "$build_dir" --parallel "$(nproc)" --target "$1" >/dev/null
}

bench_quiet() { env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$@"; }

# bench_tag ROUND CONFIG: stdin's JSON lines with "round" and "config" first, to stdout and
# to the results.
bench_tag() { sed "s/^{/{\"round\": $1, \"config\": \"$2\", /" | tee -a "$bench_results"; }

# bench_header BINARY: the machine, the OpenBLAS that BINARY loads, the load average.
bench_header() {
    echo "# machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')," \
         "$(nproc) cores"
    echo "# aspo: $(ldd "$1" | grep -o '/[^ ]*openblas[^ ]*' | head -1)"
    echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
}

bench_footer() {
    echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
}

# bench_compare ROUND [ARG...]: aspo_cmd (and once more with --no-prefix-sharing, as
# "aspo padded", when aspo_padded is set: the training steps), then torch_cmd in the three
# setups, ARGs appended.
bench_compare() {
    local round=$1
    shift
    bench_quiet "${aspo_cmd[@]}" "$@" | bench_tag "$round" aspo
    if [[ -n ${aspo_padded:-} ]]; then
        bench_quiet "${aspo_cmd[@]}" "$@" --no-prefix-sharing | bench_tag "$round" "aspo padded"
    fi
    bench_quiet "${torch_cmd[@]}" "$@" | bench_tag "$round" torch
    bench_quiet OMP_WAIT_POLICY=passive "${torch_cmd[@]}" "$@" | bench_tag "$round" "torch passive"
    bench_quiet LD_LIBRARY_PATH="$openmp_blas${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
        "${torch_cmd[@]}" "$@" | bench_tag "$round" "torch openmp-blas"
}

# bench_rounds BINARY: the header, $rounds rounds of bench_compare (for each of $losses with
# --loss, when there are any), the footer.
bench_rounds() {
    bench_header "$1"
    local round loss
    for round in $(seq 1 "$rounds"); do
        if [[ ${#losses[@]} -eq 0 ]]; then
            bench_compare "$round"
        else
            for loss in "${losses[@]}"; do bench_compare "$round" --loss "$loss"; done
        fi
    done
    bench_footer
}

# bench_table KIND: bench/bench_table.py's table of the results (train, llava, clip, matmul).
bench_table() { /usr/bin/python3 bench/bench_table.py "$1" "$bench_results"; }
