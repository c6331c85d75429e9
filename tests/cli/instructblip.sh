#!/usr/bin/env bash
# `aspo score` and `aspo run` end to end on a tiny random InstructBLIP saved by transformers
# (tests/fixtures/instructblip/tiny: its LLaMA tokenizer, qformer_tokenizer/ and
# preprocessor_config.json), on the committed image dataset, and the errors a user of it
# meets. The scores are compared with transformers + PEFT computing the same pairs from the
# same files (pipeline_logps.json, tests/parity/make_instructblip_fixtures.py).
#   bash tests/cli/instructblip.sh PATH/TO/aspo tests/fixtures
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh" "$@"

IB=$FIX/instructblip/tiny
CLIP=$FIX/llava/clip
IMG=$FIX/llava_data
blip_run() { "$ASPO" run --threads 1 --image-root "$IMG/images" --quiet --model "$IB" "$@"; }
metric_of() { grep -o "\"$2\":[^,}]*" "$1" | head -"${3:-1}" | tail -1 | cut -d: -f2; }
# within A B REL: |A - B| <= REL * max(1, |A|).
within() { awk -v a="$1" -v b="$2" -v r="$3" 'BEGIN { d = a - b; d = d < 0 ? -d : d; m = a < 0 ? -a : a; if (m < 1) m = 1; exit !(a != "" && b != "" && d <= r * m) }'; }

# --- the whole pipeline against transformers + PEFT ---------------------------------------
# Image decoding and BlipImageProcessor, LLaVA's "<image>" marker taken out, the Q-Former's
# BERT ids of the prompt, [queries; BOS prompt answer EOS] through the LLaMA with the PEFT
# adapter. The C side sums f32 log-probs of about 30 tokens of a 2-layer model; 1e-5 of
# the sum leaves 100x the f32 rounding measured (5e-8) and catches any token or pixel that
# differs (one wrong token moves a sum by about 1 in 300).
expect_ok "score with the PEFT adapter" "$ASPO" score --threads 1 --model "$IB" \
    --adapter "$FIX/instructblip/lora_adapter" --data "$IMG/pairs.jsonl" --image-root "$IMG/images" \
    --out "$WORK/scored.jsonl" --quiet
want=$(grep -oE '"(chosen|rejected)": [-0-9.e]+' "$FIX/instructblip/pipeline_logps.json" | awk '{ print $2 }')
got=$(grep -oE '"ref_(chosen|rejected)_logps":[-0-9.e]+' "$WORK/scored.jsonl" | cut -d: -f2)
check "16 log-prob sums on both sides" [ "$(echo "$want" | wc -l)" -eq 16 ] && [ "$(echo "$got" | wc -l)" -eq 16 ]
paste <(echo "$want") <(echo "$got") >"$WORK/pairs.txt"
while read -r w g; do
    check "score $g vs transformers + PEFT $w" within "$w" "$g" 1e-5
done <"$WORK/pairs.txt"

# aspo merge folds the adapter into an InstructBLIP checkpoint (tokenizers and image
# processor copied): scored alone it gives the same log-probs (f32 merge: W + s B A rounded
# once, 5e-8 measured against PEFT).
expect_ok "merge" "$ASPO" merge --model "$IB" --adapter "$FIX/instructblip/lora_adapter" \
    --out "$WORK/merged"
check "merged: qformer_tokenizer and preprocessor_config.json copied" \
    [ -s "$WORK/merged/qformer_tokenizer/vocab.txt" ] && [ -s "$WORK/merged/preprocessor_config.json" ]
expect_ok "score the merged model" "$ASPO" score --threads 1 --model "$WORK/merged" \
    --data "$IMG/pairs.jsonl" --image-root "$IMG/images" --out "$WORK/scored-merged.jsonl" --quiet
merged=$(grep -oE '"ref_(chosen|rejected)_logps":[-0-9.e]+' "$WORK/scored-merged.jsonl" | cut -d: -f2)
paste <(echo "$want") <(echo "$merged") >"$WORK/pairs-merged.txt"
check "merged: 16 sums" [ "$(grep -c . "$WORK/pairs-merged.txt")" -eq 16 ]
while read -r w g; do
    check "merged score $g vs transformers + PEFT $w" within "$w" "$g" 1e-5
done <"$WORK/pairs-merged.txt"

# --- ASPO with the paper's targets, S from a separate CLIP, on the CPU and on Vulkan ------
S_KEYS=(aspo/s_mean aspo/ppl_mean aspo/w_mean)
for be in cpu vulkan; do
    expect_ok "ASPO on $be" blip_run --backend "$be" --clip-model "$CLIP" --data "$IMG/pairs.jsonl" \
        --out "$WORK/run-$be" --batch-size 2 --max-steps 3 --lr 1e-2 --lora-r 4 \
        --lora-targets q_proj,k_proj,v_proj --alpha 0.5
    check "$be: 3 metrics lines" [ "$(grep -c '"step":[0-9]*,"epoch"' "$WORK/run-$be/metrics.jsonl")" -eq 3 ]
    check "$be: S and PPL statistics" has_keys "$WORK/run-$be/metrics.jsonl" '"step":1,' "${S_KEYS[@]}"
    check "$be: finite losses" bash -c "! grep -qE '\"loss\":(null|nan|inf)' '$WORK/run-$be/metrics.jsonl'"
done
# Vulkan against the CPU: the same f32 math in another order; after 3 steps at lr 1e-2 the
# losses (about 0.69) agree to 1e-4 (LLaVA's Vulkan suite measures 1e-6 per pass).
check "vulkan and cpu losses agree" within "$(metric_of "$WORK/run-cpu/metrics.jsonl" loss 3)" \
    "$(metric_of "$WORK/run-vulkan/metrics.jsonl" loss 3)" 1e-4
A=$WORK/run-cpu/adapter_config.json
check "adapter: the LLM's q, k and v exactly" grep -q 'language_model\\\\.model\\\\.layers\\\\.\[0-9\]+\\\\.(self_attn\\\\.k_proj|self_attn\\\\.q_proj|self_attn\\\\.v_proj)' "$A"
check "adapter: task_type null (a plain PeftModel)" grep -q '"task_type": null' "$A"
check "adapter: weights" [ -s "$WORK/run-cpu/adapter_model.safetensors" ]
# The trained adapter scores through aspo score (PEFT loads it too: see the parity script's
# --check-adapter, which needs Python).
expect_ok "score with the trained adapter" "$ASPO" score --threads 1 --model "$IB" \
    --adapter "$WORK/run-cpu" --data "$IMG/pairs.jsonl" --image-root "$IMG/images" \
    --out "$WORK/scored-trained.jsonl" --quiet
check "the trained adapter moves the scores" [ "$(head -c 80 "$WORK/scored.jsonl")" != "$(head -c 80 "$WORK/scored-trained.jsonl")" ]

# SeVa's list holds the same pairs: the same losses.
expect_ok "SeVa list" blip_run --data "$IMG/seva.json" --out "$WORK/seva" --batch-size 2 \
    --max-steps 3 --lr 1e-2 --lora-r 4 --loss dpo
expect_ok "JSONL" blip_run --data "$IMG/pairs.jsonl" --out "$WORK/jsonl" --batch-size 2 \
    --max-steps 3 --lr 1e-2 --lora-r 4 --loss dpo
check "SeVa and JSONL give the same losses" [ "$(metric_of "$WORK/seva/metrics.jsonl" loss 3)" = "$(metric_of "$WORK/jsonl/metrics.jsonl" loss 3)" ]

# --- --vision-cache: the image side's outputs per (image, instruction), bitwise the same ---
for c in none cache; do
    extra=()
    [ $c = cache ] && extra=(--vision-cache "$WORK/vcache")
    expect_ok "2 epochs, $c" "$ASPO" run --threads 1 --image-root "$IMG/images" --model "$IB" \
        --data "$IMG/pairs.jsonl" --loss dpo --out "$WORK/vc-$c" --batch-size 4 --epochs 2 \
        --lr 1e-2 --lora-r 4 "${extra[@]}"
done
check "vision cache: the same metrics" [ "$(metrics_sans_time "$WORK/vc-none/metrics.jsonl")" = "$(metrics_sans_time "$WORK/vc-cache/metrics.jsonl")" ]
# 8 pairs, each its own (image, instruction), 2 epochs: 8 computed, 8 read back.
check "vision cache: computed once per image and instruction" grep -q "vision cache .*: 8 images read from it, 8 computed" "$WORK/err.txt"
check "vision cache: one file per row" [ "$(ls "$WORK/vcache" | grep -c '\.f32$')" -eq 8 ]
# The same image with another instruction is another entry (the Q-Former reads both).
sed 's/What shape is in the picture?/Which shape do you see?/' "$IMG/pairs.jsonl" >"$WORK/reworded.jsonl"
expect_ok "reworded instruction" "$ASPO" run --threads 1 --image-root "$IMG/images" --model "$IB" \
    --data "$WORK/reworded.jsonl" --loss dpo --out "$WORK/vc-reworded" --batch-size 4 \
    --max-steps 2 --lr 1e-2 --lora-r 4 --vision-cache "$WORK/vcache"
check "vision cache: a reworded instruction is computed" grep -q "vision cache .*: 7 images read from it, 1 computed" "$WORK/err.txt"

# --- errors --------------------------------------------------------------------------------
cp -r "$IB" "$WORK/no_qtok"
rm -r "$WORK/no_qtok/qformer_tokenizer"
expect_error "missing qformer tokenizer" 1 "no_qtok: InstructBLIP's Q-Former .*qformer_tokenizer" \
    "$ASPO" run --threads 1 --quiet --image-root "$IMG/images" --model "$WORK/no_qtok" \
    --data "$IMG/pairs.jsonl" --out "$WORK/e1" --max-steps 1 --loss dpo
words=$(printf 'shape %.0s' $(seq 30))
printf '{"prompt": "What %s is this?", "chosen": "A circle.", "rejected": "A square.", "image": "red_circle.png"}\n' "$words" >"$WORK/long.jsonl"
expect_error "instruction longer than the Q-Former's positions" 2 "long.jsonl:1: the instruction is longer than the Q-Former's 24 positions" \
    blip_run --data "$WORK/long.jsonl" --out "$WORK/e2" --max-steps 1 --loss dpo
printf '{"prompt_input_ids": [1, 5, 6], "chosen_input_ids": [7, 2], "rejected_input_ids": [8, 2], "image": "red_circle.png"}\n' >"$WORK/ids.jsonl"
expect_error "pre-tokenized image row" 2 "ids.jsonl:1: a pre-tokenized image row has no prompt text" \
    blip_run --data "$WORK/ids.jsonl" --out "$WORK/e6" --max-steps 1 --loss dpo
# A plan's synthetic rows have ids only: the plan gives the Q-Former a two-token instruction.
expect_ok "--dry-run --plan-image" "$ASPO" run --dry-run --model "$IB" --plan-seq 64 --plan-image \
    --alpha 0 --lora-r 4 --quiet
check "plan: a batch of 4 pairs with an image each" grep -q '"model_kind":"instructblip".*"pairs":4,"positions":64,"images":4' "$WORK/out.txt"
expect_error "--train-projector is LLaVA's" 2 "InstructBLIP: --train-projector" \
    blip_run --data "$IMG/pairs.jsonl" --out "$WORK/e3" --max-steps 1 --loss dpo --train-projector
expect_error "ASPO needs --clip-model" 2 "clip-model" \
    blip_run --data "$IMG/pairs.jsonl" --out "$WORK/e4" --max-steps 1
expect_error "missing image names the line" 1 "missing_image.jsonl:[0-9]+.*image" blip_run \
    --data "$IMG/bad/missing_image.jsonl" --out "$WORK/e5" --max-steps 1 --alpha 0

summary
