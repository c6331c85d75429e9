#!/usr/bin/env bash
# Builds bench_matmul (Release) and runs it and bench/matmul_torch.py on the same shapes and
# thread count, then prints a markdown table (the one in docs/PERFORMANCE.md).
#
#   bash bench/run_matmul.sh [--tokens N] [--reps N] [--threads N] [--omp-before]
#
# threads defaults to nproc. --omp-before goes to bench_matmul only: an OpenMP loop before
# each GEMM (see docs/PERFORMANCE.md); the PyTorch column is unchanged.
#
# OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are unset for the two benchmark commands only: a
# machine that sets them can halve sgemm speed. Tests and CI keep the environment as it is.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

tokens=512 reps=7 threads=$(nproc) extra=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --tokens) tokens=$2; shift 2 ;;
        --reps) reps=$2; shift 2 ;;
        --threads) threads=$2; shift 2 ;;
        --omp-before) extra+=(--omp-before); shift ;;
        *) echo "usage: bash bench/run_matmul.sh [--tokens N] [--reps N] [--threads N]" \
                "[--omp-before]" >&2
           exit 2 ;;
    esac
done

bash scripts/setup.sh --bench
build_dir=${BUILD_DIR:-build}
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DASPO_SANITIZE=OFF >/dev/null
cmake --build "$build_dir" --parallel "$(nproc)" --target bench_matmul >/dev/null

results=$(mktemp)
trap 'rm -f "$results"' EXIT
args=(--tokens "$tokens" --reps "$reps" --threads "$threads")

echo "# machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores"
echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$build_dir/bench/bench_matmul" "${args[@]}" "${extra[@]}" |
    sed 's/^{/{"src": "aspo", /' | tee -a "$results"
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 bench/matmul_torch.py "${args[@]}" |
    sed 's/^{/{"src": "torch", /' | tee -a "$results"
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo

/usr/bin/python3 - "$results" <<'EOF'
import json, sys

rows, torch, cfg = {}, {}, {}
with open(sys.argv[1]) as f:
    for line in f:
        r = json.loads(line)
        if r.get("config"):
            cfg.update(r)
        elif r["src"] == "aspo":
            rows[r["name"]] = r
        else:
            torch[r["name"]] = r

def num(v):
    return f"{v:.1f}" if v is not None else "n/a"

def ratio(a, b):
    return f"{a / b:.2f}" if a is not None and b else "n/a"

core = cfg.get("openblas_core", "?")
print(f"aspo: {cfg.get('openblas_config', '?')}, threads {cfg.get('openblas_threads')}; "
      f"torch {cfg.get('torch_version', 'n/a')} (threads {cfg.get('torch_threads', 'n/a')}, "
      f"OpenBLAS threads {cfg.get('torch_blas_threads')}, core {cfg.get('torch_blas_core')})")
print()
print("| shape (M x K x N) | op layer GFLOP/s | direct sgemm GFLOP/s | op/direct "
      "| PyTorch GFLOP/s | op/PyTorch | OpenBLAS core |")
print("|---|---:|---:|---:|---:|---:|---|")
for name, r in rows.items():
    t = torch.get(name, {}).get("torch_gflops")
    op, direct = r.get("op_gflops"), r["sgemm_gflops"]
    shape = f"{name.split()[0]} {r['M']}x{r['K']}x{r['N']}" + (" (W^T)" if r["b"] == "W^T" else "")
    print(f"| {shape} | {num(op)} | {num(direct)} | {ratio(op, direct)} | {num(t)} "
          f"| {ratio(op, t)} | {core} |")
EOF
