# shellcheck shell=bash
# Shared by the tests/cli scripts (sourced, not run): arguments, a temp dir removed on
# exit, checks that count passes and failures, and the final "N passed, N failed" line.
#   source "$(dirname "$0")/lib.sh" "$@"      (args: ASPO_BINARY FIXTURES_DIR)
set -u
if [ $# -lt 2 ] || [ ! -x "$1" ] || [ ! -d "$2" ]; then
    echo "usage: $0 PATH/TO/aspo PATH/TO/tests/fixtures" >&2
    exit 2
fi
ASPO=$(realpath "$1")
FIX=$(realpath "$2")
TOK=$FIX/tokenizer/legacy # vocab 1000, BOS 1, EOS 2: matches make_model
# shellcheck disable=SC2034 # used by the scripts that source this file
DATA=$FIX/cli
WORK=$(mktemp -d "${TMPDIR:-/tmp}/aspo_cli.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
passed=0
failed=0

pass() { passed=$((passed + 1)); }
fail() {
    failed=$((failed + 1))
    echo "FAIL: $*" >&2
}

# check NAME CMD...: CMD succeeds.
check() {
    local name=$1
    shift
    if "$@"; then pass; else fail "$name"; fi
}

# An ASan/UBSan build reports on stderr; a failing test must not pass because the exit
# status happened to be the expected 1.
sanitizer_report() { grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$WORK/err.txt"; }

# expect_error NAME CODE PATTERN CMD...: CMD exits with CODE and prints one
# "aspo: error: ..." line that matches the extended regex PATTERN. CLI_VERBOSE=1 in the
# environment prints each message that passed, to review their wording.
expect_error() {
    local name=$1 code=$2 pattern=$3 rc=0
    shift 3
    "$@" >"$WORK/out.txt" 2>"$WORK/err.txt" || rc=$?
    if sanitizer_report; then
        fail "$name: sanitizer report: $(cat "$WORK/err.txt")"
    elif [ "$rc" -ne "$code" ]; then
        fail "$name: exit $rc, expected $code; stderr: $(cat "$WORK/err.txt")"
    elif [ "$(grep -c '^aspo: error: ' "$WORK/err.txt")" -ne 1 ]; then
        fail "$name: expected one 'aspo: error:' line; stderr: $(cat "$WORK/err.txt")"
    elif ! grep -qE "^aspo: error: .*$pattern" "$WORK/err.txt"; then
        fail "$name: the message does not match /$pattern/: $(cat "$WORK/err.txt")"
    else
        pass
        [ -z "${CLI_VERBOSE:-}" ] || echo "ok ($name): $(cat "$WORK/err.txt")"
    fi
}

# expect_ok NAME CMD...: CMD exits 0 (stderr kept in $WORK/err.txt for later checks).
expect_ok() {
    local name=$1 rc=0
    shift
    "$@" >"$WORK/out.txt" 2>"$WORK/err.txt" || rc=$?
    if [ "$rc" -ne 0 ] || sanitizer_report; then
        fail "$name: exit $rc; stderr: $(cat "$WORK/err.txt")"
    else
        pass
    fi
}

# The tiny LLaMA of every script (seconds to train on a laptop core).
# losses_of METRICS: the training loss of each step of a metrics.jsonl, one per line.
losses_of() { grep -o '"loss":[^,]*' "$1" | cut -d: -f2; }
# curves_within A B TOL STEPS: two metrics.jsonl with the same number of steps, at least
# STEPS, and every loss of A within TOL of B's.
curves_within() {
    paste <(losses_of "$1") <(losses_of "$2") |
        awk -v tol="$3" -v steps="$4" 'NF == 2 { d = $1 - $2; if (d < 0) d = -d; if (d > tol) bad++; n++ }
                                       END { exit !(n >= steps && bad == 0) }'
}

make_model() {
    "$ASPO" init-model --out "$1" --vocab 1000 --dim 64 --layers 2 "${@:2}" >/dev/null ||
        { echo "aspo init-model failed; nothing to test" >&2; exit 1; }
}

# aspo run with the test tokenizer; one thread keeps runs fast when ctest runs suites in
# parallel on a few cores (spinning OpenMP teams oversubscribe them badly).
aspo_run() { "$ASPO" run --tokenizer "$TOK" --threads 1 "$@"; }

# has_keys FILE LINE_PATTERN KEY...: the first line of FILE matching LINE_PATTERN has "KEY":
has_keys() {
    local line missing=""
    line=$(grep -m1 -E "$2" "$1") || { echo "no line /$2/ in $1" >&2; return 1; }
    shift 2
    for k in "$@"; do
        case "$line" in *"\"$k\":"*) ;; *) missing="$missing $k" ;; esac
    done
    [ -z "$missing" ] || { echo "missing keys:$missing" >&2; return 1; }
}

# metrics.jsonl without the wall-clock field, for comparing runs.
metrics_sans_time() { sed 's/,"tokens_per_s":[^,}]*//' "$1"; }

summary() {
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}
