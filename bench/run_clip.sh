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
# Size flags override the preset's. threads defaults to nproc, batch to 4, steps and rounds
# to 3. --python is the interpreter for the PyTorch side (default $TORCH_PYTHON or
# /usr/bin/python3): it needs torch AND transformers, which Debian's python3 lacks;
# bench/clip_torch.py says how to make a venv.
#
# Each round runs aspo, then PyTorch in the three setups of bench/lib.sh (as configured,
# OMP_WAIT_POLICY=passive, the OpenMP OpenBLAS); the table reports each one's best round
# and the median, and each line the OpenBLAS kernel (core) that ran.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

threads=$(nproc) batch=4 steps=3 sizes=(--preset vit-l-14-336)
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
        --loss) usage ;;
        --preset|--hidden|--layers|--heads|--ffn|--image|--patch) sizes+=("$1" "$2") ;;
        *) bench_flag "$1" "$2" || usage ;;
    esac
    shift 2
done
bench_need_python run_clip.sh torch transformers

bench_build bench_clip
args=("${sizes[@]}" --batch "$batch" --steps "$steps" --warmup 1 --threads "$threads")
aspo_cmd=("$build_dir/bench/bench_clip" "${args[@]}")
torch_cmd=("$python" bench/clip_torch.py "${args[@]}")
bench_rounds "$build_dir/bench/bench_clip"
bench_table clip
