#!/usr/bin/env bash
# Builds bench_clip (Release) and times the CLIP vision tower (LLaVA's feature layer -2,
# f32, no autograd) in aspo and in transformers' CLIPVisionModel (bench/clip_torch.py) on
# the same sizes, batch and thread count, in alternating rounds; prints a markdown table and
# a ratio line.
#
#   bash bench/run_clip.sh [--preset vit-l-14-336|vit-b-16-224|vit-b-32-224] [--batch N]
#                          [--steps N] [--rounds N] [--threads N] [--python PATH]
#                          [--hidden N --layers N --heads N --ffn N --image N --patch N]
#
# The default preset is LLaVA-1.5's ViT-L/14-336 (hidden 1024, 24 layers, 16 heads, ffn
# 4096, 577 tokens; 1.2 GB of f32 weights); on a small machine use --preset vit-b-32-224.
# Size flags override the preset's. threads defaults to nproc. --python is the interpreter
# for the PyTorch side (default $TORCH_PYTHON or /usr/bin/python3): it needs torch AND
# transformers, which Debian's python3 lacks; bench/clip_torch.py says how to make a venv.
#
# Each round runs aspo, then PyTorch three ways as bench/run_train_step.sh does: as
# configured (torch and OpenBLAS threads = N, Debian's pthread OpenBLAS), with
# OMP_WAIT_POLICY=passive, and on the OpenMP build of OpenBLAS that aspo links. The table
# reports each configuration's best round (the least disturbed by other load) and the
# median. OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are unset for the benchmark commands only,
# and each line records the OpenBLAS kernel (core) that ran.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

threads=$(nproc) batch=4 steps=3 rounds=3 python=${TORCH_PYTHON:-/usr/bin/python3}
sizes=(--preset vit-l-14-336)
usage() {
    echo "usage: bash bench/run_clip.sh [--preset NAME] [--batch N] [--steps N] [--rounds N]" \
         "[--threads N] [--python PATH] [--hidden N --layers N --heads N --ffn N --image N" \
         "--patch N]" >&2
    exit 2
}
while [[ $# -gt 0 ]]; do
    [[ $# -ge 2 ]] || usage
    case "$1" in
        --batch) batch=$2 ;;
        --steps) steps=$2 ;;
        --rounds) rounds=$2 ;;
        --threads) threads=$2 ;;
        --python) python=$2 ;;
        --preset|--hidden|--layers|--heads|--ffn|--image|--patch) sizes+=("$1" "$2") ;;
        *) usage ;;
    esac
    shift 2
done
if ! "$python" -c 'import torch, transformers' 2>/dev/null; then
    echo "run_clip.sh: $python cannot import torch and transformers; give --python a venv" \
         "that has both (see bench/clip_torch.py)" >&2
    exit 1
fi

bash scripts/setup.sh --bench
build_dir=${BUILD_DIR:-build}
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DASPO_SANITIZE=OFF >/dev/null
cmake --build "$build_dir" --parallel "$(nproc)" --target bench_clip >/dev/null

results=$(mktemp)
trap 'rm -f "$results"' EXIT
args=("${sizes[@]}" --batch "$batch" --steps "$steps" --warmup 1 --threads "$threads")
quiet_env=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE)
openmp_blas=/usr/lib/$(gcc -dumpmachine)/openblas-openmp # libblas.so.3 of the OpenMP build

echo "# machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores"
echo "# aspo: $(ldd "$build_dir/bench/bench_clip" | grep -o '/[^ ]*openblas[^ ]*' | head -1)"
echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq 1 "$rounds"); do
    "${quiet_env[@]}" "$build_dir/bench/bench_clip" "${args[@]}" |
        sed "s/^{/{\"round\": $round, \"config\": \"aspo\", /" | tee -a "$results"
    "${quiet_env[@]}" "$python" bench/clip_torch.py "${args[@]}" |
        sed "s/^{/{\"round\": $round, \"config\": \"torch\", /" | tee -a "$results"
    "${quiet_env[@]}" OMP_WAIT_POLICY=passive "$python" bench/clip_torch.py "${args[@]}" |
        sed "s/^{/{\"round\": $round, \"config\": \"torch passive\", /" | tee -a "$results"
    "${quiet_env[@]}" LD_LIBRARY_PATH="$openmp_blas${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
        "$python" bench/clip_torch.py "${args[@]}" |
        sed "s/^{/{\"round\": $round, \"config\": \"torch openmp-blas\", /" | tee -a "$results"
done
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo

/usr/bin/python3 - "$results" <<'EOF'
import json, statistics, sys

runs = {}
with open(sys.argv[1]) as f:
    for line in f:
        r = json.loads(line)
        runs.setdefault(r["config"], []).append(r)

def describe(cfg, r):
    if cfg == "aspo":
        return "aspo"
    env = {"torch passive": ", OMP_WAIT_POLICY=passive",
           "torch openmp-blas": ", OpenMP OpenBLAS"}.get(cfg, "")
    return "torch %s (transformers %s CLIPVisionModel%s)" % (r["torch_version"],
                                                           r["transformers"], env)

best = {cfg: max(rs, key=lambda r: r["images_per_s"]) for cfg, rs in runs.items()}
a = best["aspo"]
print("CLIP vision tower %s: hidden %d, %d layers, %d heads, ffn %d, image %d, patch %d "
      "(%d tokens), batch %d, hidden state -2, f32" % (a["preset"], a["hidden"], a["layers"],
      a["heads"], a["ffn"], a["image"], a["patch"], a["tokens"], a["batch"]))
print()
print("| implementation | threads | images/s best (median) | s/batch | CPU s/batch | GFLOP/s "
      "| peak RSS MB | aspo / this | OpenBLAS core |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
for cfg in ("aspo", "torch", "torch passive", "torch openmp-blas"):
    if cfg not in runs:
        continue
    b = best[cfg]
    median = statistics.median(r["images_per_s"] for r in runs[cfg])
    ratio = "" if cfg == "aspo" else "%.2f" % (a["images_per_s"] / b["images_per_s"])
    print("| %s | %d | %.2f (%.2f) | %.3f | %.3f | %.1f | %.0f | %s | %s |" % (
        describe(cfg, b), b["threads"], b["images_per_s"], median, b["batch_s_mean"],
        b["cpu_s_per_batch"], b["gflops"], b["peak_rss_mb"], ratio, b["openblas_core"]))
print()
t = best["torch"]
fastest = max((c for c in best if c != "aspo"), key=lambda c: best[c]["images_per_s"])
print("ratio: aspo / torch = %.2f (%.2f vs %.2f images/s); aspo / fastest torch setup (%s) = "
      "%.2f; %d threads, best of %d rounds" % (
          a["images_per_s"] / t["images_per_s"], a["images_per_s"], t["images_per_s"],
          fastest, a["images_per_s"] / best[fastest]["images_per_s"], a["threads"],
          len(runs["aspo"])))
EOF
