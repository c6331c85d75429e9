#!/usr/bin/env bash
# `aspo run --backend vulkan` against `--backend cpu`: the tiny LLaMA (ASPO on text rows) and
# the tiny LLaVA (ASPO with S on the image rows) for 20 steps each; the loss curves must
# agree step by step. Exit 77 (skipped) when the build or the machine has no Vulkan.
#   bash tests/cli/vulkan.sh PATH/TO/aspo tests/fixtures
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh" "$@"

# Tolerance: f32 on both backends; the kernels differ from the CPU's only in summation order
# (~1e-7 relative per reduction), and that difference compounds slowly through the layers,
# the loss and 20 AdamW steps at lr 1e-3. Measured on lavapipe: 2.3e-7 (LLaMA) and 1.0e-6
# (LLaVA) at most over the 20 steps. 1e-5 leaves room for a GPU's other reduction orders
# and still fails on any wrong kernel (a wrong op moves even the first step's loss by far
# more: the first step's loss is exact up to rounding, 0.693147).
TOL=1e-5
M=$WORK/model
make_model "$M"
# 20 steps each, every loss within $TOL (or the tolerance given).
curves_agree() { curves_within "$1" "$2" "${3:-$TOL}" 20; }

for be in cpu vulkan; do
    out=$WORK/llama-$be
    if ! aspo_run --backend "$be" --model "$M" --data "$DATA/text.jsonl" --out "$out" \
        --batch-size 2 --max-steps 20 --lr 1e-3 --quiet 2>"$WORK/err.txt"; then
        if [ "$be" = vulkan ] && grep -qE "unknown backend 'vulkan'|no Vulkan device found|no device has" "$WORK/err.txt"; then
            echo "SKIP: $(cat "$WORK/err.txt")"
            exit 77
        fi
        fail "llama on $be: $(cat "$WORK/err.txt")"
    fi
done
check "tiny LLaMA: vulkan loss curve = cpu's (|d| <= $TOL, 20 steps)" \
    curves_agree "$WORK/llama-cpu/metrics.jsonl" "$WORK/llama-vulkan/metrics.jsonl"

# bf16 frozen weights and activations (autocast's mixed precision) on both: each backend
# rounds the same values to 8 mantissa bits, but a GEMM or reduction summed in another order
# can land a value on the other side of a rounding step (2^-9 relative), and that shows in
# the loss. Measured on lavapipe: 7e-4 at most over the 20 steps (about what bf16 vs f32
# moves it on one backend); 3e-3 allows for that, not for a wrong half-precision kernel.
BF16_TOL=3e-3
for be in cpu vulkan; do
    expect_ok "tiny LLaMA, bf16 activations on $be" aspo_run --backend "$be" --model "$M" \
        --data "$DATA/text.jsonl" --out "$WORK/llama-bf16-$be" --batch-size 2 --max-steps 20 \
        --lr 1e-3 --quiet --dtype bf16 --activation-dtype bf16
done
check "tiny LLaMA, bf16: vulkan loss curve = cpu's (|d| <= $BF16_TOL, 20 steps)" \
    curves_agree "$WORK/llama-bf16-cpu/metrics.jsonl" "$WORK/llama-bf16-vulkan/metrics.jsonl" \
    "$BF16_TOL"
expect_error "bf16 activations on f32 weights" 2 "activations in bf16 need frozen weights in bf16" \
    aspo_run --backend vulkan --model "$M" --data "$DATA/text.jsonl" --out "$WORK/bad-act" \
    --quiet --dtype f32 --activation-dtype bf16

# --device beyond the list: a usage error naming the devices found.
expect_error "--device 7" 2 "device 7 asked for .*there are [0-9]+: 0: " aspo_run --backend vulkan \
    --device 7 --model "$M" --data "$DATA/text.jsonl" --out "$WORK/dev7" --quiet

IMG=$FIX/llava_data
for be in cpu vulkan; do
    expect_ok "tiny LLaVA on $be" "$ASPO" run --backend "$be" --threads 1 --quiet \
        --model "$FIX/llava/tiny_hf" --clip-model "$FIX/llava/clip" --data "$IMG/pairs.jsonl" \
        --image-root "$IMG/images" --out "$WORK/llava-$be" --batch-size 2 --max-steps 20 \
        --lr 1e-3 --lora-r 4
done
check "tiny LLaVA: vulkan loss curve = cpu's (|d| <= $TOL, 20 steps)" \
    curves_agree "$WORK/llava-cpu/metrics.jsonl" "$WORK/llava-vulkan/metrics.jsonl"
summary
