#!/usr/bin/env bash
# `aspo run` on bad input: each is one clear "aspo: error:" line naming the file and line
# (or the tensor / field), exit 1 (2 for usage errors), and no adapter written.
#   bash tests/cli/bad_input.sh PATH/TO/aspo tests/fixtures
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh" "$@"

M=$WORK/model
make_model "$M"
OUT=$WORK/out
run() { aspo_run --out "$OUT" --overwrite --quiet --max-steps 1 "$@"; }
text=(--model "$M" --data "$DATA/text.jsonl")

# --- The data file --------------------------------------------------------------------
expect_error "malformed JSON line" 1 "bad_json\.jsonl:2:[0-9]+: malformed JSON" \
    run --model "$M" --data "$DATA/bad_json.jsonl"
expect_error "missing field" 1 "missing_field\.jsonl:2: missing field 'chosen'" \
    run --model "$M" --data "$DATA/missing_field.jsonl"
expect_error "empty response" 1 "empty_response\.jsonl:2: field 'rejected' is empty" \
    run --model "$M" --data "$DATA/empty_response.jsonl"
expect_error "prompt longer than max_length" 1 \
    "long_prompt\.jsonl:2: the prompt is [0-9]+ tokens.* max_length is 16" \
    run --model "$M" --data "$DATA/long_prompt.jsonl" --max-length 16 --max-prompt-length 0
expect_error "missing data file" 1 "nonexistent\.jsonl: cannot open" \
    run --model "$M" --data "$WORK/nonexistent.jsonl"
printf '{"prompt_input_ids": [1, 5], "chosen_input_ids": [1000, 2], "rejected_input_ids": [7, 2]}\n' \
    >"$WORK/big_id.jsonl"
expect_error "token id past the vocabulary" 1 "big_id\.jsonl:1: field 'chosen_input_ids' element 0 is 1000" \
    run --model "$M" --data "$WORK/big_id.jsonl"
# A response longer than max_length: keep_end cuts the whole prompt off with it. Refused at
# load with the row's place, before any step runs (once it failed at the batch that held it).
long=$(printf 'word %.0s' $(seq 1 40))
printf '{"prompt": "a question", "chosen": "%s", "rejected": "no"}\n' "$long" >"$WORK/long_response.jsonl"
expect_error "a response longer than max_length" 1 \
    "long_response\.jsonl:1: the chosen response is [0-9]+ tokens, so max_length 16 \(keep_end\) cuts the whole" \
    run --model "$M" --data "$WORK/long_response.jsonl" --max-length 16
expect_error "a response longer than max_length, in aspo score" 1 \
    "long_response\.jsonl:1: the chosen response is [0-9]+ tokens, so max_length 16" \
    "$ASPO" score --tokenizer "$TOK" --model "$M" --data "$WORK/long_response.jsonl" \
    --out "$WORK/scored.jsonl" --max-length 16
# A FIFO as --data would block the open forever; /dev/zero would be read until memory ran
# out: only regular files are read (timeout: a hang fails instead of stalling the suite).
mkfifo "$WORK/fifo.jsonl"
expect_error "a FIFO as --data" 1 "dataset .*fifo\.jsonl is a FIFO \(named pipe\); only regular files are read" \
    timeout 20 "$ASPO" run --tokenizer "$TOK" --out "$OUT" --quiet --model "$M" --data "$WORK/fifo.jsonl"
expect_error "/dev/zero as --data" 1 "dataset /dev/zero is a character device; only regular files" \
    timeout 20 "$ASPO" run --tokenizer "$TOK" --out "$OUT" --quiet --model "$M" --data /dev/zero
# An id inside the model's vocabulary (1100) but past the tokenizer's (1000): one rule for
# run and score (score once took it because it loaded no tokenizer for such rows).
"$ASPO" init-model --out "$WORK/big_vocab" --vocab 1100 --dim 64 --layers 1 >/dev/null
printf '{"prompt_input_ids": [1, 5], "chosen_input_ids": [1050, 2], "rejected_input_ids": [7, 2]}\n' \
    >"$WORK/past_tokenizer.jsonl"
expect_error "id past the tokenizer, run" 1 "past_tokenizer\.jsonl:1: field 'chosen_input_ids' element 0 is 1050" \
    run --model "$WORK/big_vocab" --data "$WORK/past_tokenizer.jsonl"
expect_error "id past the tokenizer, score" 1 "past_tokenizer\.jsonl:1: field 'chosen_input_ids' element 0 is 1050" \
    "$ASPO" score --tokenizer "$TOK" --model "$WORK/big_vocab" --data "$WORK/past_tokenizer.jsonl" \
    --out "$WORK/scored.jsonl"
"$ASPO" init-model --out "$WORK/small_vocab" --vocab 500 --dim 64 --layers 1 >/dev/null
expect_error "tokenizer larger than the model's vocabulary" 2 \
    "has 1000 tokens but the model .*small_vocab has vocab_size 500" \
    run --model "$WORK/small_vocab" --data "$DATA/text.jsonl"
check "no adapter after data errors" [ ! -e "$OUT/adapter_model.safetensors" ]

# --skip-bad-lines: the three bad lines (malformed, missing field, empty response) are
# counted and left out, the first one is reported, and training goes on with the rest.
expect_ok "--skip-bad-lines" aspo_run --out "$OUT" --overwrite --model "$M" --data "$DATA/bad_lines.jsonl" \
    --skip-bad-lines --batch-size 1
check "skip: count in the data line" grep -q "3 pairs (3 train, 0 eval, 3 bad lines skipped)" "$WORK/err.txt"
check "skip: first bad line named" grep -q "^aspo: warning: .*left out 3 bad lines; the first: .*bad_lines\.jsonl:2:" "$WORK/err.txt"
check "skip: trained on the rest" grep -q "^done: 3 steps" "$WORK/err.txt"
check "skip: adapter written" [ -s "$OUT/adapter_model.safetensors" ]
expect_ok "--skip-bad-lines --quiet still warns" aspo_run --out "$OUT" --overwrite --model "$M" \
    --data "$DATA/bad_lines.jsonl" --skip-bad-lines --quiet --max-steps 1
check "skip: warning under --quiet" grep -q "left out 3 bad lines" "$WORK/err.txt"
printf '{"prompt": "a", "chosen":\n\n' >"$WORK/all_bad.jsonl"
expect_error "--skip-bad-lines with no good line" 1 "all_bad\.jsonl: no usable rows: all 1 non-blank lines were bad" \
    run --model "$M" --data "$WORK/all_bad.jsonl" --skip-bad-lines

# --- The tokenizer --------------------------------------------------------------------
mkdir -p "$WORK/bad_tok"
cp "$TOK"/*.json "$WORK/bad_tok/"
head -c 4000 "$TOK/tokenizer.json" >"$WORK/bad_tok/tokenizer.json"
expect_error "truncated tokenizer.json" 1 "bad_tok/tokenizer\.json: the tokenizer is not valid JSON: line [0-9]+" \
    run "${text[@]}" --tokenizer "$WORK/bad_tok"
sed 's/"model"/"modle"/' "$TOK/tokenizer.json" >"$WORK/bad_tok/tokenizer.json"
expect_error "tokenizer.json without its model" 1 "bad_tok/tokenizer\.json" \
    run "${text[@]}" --tokenizer "$WORK/bad_tok"

# --- The model ------------------------------------------------------------------------
mkdir -p "$WORK/m_cfg"
ln -s "$M/model.safetensors" "$WORK/m_cfg/model.safetensors"
grep -v '"hidden_size"' "$M/config.json" >"$WORK/m_cfg/config.json"
expect_error "config.json missing a field" 1 "m_cfg/config\.json: missing required field \"hidden_size\"" \
    run --model "$WORK/m_cfg" --data "$DATA/text.jsonl"
printf '{"hidden_size": 64,' >"$WORK/m_cfg/config.json"
expect_error "config.json malformed" 1 "m_cfg/config\.json" \
    run --model "$WORK/m_cfg" --data "$DATA/text.jsonl"

mkdir -p "$WORK/m_trunc"
cp "$M/config.json" "$WORK/m_trunc/"
size=$(stat -c %s "$M/model.safetensors")
head -c $((size / 2)) "$M/model.safetensors" >"$WORK/m_trunc/model.safetensors"
expect_error "truncated model.safetensors" 1 "m_trunc/model\.safetensors: tensor '[a-z_.0-9]+'.* past the end" \
    run --model "$WORK/m_trunc" --data "$DATA/text.jsonl"
head -c 6 "$M/model.safetensors" >"$WORK/m_trunc/model.safetensors"
expect_error "model.safetensors of 6 bytes" 1 "m_trunc/model\.safetensors" \
    run --model "$WORK/m_trunc" --data "$DATA/text.jsonl"
printf '\xff\xff\xff\xff\xff\xff\x00\x00{}' >"$WORK/m_trunc/model.safetensors"
expect_error "model.safetensors with a wild header length" 1 "m_trunc/model\.safetensors: header length" \
    run --model "$WORK/m_trunc" --data "$DATA/text.jsonl"

# --- An adapter that does not fit the model (trained on a wider one) --------------------
make_model "$WORK/m128" --dim 128
expect_ok "adapter of a dim-128 model" aspo_run --model "$WORK/m128" --data "$DATA/text.jsonl" \
    --out "$WORK/a128" --max-steps 1 --quiet
expect_error "adapter shapes do not fit" 1 \
    "a128/adapter_model\.safetensors: tensor base_model\.model\.model\.layers\.[0-9]+\.[a-z_.]+lora_[AB]\.weight has shape \([0-9,]+\), the model expects" \
    run "${text[@]}" --adapter "$WORK/a128"
expect_error "adapter dir missing" 1 "nonexistent/adapter_config\.json" \
    run "${text[@]}" --adapter "$WORK/nonexistent"
expect_ok "an adapter of this model" aspo_run "${text[@]}" --out "$WORK/fits" --max-steps 1 --quiet
expect_ok "adapter that fits" run "${text[@]}" --adapter "$WORK/fits"
expect_error "--overwrite of the --adapter's own directory" 2 \
    "--overwrite would remove the adapter that --adapter .*/out reads: it is --out" \
    run "${text[@]}" --adapter "$WORK/out"
# An adapter's own r, alpha and targets when no LoRA flag says otherwise (the flags'
# defaults, r 8, once refused this r 4 adapter); an explicit flag that disagrees is refused.
expect_ok "adapter of r 4" aspo_run "${text[@]}" --out "$WORK/r4" --max-steps 1 --quiet \
    --lora-r 4 --lora-alpha 8 --lora-targets q_proj,v_proj
expect_ok "--adapter takes the adapter's r, alpha and targets" run "${text[@]}" --adapter "$WORK/r4"
expect_error "--adapter with a LoRA flag that disagrees" 2 "the adapter has r=4, lora_alpha=8.* options ask for r=8" \
    run "${text[@]}" --adapter "$WORK/r4" --lora-r 8

# --- The --config file ----------------------------------------------------------------
printf '{"lr": 0.001}\n' >"$WORK/c1.json"
printf '{"batch-size": 2}\n' >"$WORK/c2.json"
expect_error "a second --config" 2 "--config given twice \(.*c1\.json and .*c2\.json\); give one file" \
    run "${text[@]}" --config "$WORK/c1.json" --config "$WORK/c2.json"
expect_error "unknown config field" 2 "config_unknown_field\.json: unknown field \"learning_rate\"" \
    run "${text[@]}" --config "$DATA/config_unknown_field.json"
printf '{"lr": "fast"}' >"$WORK/cfg_type.json"
expect_error "config value of the wrong type" 2 "cfg_type\.json: field \"lr\": expected a number" \
    run "${text[@]}" --config "$WORK/cfg_type.json"
printf '{"lr": 0.001,\n "beta": }' >"$WORK/cfg_json.json"
expect_error "malformed config" 2 "cfg_json\.json: the --config file is not valid JSON: line 2" run "${text[@]}" --config "$WORK/cfg_json.json"
printf '{"lr": 50}' >"$WORK/cfg_range.json"
expect_error "config value out of range" 2 "cfg_range\.json: field \"lr\": '50' is not a number in" \
    run "${text[@]}" --config "$WORK/cfg_range.json"

# --- Resume without a checkpoint ------------------------------------------------------
mkdir -p "$WORK/empty_out"
expect_error "--resume auto without checkpoints" 2 "no checkpoint-N in .*empty_out" \
    aspo_run "${text[@]}" --out "$WORK/empty_out" --quiet --resume auto
expect_error "--resume of a missing dir" 1 "--resume .*nonexistent: not a checkpoint: .*trainer_state\.json" \
    run "${text[@]}" --resume "$WORK/nonexistent"

summary
