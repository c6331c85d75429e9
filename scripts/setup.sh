#!/usr/bin/env bash
# Installs the Debian packages aspo needs to build and test (Debian 12).
#
#   bash scripts/setup.sh            build and test packages
#   bash scripts/setup.sh --bench    also python3-torch and python3-numpy for bench/
#   ASPO_BENCH=1 bash scripts/setup.sh   (same as --bench)
#   bash scripts/setup.sh --hip      also hipcc and the HIP runtime, for the compile check
#                                    of the HIP backend in .ci/run (66 MB to download)
#   bash scripts/setup.sh --fuzz     also clang with libFuzzer and libomp, for scripts/fuzz.sh
#
# Only missing packages are installed, and `apt-get update` runs only when something is
# missing. Not root and something missing: prints the apt-get command and exits 1.
set -euo pipefail

# build-essential: gcc (with libgomp for OpenMP) and make. cmake >= 3.25 (Debian 12 has
# 3.25.1; ctest comes with it). pkg-config finds jansson and openblas (see CMakeLists.txt).
packages=(build-essential cmake pkg-config libopenblas-openmp-dev libjansson-dev libprotobuf-c-dev protobuf-c-compiler libpng-dev libjpeg62-turbo-dev libicu-dev)
# The Vulkan backend: the loader and headers, glslc for the shaders, Mesa's lavapipe (Vulkan
# on the CPU, the device the tests use when there is no GPU) and the Khronos validation
# layer that CI runs the op suite under.
packages+=(libvulkan-dev glslc mesa-vulkan-drivers vulkan-validationlayers)
# strace fails and kills `aspo run` at chosen system calls (tests/fault/write_faults.sh).
packages+=(strace)
bench=${ASPO_BENCH:-0}
hip=0
fuzz=0

for arg in "$@"; do
    case "$arg" in
        --bench) bench=1 ;;
        --hip) hip=1 ;;
        --fuzz) fuzz=1 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "setup.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
    esac
done
if [[ "$bench" == 1 ]]; then
    packages+=(python3 python3-torch python3-numpy)
fi
# Debian 12's ROCm 5.2: hipcc (clang 15) builds gfx90a objects; no hipBLAS (docs/GPU.md).
if [[ "$hip" == 1 ]]; then
    packages+=(hipcc libamdhip64-dev rocm-device-libs)
fi
# Debian 12's clang 14: libFuzzer and the sanitizer runtimes are in libclang-rt-14-dev, and
# OpenMP for clang (aspo_core's pragmas) in libomp-dev (tests/fuzz/fuzz.cmake).
if [[ "$fuzz" == 1 ]]; then
    packages+=(clang libclang-rt-14-dev libomp-dev)
fi

if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "setup.sh: dpkg-query not found; this script is for Debian 12. Install by hand:" >&2
    echo "  ${packages[*]}" >&2
    exit 1
fi

missing=()
for p in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [[ "$status" == installed ]] || missing+=("$p")
done

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "setup.sh: all packages present (${packages[*]})"
    exit 0
fi

cmd="apt-get install -y --no-install-recommends ${missing[*]}"
if [[ $(id -u) -ne 0 ]]; then
    echo "setup.sh: missing packages: ${missing[*]}" >&2
    echo "run as root:" >&2
    echo "  apt-get update && $cmd" >&2
    exit 1
fi

echo "setup.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q </dev/null
apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
