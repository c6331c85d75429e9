#!/usr/bin/env bash
# Builds aspo (Release, in build/ or $BUILD_DIR) and runs the demo job on its embedded
# default data. Arguments go to the demo:
#
#   bash scripts/demo.sh [--seed N] [--threads N] [--loss aspo|dpo] [--epochs N] [--out DIR]
#
# Installs missing Debian packages first (scripts/setup.sh; needs root when any are missing).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh

build_dir=${BUILD_DIR:-build}
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DASPO_SANITIZE=OFF
cmake --build "$build_dir" --parallel "$(nproc)" --target aspo
exec "$build_dir/aspo" demo "$@"
