#!/usr/bin/env bash
# Builds aspo (Release) and times one LoRA-DPO and one ASPO training step with `aspo bench`
# and with bench/train_step_torch.py on the same sizes and thread count, in alternating
# rounds, then prints a markdown table (the one in docs/PERFORMANCE.md).
#
#   bash bench/run_train_step.sh [--threads N] [--steps N] [--rounds N] [--python PATH]
#                                [--loss dpo|aspo|both]
#
# Sizes are the issue's: 4 layers, dim 256, 8 heads, ffn 688, vocab 4096, 2 pairs x 256
# tokens (64 prompt + 192 response), LoRA r 16 on all seven linears of every layer.
# threads defaults to 2. --python is the interpreter for the PyTorch side (default
# $TORCH_PYTHON or /usr/bin/python3); with transformers and peft importable it uses
# LlamaForCausalLM + PEFT, else the plain-PyTorch LLaMA of train_step_torch.py.
#
# Each round runs aspo, then PyTorch three ways: as configured (torch.set_num_threads and
# OpenBLAS threads = N, Debian's default pthread OpenBLAS), with OMP_WAIT_POLICY=passive,
# and on the OpenMP build of OpenBLAS that aspo links (LD_LIBRARY_PATH); the last two are
# tuned setups that remove PyTorch's thread contention (docs/PERFORMANCE.md). The table
# reports each configuration's best round (the least disturbed by other load on the
# machine) and the median round. OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are unset for the
# benchmark commands only, as in bench/run_matmul.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

threads=2 steps=5 rounds=3 python=${TORCH_PYTHON:-/usr/bin/python3} losses=(dpo aspo)
while [[ $# -gt 0 ]]; do
    case "$1" in
        --threads) threads=$2; shift 2 ;;
        --steps) steps=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --python) python=$2; shift 2 ;;
        --loss) [[ $2 == both ]] && losses=(dpo aspo) || losses=("$2"); shift 2 ;;
        *) echo "usage: bash bench/run_train_step.sh [--threads N] [--steps N] [--rounds N]" \
                "[--python PATH] [--loss dpo|aspo|both]" >&2
           exit 2 ;;
    esac
done

bash scripts/setup.sh --bench
build_dir=${BUILD_DIR:-build}
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DASPO_SANITIZE=OFF >/dev/null
cmake --build "$build_dir" --parallel "$(nproc)" --target aspo >/dev/null

results=$(mktemp)
trap 'rm -f "$results"' EXIT
args=(--threads "$threads" --steps "$steps" --warmup 2)
quiet_env=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE)
openmp_blas=/usr/lib/$(gcc -dumpmachine)/openblas-openmp # libblas.so.3 of the OpenMP build

echo "# machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores"
echo "# aspo: $(ldd "$build_dir/aspo" | grep -o '/[^ ]*openblas[^ ]*' | head -1)"
echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq 1 "$rounds"); do
    for loss in "${losses[@]}"; do
        "${quiet_env[@]}" "$build_dir/aspo" bench "${args[@]}" --loss "$loss" |
            sed "s/^{/{\"round\": $round, \"config\": \"aspo\", /" | tee -a "$results"
        "${quiet_env[@]}" "$python" bench/train_step_torch.py "${args[@]}" --loss "$loss" |
            sed "s/^{/{\"round\": $round, \"config\": \"torch\", /" | tee -a "$results"
        "${quiet_env[@]}" OMP_WAIT_POLICY=passive "$python" bench/train_step_torch.py \
            "${args[@]}" --loss "$loss" |
            sed "s/^{/{\"round\": $round, \"config\": \"torch passive\", /" | tee -a "$results"
        "${quiet_env[@]}" LD_LIBRARY_PATH="$openmp_blas${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
            "$python" bench/train_step_torch.py "${args[@]}" --loss "$loss" |
            sed "s/^{/{\"round\": $round, \"config\": \"torch openmp-blas\", /" |
            tee -a "$results"
    done
done
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo

/usr/bin/python3 - "$results" <<'EOF'
import json, statistics, sys

runs = {}
with open(sys.argv[1]) as f:
    for line in f:
        r = json.loads(line)
        runs.setdefault((r["loss"], r["config"]), []).append(r)

def describe(cfg, r):
    if cfg == "aspo":
        return "aspo"
    impl = "transformers %s + PEFT %s" % (r["transformers"], r["peft"]) if r["impl"] == "hf" \
        else "plain PyTorch"
    env = {"torch passive": ", OMP_WAIT_POLICY=passive",
           "torch openmp-blas": ", OpenMP OpenBLAS"}.get(cfg, "")
    return "torch %s (%s%s)" % (r["torch_version"], impl, env)

print("| loss | implementation | threads | tokens/s best (median) | s/step | CPU s/step "
      "| peak RSS MB | aspo / this | OpenBLAS core |")
print("|---|---|---:|---:|---:|---:|---:|---:|---|")
for loss in ("dpo", "aspo"):
    if (loss, "aspo") not in runs:
        continue
    aspo_best = max(r["train_tokens_per_s"] for r in runs[(loss, "aspo")])
    for cfg in ("aspo", "torch", "torch passive", "torch openmp-blas"):
        rs = runs.get((loss, cfg))
        if not rs:
            continue
        best = max(rs, key=lambda r: r["train_tokens_per_s"])
        median = statistics.median(r["train_tokens_per_s"] for r in rs)
        ratio = "" if cfg == "aspo" else "%.2f" % (aspo_best / best["train_tokens_per_s"])
        print("| %s | %s | %d | %.0f (%.0f) | %.3f | %.3f | %.0f | %s | %s |" % (
            loss.upper(), describe(cfg, best), best["threads"], best["train_tokens_per_s"],
            median, best["step_s_mean"], best["cpu_s_per_step"], best["peak_rss_mb"], ratio,
            best["openblas_core"]))
EOF
