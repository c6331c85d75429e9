#!/usr/bin/env bash
# Builds aspo (Release) and times one LoRA-DPO and one ASPO training step with `aspo bench`
# and with bench/train_step_torch.py on the same sizes and thread count, in alternating
# rounds, then prints a markdown table (the one in docs/PERFORMANCE.md).
#
#   bash bench/run_train_step.sh [--threads N] [--steps N] [--rounds N] [--python PATH]
#                                [--loss dpo|aspo|both] [--dtype f32|bf16|f16] [--checkpointing]
#
# Sizes are the issue's: 4 layers, dim 256, 8 heads, ffn 688, vocab 4096, 2 pairs x 256
# tokens (64 prompt + 192 response), LoRA r 16 on all seven linears of every layer.
# threads defaults to 2, --loss to both, --dtype (of the frozen weights, both sides) to f32;
# --checkpointing re-runs each decoder layer in backward on both sides. --python is the
# interpreter for the PyTorch side (default $TORCH_PYTHON or /usr/bin/python3); with
# transformers and peft importable it uses
# LlamaForCausalLM + PEFT, else the plain-PyTorch LLaMA of train_step_torch.py.
#
# Each round runs aspo, then PyTorch in the three setups of bench/lib.sh (as configured,
# OMP_WAIT_POLICY=passive, the OpenMP OpenBLAS); the table reports each one's best round
# and the median round.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

losses=(dpo aspo)
usage() {
    echo "usage: bash bench/run_train_step.sh [--threads N] [--steps N] [--rounds N]" \
         "[--python PATH] [--loss dpo|aspo|both] [--dtype f32|bf16|f16] [--checkpointing]" >&2
    exit 2
}
step_flags=() # this script's own, passed to both sides
while [[ $# -gt 0 ]]; do
    case "$1" in
        --checkpointing) step_flags+=(--checkpointing); shift; continue ;;
        --dtype) [[ $# -ge 2 ]] || usage; step_flags+=(--dtype "$2"); shift 2; continue ;;
    esac
    if [[ $# -lt 2 ]] || ! bench_flag "$1" "$2"; then usage; fi
    shift 2
done

bench_build aspo
args=(--threads "$threads" --steps "$steps" --warmup 2 "${step_flags[@]}")
aspo_cmd=("$build_dir/aspo" bench "${args[@]}")
torch_cmd=("$python" bench/train_step_torch.py "${args[@]}")
aspo_padded=1 # each round also times aspo with --no-prefix-sharing
bench_rounds "$build_dir/aspo"
bench_table train
