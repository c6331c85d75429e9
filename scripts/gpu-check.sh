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
#   --debs DIR      .deb files of the build's libraries, used when the machine lacks them
#                   (default .gpu-debs when it exists): unpacked into BUILD.deps, never into
#                   the system's directories, and found there by the later stages
#   --budget S      all stages together (default 480, the issue's 8 minutes): a stage gets what is left of it at
#                   most, less the boxes held back for later stages in $reserved (bench_7b,
#                   the point of a GPU session), and stages left without time are reported
#                   as not run
#   --only A,B      these stages only (a build from an earlier run is reused)
#   --dry           prints the stages, their time boxes and commands; runs nothing
#   --fetch-debs D  on a Debian 12 machine with apt: downloads those .deb files into D (35 MB)
#   GPU_CHECK_BACKEND=vulkan (environment, with --only and --build of such a build): the GPU
#                   stages on another backend, to try this script on a machine without CUDA
#   TORCH_PYTHON    the interpreter of the PyTorch side of the benches (default python3)
#   GPU_CHECK_FORCE_DEBS=1  use --debs even when the machine has the libraries (to rehearse)
#   GPU_CHECK_CUDA_ARCH=90  the build's architecture when the gpu stage did not run
#
# What it needs on the GPU machine, which has no internet: bash, cc, cmake >= 3.25 and the
# CUDA toolkit (nvcc, cuBLAS), and dpkg-deb (or ar and tar). The libraries of the build
# (OpenBLAS with OpenMP, jansson, protobuf-c, libpng, libjpeg, ICU, pkg-config) come from the
# machine when it has them, else from .gpu-debs: Debian 12 packages fetched beforehand on a
# machine with package access (`--fetch-debs .gpu-debs`, 35 MB), kept out of commits
# (`echo /.gpu-debs/ >> .git/info/exclude`) and carried along with the checkout. The deps
# stage unpacks them into BUILD.deps; nothing is installed into the system. PyTorch for the
# benchmarks' other side is the machine's own (python3, or TORCH_PYTHON).
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
e2e_bf16     120  the same with bf16 weights and activations (autocast mixed precision)
e2e_llava    180  aspo run 20 steps, tiny LLaVA (fixtures/llava, llava_data): cuda vs cpu losses
bench_llama   90  aspo bench --backend cuda (aspo bench defaults; PyTorch beside it if it can)
bench_llava   90  aspo bench --backend cuda --model-kind llava
bench_7b     200  aspo bench + PyTorch/PEFT, LLaVA-7B-shaped: 4 of 32 layers, 900 positions, bf16
own_gemm      90  ASPO_CUDA_GEMM=own test_ops --backend cuda matmul: the own GEMM kernel
suites       180  ctest, every other suite on the CPU (parity with transformers/PEFT, CLI, ...)
'
# Held back: earlier stages stop short of these boxes, so a slow build or a hang before it
# cannot take the time of the benchmark the session is for.
reserved=' bench_7b '
# Loss curves: |cuda - cpu| <= 1e-3 at each of the 20 steps. Both run in f32; the GPU kernels
# differ from the CPU's in summation order (and cuBLAS in its algorithms), ~1e-7 relative
# per reduction, which compounds through the layers, the loss and 20 AdamW steps at lr 1e-3
# (the Vulkan backend stays within 1e-6 of the CPU on these models). 1e-3 also admits TF32
# products (ASPO_CUDA_TF32=1: ~1e-3 relative per product, averaged down in the loss), and
# still fails a wrong kernel: the first step's loss is log 2 = 0.693147 up to rounding, and a
# wrong op moves it, or the steps after it, by far more.
TOL=1e-3
# bf16 curves (e2e_bf16): both backends round the same values to 8 mantissa bits, but a sum
# in another order can land on the other side of a rounding step (2^-9 relative); lavapipe's
# Vulkan stays within 1.4e-3 of the CPU over these 20 steps, the simt backend within 2.8e-4
# (tests/cli/backend.sh), bf16 vs f32 on one backend moves the curve about as much. 3e-3
# holds that, not a wrong half kernel.
BF16_TOL=3e-3
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
    [[ -f $(openblas_dir)/pkgconfig/openblas.pc ]] || m+=(openblas-openmp)
    echo "${m[*]}"
}

# The libraries of --debs are unpacked into this prefix beside the build, never into the
# system's directories; deps_env points the later stages at it.
deps_prefix() { echo "$GPU_CHECK_BUILD.deps"; }
triplet() { gcc -dumpmachine 2>/dev/null || echo x86_64-linux-gnu; }
openblas_dir() {
    local in_prefix
    in_prefix=$(deps_prefix)/usr/lib/$(triplet)/openblas-openmp
    [[ -f $in_prefix/pkgconfig/openblas.pc ]] && echo "$in_prefix" && return
    echo "/usr/lib/$(triplet)/openblas-openmp"
}

# PATH (protoc-c, pkg-config), PKG_CONFIG_PATH and LD_LIBRARY_PATH through the prefix when the
# deps stage made one; the build stage passes openblas_dir to CMake (OPENBLAS_OPENMP_DIR).
deps_env() {
    local r t
    r=$(deps_prefix) t=$(triplet)
    [[ -d $r/usr ]] || return 0
    export PATH="$r/usr/bin:$PATH"
    export PKG_CONFIG_PATH="$r/usr/lib/$t/pkgconfig:$r/usr/share/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
    export LD_LIBRARY_PATH="$r/usr/lib/$t:$r/lib/$t${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
}

stage_deps() {
    local missing debs=$GPU_CHECK_DEBS prefix
    prefix=$(deps_prefix)
    missing=$(missing_deps)
    [[ -n "${GPU_CHECK_FORCE_DEBS:-}" && -n "$debs" ]] && missing=${missing:-"(forced)"}
    echo "missing: ${missing:-nothing}"
    if [[ -z "$missing" ]]; then note "all present"; return 0; fi
    if [[ -z "$debs" ]] || ! compgen -G "$debs/*.deb" >/dev/null; then
        note "missing: $missing; no .deb files to add them (--debs DIR; docs/GPU.md)"
        return 1
    fi
    # Each package's files into the prefix (dpkg-deb, or ar and tar where dpkg is absent),
    # then the pkg-config files' absolute /usr paths moved into it.
    rm -rf "$prefix" && mkdir -p "$prefix" || return 1
    local d
    for d in "$debs"/*.deb; do
        if command -v dpkg-deb >/dev/null; then
            dpkg-deb -x "$d" "$prefix" || return 1
        else
            (cd "$GPU_CHECK_WORK" && ar x "$d" && tar -C "$prefix" -xf data.tar.*) || return 1
        fi
    done
    find "$prefix" -name '*.pc' -exec sed -i -E "s#^([A-Za-z_]+ *= *)/usr#\\1$prefix/usr#" {} + ||
        return 1
    deps_env
    local still
    still=$(missing_deps)
    if [[ -n "$still" ]]; then
        note "missing: $missing; after the .debs of $debs still: $still"
        return 1
    fi
    note "from $debs into $prefix: $missing"
}

stage_build() {
    local arch=${GPU_CHECK_CUDA_ARCH:-native}
    [[ -s "$GPU_CHECK_WORK/arch" ]] && arch=$(cat "$GPU_CHECK_WORK/arch")
    cmake -S "$root" -B "$GPU_CHECK_BUILD" -DCMAKE_BUILD_TYPE=Release -DASPO_CUDA=ON \
        -DASPO_VULKAN=OFF -DCMAKE_CUDA_ARCHITECTURES="$arch" -DOPENBLAS_OPENMP_DIR="$(openblas_dir)" ||
        { note "cmake failed"; return 1; }
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
        awk -v tol="${4:-$TOL}" 'NF == 2 { d = $1 - $2; if (d < 0) d = -d; if (d > max) max = d
                                     if (!(d <= tol)) bad++; n++ }
                           END { printf "%d %d %.3g", n, bad, max }')
    read -r n bad max <<<"$result"
    note "$3; max |$be - cpu| $max over $n steps (tol ${4:-$TOL})"
    ((n == 20 && bad == 0))
}

# e2e NAME ARGS...: aspo run on cpu, then on the GPU, same arguments; the curves compared
# (within $E2E_TOL when set, else $TOL).
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
        "$GPU_CHECK_WORK/$name-$be/metrics.jsonl" "${times%, }" "${E2E_TOL:-$TOL}"
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

stage_e2e_bf16() {
    local model=$GPU_CHECK_WORK/tiny-llama-bf16
    need "$GPU_CHECK_BUILD/aspo" || return 1
    rm -rf "$model"
    "$GPU_CHECK_BUILD/aspo" init-model --out "$model" --vocab 1000 --dim 64 --layers 2 ||
        { note "aspo init-model failed"; return 1; }
    E2E_TOL=$BF16_TOL e2e llama-bf16 --threads 4 --model "$model" \
        --tokenizer "$fixtures/tokenizer/legacy" --data "$fixtures/cli/text.jsonl" \
        --dtype bf16 --activation-dtype bf16
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
    local py=${TORCH_PYTHON:-python3}
    if [[ -f "$torch_script" ]] &&
        "$py" "$torch_script" --help 2>/dev/null | grep -q -- --device; then
        torch_line=$("$py" "$torch_script" --device cuda | tail -n 1) && echo "$torch_line" &&
            torch_note="; PyTorch $(json_field "$torch_line" "$key")"
    else
        torch_note="; PyTorch not run (bench/ scripts have no --device)"
    fi
    note "$key $(json_field "$line" "$key"), step $(json_field "$line" step_s_median) s (median), arena $(json_field "$line" peak_arena_mb) MB$torch_note"
}

stage_bench_llama() { bench llama train_tokens_per_s; }
stage_bench_llava() { bench llava text_tokens_per_s --model-kind llava; }

# The step of issue 6 at LLaVA-1.5-7B's real width (hidden 4096, ffn 11008, 32 heads,
# vocabulary 32064), 4 of its 32 layers, random weights: one chosen/rejected pair of 900
# positions each, of which the prompt's 640 stand for LLaVA's 576 image positions + 64 text
# prompt tokens (the llama kind: every position is a text id, the decoder's work is the
# same), LoRA r 1024 (alpha 2048) on all seven linears, bf16 frozen weights, the ASPO loss.
# aspo bench and bench/train_step_torch.py take the same flags; both print the model FLOPs
# of aspo/train/bench.h (bench/flops.py) and the 16K-pair epoch of the full 7B at their rate.
# GPU_CHECK_BENCH_7B_ARGS (environment) replaces them, to try the stage at small sizes
# (with GPU_CHECK_BACKEND=cpu the PyTorch side runs on the CPU too).
b7_args=(--layers 4 --dim 4096 --heads 32 --ffn 11008 --vocab 32064 --seq 900 --prompt 640
         --pairs 1 --rank 1024 --dtype bf16 --loss aspo --steps 3 --warmup 1)
# shellcheck disable=SC2206 # split into flags on purpose
[[ -n "${GPU_CHECK_BENCH_7B_ARGS:-}" ]] && b7_args=($GPU_CHECK_BENCH_7B_ARGS)
# Of the box, kept for the PyTorch side (imports, the model built on the GPU, 4 steps: ~30 s
# expected); aspo gets the rest, most of it for writing the random 4.3 GB f32 checkpoint
# (every core generates it) and reading it back as bf16.
b7_torch_s=65

# json_string LINE KEY: a string from a JSON line (without escapes).
json_string() {
    grep -o "\"$2\": *\"[^\"]*\"" <<<"$1" | head -n 1 | sed 's/^[^:]*: *"//; s/"$//'
}

# b7_run SECONDS CMD...: CMD under timeout; its last stdout line (a JSON line), or a JSON
# error line saying why there is none.
b7_run() {
    local limit=$1 line rc=0
    shift
    ((limit > 5)) || { echo '{"error": "no time left in the box"}'; return; }
    line=$(timeout -k 5 "$limit" "$@" | tail -n 1) || rc=$?
    echo "+ $* (exit $rc)" >&2
    if ((rc == 124 || rc == 137)); then echo "{\"error\": \"timed out after $limit s\"}"
    elif [[ "$line" != "{"* ]]; then echo "{\"error\": \"exit $rc, no JSON line (log)\"}"
    else echo "$line"; fi
}

# b7_cell LINE KEY FORMAT [SCALE]: the number at KEY (times SCALE) in FORMAT, n/a when absent
# or null.
b7_cell() {
    local v
    v=$(json_field "$1" "$2")
    if [[ -z "$v" ]]; then echo "n/a"; return; fi
    awk -v v="$v" -v f="$3" -v k="${4:-1}" 'BEGIN { printf f, v * k }'
}

stage_bench_7b() {
    local aspo=$GPU_CHECK_BUILD/aspo py=${TORCH_PYTHON:-python3} ck=() retried="" a t
    local end=$((SECONDS + ${GPU_CHECK_BOX:-200} - 5))
    need "$aspo" || return 1
    # aspo bench's random checkpoint (4.3 GB) goes here, which the driver removes at its end
    # even when a timeout killed aspo before it could remove its own.
    export TMPDIR=$GPU_CHECK_WORK/tmp
    mkdir -p "$TMPDIR" || return 1
    echo "+ aspo bench --backend $be ${b7_args[*]}"
    a=$(b7_run $((end - SECONDS - b7_torch_s)) "$aspo" bench --backend "$be" "${b7_args[@]}")
    echo "$a"
    if [[ "$(json_string "$a" error)" == "out of memory" ]]; then
        retried="aspo ran out of memory without checkpointing: both sides ran with --checkpointing"
        echo "# $retried"
        ck=(--checkpointing)
        a=$(b7_run $((end - SECONDS - b7_torch_s)) "$aspo" bench --backend "$be" "${b7_args[@]}" \
            "${ck[@]}")
        echo "$a"
    fi
    local device=cuda # PyTorch's name for ROCm GPUs too
    [[ "$be" == cpu ]] && device=cpu
    if "$py" -c "import torch, sys
sys.exit('$device' == 'cuda' and not torch.cuda.is_available())" 2>/dev/null; then
        t=$(b7_run $((end - SECONDS)) "$py" "$root/bench/train_step_torch.py" --device "$device" \
            "${b7_args[@]}" "${ck[@]}")
    else
        t="{\"error\": \"$py has no torch that runs on $device\"}"
    fi
    echo "$t"
    b7_table "$a" "$t" "$retried" >"$GPU_CHECK_WORK/tables/bench_7b.md"
    cat "$GPU_CHECK_WORK/tables/bench_7b.md"
    local ratio
    ratio=$(b7_ratio "$a" "$t" train_tokens_per_s)
    note "aspo $(b7_side "$a"); PyTorch $(b7_side "$t"); aspo/PyTorch ${ratio:-n/a}" \
         "(target 1.5)${retried:+; checkpointing (OOM)}"
    [[ -z "$(json_string "$a" error)" && -n "$(json_field "$a" train_tokens_per_s)" ]]
}

# b7_side LINE: one side's numbers for the stage's note, or why it has none.
b7_side() {
    local e
    e=$(json_string "$1" error)
    if [[ -n "$e" ]]; then echo "FAILED ($e)"; return; fi
    echo "$(b7_cell "$1" train_tokens_per_s '%.0f') tok/s, MFU $(b7_cell "$1" mfu '%.3f')," \
         "7B epoch $(b7_cell "$1" epoch_s_7b_16k '%.2f' 0.000277778) h"
}

# b7_ratio ASPO_LINE TORCH_LINE KEY: aspo's KEY over PyTorch's, empty when either is missing.
b7_ratio() {
    awk -v x="$(json_field "$1" "$3")" -v y="$(json_field "$2" "$3")" \
        'BEGIN { if (x > 0 && y > 0) printf "%.2f", x / y }'
}

# b7_table ASPO_LINE TORCH_LINE RETRIED: the markdown rows side by side.
b7_table() {
    local a=$1 t=$2 torch_name
    torch_name="PyTorch $(json_string "$t" torch_version)"
    [[ -n "$(json_string "$t" torch_version)" ]] || torch_name="PyTorch + PEFT"
    [[ -n "$(json_string "$t" transformers)" ]] &&
        torch_name+=" + transformers $(json_string "$t" transformers)" &&
        torch_name+=" + PEFT $(json_string "$t" peft)"
    [[ -n "$(json_string "$t" attention)" ]] &&
        torch_name+=" ($(json_string "$t" attention) attention)"
    local device peak
    device=$(json_string "$a" device)
    [[ -n "$device" ]] || device=$(json_string "$t" device)
    peak=$(json_field "$a" peak_tflops)
    [[ -n "$peak" ]] || peak=$(json_field "$t" peak_tflops)
    echo "### bench_7b: LLaVA-1.5-7B-shaped $(b7_arg loss | tr "[:lower:]" "[:upper:]") step" \
         "on ${device:-no device}"
    echo
    echo "$(b7_arg layers) of 32 decoder layers (hidden $(b7_arg dim), ffn $(b7_arg ffn)," \
         "$(b7_arg heads) heads, vocabulary $(b7_arg vocab), random weights), $(b7_arg pairs)" \
         "chosen/rejected pair(s) of $(b7_arg seq) positions (prompt $(b7_arg prompt); 640 stands" \
         "for LLaVA's 576 image positions + 64 text tokens), LoRA r $(b7_arg rank) on all seven" \
         "linears, $(b7_arg dtype) frozen weights (LoRA f32), $(b7_arg steps) measured steps" \
         "after $(b7_arg warmup) warm-up. Model FLOPs as aspo/train/bench.h counts them (both sides);" \
         "MFU against the card's dense $(b7_arg dtype) peak, ${peak:-unknown} TFLOP/s; the" \
         "epoch is 16,384 pairs through the full 7B language model (32 layers, vocabulary" \
         "32064) at each side's achieved rate, vision tower not counted.${3:+ $3.}"
    echo
    echo "| | aspo | $torch_name | aspo / PyTorch |"
    echo "|---|---:|---:|---:|"
    local ae te
    ae=$(json_string "$a" error) te=$(json_string "$t" error)
    if [[ -n "$ae$te" ]]; then
        echo "| run | ${ae:-ok} | ${te:-ok} | |"
    fi
    b7_row "tokens/s (target: 1.5x PyTorch)" train_tokens_per_s '%.0f' 1 ratio
    b7_row "s/step median" step_s_median '%.4f'
    b7_row "model TFLOP/step" model_flops_per_step '%.2f' 1e-12
    b7_row "achieved TFLOP/s" achieved_tflops '%.1f' 1 ratio
    b7_row "MFU (target 0.50)" mfu '%.3f'
    b7_row "peak device memory GiB" peak_device_mb '%.1f' 0.000976563
    # The plan of the same step (aspo run --dry-run's code on the plan backend) against the
    # measured peak: the issue allows 15% (cuBLAS's and the kernels' own scratch are not in
    # the plan).
    local planned measured
    planned=$(json_field "$a" planned_peak_mb) measured=$(json_field "$a" peak_device_mb)
    [[ -n "$planned" && -n "$measured" ]] &&
        echo "| --dry-run's plan of that peak, GiB | $(awk -v p="$planned" -v m="$measured" \
            'BEGIN { printf "%.1f (%+.1f%%, bound 15%%)", p / 1024, (m > 0 ? 100 * (p - m) / m : 0) }') | | |"
    echo "| checkpointing | $(json_field_raw "$a" checkpointing) |" \
         "$(json_field_raw "$t" checkpointing) | |"
    b7_row "7B epoch, 16,384 pairs, one card, h" epoch_s_7b_16k '%.2f' 0.000277778
    b7_row "first loss" loss_first '%.4f'
    b7_row "last loss" loss_last '%.4f'
}

# b7_row LABEL KEY FORMAT [SCALE [ratio]]: a row of b7_table (a and t are its two lines).
b7_row() {
    local r=""
    [[ "${5:-}" == ratio ]] && r=$(b7_ratio "$a" "$t" "$2")
    echo "| $1 | $(b7_cell "$a" "$2" "$3" "${4:-1}") | $(b7_cell "$t" "$2" "$3" "${4:-1}") | $r |"
}

# b7_arg NAME: the value after --NAME in b7_args.
b7_arg() {
    local i
    for ((i = 0; i + 1 < ${#b7_args[@]}; i++)); do
        [[ "${b7_args[i]}" == "--$1" ]] && { echo "${b7_args[i + 1]}"; return; }
    done
}

# json_field_raw LINE KEY: a bare word (true, false, null) at KEY.
json_field_raw() { grep -o "\"$2\": *[a-z]*" <<<"$1" | head -n 1 | sed 's/.*: *//'; }

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

out=${OUT:-gpu-check-out} build=/tmp/aspo-gpu-check debs="" budget=480 only="" dry=0
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

# The selected stages' boxes held back for the stages of $reserved, all together.
held=0
while read -r name box what; do
    [[ -n "$name" && "$reserved" == *" $name "* ]] || continue
    [[ -z "$only" || "$only" == *",$name,"* ]] && held=$((held + box))
done <<<"$stages"
((held > budget)) && held=$budget # a budget too small for them goes to them first

if ((dry)); then
    echo "gpu-check.sh --dry: build in $build, results in $out, budget $budget s," \
         "debs ${debs:-none}"
    sum=0 before=0 seen=0
    while read -r name box what; do
        [[ -n "$name" ]] || continue
        [[ -z "$only" || "$only" == *",$name,"* ]] || continue
        mark=" "
        if [[ "$reserved" == *" $name "* ]]; then mark="*" seen=1; fi
        ((seen)) || before=$((before + box))
        sum=$((sum + box))
        printf '  %-12s %4s s %s %s\n' "$name" "$box" "$mark" "$what"
    done <<<"$stages"
    echo "boxes: $sum s in all, the most each stage may take; the budget of $budget s bounds" \
         "the whole run, each stage getting at most what is left of it."
    if ((held > 0)); then
        msg="* held back: $held s of the $budget s stay for the stages marked *;"
        ((before > 0)) &&
            msg+=" the stages before them share $((budget - held)) s (their boxes: $before s);"
        echo "$msg those after them get what is left."
        [[ -z "$only" || "$only" == *",bench_7b,"* ]] &&
            echo "bench_7b runs: aspo bench --backend $be ${b7_args[*]}" &&
            echo "  then: ${TORCH_PYTHON:-python3} bench/train_step_torch.py --device cuda" \
                 "${b7_args[*]}" &&
            echo "  (--checkpointing on both after an aspo out-of-memory)"
    fi
    exit 0
fi

mkdir -p "$out" "$build" || exit 1
out=$(cd "$out" && pwd) build=$(cd "$build" && pwd)
[[ -z "$debs" ]] || debs=$(cd "$debs" && pwd) || exit 1
work=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/tables" # stages' own tables (bench_7b), printed before the stage table
export GPU_CHECK_WORK=$work GPU_CHECK_BUILD=$build GPU_CHECK_DEBS=$debs
log=$out/gpu-check.log
: >"$log"
rows=() failed=0 deadline=$((SECONDS + budget))

while read -r name box what; do
    [[ -n "$name" ]] || continue
    [[ -z "$only" || "$only" == *",$name,"* ]] || continue
    [[ "$reserved" == *" $name "* ]] && held=$((held - box)) # its own time is its to spend
    left=$((deadline - SECONDS - held))
    if ((left < 15)); then
        why="the $budget s budget was spent"
        ((held > 0)) && why+=" (${held} s of it held back for$reserved)"
        rows+=("| $name | NOT RUN | 0 | $why |")
        failed=1
        continue
    fi
    ((box > left)) && box=$left
    echo "=== $name (box $box s): $what" | tee -a "$log"
    rm -f "$work/note"
    start=$SECONDS rc=0
    deps_env # the libraries the deps stage unpacked, for every stage after it
    GPU_CHECK_BOX=$box timeout -k 10 "$box" bash "$self" --run-stage "$name" </dev/null \
        >>"$log" 2>&1 || rc=$?
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
    for t in "$work"/tables/*.md; do # stages' own tables (bench_7b) before the one table
        [[ -f "$t" ]] && cat "$t" && echo
    done
    echo "Loss curves: $be against cpu, 20 AdamW steps, tolerance $TOL (scripts/gpu-check.sh" \
         "says why). Full output: gpu-check.log."
    echo
    echo "| stage | result | s | notes |"
    echo "|---|---|---:|---|"
    printf '%s\n' "${rows[@]}"
} >"$out/gpu-check.md"
cat "$out/gpu-check.md"
exit "$failed"
