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

# shellcheck source=build_config.sh
source scripts/build_config.sh

cmake -S . -B "$build_dir" "${config[@]}"
cmake --build "$build_dir" --parallel "$(nproc)"
# A hung test fails after 10 minutes instead of stalling CI (ctest waits 25 minutes by default).
# Suites in parallel, one per core: each is its own process with its own scratch directory
# (the sanitizer run goes from about 9.5 to 5.5 minutes on 2 cores).
ctest --test-dir "$build_dir" --output-on-failure --timeout "${ASPO_TEST_TIMEOUT:-600}" \
    --parallel "$(nproc)"
