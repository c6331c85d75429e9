#!/usr/bin/env bash
# `aspo run` end to end on a tiny random LLaMA: ASPO and DPO on text and pre-tokenized rows,
# the PEFT adapter, metrics.jsonl under TRL's names, checkpoints every --save-steps,
# --config with flags overriding it, --eval-split, gradient accumulation, and exit codes
# (2 for usage errors, 1 for failures).
#   bash tests/cli/run.sh PATH/TO/aspo tests/fixtures
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh" "$@"

M=$WORK/model
make_model "$M"
TRL_KEYS=(loss rewards/chosen rewards/rejected rewards/accuracies rewards/margins
          logps/chosen logps/rejected logits/chosen logits/rejected)
ASPO_KEYS=(aspo/margin aspo/k_mean aspo/k_min aspo/k_max aspo/w_mean aspo/units
           aspo/ppl_norm_mean)

count_lines() { grep -c -E "$2" "$1" 2>/dev/null || true; }
is_file() { [ -s "$1" ]; }
checkpoints_of() { (cd "$1" && ls -d checkpoint-* 2>/dev/null | sort -t- -k2 -n | tr '\n' ' '); }

# --- ASPO and DPO on text and on pre-tokenized rows -----------------------------------
# 8 pairs, 2 per step, 2 epochs: 8 steps; checkpoints at 3 and 6 (the final state is the
# adapter in --out itself).
for data in text tokens; do
    for loss in aspo dpo; do
        out=$WORK/$loss-$data
        expect_ok "$loss on $data rows" aspo_run --model "$M" --data "$DATA/$data.jsonl" \
            --out "$out" --loss "$loss" --batch-size 2 --epochs 2 --save-steps 3 --lr 1e-3 --quiet
        check "$loss/$data: adapter_config.json" is_file "$out/adapter_config.json"
        check "$loss/$data: adapter_model.safetensors" is_file "$out/adapter_model.safetensors"
        check "$loss/$data: PEFT LoRA config" grep -q '"peft_type": "LORA"' "$out/adapter_config.json"
        check "$loss/$data: 8 metrics lines" [ "$(count_lines "$out/metrics.jsonl" '"step":[0-9]+,"epoch"')" -eq 8 ]
        check "$loss/$data: TRL metric names" has_keys "$out/metrics.jsonl" '"step":1,' \
            "${TRL_KEYS[@]}" learning_rate grad_norm
        if [ $loss = aspo ]; then
            check "$loss/$data: aspo/* stats" has_keys "$out/metrics.jsonl" '"step":1,' "${ASPO_KEYS[@]}"
        else
            check "$loss/$data: no aspo/* stats" bash -c "! grep -q 'aspo/' '$out/metrics.jsonl'"
        fi
        check "$loss/$data: finite losses" bash -c "! grep -qE '\"loss\":(null|nan|inf)' '$out/metrics.jsonl'"
        check "$loss/$data: checkpoints 3 and 6" [ "$(checkpoints_of "$out")" = "checkpoint-3 checkpoint-6 " ]
        for f in adapter_config.json adapter_model.safetensors optimizer.safetensors trainer_state.json; do
            check "$loss/$data: checkpoint-6/$f" is_file "$out/checkpoint-6/$f"
        done
        check "$loss/$data: checkpoint-6 step" grep -q '"global_step": 6' "$out/checkpoint-6/trainer_state.json"
    done
done
# Training moved the adapter: the two losses give different LoRA weights.
check "aspo and dpo adapters differ" bash -c "! cmp -s '$WORK/aspo-text/adapter_model.safetensors' '$WORK/dpo-text/adapter_model.safetensors'"

# --- The progress report on stderr (no --quiet) -----------------------------------------
expect_ok "progress lines" aspo_run --model "$M" --data "$DATA/text.jsonl" --out "$WORK/progress" \
    --batch-size 4 --loss dpo
check "progress: data line" grep -q "^data: .*8 pairs (8 train, 0 eval, 0 bad lines skipped)" "$WORK/err.txt"
check "progress: step lines" grep -q "^step 2/2  loss" "$WORK/err.txt"
check "progress: done line" grep -q "^done: 2 steps" "$WORK/err.txt"

# --- --config FILE: keys are the long flag names; flags override it -----------------------
out=$WORK/config
expect_ok "--config" aspo_run --model "$M" --data "$DATA/text.jsonl" --out "$out" --config "$DATA/config.json"
check "config: max-steps 3" [ "$(count_lines "$out/metrics.jsonl" '"step":')" -eq 3 ]
check "config: loss dpo" bash -c "! grep -q 'aspo/' '$out/metrics.jsonl'"
check "config: lora-r 4" grep -q '"r": 4,' "$out/adapter_config.json"
check "config: lora-targets" bash -c "tr -d ' \n' < '$out/adapter_config.json' | grep -q '\"target_modules\":\[\"q_proj\",\"v_proj\"\]'"
check "config: lr 0.001, no warmup" grep -q '"step":1,.*"learning_rate":0.001,' "$out/metrics.jsonl"
out=$WORK/config_flags
# flags win wherever they stand, before or after --config
expect_ok "--config + flags" aspo_run --model "$M" --data "$DATA/text.jsonl" --out "$out" \
    --lora-r 2 --config "$DATA/config.json" --max-steps 1 --loss aspo --lr 0.002
check "flags: max-steps 1" [ "$(count_lines "$out/metrics.jsonl" '"step":')" -eq 1 ]
check "flags: loss aspo" grep -q '"aspo/k_mean"' "$out/metrics.jsonl"
check "flags: lora-r 2" grep -q '"r": 2,' "$out/adapter_config.json"
check "flags: lr 0.002" grep -q '"learning_rate":0.002,' "$out/metrics.jsonl"

# --- --eval-split: eval/ lines before training, every --eval-steps and at the end ---------
# 8 pairs, 0.25 held out: 6 train, 2 eval; 2 per step, 2 epochs: 6 steps; eval at 0,2,4,6.
out=$WORK/eval
expect_ok "--eval-split" aspo_run --model "$M" --data "$DATA/text.jsonl" --out "$out" \
    --eval-split 0.25 --eval-steps 2 --batch-size 2 --epochs 2 --lr 1e-3
check "eval: split counts" grep -q "(6 train, 2 eval," "$WORK/err.txt"
check "eval: 6 train lines" [ "$(count_lines "$out/metrics.jsonl" '"loss":')" -eq 6 ]
check "eval: eval lines at 0,2,4,6 once each" \
    [ "$(grep '"eval/loss"' "$out/metrics.jsonl" | grep -o '^{"step":[0-9]*' | tr -d '{"step:' | tr '\n' ' ')" = "0 2 4 6 " ]
check "eval: TRL names under eval/" has_keys "$out/metrics.jsonl" '"eval/loss"' \
    eval/loss eval/rewards/accuracies eval/rewards/margins eval/logps/chosen eval/aspo/k_mean

# --- Gradient accumulation: 1 pair x 2 micro-batches == 2 pairs x 1 ------------------------
# Same pairs per optimizer step (the order is per pair), no dropout: the loss and gradient
# norm of every step agree up to f32 rounding. Padding to a different length changes
# summation order (~1e-7 relative per op), compounding over 8 AdamW steps stays far
# below 1e-4; a wrong accumulation scale would be off by a factor of 2.
common=(--model "$M" --data "$DATA/text.jsonl" --lr 1e-2 --epochs 2 --lora-dropout 0
        --warmup-ratio 0 --quiet)
expect_ok "batch 2" aspo_run "${common[@]}" --out "$WORK/ga1" --batch-size 2 --grad-accum 1
expect_ok "batch 1 x accum 2" aspo_run "${common[@]}" --out "$WORK/ga2" --batch-size 1 --grad-accum 2
check "grad-accum: 8 steps" [ "$(count_lines "$WORK/ga2/metrics.jsonl" '"step":')" -eq 8 ]
values() { grep -o '"\(loss\|grad_norm\)":[-0-9.e]*' "$1" | cut -d: -f2; }
close_all() {
    paste <(values "$1") <(values "$2") | awk '
        { n++; d = $1 - $2; if (d < 0) d = -d; s = ($1 < 0 ? -$1 : $1);
          if (d > 1e-4 * (s > 1e-3 ? s : 1e-3)) { print "line " n ": " $1 " vs " $2 > "/dev/stderr"; bad = 1 } }
        END { exit bad || n != 16 }'
}
check "grad-accum: same loss and grad norm per step" close_all "$WORK/ga1/metrics.jsonl" "$WORK/ga2/metrics.jsonl"

# --- Prefix sharing: packed rows (one, or a pair per row) == TRL's padded rows ------------
# Every position computes what it does padded, in another summation order: the same f32
# rounding argument as above.
expect_ok "--no-prefix-sharing" aspo_run "${common[@]}" --out "$WORK/padded" --batch-size 2 \
    --no-prefix-sharing
expect_ok "--max-tokens-per-batch 1" aspo_run "${common[@]}" --out "$WORK/rows" --batch-size 2 \
    --max-tokens-per-batch 1
check "prefix sharing: the padded run's losses and grad norms" \
    close_all "$WORK/ga1/metrics.jsonl" "$WORK/padded/metrics.jsonl"
check "prefix sharing, a row per pair: the same" \
    close_all "$WORK/ga1/metrics.jsonl" "$WORK/rows/metrics.jsonl"
score() { "$ASPO" score --tokenizer "$TOK" --threads 1 --model "$M" --data "$DATA/text.jsonl" \
    --batch-size 4 --quiet --out "$@"; }
expect_ok "score, prefix sharing" score "$WORK/packed.jsonl"
expect_ok "score, --no-prefix-sharing" score "$WORK/padded.jsonl" --no-prefix-sharing
logps() { grep -o '"ref_[a-z]*_logps":[-0-9.e]*' "$1" | cut -d: -f2; }
same_logps() {
    paste <(logps "$1") <(logps "$2") | awk '
        { n++; d = $1 - $2; if (d < 0) d = -d; s = $2 < 0 ? -$2 : $2; if (d > 1e-6 * s) bad = 1 }
        END { exit bad || n != 16 }'
}
check "score: the same log-probs packed and padded (1e-6 relative)" \
    same_logps "$WORK/packed.jsonl" "$WORK/padded.jsonl"

# --- Usage errors exit 2, failures exit 1 -------------------------------------------------
run_text=(--model "$M" --data "$DATA/text.jsonl" --out "$WORK/usage" --overwrite --quiet)
expect_error "unknown flag" 2 "unknown flag '--bogus'" aspo_run "${run_text[@]}" --bogus
expect_error "bad number" 2 "--lr: 'fast' is not a number" aspo_run "${run_text[@]}" --lr fast
expect_error "out of range" 2 "--batch-size: '0' is not a whole number" aspo_run "${run_text[@]}" --batch-size 0
expect_error "bad choice" 2 "--loss: 'ipo' is not one of: aspo, dpo" aspo_run "${run_text[@]}" --loss ipo
expect_error "flag without value" 2 "--lr needs a value" aspo_run "${run_text[@]}" --lr
expect_error "missing --model" 2 "needs --model" aspo_run --data "$DATA/text.jsonl" --out "$WORK/usage"
expect_error "missing --data" 2 "needs --model DIR and --data" aspo_run --model "$M" --out "$WORK/usage"
expect_error "unknown command" 2 "unknown command 'train'" "$ASPO" train
expect_error "missing data file" 1 "nonexistent.jsonl: cannot open" \
    aspo_run --model "$M" --data "$WORK/nonexistent.jsonl" --out "$WORK/usage"
expect_error "missing model dir" 1 "nonexistent/config.json: cannot open" \
    aspo_run --model "$WORK/nonexistent" --data "$DATA/text.jsonl" --out "$WORK/usage"
check "--help exits 0" "$ASPO" run --help >/dev/null

# --- ASPO's alpha needs images: on text-only rows it is a usage error ---------------------
expect_error "alpha 0.5 on text" 2 "--alpha 0.5 .*text only" \
    aspo_run "${run_text[@]}" --loss aspo --alpha 0.5
expect_error "weights s on text" 2 "--weights s: .*text only" \
    aspo_run "${run_text[@]}" --loss aspo --weights s
expect_error "alpha 0.5 on token rows" 2 "text only" \
    aspo_run --model "$M" --data "$DATA/tokens.jsonl" --out "$WORK/usage" --loss aspo --alpha 0.5
expect_ok "alpha 0 on text" aspo_run "${run_text[@]}" --loss aspo --alpha 0 --max-steps 1
expect_ok "alpha 0.5 with dpo (unused)" aspo_run "${run_text[@]}" --loss dpo --alpha 0.5 --max-steps 1

summary
