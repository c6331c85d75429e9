#!/usr/bin/env bash
# shellcheck disable=SC2317 # the stage functions run as "stage_$name" (--run-stage)
# One command for a machine with an NVIDIA GPU: builds aspo with the CUDA backend for that
# card and checks it, stage by stage, then writes a markdown table of the results (card,
# driver, each stage's result, time and numbers) and a log of everything.
#
#   bash scripts/gpu-check.sh [--out DIR] [--build DIR] [--debs DIR] [--budget SECONDS]
#                             [--only STAGE,...] [--dry]
#   bash scripts/gpu-check.sh --fetch-debs DIR
#
#   --out DIR       gpu-check.md and gpu-check.log go here (default $OUT, else gpu-check-out)
#   --build DIR     the build directory (default /tmp/aspo-gpu-check); kept between runs
#   --debs DIR      .deb files of the build's libraries, unpacked when the machine lacks them
#                   (default .gpu-debs when it exists); no file that exists is overwritten
#   --budget S      all stages together (default 450): a stage gets what is left of it at
#                   most, and stages left without time are reported as not run
#   --only A,B      these stages only (a build from an earlier run is reused)
#   --dry           prints the stages, their time boxes and commands; runs nothing
#   --fetch-debs D  on a Debian 12 machine with apt: downloads those .deb files into D (35 MB)
#   GPU_CHECK_BACKEND=vulkan (environment, with --only and --build of such a build): the GPU
#                   stages on another backend, to try this script on a machine without CUDA
#
# Each stage runs under `timeout` (its box, or less when the budget is nearly spent), so a
# hang costs only its box; a failed stage does not stop the others. Exit status 1 when any
# stage failed, timed out or was not run. Stages (box in seconds):
stages='
gpu           30  nvidia-smi: card, driver, compute capability (the build architecture)
deps         120  cc, cmake, nvcc, pkg-config and the libraries; missing ones from --debs
build        300  cmake -DASPO_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=<card> (Release), all targets
ops          120  tests/test_ops --backend cuda: every op forward and backward against the CPU
cuda         120  tests/test_cuda cuda: device errors, 2^31+ elements, out-of-memory, recovery
e2e_llama    120  aspo run 20 steps, tiny LLaMA (init-model, cli/text.jsonl): cuda vs cpu losses
e2e_llava    180  aspo run 20 steps, tiny LLaVA (fixtures/llava, llava_data): cuda vs cpu losses
bench_llama   90  aspo bench --backend cuda (aspo bench defaults; PyTorch beside it if it can)
bench_llava   90  aspo bench --backend cuda --model-kind llava
own_gemm      90  ASPO_CUDA_GEMM=own test_ops --backend cuda matmul: the own GEMM kernel
suites       180  ctest, every other suite on the CPU (parity with transformers/PEFT, CLI, ...)
'
# Loss curves: |cuda - cpu| <= 1e-3 at each of the 20 steps. Both run in f32; the GPU kernels
# differ from the CPU's in summation order (and cuBLAS in its algorithms), ~1e-7 relative
# per reduction, which compounds through the layers, the loss and 20 AdamW steps at lr 1e-3
# (the Vulkan backend stays within 1e-6 of the CPU on these models). 1e-3 also admits TF32
# products (ASPO_CUDA_TF32=1: ~1e-3 relative per product, averaged down in the loss), and
# still fails a wrong kernel: the first step's loss is log 2 = 0.693147 up to rounding, and a
# wrong op moves it, or the steps after it, by far more.
TOL=1e-3
set -uo pipefail
be=${GPU_CHECK_BACKEND:-cuda}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
self=$root/scripts/gpu-check.sh
fixtures=$root/tests/fixtures
# The .deb files --fetch-debs downloads: the -dev packages of the libraries the build finds
# with pkg-config, protoc-c, pkgconf, and the libraries they need that a CUDA image may lack.
deb_packages=(libopenblas-openmp-dev libopenblas0-openmp libgfortran5 libquadmath0
              libjansson-dev libjansson4 libprotobuf-c-dev libprotobuf-c1 protobuf-c-compiler
              libprotoc32 libprotobuf32 libpng-dev libpng16-16 zlib1g-dev zlib1g
              libjpeg62-turbo-dev libjpeg62-turbo libicu-dev libicu72 pkgconf pkgconf-bin
              libpkgconf3)

note() { echo "$*" >"$GPU_CHECK_WORK/note"; } # the stage's one line for the table

# ---- stages (each runs as `gpu-check.sh --run-stage NAME` under timeout) ----

stage_gpu() {
    command -v nvidia-smi >/dev/null || { note "no nvidia-smi: no NVIDIA driver here"; return 1; }
    local q
    q=$(nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total \
        --format=csv,noheader | head -n 1 | sed 's/, /,/g') || { note "nvidia-smi failed"; return 1; }
    echo "$q"
    IFS=, read -r name driver cc memory <<<"$q"
    echo "$name" >"$GPU_CHECK_WORK/card"
    echo "driver $driver, compute capability $cc, $memory" >"$GPU_CHECK_WORK/card_info"
    [[ "$cc" =~ ^[0-9]+\.[0-9]+$ ]] && echo "${cc/./}" >"$GPU_CHECK_WORK/arch"
    note "$name, driver $driver, compute capability $cc, $memory"
}

# pkg-config modules and files the build needs (CMakeLists.txt and models/*.cmake).
missing_deps() {
    local m=() triplet
    triplet=$(gcc -dumpmachine 2>/dev/null || echo x86_64-linux-gnu)
    command -v cc >/dev/null || m+=(cc)
    command -v cmake >/dev/null || m+=(cmake)
    [[ -x /usr/local/cuda/bin/nvcc ]] || command -v nvcc >/dev/null || m+=(nvcc)
    command -v protoc-c >/dev/null || m+=(protoc-c)
    if command -v pkg-config >/dev/null; then
        for mod in jansson libpng libjpeg icu-uc libprotobuf-c; do
            pkg-config --exists "$mod" || m+=("$mod")
        done
    else
        m+=(pkg-config)
    fi
    [[ -f /usr/lib/$triplet/openblas-openmp/pkgconfig/openblas.pc ]] || m+=(openblas-openmp)
    echo "${m[*]}"
}

stage_deps() {
    local missing debs=$GPU_CHECK_DEBS
    missing=$(missing_deps)
    echo "missing: ${missing:-nothing}"
    if [[ -z "$missing" ]]; then note "all present"; return 0; fi
    if [[ -z "$debs" ]] || ! compgen -G "$debs/*.deb" >/dev/null; then
        note "missing: $missing; no .deb files to add them (--debs DIR; docs/GPU.md)"
        return 1
    fi
    # Unpacked beside /, then copied in without replacing any file that exists (the image's
    # own libraries stay as they are) and through its directory links (/lib -> usr/lib).
    local stage=$GPU_CHECK_WORK/debroot
    mkdir -p "$stage"
    for d in "$debs"/*.deb; do dpkg-deb -x "$d" "$stage" || return 1; done
    tar -C "$stage" -cf - . | tar -C / --skip-old-files --keep-directory-symlink --no-overwrite-dir -xf - &&
        ldconfig || return 1
    local still
    still=$(missing_deps)
    if [[ -n "$still" ]]; then
        note "missing: $missing; after the .debs of $debs still: $still"
        return 1
    fi
    note "added from $debs: $missing"
}

stage_build() {
    local arch=native
    [[ -s "$GPU_CHECK_WORK/arch" ]] && arch=$(cat "$GPU_CHECK_WORK/arch")
    cmake -S "$root" -B "$GPU_CHECK_BUILD" -DCMAKE_BUILD_TYPE=Release -DASPO_CUDA=ON \
        -DASPO_VULKAN=OFF -DCMAKE_CUDA_ARCHITECTURES="$arch" || { note "cmake failed"; return 1; }
    cmake --build "$GPU_CHECK_BUILD" --parallel "$(nproc)" || { note "build failed (sm_$arch)"; return 1; }
    note "Release, CUDA architecture $arch"
}

# need FILE...: the build made them (else the stage fails at once, saying so).
need() {
    for f in "$@"; do
        [[ -x "$f" ]] || { note "no $f (the build failed or did not run)"; return 1; }
    done
}

# GPU tests: exit 77 (no GPU seen) is a failure here.
gpu_test() {
    local rc=0 out=$GPU_CHECK_WORK/test.out
    "$@" 2>&1 | tee "$out" || rc=$?
    local counts
    counts=$(grep -E 'op cases run|passed, [0-9]+ failed' "$out" | paste -sd ';' | sed 's/;/; /g')
    if ((rc == 77)); then note "skipped, so no GPU was used: $(grep -m1 SKIP "$out")"; return 1; fi
    note "${counts:-no summary line}; exit $rc"
    return "$rc"
}

stage_ops() {
    need "$GPU_CHECK_BUILD/tests/test_ops" || return 1
    gpu_test "$GPU_CHECK_BUILD/tests/test_ops" --backend "$be"
}

stage_own_gemm() {
    need "$GPU_CHECK_BUILD/tests/test_ops" || return 1
    ASPO_CUDA_GEMM=own gpu_test "$GPU_CHECK_BUILD/tests/test_ops" --backend "$be" matmul
}

stage_cuda() {
    need "$GPU_CHECK_BUILD/tests/test_cuda" || return 1
    gpu_test "$GPU_CHECK_BUILD/tests/test_cuda" "$be"
}

# compare_losses CPU_METRICS CUDA_METRICS: 20 steps each, every |d| <= TOL; the note.
compare_losses() {
    local result
    result=$(paste <(grep -o '"loss":[^,}]*' "$1" | cut -d: -f2) \
                   <(grep -o '"loss":[^,}]*' "$2" | cut -d: -f2) |
        awk -v tol="$TOL" 'NF == 2 { d = $1 - $2; if (d < 0) d = -d; if (d > max) max = d
                                     if (!(d <= tol)) bad++; n++ }
                           END { printf "%d %d %.3g", n, bad, max }')
    read -r n bad max <<<"$result"
    note "$3; max |$be - cpu| $max over $n steps (tol $TOL)"
    ((n == 20 && bad == 0))
}

# e2e NAME ARGS...: aspo run on cpu, then on the GPU, same arguments; the curves compared.
e2e() {
    local name=$1 aspo=$GPU_CHECK_BUILD/aspo times=""
    shift
    need "$aspo" || return 1
    for b in cpu "$be"; do
        local out=$GPU_CHECK_WORK/$name-$b start=$SECONDS
        rm -rf "$out"
        echo "+ aspo run --backend $b $*"
        "$aspo" run --backend "$b" --out "$out" --batch-size 2 --max-steps 20 --lr 1e-3 \
            --quiet "$@" || { note "aspo run --backend $b failed (log)"; return 1; }
        times+="$b $((SECONDS - start)) s, "
    done
    compare_losses "$GPU_CHECK_WORK/$name-cpu/metrics.jsonl" \
        "$GPU_CHECK_WORK/$name-$be/metrics.jsonl" "${times%, }"
}

stage_e2e_llama() {
    local model=$GPU_CHECK_WORK/tiny-llama
    need "$GPU_CHECK_BUILD/aspo" || return 1
    rm -rf "$model"
    "$GPU_CHECK_BUILD/aspo" init-model --out "$model" --vocab 1000 --dim 64 --layers 2 ||
        { note "aspo init-model failed"; return 1; }
    e2e llama --threads 4 --model "$model" --tokenizer "$fixtures/tokenizer/legacy" \
        --data "$fixtures/cli/text.jsonl"
}

stage_e2e_llava() {
    e2e llava --threads 4 --model "$fixtures/llava/tiny_hf" --clip-model "$fixtures/llava/clip" \
        --data "$fixtures/llava_data/pairs.jsonl" --image-root "$fixtures/llava_data/images" \
        --lora-r 4
}

# json_field LINE KEY: a number from aspo bench's JSON line.
json_field() { grep -o "\"$2\": *[0-9.e+-]*" <<<"$1" | head -n 1 | sed 's/.*: *//'; }

# bench KIND RATE_KEY ARGS...: aspo bench on the GPU; PyTorch there beside it when the
# bench/ script for that kind takes --device.
bench() {
    local kind=$1 key=$2 line torch_script torch_line torch_note=""
    shift 2
    need "$GPU_CHECK_BUILD/aspo" || return 1
    line=$("$GPU_CHECK_BUILD/aspo" bench --backend "$be" "$@" | tail -n 1) ||
        { note "aspo bench failed (log)"; return 1; }
    echo "$line"
    [[ -n "$(json_field "$line" "$key")" ]] || { note "no $key in: $line"; return 1; }
    torch_script=$root/bench/train_step_torch.py
    [[ "$kind" == llava ]] && torch_script=$root/bench/llava_step_torch.py
    if [[ -f "$torch_script" ]] && python3 "$torch_script" --help 2>/dev/null | grep -q -- --device; then
        torch_line=$(python3 "$torch_script" --device cuda | tail -n 1) && echo "$torch_line" &&
            torch_note="; PyTorch $(json_field "$torch_line" "$key")"
    else
        torch_note="; PyTorch not run (bench/ scripts have no --device)"
    fi
    note "$key $(json_field "$line" "$key"), step $(json_field "$line" step_s_median) s (median), arena $(json_field "$line" peak_arena_mb) MB$torch_note"
}

stage_bench_llama() { bench llama train_tokens_per_s; }
stage_bench_llava() { bench llava text_tokens_per_s --model-kind llava; }

stage_suites() {
    [[ -f "$GPU_CHECK_BUILD/CTestTestfile.cmake" ]] || { note "no build"; return 1; }
    local rc=0 out=$GPU_CHECK_WORK/ctest.out
    ctest --test-dir "$GPU_CHECK_BUILD" --parallel "$(nproc)" --timeout 150 \
        --output-on-failure -E "^(ops_$be|ops_${be}_own_gemm|$be)\$" 2>&1 | tee "$out" || rc=$?
    local failed skipped
    failed=$(grep -E '^\s+[0-9]+ - .*\((Failed|Timeout|SEGFAULT|Subprocess)' "$out" |
             awk '{print $3}' | tr '\n' ' ')
    skipped=$(grep -E '^\s+[0-9]+ - .*\(Skipped\)' "$out" | awk '{print $3}' | tr '\n' ' ')
    note "$(grep -m1 'tests passed' "$out")${failed:+; failed: $failed}${skipped:+; skipped: $skipped}"
    return "$rc"
}

# ---- driver ----

if [[ "${1:-}" == --run-stage ]]; then
    "stage_$2"
    exit
fi

out=${OUT:-gpu-check-out} build=/tmp/aspo-gpu-check debs="" budget=450 only="" dry=0
[[ -d "$root/.gpu-debs" ]] && debs=$root/.gpu-debs
# The header comment and the stage list.
help() { awk 'NR > 2 && !/^#/ { exit } NR > 2 { print }' "$self"; echo "$stages"; }
usage() { help >&2; exit 2; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        --out) [[ $# -ge 2 ]] || usage; out=$2; shift 2 ;;
        --build) [[ $# -ge 2 ]] || usage; build=$2; shift 2 ;;
        --debs) [[ $# -ge 2 ]] || usage; debs=$2; shift 2 ;;
        --budget) [[ $# -ge 2 && "$2" =~ ^[0-9]+$ ]] || usage; budget=$2; shift 2 ;;
        --only) [[ $# -ge 2 ]] || usage; only=",$2,"; shift 2 ;;
        --dry) dry=1; shift ;;
        --fetch-debs)
            [[ $# -ge 2 ]] || usage
            mkdir -p "$2" && cd "$2" && apt-get download "${deb_packages[@]}" && du -sh .
            exit ;;
        -h|--help) help; exit 0 ;;
        *) echo "gpu-check.sh: unknown argument '$1'" >&2; usage ;;
    esac
done
if [[ -n "$only" ]]; then
    for s in ${only//,/ }; do
        grep -qE "^$s " <<<"$stages" || { echo "gpu-check.sh: no stage '$s'" >&2; exit 2; }
    done
fi

if ((dry)); then
    echo "gpu-check.sh --dry: build in $build, results in $out, budget $budget s," \
         "debs ${debs:-none}"
    while read -r name box what; do
        [[ -n "$name" ]] || continue
        [[ -z "$only" || "$only" == *",$name,"* ]] || continue
        printf '  %-12s %4s s  %s\n' "$name" "$box" "$what"
    done <<<"$stages"
    exit 0
fi

mkdir -p "$out" "$build" || exit 1
out=$(cd "$out" && pwd) build=$(cd "$build" && pwd)
[[ -z "$debs" ]] || debs=$(cd "$debs" && pwd) || exit 1
work=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
trap 'rm -rf "$work"' EXIT
export GPU_CHECK_WORK=$work GPU_CHECK_BUILD=$build GPU_CHECK_DEBS=$debs
log=$out/gpu-check.log
: >"$log"
rows=() failed=0 deadline=$((SECONDS + budget))

while read -r name box what; do
    [[ -n "$name" ]] || continue
    [[ -z "$only" || "$only" == *",$name,"* ]] || continue
    left=$((deadline - SECONDS))
    if ((left < 15)); then
        rows+=("| $name | NOT RUN | 0 | the $budget s budget was spent |")
        failed=1
        continue
    fi
    ((box > left)) && box=$left
    echo "=== $name (box $box s): $what" | tee -a "$log"
    rm -f "$work/note"
    start=$SECONDS rc=0
    timeout -k 10 "$box" bash "$self" --run-stage "$name" </dev/null >>"$log" 2>&1 || rc=$?
    took=$((SECONDS - start))
    case $rc in
        0) result=PASS ;;
        124|137) result=TIMEOUT; echo "(the $box s box ran out)" >"$work/note" ;;
        *) result=FAIL ;;
    esac
    ((rc == 0)) || failed=1
    line=$(cat "$work/note" 2>/dev/null)
    echo "--- $name: $result in $took s: $line" | tee -a "$log"
    rows+=("| $name | $result | $took | ${line//|/\\|} |")
done <<<"$stages"

card=$(cat "$work/card" 2>/dev/null || echo "no GPU seen")
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -z "$(git -C "$root" status --porcelain 2>/dev/null)" ]] || commit+=" + local changes"
nvcc_version=$( (/usr/local/cuda/bin/nvcc --version 2>/dev/null || nvcc --version 2>/dev/null) |
    grep -o 'release [0-9.]*' | head -n 1)
{
    echo "# scripts/gpu-check.sh on $card"
    echo
    echo "$card: $(cat "$work/card_info" 2>/dev/null || echo "no nvidia-smi"); nvcc" \
         "${nvcc_version:-not found}; $(nproc) cores; commit $commit; $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "| stage | result | s | notes |"
    echo "|---|---|---:|---|"
    printf '%s\n' "${rows[@]}"
    echo
    echo "Loss curves: $be against cpu, 20 AdamW steps, tolerance $TOL (scripts/gpu-check.sh" \
         "says why). Full output: gpu-check.log."
} >"$out/gpu-check.md"
cat "$out/gpu-check.md"
exit "$failed"
