#!/usr/bin/env bash
# Builds aspo and runs the test suites with ctest.
#
#   bash scripts/test.sh                    Release build in build/ ($BUILD_DIR overrides)
#   ASPO_SANITIZE=1 bash scripts/test.sh    ASan+UBSan Debug build in build-asan/
#   ASPO_TEST_TIMEOUT=N                     seconds before ctest kills a test (600)
#
# Installs missing Debian packages first (scripts/setup.sh; needs root when any are missing).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh

if [[ "${ASPO_SANITIZE:-0}" == 1 ]]; then
    build_dir=${BUILD_DIR:-build-asan}
    config=(-DCMAKE_BUILD_TYPE=Debug -DASPO_SANITIZE=ON)
    # Leaks inside the Vulkan driver are the driver's (scripts/lsan.supp says which).
    export LSAN_OPTIONS="suppressions=$PWD/scripts/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
else
    build_dir=${BUILD_DIR:-build}
    config=(-DCMAKE_BUILD_TYPE=Release -DASPO_SANITIZE=OFF)
fi

cmake -S . -B "$build_dir" "${config[@]}"
cmake --build "$build_dir" --parallel "$(nproc)"
# A hung test fails after 10 minutes instead of stalling CI (ctest waits 25 minutes by default).
ctest --test-dir "$build_dir" --output-on-failure --timeout "${ASPO_TEST_TIMEOUT:-600}"
