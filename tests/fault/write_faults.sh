#!/usr/bin/env bash
# A disk that fills up, and a process killed, at every point where `aspo run` writes into
# its output directory: each write, fsync, close, rename, mkdir and file creation there
# (strace counts them in a first run, then fails or kills at the Nth). After each:
#   - the run ends with exit 1 and one "aspo: error:" line naming the file and "No space
#     left on device" (--mode enospc), or dies of SIGKILL (--mode kill); exit 0 only when
#     the failed call is one aspo may ignore (fsync of a directory), with a whole result;
#   - every checkpoint-N in the directory is whole and equal, file by file and bit for
#     bit, to checkpoint-N of a run that never failed (corrupt checkpoints: none);
#   - the final adapter's two files are both there and equal to that run's, or neither, or
#     its weights alone (aspo/train/run_output.c moves the config in last: a directory without
#     it is no adapter yet);
#   - the same command with --resume auto (or --overwrite when no checkpoint was made)
#     ends with the adapter of the run that never failed, bit for bit.
#   bash tests/fault/write_faults.sh PATH/TO/aspo tests/fixtures enospc|kill [STRIDE]
# STRIDE N tries every Nth point of each call (1, the default, tries them all).
# shellcheck source=../cli/lib.sh
source "$(dirname "$0")/../cli/lib.sh" "$1" "$2"
MODE=${3:?enospc or kill}
STRIDE=${4:-1}
command -v strace >/dev/null ||
    { echo "write_faults: strace is not installed (scripts/setup.sh installs it)" >&2; exit 1; }
if ! strace -qq -o /dev/null true 2>"$WORK/strace.txt"; then # ptrace refused (a container)
    echo "SKIP: strace cannot trace here: $(cat "$WORK/strace.txt")"
    exit 77
fi
# LeakSanitizer cannot run under ptrace (it stops the process with a fatal error): leaks on
# these paths are the allocation loop's job (tests/fault/alloc_faults.sh), not this one's.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"

M=$WORK/model
make_model "$M"
OUT=$WORK/out
# 8 pairs, 2 a step, 2 epochs: 8 steps, a checkpoint every 3 (3, 6) and the final adapter.
job=(run --tokenizer "$TOK" --threads 1 --model "$M" --data "$DATA/text.jsonl" --batch-size 2
     --epochs 2 --save-steps 3 --lr 1e-3 --quiet --out "$OUT")
"$ASPO" "${job[@]}" >/dev/null 2>&1 || { echo "the job fails without a fault" >&2; exit 1; }
REF=$WORK/ref
mv "$OUT" "$REF"

CALLS=write,fsync,close,rename,mkdir,openat
strace -f -y -qq -o "$WORK/trace" -e trace=$CALLS "$ASPO" "${job[@]}" >/dev/null 2>&1
rm -rf "$OUT"
# The points: "call N" for each call on a path in $OUT, N counting every call of that name
# (strace's when= counts them so); openat only when it creates.
awk -v out="$OUT" '
    { if (!match($0, /^[0-9]+ +[a-z0-9_]+\(/)) next
      call = substr($0, RSTART, RLENGTH - 1); sub(/^[0-9]+ +/, "", call)
      n[call]++
      if (index($0, out "/") == 0 && index($0, "\"" out "\"") == 0) next
      if (call == "openat" && index($0, "O_CREAT") == 0) next
      print call, n[call] }' "$WORK/trace" >"$WORK/points"

# whole_checkpoints DIR: each checkpoint-N of DIR has the files of the reference's, equal.
whole_checkpoints() {
    local c f
    for c in "$1"/checkpoint-*; do
        [ -e "$c" ] || continue
        [ -d "$REF/$(basename "$c")" ] || { echo "$c: no such checkpoint in the reference"; return 1; }
        for f in "$REF/$(basename "$c")"/*; do
            cmp -s "$f" "$c/$(basename "$f")" || { echo "$c/$(basename "$f") differs or is missing"; return 1; }
        done
    done
}

# final_pair DIR: the final adapter's two files, both equal to the reference's, or neither,
# or the weights alone (equal).
final_pair() {
    local a=$1/adapter_model.safetensors b=$1/adapter_config.json
    if [ ! -e "$a" ] && [ ! -e "$b" ]; then return 0; fi
    if [ ! -e "$b" ] && cmp -s "$a" "$REF/adapter_model.safetensors"; then return 0; fi
    cmp -s "$a" "$REF/adapter_model.safetensors" && cmp -s "$b" "$REF/adapter_config.json" ||
        { echo "$1: the final adapter is not the reference's pair"; return 1; }
}

tried=0
inject=(error=ENOSPC)
[ "$MODE" = kill ] && inject=(signal=SIGKILL)
while read -r call n; do
    [ $(((n - 1) % STRIDE)) -eq 0 ] || continue
    tried=$((tried + 1))
    where="$MODE at $call #$n"
    rm -rf "$OUT"
    rc=0
    # In a subshell that reports a SIGKILL to /dev/null, not to this script's output.
    (
        strace -f -qq -o /dev/null -e trace="$call" -e inject="$call:${inject[0]}:when=$n" \
            "$ASPO" "${job[@]}" >"$WORK/out.txt" 2>"$WORK/err.txt"
        exit $?
    ) 2>/dev/null || rc=$?
    if sanitizer_report; then
        fail "$where: sanitizer report: $(cat "$WORK/err.txt")"
        continue
    fi
    case "$MODE:$rc" in
    enospc:1)
        if [ "$(grep -c '^aspo: error: ' "$WORK/err.txt")" -ne 1 ] ||
            ! grep -qE "^aspo: error: .*$OUT.*No space left on device" "$WORK/err.txt"; then
            fail "$where: expected one error naming a file in --out and the full disk: $(cat "$WORK/err.txt")"
            continue
        fi ;;
    enospc:0 | kill:0) ;; # a call aspo may ignore: the result below must still be whole
    kill:137) ;;
    *) fail "$where: exit $rc; stderr: $(cat "$WORK/err.txt")"; continue ;;
    esac
    problem=$(whole_checkpoints "$OUT") || { fail "$where: $problem"; continue; }
    problem=$(final_pair "$OUT") || { fail "$where: $problem"; continue; }
    if [ "$rc" -eq 0 ]; then
        [ -e "$OUT/adapter_model.safetensors" ] || fail "$where: exit 0 without the final adapter"
        pass
        continue
    fi
    again=(--overwrite)
    compgen -G "$OUT/checkpoint-*" >/dev/null && again=(--resume auto)
    rc=0
    "$ASPO" "${job[@]}" "${again[@]}" >"$WORK/out.txt" 2>"$WORK/err.txt" || rc=$?
    if [ "$rc" -ne 0 ]; then
        fail "$where: the rerun with ${again[*]} exits $rc: $(cat "$WORK/err.txt")"
    elif ! cmp -s "$OUT/adapter_model.safetensors" "$REF/adapter_model.safetensors" ||
        ! cmp -s "$OUT/adapter_config.json" "$REF/adapter_config.json"; then
        fail "$where: after ${again[*]} the adapter differs from the run that never failed"
    else
        pass
    fi
done <"$WORK/points"
if [[ "$STRIDE" == 1 ]]; then every="all of them"; else every="every ${STRIDE}th"; fi
echo "write_faults ($MODE): $tried points of $(wc -l <"$WORK/points") tried ($every)"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$tried" -gt 0 ]
