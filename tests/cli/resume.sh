#!/usr/bin/env bash
# Resume after SIGKILL: a run killed once checkpoint-4 exists and resumed (--resume auto,
# and --resume DIR from an older checkpoint) ends with an adapter bitwise equal to an
# uninterrupted run's, and the same metrics.jsonl (the wall-clock tokens_per_s aside).
# LoRA dropout > 0, so the dropout RNG counter must be restored; grad-accum 2, so a
# checkpoint falls only on whole optimizer steps.
#   bash tests/cli/resume.sh PATH/TO/aspo tests/fixtures
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh" "$@"

M=$WORK/model
make_model "$M"

# 8 pairs, 1 per micro-batch, 2 micro-batches per step: 4 steps an epoch, 100 steps in
# all, so the run is still going long after checkpoint-4 (a few percent of its time).
flags=(--model "$M" --data "$DATA/text.jsonl" --loss aspo --batch-size 1 --grad-accum 2
       --epochs 25 --save-steps 2 --lora-dropout 0.1 --lr 1e-3 --lora-r 4 --quiet)
REF=$WORK/uninterrupted
expect_ok "uninterrupted run" aspo_run "${flags[@]}" --out "$REF"
check "uninterrupted: 100 steps" [ "$(grep -c '"step":' "$REF/metrics.jsonl")" -eq 100 ]

# Start, poll for checkpoint-4, kill -9.
OUT=$WORK/killed
# Not through the aspo_run function: $! must be aspo's own pid, not a subshell's.
"$ASPO" run --tokenizer "$TOK" --threads 1 "${flags[@]}" --out "$OUT" 2>"$WORK/killed_err.txt" &
pid=$!
for _ in $(seq 6000); do # up to 60 s
    [ -d "$OUT/checkpoint-4" ] && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.01
done
exec 3>&2 2>/dev/null # no "Killed" notice from bash
kill -9 $pid
rc=0
wait $pid || rc=$?
exec 2>&3 3>&-
check "the aspo process is gone" bash -c "! kill -0 $pid 2>/dev/null"
check "the run was killed by SIGKILL (exit $rc; if 0, it finished first: make it longer)" [ $rc -eq 137 ]
check "killed: checkpoint-4 exists" [ -s "$OUT/checkpoint-4/adapter_model.safetensors" ]
check "killed: no final adapter" [ ! -e "$OUT/adapter_model.safetensors" ]
newest=$(cd "$OUT" && ls -d checkpoint-* | sort -t- -k2 -n | tail -1)
[ -z "${CLI_VERBOSE:-}" ] || echo "killed after $newest"
check "killed: stopped early ($newest)" [ "${newest#checkpoint-}" -lt 100 ]
# Every checkpoint-N is whole (each is written under a temporary name and renamed).
for d in "$OUT"/checkpoint-*; do
    for f in adapter_config.json adapter_model.safetensors optimizer.safetensors trainer_state.json; do
        [ -s "$d/$f" ] || fail "$(basename "$d") lacks $f"
    done
done
cp -r "$OUT" "$WORK/killed_copy"

# Resume from the newest checkpoint.
expect_ok "--resume auto" aspo_run "${flags[@]}" --out "$OUT" --resume auto
check "resume auto: adapter bitwise equal" \
    cmp "$OUT/adapter_model.safetensors" "$REF/adapter_model.safetensors"
check "resume auto: same metrics" \
    cmp <(metrics_sans_time "$OUT/metrics.jsonl") <(metrics_sans_time "$REF/metrics.jsonl")
check "resume auto: same checkpoint-50" \
    cmp "$OUT/checkpoint-50/optimizer.safetensors" "$REF/checkpoint-50/optimizer.safetensors"

# Resume from checkpoint-2 by path, with newer checkpoints (and a half-written metrics
# file) in the output directory.
OUT=$WORK/killed_copy
expect_ok "--resume checkpoint-2" aspo_run "${flags[@]}" --out "$OUT" --resume "$OUT/checkpoint-2"
check "resume checkpoint-2: adapter bitwise equal" \
    cmp "$OUT/adapter_model.safetensors" "$REF/adapter_model.safetensors"
check "resume checkpoint-2: same metrics" \
    cmp <(metrics_sans_time "$OUT/metrics.jsonl") <(metrics_sans_time "$REF/metrics.jsonl")

# A resume that would not continue the same run is refused.
expect_error "resume with another seed" 2 "checkpoint-4/trainer_state\.json was written with --seed 42" \
    aspo_run "${flags[@]}" --out "$WORK/other" --resume "$REF/checkpoint-4" --seed 7
expect_error "resume with another LoRA rank" 1 "checkpoint-4/adapter_model\.safetensors: .*has shape" \
    aspo_run "${flags[@]}" --out "$WORK/other" --resume "$REF/checkpoint-4" --lora-r 8
# Settings that change what the run means are refused by name (once only --seed was
# checked), unless --allow-setting-changes; a step count below the checkpoint never fits.
expect_error "resume with another --lr" 2 "checkpoint-4/trainer_state\.json: the checkpoint's run had lr 0\.001.*gives 0\.002.*--allow-setting-changes" \
    aspo_run "${flags[@]}" --out "$WORK/other" --resume "$REF/checkpoint-4" --lr 2e-3
expect_error "resume with another --loss" 2 "the checkpoint's run had loss \"aspo\", this command gives \"dpo\"" \
    aspo_run "${flags[@]}" --out "$WORK/other" --resume "$REF/checkpoint-4" --loss dpo
expect_error "resume with another --batch-size" 2 "the checkpoint's run had batch_size 1, this command gives 2" \
    aspo_run "${flags[@]}" --out "$WORK/other" --resume "$REF/checkpoint-4" --batch-size 2
sed 's/The sky is green/The sky is red/' "$DATA/text.jsonl" >"$WORK/edited.jsonl"
edited=("${flags[@]}")
for i in "${!edited[@]}"; do [ "${edited[$i]}" = "$DATA/text.jsonl" ] && edited[$i]=$WORK/edited.jsonl; done
expect_error "resume on edited data" 2 "the checkpoint's run had data_fingerprint" \
    aspo_run "${edited[@]}" --out "$WORK/other" --resume "$REF/checkpoint-4"
expect_error "resume past --max-steps" 2 "checkpoint is at step 4, past this run's 3 steps" \
    aspo_run "${flags[@]}" --out "$WORK/other" --resume "$REF/checkpoint-4" --max-steps 3
cp -r "$REF/checkpoint-4" "$WORK/cp-lr"
expect_ok "--allow-setting-changes" aspo_run "${flags[@]}" --out "$WORK/allowed" --resume "$WORK/cp-lr" \
    --lr 2e-3 --allow-setting-changes --max-steps 6
check "--allow-setting-changes: a warning names lr" grep -q "^aspo: warning: --resume: lr was 0.001, now 0.002" "$WORK/err.txt"
# A checkpoint whose optimizer state holds NaN: named, not resumed into NaN steps. The
# safetensors data starts after the 8-byte length and the header; its last 8 bytes become NaN.
cp -r "$REF/checkpoint-4" "$WORK/cp-nan"
f=$WORK/cp-nan/optimizer.safetensors
size=$(stat -c %s "$f")
{ head -c $((size - 8)) "$f"; printf '\377\377\377\377\377\377\377\377'; } >"$f.nan" && mv "$f.nan" "$f"
expect_error "NaN in a checkpoint's optimizer state" 1 "cp-nan/optimizer\.safetensors: exp_avg(_sq)? of .* holds 2 non-finite values" \
    aspo_run "${flags[@]}" --out "$WORK/nan" --resume "$WORK/cp-nan"
cp -r "$REF/checkpoint-4" "$WORK/cp-nan-adapter"
f=$WORK/cp-nan-adapter/adapter_model.safetensors
size=$(stat -c %s "$f")
{ head -c $((size - 4)) "$f"; printf '\377\377\377\377'; } >"$f.nan" && mv "$f.nan" "$f"
expect_error "NaN in a checkpoint's adapter" 1 "cp-nan-adapter/adapter_model\.safetensors: tensor .*lora_[AB]\.weight holds 1 non-finite values" \
    aspo_run "${flags[@]}" --out "$WORK/nan2" --resume "$WORK/cp-nan-adapter"

summary
