#!/usr/bin/env bash
# `aspo run --dry-run` on the command line: the plan's table on stderr and its JSON line on
# stdout, nothing written (no --out), no weights needed (a config.json alone plans), the
# plan's flags and their mistakes; and the "memory:" line and memory.json of a real run.
#   bash tests/cli/dry_run.sh PATH/TO/aspo tests/fixtures
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh" "$@"

M=$WORK/model
make_model "$M"
json_field() { grep -o "\"$2\":[^,}]*" "$1" | head -1 | cut -d: -f2-; }

# --- a plan of the tiny LLaMA on its data ------------------------------------------------
expect_ok "plan with --data" aspo_run --model "$M" --data "$DATA/text.jsonl" --out "$WORK/never" \
    --batch-size 2 --dry-run
check "plan: one JSON line on stdout" [ "$(grep -c '^{"dry_run":true,' "$WORK/out.txt")" -eq 1 ]
check "plan: table on stderr" grep -q "^memory plan: one optimizer step" "$WORK/err.txt"
check "plan: peak row" grep -qE "^  peak +[0-9.]+ MiB" "$WORK/err.txt"
check "plan: the batch is the largest pairs" grep -q "the largest pairs of --data" "$WORK/err.txt"
check "plan: no done line" bash -c "! grep -q '^done:' '$WORK/err.txt'"
check "plan: --out not made" [ ! -e "$WORK/never" ]
cp "$WORK/out.txt" "$WORK/plan.json"
expect_ok "plan --quiet" aspo_run --model "$M" --data "$DATA/text.jsonl" --batch-size 2 --dry-run --quiet
check "quiet: JSON only" [ ! -s "$WORK/err.txt" ]

# --- the real run reports what it measured, the same fields -------------------------------
expect_ok "real run" aspo_run --model "$M" --data "$DATA/text.jsonl" --out "$WORK/real" --batch-size 2
check "real: memory line" grep -qE "^memory: peak [0-9.]+ MiB on cpu: weights" "$WORK/err.txt"
check "real: memory.json" grep -q '"measured": true' "$WORK/real/memory.json"
planned=$(json_field "$WORK/plan.json" peak_bytes)
measured=$(tr -d ' \n' < "$WORK/real/memory.json" | grep -o '"peak_bytes":[0-9]*' | cut -d: -f2)
check "plan peak within 15% of the measured one ($planned vs $measured)" \
    awk -v p="$planned" -v m="$measured" 'BEGIN { d = (p - m) / m; exit !(m > 0 && d <= 0.15 && d >= -0.15) }'

# --- a synthetic batch from a config alone (no weights, no tokenizer) ----------------------
C=$WORK/config_only
mkdir -p "$C"
cp "$M/config.json" "$C/"
expect_ok "synthetic plan" "$ASPO" run --model "$C" --dry-run --plan-seq 100 --batch-size 3 \
    --backend cuda --plan-memory 1
check "synthetic: 3 pairs of 100 positions" grep -q '"pairs":3,"positions":100,' "$WORK/out.txt"
check "synthetic: planned for cuda" grep -q '"backend":"cuda"' "$WORK/out.txt"
check "synthetic: fits in 1 GiB" grep -q '"fits":true' "$WORK/out.txt"
expect_ok "synthetic plan, --dtype bf16" "$ASPO" run --model "$C" --dry-run --dtype bf16 --quiet
check "bf16 halves the frozen weights" [ $(( $(json_field "$WORK/out.txt" weights_bytes) * 2 )) -le \
    $(( $(grep -o '"weights_bytes":[0-9]*' "$WORK/plan.json" | cut -d: -f2) + 64 * 20 )) ]

# --- mistakes ----------------------------------------------------------------------------
expect_error "--plan-seq with --data" 2 "describe a synthetic batch" \
    aspo_run --model "$M" --data "$DATA/text.jsonl" --dry-run --plan-seq 64
expect_error "unknown target" 2 "a plan is for cpu, vulkan, cuda, hip or simt" \
    "$ASPO" run --model "$C" --dry-run --backend tpu
expect_error "--plan-image on a LLaMA" 2 "text-only LLaMA" \
    "$ASPO" run --model "$C" --dry-run --plan-image
expect_error "image longer than --plan-seq" 2 "plan-seq 8: a sequence needs room" \
    "$ASPO" run --model "$FIX/llava/tiny_hf" --dry-run --plan-image --plan-seq 8 --alpha 0
expect_error "no --model" 2 "needs --model" "$ASPO" run --dry-run
expect_error "--plan-seq without --dry-run" 2 "give --dry-run too" \
    aspo_run --model "$M" --data "$DATA/text.jsonl" --out "$WORK/x" --plan-seq 64
summary
