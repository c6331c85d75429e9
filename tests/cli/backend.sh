#!/usr/bin/env bash
# `aspo run --backend BACKEND` against `--backend cpu` (BACKEND: vulkan, simt, cuda, ...):
# the tiny LLaMA (ASPO on text rows) in f32, with bf16 activations, and with f16 activations
# and GradScaler's dynamic loss scaling (including an overflowing step), the tiny LLaVA and
# the tiny InstructBLIP (ASPO with S on the image rows), 20 steps each; the loss curves must
# agree step by step. Exit 77 (skipped) when the build or the machine has no such backend or
# device.
#   bash tests/cli/backend.sh PATH/TO/aspo tests/fixtures BACKEND
#   CLI_BACKEND_PARTS=f32 (environment): the f32 LLaMA curve only (a sanitizer build of a slow
#   backend: every kernel still runs, in a fraction of the time)
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh" "$@"
BE=${3:?usage: backend.sh PATH/TO/aspo tests/fixtures BACKEND}

# Tolerance: f32 on both backends; the kernels differ from the CPU's only in summation order
# (~1e-7 relative per reduction), and that difference compounds slowly through the layers,
# the loss and 20 AdamW steps at lr 1e-3. Measured: lavapipe 2.3e-7 (LLaMA) and 1.0e-6
# (LLaVA), simt 1.8e-6 and 5e-7 at most over the 20 steps. 1e-5 leaves room for a GPU's
# other reduction orders and still fails on any wrong kernel (a wrong op moves even the
# first step's loss by far more: the first step's loss is exact up to rounding, 0.693147).
TOL=1e-5
M=$WORK/model
make_model "$M"
# 20 steps each, every loss within $TOL (or the tolerance given).
curves_agree() { curves_within "$1" "$2" "${3:-$TOL}" 20; }
llama() { aspo_run --model "$M" --data "$DATA/text.jsonl" --batch-size 2 --max-steps 20 \
    --lr 1e-3 --quiet "$@"; }
# f16 runs without dropout: a step that overflows runs again without drawing other masks.
half() { [ "$1" = f16 ] && echo --lora-dropout 0; }

for be in cpu "$BE"; do
    if ! llama --backend "$be" --out "$WORK/llama-$be" 2>"$WORK/err.txt"; then
        if [ "$be" = "$BE" ] && grep -qE "unknown backend '$BE'|no Vulkan device found|no device has|no GPU found" "$WORK/err.txt"; then
            echo "SKIP: $(cat "$WORK/err.txt")"
            exit 77
        fi
        fail "llama on $be: $(cat "$WORK/err.txt")"
    fi
done
check "tiny LLaMA: $BE loss curve = cpu's (|d| <= $TOL, 20 steps)" \
    curves_agree "$WORK/llama-cpu/metrics.jsonl" "$WORK/llama-$BE/metrics.jsonl"
if [ "${CLI_BACKEND_PARTS:-all}" = f32 ]; then
    summary
    exit
fi

# Half-precision frozen weights and activations (autocast's mixed precision) on both: each
# backend rounds the same values to 8 (bf16) or 11 (f16) mantissa bits, but a GEMM or
# reduction summed in another order can land a value on the other side of a rounding step,
# and that shows in the loss. ASPO's perplexity weights are min-max normalised over a
# response's sentences, so where two sentences' perplexities nearly tie, such a rounding
# can swap them and move that step's loss by ~1e-3 (DPO on the same f16 steps: 6e-5).
# Measured over the 20 steps: bf16 1.4e-3 (lavapipe) and 2.8e-4 (simt); f16 2.3e-3 and
# 1.4e-3 with prefix sharing (packed rows round in another order), 1.2e-4 padded, and the
# CPU's packed curve is 1.4e-3 from its padded one: about what half vs f32 moves the curve
# on one backend. 4e-3 allows for that, not for a wrong half-precision kernel (which moves
# the curve by 1e-2 and more).
BF16_TOL=4e-3
F16_TOL=4e-3
for dt in bf16 f16; do
    for be in cpu "$BE"; do
        # shellcheck disable=SC2046 # half prints nothing or two words
        expect_ok "tiny LLaMA, $dt activations on $be" llama --backend "$be" \
            --out "$WORK/llama-$dt-$be" --dtype "$dt" --activation-dtype "$dt" $(half "$dt")
    done
done
check "tiny LLaMA, bf16: $BE loss curve = cpu's (|d| <= $BF16_TOL, 20 steps)" \
    curves_agree "$WORK/llama-bf16-cpu/metrics.jsonl" "$WORK/llama-bf16-$BE/metrics.jsonl" "$BF16_TOL"
check "tiny LLaMA, f16: $BE loss curve = cpu's (|d| <= $F16_TOL, 20 steps)" \
    curves_agree "$WORK/llama-f16-cpu/metrics.jsonl" "$WORK/llama-f16-$BE/metrics.jsonl" "$F16_TOL"
# A loss scale of 2^40 overflows f16 (max 65504) in the backward: the step runs again at half
# the scale until the gradients are finite, and the curve is then the one at 65536 (within
# 1e-4: only the scale's rounding of the gradients differs; tests/cli/mixed_precision.sh).
aspo_run --backend "$BE" --model "$M" --data "$DATA/text.jsonl" --batch-size 2 --max-steps 20 \
    --lr 1e-3 --out "$WORK/llama-f16big" --dtype f16 --activation-dtype f16 --lora-dropout 0 \
    --loss-scale 1099511627776 >/dev/null 2>"$WORK/big_err.txt" # not --quiet: the overflow is told
check "f16 on $BE: a too-large loss scale overflows and the step re-runs" \
    grep -q "step 1: gradients overflowed f16 at loss scale 1.09951e+12; the step runs again at 5.49756e+11" "$WORK/big_err.txt"
check "f16 on $BE: the curve after the overflows = the curve at 65536 (within 1e-4)" \
    curves_within "$WORK/llama-f16-$BE/metrics.jsonl" "$WORK/llama-f16big/metrics.jsonl" 1e-4 20
expect_error "bf16 activations on f32 weights" 2 "activations in bf16 need frozen weights in bf16" \
    aspo_run --backend "$BE" --model "$M" --data "$DATA/text.jsonl" --out "$WORK/bad-act" \
    --quiet --dtype f32 --activation-dtype bf16

# --device beyond the list: a usage error naming the devices found.
expect_error "--device 7" 2 "device 7 asked for .*there are [0-9]+: 0: " aspo_run --backend "$BE" \
    --device 7 --model "$M" --data "$DATA/text.jsonl" --out "$WORK/dev7" --quiet

IMG=$FIX/llava_data
for be in cpu "$BE"; do
    expect_ok "tiny LLaVA on $be" "$ASPO" run --backend "$be" --threads 1 --quiet \
        --model "$FIX/llava/tiny_hf" --clip-model "$FIX/llava/clip" --data "$IMG/pairs.jsonl" \
        --image-root "$IMG/images" --out "$WORK/llava-$be" --batch-size 2 --max-steps 20 \
        --lr 1e-3 --lora-r 4
done
check "tiny LLaVA: $BE loss curve = cpu's (|d| <= $TOL, 20 steps)" \
    curves_agree "$WORK/llava-cpu/metrics.jsonl" "$WORK/llava-$BE/metrics.jsonl"

# The tiny InstructBLIP (ViT, Q-Former, queries before BOS) with the paper's LoRA targets.
# Measured: lavapipe and simt 1.1e-6 at most over the 20 steps.
for be in cpu "$BE"; do
    expect_ok "tiny InstructBLIP on $be" "$ASPO" run --backend "$be" --threads 1 --quiet \
        --model "$FIX/instructblip/tiny" --clip-model "$FIX/llava/clip" --data "$IMG/pairs.jsonl" \
        --image-root "$IMG/images" --out "$WORK/blip-$be" --batch-size 2 --max-steps 20 \
        --lr 1e-3 --lora-r 4 --lora-targets q_proj,k_proj,v_proj
done
check "tiny InstructBLIP: $BE loss curve = cpu's (|d| <= $TOL, 20 steps)" \
    curves_agree "$WORK/blip-cpu/metrics.jsonl" "$WORK/blip-$BE/metrics.jsonl"
summary
