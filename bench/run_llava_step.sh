#!/usr/bin/env bash
# Builds aspo (Release) and times the LLaVA training step with `aspo bench --model-kind
# llava` and with bench/llava_step_torch.py (transformers' LlavaForConditionalGeneration +
# PEFT) on the same sizes and thread count, in alternating rounds, then prints a markdown
# table (the one in docs/PERFORMANCE.md, section LLaVA) with the ratio aspo / PyTorch.
#
#   bash bench/run_llava_step.sh [--threads N] [--steps N] [--rounds N] [--python PATH]
#                                [--loss dpo|aspo|both] [-- SIZE FLAGS...]
#
# Sizes are `aspo bench`'s defaults: LLaMA 4 layers, dim 256, 8 heads, ffn 688, vocab
# 4096; CLIP ViT 4 layers, dim 256, 4 heads, ffn 1024, 112 px images in 14 px patches (64
# image positions); 2 pairs x 256 text tokens (64 prompt + 192 response) + 64 image
# positions per sequence; LoRA r 16 on the seven linears of every LLaMA layer. Flags after
# `--` go to both sides unchanged (e.g. -- --vision-layers 8 --image-size 224); both take
# the same names. threads defaults to 2. --python is an interpreter with transformers 4.44
# and peft 0.12 (default $TORCH_PYTHON or /usr/bin/python3; see llava_step_torch.py).
#
# Each round runs aspo, then PyTorch three ways, as bench/run_train_step.sh does: as
# configured (torch.set_num_threads and OpenBLAS threads = N on Debian's pthread OpenBLAS),
# with OMP_WAIT_POLICY=passive, and on the OpenMP OpenBLAS that aspo links. The table
# reports each configuration's best round and the median round. OPENBLAS_CORETYPE and
# OPENBLAS_L2_SIZE are unset for the benchmark commands only; each JSON line records the
# OpenBLAS kernel (core) that was picked.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

threads=2 steps=5 rounds=3 python=${TORCH_PYTHON:-/usr/bin/python3} losses=(dpo) sizes=()
usage="usage: bash bench/run_llava_step.sh [--threads N] [--steps N] [--rounds N]"
usage+=" [--python PATH] [--loss dpo|aspo|both] [-- SIZE FLAGS...]"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --threads) threads=$2; shift 2 ;;
        --steps) steps=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --python) python=$2; shift 2 ;;
        --loss) [[ $2 == both ]] && losses=(dpo aspo) || losses=("$2"); shift 2 ;;
        --) shift; sizes=("$@"); break ;;
        *) echo "$usage" >&2; exit 2 ;;
    esac
done
if ! "$python" -c 'import torch, transformers, peft' 2>/dev/null; then
    echo "run_llava_step.sh: $python cannot import torch, transformers and peft; give" \
         "--python (see bench/llava_step_torch.py for the venv)" >&2
    exit 2
fi

bash scripts/setup.sh --bench
build_dir=${BUILD_DIR:-build}
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DASPO_SANITIZE=OFF >/dev/null
cmake --build "$build_dir" --parallel "$(nproc)" --target aspo >/dev/null

results=$(mktemp)
trap 'rm -f "$results"' EXIT
args=(--threads "$threads" --steps "$steps" --warmup 2 "${sizes[@]}")
quiet_env=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE)
openmp_blas=/usr/lib/$(gcc -dumpmachine)/openblas-openmp # libblas.so.3 of the OpenMP build
torch_step=("$python" bench/llava_step_torch.py "${args[@]}")

echo "# machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores"
echo "# aspo: $(ldd "$build_dir/aspo" | grep -o '/[^ ]*openblas[^ ]*' | head -1)"
echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
tag() { sed "s/^{/{\"round\": $1, \"config\": \"$2\", /" | tee -a "$results"; }
for round in $(seq 1 "$rounds"); do
    for loss in "${losses[@]}"; do
        "${quiet_env[@]}" "$build_dir/aspo" bench --model-kind llava "${args[@]}" --loss "$loss" |
            tag "$round" aspo
        "${quiet_env[@]}" "${torch_step[@]}" --loss "$loss" | tag "$round" torch
        "${quiet_env[@]}" OMP_WAIT_POLICY=passive "${torch_step[@]}" --loss "$loss" |
            tag "$round" "torch passive"
        "${quiet_env[@]}" LD_LIBRARY_PATH="$openmp_blas${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
            "${torch_step[@]}" --loss "$loss" | tag "$round" "torch openmp-blas"
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
    env = {"torch passive": ", OMP_WAIT_POLICY=passive",
           "torch openmp-blas": ", OpenMP OpenBLAS"}.get(cfg, "")
    return "torch %s (transformers %s + PEFT %s%s)" % (r["torch_version"], r["transformers"],
                                                      r["peft"], env)

print("| loss | implementation | threads | text tokens/s best (median) | positions/s | s/step "
      "| vision s/step | CPU s/step | peak RSS MB | aspo / this | OpenBLAS core |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
for loss in ("dpo", "aspo"):
    if (loss, "aspo") not in runs:
        continue
    aspo_best = max(r["text_tokens_per_s"] for r in runs[(loss, "aspo")])
    for cfg in ("aspo", "torch", "torch passive", "torch openmp-blas"):
        rs = runs.get((loss, cfg))
        if not rs:
            continue
        best = max(rs, key=lambda r: r["text_tokens_per_s"])
        median = statistics.median(r["text_tokens_per_s"] for r in rs)
        ratio = "" if cfg == "aspo" else "%.2f" % (aspo_best / best["text_tokens_per_s"])
        print("| %s | %s | %d | %.0f (%.0f) | %.0f | %.3f | %.3f | %.3f | %.0f | %s | %s |" % (
            loss.upper(), describe(cfg, best), best["threads"], best["text_tokens_per_s"],
            median, best["positions_per_s"], best["step_s_mean"], best["vision_s_per_step"],
            best["cpu_s_per_step"], best["peak_rss_mb"], ratio, best["openblas_core"]))
EOF
