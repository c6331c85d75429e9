#!/usr/bin/env bash
# Runs tests/fault/alloc_faults.c on a tiny random LLaMA and the CLI test's rows.
#   bash tests/fault/alloc_faults.sh PATH/TO/aspo PATH/TO/alloc_faults tests/fixtures [STRIDE [FIRST LAST]]
# STRIDE 1 (the default) fails every allocation in turn: scripts/faults.sh.
set -euo pipefail
ASPO=$1 FAULTS=$2 FIX=$3 STRIDE=${4:-1} FIRST=${5:-1} LAST=${6:-999999999}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$ASPO" init-model --out "$WORK/model" --vocab 1000 --dim 64 --layers 2 >/dev/null
"$FAULTS" "$WORK/model" "$FIX/tokenizer/legacy" "$FIX/cli/text.jsonl" "$WORK/out" \
    "$FIRST" "$LAST" "$STRIDE"
