#!/usr/bin/env bash
# `aspo run` and `aspo score` end to end on a tiny random LLaVA-1.5 (llava-hf layout and the
# original layout, tests/fixtures/llava) with ASPO's full S+P weights (alpha 0.5) on the
# committed image dataset (tests/fixtures/llava_data) in both formats, and the image errors
# a user meets: a missing image (names the dataset line), corrupt / non-image / over-limit
# files, a checkpoint without vision weights, ASPO without a text tower for S.
#   bash tests/cli/llava.sh PATH/TO/aspo tests/fixtures
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh" "$@"

HF=$FIX/llava/tiny_hf
ORIG=$FIX/llava/tiny_orig
CLIP=$FIX/llava/clip
IMG=$FIX/llava_data
llava_run() { "$ASPO" run --threads 1 --image-root "$IMG/images" --quiet "$@"; }
# close A B: |A - B| <= 1e-5 (both non-empty).
close() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; exit !(a != "" && (d < 0 ? -d : d) <= 1e-5) }'; }
metric_of() { grep -o "\"$2\":[^,}]*" "$1" | head -"${3:-1}" | tail -1 | cut -d: -f2; }
is_file() { [ -s "$1" ]; }
S_KEYS=(aspo/s_mean aspo/s_min aspo/s_max aspo/ppl_mean aspo/s_norm_mean aspo/s_norm_min aspo/s_norm_max aspo/ppl_norm_mean aspo/w_mean)

# --- ASPO (alpha 0.5) on the JSONL rows and on SeVa's list: the same pairs, the same run --
for fmt in jsonl seva; do
    data=$IMG/pairs.jsonl
    [ $fmt = seva ] && data=$IMG/seva.json
    out=$WORK/hf-$fmt
    expect_ok "llava-hf ASPO on $fmt" llava_run --model "$HF" --clip-model "$CLIP" --data "$data" \
        --out "$out" --batch-size 2 --max-steps 3 --lr 1e-3 --lora-r 4
    check "$fmt: 3 metrics lines" [ "$(grep -c '"step":[0-9]*,"epoch"' "$out/metrics.jsonl")" -eq 3 ]
    check "$fmt: S and PPL weight statistics" has_keys "$out/metrics.jsonl" '"step":1,' "${S_KEYS[@]}"
    check "$fmt: S statistics are numbers" bash -c "! grep -q '\"aspo/s_norm_mean\":null' '$out/metrics.jsonl'"
    check "$fmt: finite losses" bash -c "! grep -qE '\"loss\":(null|nan|inf)' '$out/metrics.jsonl'"
    check "$fmt: PEFT adapter" is_file "$out/adapter_model.safetensors"
    check "$fmt: adapter targets the language model" grep -q 'language_model' "$out/adapter_config.json"
done
check "JSONL and SeVa give the same losses" [ "$(metric_of "$WORK/hf-jsonl/metrics.jsonl" loss 3)" = "$(metric_of "$WORK/hf-seva/metrics.jsonl" loss 3)" ]

# The --clip-model's vision weights are LLaVA's: one tower in memory, not two.
expect_ok "shared tower report" "$ASPO" run --threads 1 --image-root "$IMG/images" --model "$HF" \
    --clip-model "$CLIP" --data "$IMG/pairs.jsonl" --out "$WORK/shared" --max-steps 1 --lora-r 4
check "vision tower shared with --clip-model" grep -q "similarities S from --clip-model, whose vision tower LLaVA shares" "$WORK/err.txt"

# S only (alpha 1) moves the weights differently from P only (alpha 0): S is really used.
expect_ok "alpha 1" llava_run --model "$HF" --clip-model "$CLIP" --data "$IMG/pairs.jsonl" \
    --out "$WORK/a1" --batch-size 2 --max-steps 2 --lr 1e-3 --lora-r 4 --alpha 1
expect_ok "alpha 0" llava_run --model "$HF" --data "$IMG/pairs.jsonl" \
    --out "$WORK/a0" --batch-size 2 --max-steps 2 --lr 1e-3 --lora-r 4 --alpha 0
check "alpha 1 and alpha 0 give different w" [ "$(metric_of "$WORK/a1/metrics.jsonl" aspo/w_mean 2)" != "$(metric_of "$WORK/a0/metrics.jsonl" aspo/w_mean 2)" ]

# --- --vision-cache: features kept between epochs give the run without the cache, bitwise
# (the tower sees one image per pass, so an image's features never depend on its batch) --
for c in none cache; do
    extra=()
    [ $c = cache ] && extra=(--vision-cache "$WORK/vcache")
    expect_ok "2 epochs, $c" "$ASPO" run --threads 1 --image-root "$IMG/images" --model "$HF" \
        --data "$IMG/pairs.jsonl" --loss dpo --out "$WORK/vc-$c" --batch-size 4 --epochs 2 \
        --lr 1e-3 --lora-r 4 "${extra[@]}"
done
check "vision cache: one file per image" [ "$(ls "$WORK/vcache" | grep -c '\.f32$')" -eq "$(ls "$IMG/images" | wc -l)" ]
check "vision cache: the same metrics" [ "$(metrics_sans_time "$WORK/vc-none/metrics.jsonl")" = "$(metrics_sans_time "$WORK/vc-cache/metrics.jsonl")" ]
# 8 pairs over 6 images, 2 epochs: 16 image uses, 6 computed once, 10 read back.
check "vision cache: computed once per image" grep -q "vision cache .*: 10 images read from it, 6 computed" "$WORK/err.txt"
# A damaged cache file is a miss (recomputed), not an error.
for f in "$WORK"/vcache/*.f32; do head -c 100 "$f" >"$f.cut" && mv "$f.cut" "$f"; done
expect_ok "damaged cache" "$ASPO" run --threads 1 --image-root "$IMG/images" --model "$HF" \
    --data "$IMG/pairs.jsonl" --loss dpo --out "$WORK/vc-damaged" --batch-size 4 --epochs 2 \
    --lr 1e-3 --lora-r 4 --vision-cache "$WORK/vcache"
check "damaged cache: recomputed" grep -q "10 images read from it, 6 computed" "$WORK/err.txt"
check "damaged cache: the same metrics" [ "$(metrics_sans_time "$WORK/vc-none/metrics.jsonl")" = "$(metrics_sans_time "$WORK/vc-damaged/metrics.jsonl")" ]
# A whole file whose features are NaN (0xff bytes after its header): named, computed again.
# (Only when an earlier step left a file: without one, head -c of a negative size would
# read /dev/zero to the end of the disk.)
nan_file=$(ls "$WORK"/vcache/*.f32 2>/dev/null | head -n 1)
size=$( [ -n "$nan_file" ] && stat -c %s "$nan_file" || echo 0)
if [ "$size" -gt 32 ]; then
    { head -c 32 "$nan_file"; head -c $((size - 32)) /dev/zero | tr '\0' '\377'; } >"$nan_file.nan"
    mv "$nan_file.nan" "$nan_file"
else
    fail "NaN cache file: no cache file to damage"
fi
expect_ok "NaN cache file" "$ASPO" run --threads 1 --image-root "$IMG/images" --model "$HF" \
    --data "$IMG/pairs.jsonl" --loss dpo --out "$WORK/vc-nan" --batch-size 4 --epochs 2 \
    --lr 1e-3 --lora-r 4 --vision-cache "$WORK/vcache"
check "NaN cache file: named in a warning" \
    grep -q "^aspo: warning: --vision-cache: $nan_file holds [0-9]* non-finite values" "$WORK/err.txt"
check "NaN cache file: the same metrics" [ "$(metrics_sans_time "$WORK/vc-none/metrics.jsonl")" = "$(metrics_sans_time "$WORK/vc-nan/metrics.jsonl")" ]

# --- the original layout: its mm_vision_tower directory is a full CLIP, shared for S --------
expect_ok "original layout ASPO" llava_run --model "$ORIG" --tokenizer "$FIX/tokenizer/vicuna" --data "$IMG/pairs.jsonl" \
    --out "$WORK/orig" --batch-size 2 --max-steps 3 --lr 1e-3 --lora-r 4
check "original: S statistics" has_keys "$WORK/orig/metrics.jsonl" '"step":1,' "${S_KEYS[@]}"

# --- DPO with the projector trained too ---------------------------------------------------
expect_ok "DPO + projector LoRA" llava_run --model "$HF" --data "$IMG/pairs.jsonl" --loss dpo \
    --out "$WORK/proj" --batch-size 2 --max-steps 2 --lr 1e-3 --lora-r 4 --train-projector
check "projector adapted" grep -q 'multi_modal_projector' "$WORK/proj/adapter_config.json"

# --- aspo score on images -----------------------------------------------------------------
expect_ok "score LLaVA pairs" "$ASPO" score --threads 1 --model "$HF" --data "$IMG/pairs.jsonl" \
    --image-root "$IMG/images" --out "$WORK/scored.jsonl" --quiet
check "score: one line per pair" [ "$(grep -c ref_chosen_logps "$WORK/scored.jsonl")" -eq "$(grep -c . "$IMG/pairs.jsonl")" ]
expect_ok "score SeVa's list" "$ASPO" score --threads 1 --model "$HF" --data "$IMG/seva.json" \
    --image-root "$IMG/images" --out "$WORK/scored_seva.jsonl" --quiet
sums() { grep -o '"ref_chosen_logps":[^,]*,"ref_rejected_logps":[^,]*' "$1"; }
check "score: SeVa's list gives the JSONL rows' log-probs" [ "$(sums "$WORK/scored_seva.jsonl")" = "$(sums "$WORK/scored.jsonl")" ]
# The scored file trains with its precomputed reference (per-token values for ASPO).
expect_ok "score --token-logps" "$ASPO" score --threads 1 --model "$HF" --data "$IMG/seva.json" \
    --image-root "$IMG/images" --out "$WORK/scored_tok.jsonl" --token-logps --quiet
# DPO on both (ASPO's k branch can flip on float noise at step 0, where every r_i is ~0):
# the scored reference comes from other batches (other padding), so the losses agree to
# float rounding, not bitwise: 1e-5 after three steps of a 0.69 loss.
for d in "$IMG/pairs.jsonl" "$WORK/scored_tok.jsonl"; do
    expect_ok "DPO on $(basename "$d")" llava_run --model "$HF" --data "$d" --loss dpo \
        --out "$WORK/ref_$(basename "$d")" --batch-size 2 --max-steps 3 --lr 1e-3 --lora-r 4
done
check "precomputed reference: the same DPO losses" close \
    "$(metric_of "$WORK/ref_pairs.jsonl/metrics.jsonl" loss 3)" \
    "$(metric_of "$WORK/ref_scored_tok.jsonl/metrics.jsonl" loss 3)"

# --- errors -------------------------------------------------------------------------------
expect_error "ASPO without a text tower" 2 "clip-model" llava_run --model "$HF" \
    --data "$IMG/pairs.jsonl" --out "$WORK/e1" --max-steps 1
expect_error "missing image names the line" 1 "missing_image.jsonl:[0-9]+.*image" llava_run \
    --model "$HF" --data "$IMG/bad/missing_image.jsonl" --out "$WORK/e2" --max-steps 1 --alpha 0
for bad in corrupt.png truncated.png corrupt.jpg truncated.jpg empty.png zero_width.png text.png text.jpg; do
    printf '{"prompt": "What is this?", "chosen": "A thing. It is red.", "rejected": "Nothing.", "image": "%s"}\n' "$bad" >"$WORK/bad_$bad.jsonl"
    expect_error "bad image $bad" 1 "bad_$bad.jsonl:1.*$bad" llava_run --model "$HF" \
        --image-root "$FIX/image" --data "$WORK/bad_$bad.jsonl" --out "$WORK/e3" --overwrite --max-steps 1 --alpha 0 --loss dpo
done
# A FIFO as an image is refused when the rows are checked, before the model opens (it
# blocked forever once).
mkfifo "$WORK/fifo.png"
printf '{"prompt": "What is this?", "chosen": "A photo.", "rejected": "No.", "image": "fifo.png"}\n' >"$WORK/fifo.jsonl"
expect_error "FIFO as an image" 1 "fifo.jsonl:1: image fifo.png: .*FIFO" llava_run --model "$HF" \
    --image-root "$WORK" --data "$WORK/fifo.jsonl" --out "$WORK/e7" --max-steps 1 --loss dpo
printf '{"prompt": "What is this?", "chosen": "A photo.", "rejected": "No.", "image": "photo.jpg"}\n' >"$WORK/big.jsonl"
expect_error "over-limit image" 1 "big.jsonl:1.*photo.jpg" llava_run --model "$HF" \
    --image-root "$FIX/image" --data "$WORK/big.jsonl" --out "$WORK/e4" --max-steps 1 --loss dpo \
    --max-image-pixels 100
expect_error "image rows on a text-only LLaMA" 2 "text-only" "$ASPO" run --threads 1 --quiet \
    --model "$FIX/llama/tiny" --tokenizer "$FIX/tokenizer/legacy" --data "$IMG/pairs.jsonl" \
    --image-root "$IMG/images" --out "$WORK/e5" --max-steps 1
# A LLaVA checkpoint whose weights lack the vision tower (tests/fixtures/llava/no_vision).
expect_error "checkpoint without vision weights" 1 "vision tower: .*vision_tower\.vision_model" llava_run --model "$FIX/llava/no_vision" \
    --data "$IMG/pairs.jsonl" --out "$WORK/e6" --max-steps 1 --alpha 0 --loss dpo

summary
