#!/usr/bin/env bash
# The fault-injection loops of docs/RELIABILITY.md, whole (ctest runs every 5th or 7th
# point of each: tests/fault.cmake):
#   - every allocation of `aspo run`'s job failing in turn (tests/fault/alloc_faults.c);
#   - a full disk at every write-side system call into --out, then a SIGKILL at each
#     (tests/fault/write_faults.sh, with strace).
#   bash scripts/faults.sh                  Release build in build/ ($BUILD_DIR overrides)
#   ASPO_SANITIZE=1 bash scripts/faults.sh  the same under ASan+UBSan (build-asan/)
# About 2.5 minutes on two cores for the Release build. Exit status non-zero if any failed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
# shellcheck source=build_config.sh
source scripts/build_config.sh
cmake -S . -B "$build_dir" "${config[@]}" >/dev/null
cmake --build "$build_dir" --parallel "$(nproc)" --target aspo alloc_faults >/dev/null

status=0
summary=()
run() { # run NAME CMD...: its output, and its last lines kept for the summary
    local start=$SECONDS
    echo "=== $1 ==="
    "${@:2}" 2>&1 | tee "$log" || status=1
    summary+=("$1 ($((SECONDS - start)) s): $(grep -E 'runs, each|points of|passed, ' "$log" | tr '\n' ' ')")
}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
run "allocation failures" bash tests/fault/alloc_faults.sh "$build_dir/aspo" \
    "$build_dir/tests/alloc_faults" tests/fixtures 1
run "full disk" bash tests/fault/write_faults.sh "$build_dir/aspo" tests/fixtures enospc 1
run "SIGKILL" bash tests/fault/write_faults.sh "$build_dir/aspo" tests/fixtures kill 1
echo "=== Fault summary ==="
printf '  %s\n' "${summary[@]}"
exit "$status"
