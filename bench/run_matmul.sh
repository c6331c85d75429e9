#!/usr/bin/env bash
# Builds bench_matmul (Release) and runs it and bench/matmul_torch.py on the same shapes and
# thread count, then prints a markdown table (the one in docs/PERFORMANCE.md).
#
#   bash bench/run_matmul.sh [--tokens N] [--reps N] [--threads N] [--omp-before]
#
# threads defaults to nproc. --omp-before goes to bench_matmul only: an OpenMP loop before
# each GEMM (see docs/PERFORMANCE.md); the PyTorch column is unchanged. One run of each,
# with Debian's python3 (pthread OpenBLAS) only: not the rounds and setups of bench/lib.sh.
# The two commands run under bench_quiet (OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset).
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

tokens=512 reps=7 threads=$(nproc) extra=()
usage() {
    echo "usage: bash bench/run_matmul.sh [--tokens N] [--reps N] [--threads N]" \
         "[--omp-before]" >&2
    exit 2
}
while [[ $# -gt 0 ]]; do
    case "$1" in
        --tokens) [[ $# -ge 2 ]] || usage; tokens=$2; shift 2 ;;
        --reps) [[ $# -ge 2 ]] || usage; reps=$2; shift 2 ;;
        --threads) [[ $# -ge 2 ]] || usage; threads=$2; shift 2 ;;
        --omp-before) extra+=(--omp-before); shift ;;
        *) usage ;;
    esac
done

bench_build bench_matmul
args=(--tokens "$tokens" --reps "$reps" --threads "$threads")
bench_header "$build_dir/bench/bench_matmul"
bench_quiet "$build_dir/bench/bench_matmul" "${args[@]}" "${extra[@]}" |
    sed 's/^{/{"src": "aspo", /' | tee -a "$bench_results"
bench_quiet /usr/bin/python3 bench/matmul_torch.py "${args[@]}" |
    sed 's/^{/{"src": "torch", /' | tee -a "$bench_results"
bench_footer
bench_table matmul
