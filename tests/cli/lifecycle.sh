#!/usr/bin/env bash
# How a run starts and ends in its output directory: a non-empty --out is refused unless
# --overwrite (which removes only an earlier run's files) or --resume; a failed write of
# metrics.jsonl is an error naming the file; SIGTERM finishes the step under way, writes a
# checkpoint, says how to resume and exits 143, and the resumed run ends with the adapter
# of a run never stopped, bit for bit.
#   bash tests/cli/lifecycle.sh PATH/TO/aspo tests/fixtures
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh" "$@"

M=$WORK/model
make_model "$M"
text=(--model "$M" --data "$DATA/text.jsonl" --batch-size 2 --lr 1e-3)

# --- An --out that holds something ----------------------------------------------------
mkdir -p "$WORK/taken"
echo "my notes" >"$WORK/taken/notes.txt"
expect_error "a non-empty --out" 2 "--out .*taken is not empty \(it holds notes\.txt\): give --overwrite" \
    aspo_run "${text[@]}" --out "$WORK/taken" --max-steps 1 --quiet
expect_ok "a first run" aspo_run "${text[@]}" --out "$WORK/runs" --max-steps 4 --save-steps 2 --quiet
echo "my notes" >"$WORK/runs/notes.txt"
expect_error "an earlier run's --out" 2 "--out .*runs is not empty \(it holds " \
    aspo_run "${text[@]}" --out "$WORK/runs" --max-steps 1 --quiet
expect_ok "--overwrite" aspo_run "${text[@]}" --out "$WORK/runs" --max-steps 1 --quiet --overwrite
check "--overwrite removed the earlier run's checkpoint" [ ! -e "$WORK/runs/checkpoint-2" ]
check "--overwrite left the user's file" grep -q "my notes" "$WORK/runs/notes.txt"
check "--overwrite: the new run's one metrics line" [ "$(wc -l <"$WORK/runs/metrics.jsonl")" -eq 1 ]

# --- A write that fails ---------------------------------------------------------------
# ulimit -f 8: files of at most 4 KiB, which metrics.jsonl passes within a few steps.
(
    ulimit -f 8
    expect_error "metrics.jsonl past a file size limit" 1 \
        "metrics\.jsonl: cannot write step [0-9]+'s line: File too large" \
        aspo_run "${text[@]}" --out "$WORK/fsize" --max-steps 40 --quiet
    echo "$passed $failed" >"$WORK/fsize_counts"
)
read -r passed failed <"$WORK/fsize_counts" # the subshell's counts carry on

# --- SIGTERM during training ----------------------------------------------------------
long=(--max-steps 300 --save-steps 1000 --lora-dropout 0 --quiet)
expect_ok "a run never stopped" aspo_run "${text[@]}" --out "$WORK/whole" "${long[@]}"
# the binary itself in the background (a shell function would put a subshell between)
"$ASPO" run --tokenizer "$TOK" --threads 1 "${text[@]}" --out "$WORK/stopped" "${long[@]}" \
    2>"$WORK/stop_err.txt" &
pid=$!
for _ in $(seq 600); do # until a few steps are done (metrics lines), at most 60 s
    [ -f "$WORK/stopped/metrics.jsonl" ] && [ "$(wc -l <"$WORK/stopped/metrics.jsonl")" -ge 3 ] && break
    sleep 0.1
done
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
check "SIGTERM: exit 143 (128 + 15)" [ "$rc" -eq 143 ]
check "SIGTERM: one error line saying where the checkpoint is and how to resume" \
    grep -qE "^aspo: error: stopped by SIGTERM after step [0-9]+ of 300; .*/stopped/checkpoint-[0-9]+ holds it: run the same command with --resume auto" "$WORK/stop_err.txt"
step=$(grep -oE "after step [0-9]+" "$WORK/stop_err.txt" | grep -oE "[0-9]+")
check "SIGTERM: the checkpoint of step $step" [ -s "$WORK/stopped/checkpoint-$step/adapter_model.safetensors" ]
check "SIGTERM: no final adapter" [ ! -e "$WORK/stopped/adapter_config.json" ]
check "SIGTERM: metrics up to that step" [ "$(wc -l <"$WORK/stopped/metrics.jsonl")" -eq "$step" ]
expect_ok "resume after SIGTERM" aspo_run "${text[@]}" --out "$WORK/stopped" "${long[@]}" --resume auto
check "the resumed run's adapter = the run never stopped (bit for bit)" \
    cmp -s "$WORK/whole/adapter_model.safetensors" "$WORK/stopped/adapter_model.safetensors"
summary
