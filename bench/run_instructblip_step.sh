#!/usr/bin/env bash
# Builds aspo (Release) and times the InstructBLIP training step with `aspo bench
# --model-kind instructblip` and with bench/instructblip_step_torch.py (transformers'
# InstructBlipForConditionalGeneration + PEFT) on the same sizes and thread count, in
# alternating rounds, then prints a markdown table with the ratio aspo / PyTorch (the LLaVA
# table of bench/bench_table.py: the lines have its keys).
#
#   bash bench/run_instructblip_step.sh [--threads N] [--steps N] [--rounds N]
#        [--python PATH] [--loss dpo|aspo|both] [-- SIZE FLAGS...]
#
# Sizes are `aspo bench`'s defaults: LLaMA 4 layers, dim 256, 8 heads, ffn 688, vocab
# 4096; a BLIP ViT of 4 layers, dim 256, 4 heads, ffn 1024 on 112 px images in 14 px
# patches (65 positions with the class token); a Q-Former of 2 layers at dim 256 (ffn 1024,
# cross-attention on layer 0) with 8 queries reading "Describe the image." (6 BERT tokens);
# 2 pairs x 256 text tokens (64 prompt + 192 response) + 8 query positions per sequence; LoRA
# r 16 on the seven linears of every LLaMA layer. Flags after `--` go to both sides
# unchanged (e.g. -- --queries 32 --image-size 224); threads defaults to 2, --loss to dpo.
# --python: an interpreter with transformers 4.44 and peft 0.12 (default $TORCH_PYTHON or
# /usr/bin/python3). Rounds and setups as bench/run_llava_step.sh (bench/lib.sh).
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

sizes=()
while [[ $# -gt 0 ]]; do
    if [[ $1 == -- ]]; then
        shift
        sizes=("$@")
        break
    fi
    if [[ $# -lt 2 ]] || ! bench_flag "$1" "$2"; then
        echo "usage: bash bench/run_instructblip_step.sh [--threads N] [--steps N]" \
             "[--rounds N] [--python PATH] [--loss dpo|aspo|both] [-- SIZE FLAGS...]" >&2
        exit 2
    fi
    shift 2
done
bench_need_python run_instructblip_step.sh torch transformers peft

bench_build aspo
args=(--threads "$threads" --steps "$steps" --warmup 2 "${sizes[@]}")
aspo_cmd=("$build_dir/aspo" bench --model-kind instructblip "${args[@]}")
torch_cmd=("$python" bench/instructblip_step_torch.py "${args[@]}")
aspo_padded=1 # each round also times aspo with --no-prefix-sharing
bench_rounds "$build_dir/aspo"
bench_table llava
