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
# the same names. threads defaults to 2, --loss to dpo. --python is an interpreter with
# transformers 4.44 and peft 0.12 (default $TORCH_PYTHON or /usr/bin/python3; see
# llava_step_torch.py).
#
# Each round runs aspo, then PyTorch in the three setups of bench/lib.sh (as configured,
# OMP_WAIT_POLICY=passive, the OpenMP OpenBLAS); the table reports each one's best round
# and the median round, and each JSON line the OpenBLAS kernel (core) that was picked.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

losses=(dpo) sizes=()
usage() {
    echo "usage: bash bench/run_llava_step.sh [--threads N] [--steps N] [--rounds N]" \
         "[--python PATH] [--loss dpo|aspo|both] [-- SIZE FLAGS...]" >&2
    exit 2
}
while [[ $# -gt 0 ]]; do
    if [[ $1 == -- ]]; then
        shift
        sizes=("$@")
        break
    fi
    if [[ $# -lt 2 ]] || ! bench_flag "$1" "$2"; then usage; fi
    shift 2
done
bench_need_python run_llava_step.sh torch transformers peft

bench_build aspo
args=(--threads "$threads" --steps "$steps" --warmup 2 "${sizes[@]}")
aspo_cmd=("$build_dir/aspo" bench --model-kind llava "${args[@]}")
torch_cmd=("$python" bench/llava_step_torch.py "${args[@]}")
aspo_padded=1 # each round also times aspo with --no-prefix-sharing
bench_rounds "$build_dir/aspo"
bench_table llava
