#!/usr/bin/env bash
# A NaN in training stops `aspo run` with a message naming the step and the data lines,
# exit 1; the checkpoints before that step stay as they were and resume.
#
# How the NaN is made, deterministically and without a hook in the code: the model's
# embedding row of token 999 is set to NaN, and only line 6 of tokens_999.jsonl uses that
# token. Steps before the seeded data order reaches line 6 are bitwise the same as with the
# clean model (the embedding is frozen and row 999 is never read), so their checkpoints can
# be compared with a clean run's. (A huge --lr does not do it: --lr is capped at 10, and
# RMSNorm keeps this model finite even at 10 without clipping.)
#   bash tests/cli/nan.sh PATH/TO/aspo tests/fixtures
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh" "$@"

M=$WORK/model
make_model "$M"

# model_nan: the same weights with embedding row 999 (f32, 64 wide) = NaN.
cp -r "$M" "$WORK/model_nan"
st=$WORK/model_nan/model.safetensors
header_len=$(od -An -t u8 -N 8 "$st" | tr -d ' ')
begin=$(head -c $((8 + header_len)) "$st" | tail -c "$header_len" |
    grep -o '"model.embed_tokens.weight":{"data_offsets":\[[0-9]*' | grep -o '[0-9]*$')
if [ -z "$begin" ]; then echo "cannot find model.embed_tokens.weight in $st" >&2; exit 1; fi
printf '\x00\x00\xc0\x7f' | dd of="$st" bs=1 seek=$((8 + header_len + begin + 999 * 64 * 4)) \
    conv=notrunc status=none
check "exactly one weight poisoned" [ "$(cmp -l "$M/model.safetensors" "$st" | wc -l)" -le 4 ]

# 8 pairs, 1 per step, checkpoints every 2 steps.
flags=(--data "$DATA/tokens_999.jsonl" --batch-size 1 --save-steps 2 --lr 1e-3 --lora-dropout 0.1 --quiet)
for loss in dpo aspo; do
    out=$WORK/nan_$loss
    expect_error "$loss: NaN stops the run" 1 \
        "step [0-9]+: .*tokens_999\.jsonl line 6: .*nan.*checkpoints of earlier steps are kept" \
        aspo_run --model "$WORK/model_nan" --out "$out" --loss $loss "${flags[@]}"
    step=$(grep -o '^aspo: error: step [0-9]*' "$WORK/err.txt" | grep -o '[0-9]*$')
    step=${step:-0}
    # The seed puts line 6 at step 5: checkpoints 2 and 4 come first.
    check "$loss: NaN late enough to follow a checkpoint (step $step)" [ "$step" -ge 3 ]
    last=$(((step - 1) / 2 * 2))
    check "$loss: no checkpoint from step $step on" \
        bash -c "[ -z \"\$(find '$out' -maxdepth 1 -name 'checkpoint-*' | awk -F- '\$NF >= $step')\" ]"
    check "$loss: checkpoint-$last kept" [ -s "$out/checkpoint-$last/adapter_model.safetensors" ]
    check "$loss: no adapter of the failed run" [ ! -e "$out/adapter_model.safetensors" ]
    check "$loss: metrics up to step $((step - 1)) only" \
        [ "$(grep -c '"step":' "$out/metrics.jsonl")" -eq $((step - 1)) ]
    check "$loss: no temporary checkpoint left" bash -c "! ls -a '$out' | grep -q '\.tmp'"

    # The same run on the clean model: same checkpoint-$last, byte for byte.
    clean=$WORK/clean_$loss
    expect_ok "$loss: clean run" aspo_run --model "$M" --out "$clean" --loss $loss "${flags[@]}"
    for f in adapter_model.safetensors optimizer.safetensors trainer_state.json; do
        check "$loss: checkpoint-$last/$f untouched by the NaN" \
            cmp "$out/checkpoint-$last/$f" "$clean/checkpoint-$last/$f"
    done

    # The kept checkpoint loads: on the poisoned model the resumed run meets the same NaN
    # at the same step; on the clean model it finishes with the clean run's adapter.
    expect_error "$loss: resume meets the NaN again" 1 "step $step: .*line 6" \
        aspo_run --model "$WORK/model_nan" --out "$out" --loss $loss "${flags[@]}" --resume auto
    expect_ok "$loss: resume on the clean model" \
        aspo_run --model "$M" --out "$out" --loss $loss "${flags[@]}" --resume "$out/checkpoint-$last"
    check "$loss: resumed adapter == clean run's" \
        cmp "$out/adapter_model.safetensors" "$clean/adapter_model.safetensors"
done

summary
