#!/usr/bin/env bash
# Half-precision activations end to end on the CPU backend (the GPUs' default, run here):
# bf16 and f16 curves against f32, f16's dynamic loss scaling (an overflow re-runs the step
# at half the scale; the scale is saved in checkpoints and resumed), and the flag's errors.
#   bash tests/cli/mixed_precision.sh PATH/TO/aspo tests/fixtures
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh" "$@"

M=$WORK/model
make_model "$M"
scales_of() { grep -o '"loss_scale":[^,}]*' "$1" | cut -d: -f2; }
# No dropout: runs that re-run a step draw no other masks, so curves compare step by step.
run() { aspo_run --model "$M" --data "$DATA/text.jsonl" --batch-size 2 --max-steps 8 \
    --lr 1e-3 --lora-dropout 0 --quiet "$@"; }

expect_ok "f32" run --out "$WORK/f32" --dtype f32
expect_ok "bf16" run --out "$WORK/bf16" --dtype bf16 --activation-dtype bf16
expect_ok "f16" run --out "$WORK/f16" --dtype f16 --activation-dtype f16
# bf16 rounds to 8 mantissa bits, f16 to 11: over 8 steps at lr 1e-3 the loss moves from
# f32's by up to ~1e-3 (bf16) on this model (cli_vulkan measures 7e-4 over 20 steps); 3e-3
# and, for f16's 8x finer rounding, 1e-3 hold that and fail a wrong half kernel.
check "bf16 curve within 3e-3 of f32's" curves_within "$WORK/f32/metrics.jsonl" "$WORK/bf16/metrics.jsonl" 3e-3 6
check "f16 curve within 1e-3 of f32's" curves_within "$WORK/f32/metrics.jsonl" "$WORK/f16/metrics.jsonl" 1e-3 6
check "bf16 has no loss scale" test -z "$(scales_of "$WORK/bf16/metrics.jsonl")"
check "f16 starts at GradScaler's 65536" test "$(scales_of "$WORK/f16/metrics.jsonl" | head -1)" = 65536.0

# 2^40 overflows f16 (max 65504) in the backward: the step runs again at half the scale
# until it fits; powers of two scale exactly, so the curve is the default scale's.
aspo_run --model "$M" --data "$DATA/text.jsonl" --batch-size 2 --max-steps 8 --lr 1e-3 \
    --lora-dropout 0 --out "$WORK/f16big" --dtype f16 --activation-dtype f16 \
    --loss-scale 1099511627776 >/dev/null 2>"$WORK/big_err.txt"
check "a too-large scale overflows and the step re-runs" \
    grep -q "step 1: gradients overflowed f16 at loss scale 1.09951e+12; the step runs again at 5.49756e+11" "$WORK/big_err.txt"
first_scale=$(scales_of "$WORK/f16big/metrics.jsonl" | head -1)
check "the scale came down to what fits and not to the default ($first_scale)" \
    awk -v s="$first_scale" 'BEGIN { exit !(s > 65536 && s < 1099511627776) }'
check "f16 at a scale found by overflows = f16 at 65536 (within 1e-4)" \
    curves_within "$WORK/f16/metrics.jsonl" "$WORK/f16big/metrics.jsonl" 1e-4 6

# The scale is in the checkpoint, and a resumed run continues from it.
aspo_run --model "$M" --data "$DATA/text.jsonl" --batch-size 2 --max-steps 8 --lr 1e-3 \
    --lora-dropout 0 --out "$WORK/f16ck" --dtype f16 --activation-dtype f16 \
    --loss-scale 1099511627776 --save-steps 4 --quiet 2>/dev/null
check "trainer_state.json keeps the loss scale" \
    grep -q "\"loss_scale\": $first_scale" "$WORK/f16ck/checkpoint-4/trainer_state.json"
rm -rf "$WORK/f16ck/checkpoint-8"
expect_ok "resume f16" aspo_run --model "$M" --data "$DATA/text.jsonl" --batch-size 2 \
    --max-steps 8 --lr 1e-3 --lora-dropout 0 --out "$WORK/f16ck" --dtype f16 \
    --activation-dtype f16 --resume auto --quiet
check "the resumed steps run at the checkpoint's scale, not --loss-scale" \
    test "$(scales_of "$WORK/f16ck/metrics.jsonl" | sed -n 5p)" = "$first_scale"

# aspo score computes as aspo run does, so a precomputed reference rounds as the policy: in
# bf16 its log-probs move from f32's by bf16's relative error (2^-9 per op, a few ops deep:
# about 1e-2 of sums near -100 here), which they must show, and no more than 5e-2.
for a in f32 bf16; do
    expect_ok "score, $a activations" "$ASPO" score --tokenizer "$TOK" --threads 1 --model "$M" \
        --data "$DATA/text.jsonl" --out "$WORK/scored-$a.jsonl" --dtype bf16 --activation-dtype "$a" --quiet
done
ref_of() { grep -o '"ref_chosen_logps": *[-0-9.e]*' "$1" | sed 's/.*: *//'; }
check "score in bf16 differs from f32 by bf16 rounding, not more" \
    awk 'NR == FNR { f32[FNR] = $1; next }
         { d = $1 - f32[FNR]; if (d < 0) d = -d; r = d / (f32[FNR] < 0 ? -f32[FNR] : f32[FNR])
           if (r > 5e-2) bad++; if (d > 0) moved++; n++ }
         END { exit !(n > 0 && !bad && moved) }' <(ref_of "$WORK/scored-f32.jsonl") <(ref_of "$WORK/scored-bf16.jsonl")

expect_error "f16 activations on bf16 weights" 2 "activations in f16 need frozen weights in f16" \
    run --out "$WORK/bad" --dtype bf16 --activation-dtype f16
expect_error "unknown activation dtype" 2 "activation-dtype" run --out "$WORK/bad" --activation-dtype f64
expect_error "loss scale below 1" 2 "--loss-scale: '0' is not a number in \\[1, " run --out "$WORK/bad" \
    --dtype f16 --activation-dtype f16 --loss-scale 0
summary
