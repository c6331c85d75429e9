/* Matmul GFLOP/s through aspo's op layer (tensor_matmul on the CPU backend) beside direct
 * cblas_sgemm on the same shapes and data. A benchmark, not a test: it never asserts.
 *
 *   bench_matmul [--tokens N] [--reps N] [--threads N] [--only NAME] [--omp-before]
 *
 * --omp-before runs an OpenMP loop (untimed) right before every timed GEMM on both paths,
 * as a training step does (elementwise ops between Linear layers); it shows what OpenMP's
 * spinning worker threads cost OpenBLAS's own threads (docs/PERFORMANCE.md).
 *
 * Prints JSON lines: one "config" line (OpenBLAS core, config, threads), then one line
 * per shape. bench/matmul_torch.py prints the same shape lines for PyTorch and
 * bench/run_matmul.sh merges both into a table. */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backends/registry.h"
#include "tensor/runtime.h"
#include "tensor/tensor.h"
#include "tensor/tensor_ops.h"

/* One benchmark shape: out (M,N) = a (M,K) @ b, where b is (K,N) or, for a Linear layer,
 * the transposed view of a weight W (N,K). */
typedef struct shape {
    char name[64];
    int64_t M, K, N;
    int linear; /* b = transpose(W (N,K)) */
} shape;

enum { MAX_SAMPLES = 1000 };
static const double TARGET_SECONDS = 0.3; /* per shape and path: enough samples for small shapes */
static int omp_before; /* --omp-before */
static float omp_sink;

/* An elementwise-sized OpenMP loop, like the op layer's kernels run (read-only on p). */
static void omp_loop(const float *p, size_t n)
{
    if (!omp_before) return;
    float acc = 0;
#pragma omp parallel for schedule(static) reduction(+ : acc)
    for (size_t i = 0; i < n; i++) acc += p[i];
    omp_sink += acc;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Uniform [-1,1) from a 64-bit LCG: the values do not matter, only that they are finite. */
static void fill_random(float *p, size_t n, uint64_t seed)
{
    uint64_t s = seed * 6364136223846793005ull + 1442695040888963407ull;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = (float)((double)(s >> 40) / (double)(1ull << 23) - 1.0);
    }
}

/* 64-byte aligned like the arena's and PyTorch's buffers: with malloc's 16-byte alignment
 * sgemm runs a few percent slower here, which would flatter the op layer. */
static float *alloc_floats(size_t n)
{
    return aligned_alloc(64, (n * sizeof(float) + 63) & ~(size_t)63);
}

/* How many timed samples: at least `reps`, more for fast shapes, at most the cap. */
static int samples_for(double seconds_per_call, int reps)
{
    int n = seconds_per_call > 0 ? (int)ceil(TARGET_SECONDS / seconds_per_call) : reps;
    if (n < reps) n = reps;
    if (n > MAX_SAMPLES) n = MAX_SAMPLES;
    return n;
}

/* Direct OpenBLAS on host buffers: a (M,K), b (K,N) or W (N,K) with CblasTrans. */
static void sgemm_direct(const shape *s, const float *a, const float *b, float *out)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, s->linear ? CblasTrans : CblasNoTrans, (int)s->M,
                (int)s->N, (int)s->K, 1.0f, a, (int)s->K, b, (int)(s->linear ? s->K : s->N),
                0.0f, out, (int)s->N);
}

/* One op-layer matmul: upload inputs (untimed), time tensor_matmul, copy the result to
 * `out` when asked, reset the step arena. Returns seconds, or -1 with the error printed. */
static double op_once(const shape *s, const float *a, const float *b, float *out)
{
    double t = -1;
    tensor *x = tensor_from_host(DT_F32, DIMS(s->M, s->K), a); /* (M,K) */
    tensor *w = s->linear ? tensor_from_host(DT_F32, DIMS(s->N, s->K), b)  /* W (N,K) */
                          : tensor_from_host(DT_F32, DIMS(s->K, s->N), b); /* (K,N) */
    if (x && w) {
        backend *be = runtime_backend();
        omp_loop(a, (size_t)(s->M * s->K)); /* untimed, as on the direct path */
        double t0 = now();
        tensor *y = tensor_matmul(x, s->linear ? tensor_transpose(w, -1, -2) : w); /* (M,N) */
        if (y && be->synchronize(be) == ASPO_OK) {
            t = now() - t0;
            if (out && tensor_to_host(y, out) != ASPO_OK) t = -1;
        }
    }
    if (t < 0) fprintf(stderr, "bench_matmul: %s: %s\n", s->name, aspo_error_message());
    runtime_step_reset();
    return t;
}

static void json_string(const char *key, const char *value)
{
    printf("\"%s\": \"", key);
    for (const char *p = value; *p; p++) {
        if (*p == '"' || *p == '\\') putchar('\\');
        putchar((unsigned char)*p < 0x20 ? ' ' : *p);
    }
    printf("\"");
}

/* Runs one shape through both paths and prints its JSON line. Returns 0, or 1 when the
 * op layer failed (the line is still printed, without op numbers). */
static int bench_shape(const shape *s, int reps, int threads)
{
    size_t na = (size_t)(s->M * s->K), nb = (size_t)(s->K * s->N), no = (size_t)(s->M * s->N);
    float *a = alloc_floats(na), *b = alloc_floats(nb);
    float *ref = alloc_floats(no), *got = alloc_floats(no);
    double *times_direct = malloc(2 * (size_t)MAX_SAMPLES * sizeof(double));
    double *times_op = times_direct ? times_direct + MAX_SAMPLES : NULL;
    if (!a || !b || !ref || !got || !times_direct) {
        fprintf(stderr, "bench_matmul: %s: out of host memory\n", s->name);
        free(a), free(b), free(ref), free(got), free(times_direct);
        return 1;
    }
    fill_random(a, na, 1);
    fill_random(b, nb, 2);
    double flops = 2.0 * (double)s->M * (double)s->N * (double)s->K;

    /* Warm-up: one call each (the op layer's arena grows to size; its result is compared
     * with sgemm's). Then samples alternate direct/op so clock drift hits both alike. */
    double t0 = now();
    sgemm_direct(s, a, b, ref);
    double warm_direct = now() - t0;
    double warm_op = op_once(s, a, b, got);
    int failed = warm_op < 0;
    double direct_s = -1, op_s = -1, max_rel = -1;
    if (!failed) {
        double max_diff = 0, max_ref = 0;
        for (size_t i = 0; i < no; i++) {
            max_diff = fmax(max_diff, fabs((double)got[i] - ref[i]));
            max_ref = fmax(max_ref, fabs((double)ref[i]));
        }
        max_rel = max_ref > 0 ? max_diff / max_ref : max_diff;
    }
    int n = samples_for(fmax(warm_direct, warm_op), reps);
    for (int i = 0; i < n; i++) {
        omp_loop(a, na);
        t0 = now();
        sgemm_direct(s, a, b, got);
        times_direct[i] = now() - t0;
        if (!failed) failed = (times_op[i] = op_once(s, a, b, NULL)) < 0;
    }
    direct_s = median(times_direct, n);
    if (!failed) op_s = median(times_op, n);

    printf("{");
    json_string("name", s->name);
    printf(", \"M\": %lld, \"K\": %lld, \"N\": %lld, \"b\": \"%s\", \"threads\": %d",
           (long long)s->M, (long long)s->K, (long long)s->N, s->linear ? "W^T" : "B", threads);
    printf(", \"sgemm_ms\": %.4f, \"sgemm_gflops\": %.2f", 1e3 * direct_s, flops / direct_s * 1e-9);
    if (!failed)
        printf(", \"op_ms\": %.4f, \"op_gflops\": %.2f, \"op_max_rel_diff\": %.3g", 1e3 * op_s,
               flops / op_s * 1e-9, max_rel);
    printf("}\n");
    fflush(stdout);
    free(a), free(b), free(ref), free(got), free(times_direct);
    return failed;
}

static int parse_int(const char *flag, const char *value, int lo)
{
    char *end = NULL;
    long v = value ? strtol(value, &end, 10) : 0;
    if (!value || *end || v < lo || v > 1000000) {
        fprintf(stderr, "bench_matmul: %s needs an integer >= %d\n", flag, lo);
        exit(2);
    }
    return (int)v;
}

int main(int argc, char **argv)
{
    int tokens = 512, reps = 7, threads = 0;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--tokens")) tokens = parse_int(argv[i], v, 1), i++;
        else if (!strcmp(argv[i], "--reps")) reps = parse_int(argv[i], v, 1), i++;
        else if (!strcmp(argv[i], "--threads")) threads = parse_int(argv[i], v, 1), i++;
        else if (!strcmp(argv[i], "--only") && v) only = v, i++;
        else if (!strcmp(argv[i], "--omp-before")) omp_before = 1;
        else {
            fprintf(stderr, "usage: bench_matmul [--tokens N] [--reps N] [--threads N] "
                            "[--only NAME] [--omp-before]\n");
            return 2;
        }
    }
    /* OpenBLAS does the GEMM; OpenMP threads only matter for aspo's own loops. */
    if (threads) {
        openblas_set_num_threads(threads);
        omp_set_num_threads(threads);
    }
    threads = openblas_get_num_threads();

    printf("{\"config\": true, ");
    json_string("openblas_core", openblas_get_corename());
    printf(", ");
    json_string("openblas_config", openblas_get_config());
    printf(", \"openblas_threads\": %d, \"omp_threads\": %d, \"tokens\": %d, \"reps\": %d, "
           "\"omp_before\": %s}\n",
           threads, omp_get_max_threads(), tokens, reps, omp_before ? "true" : "false");
    fflush(stdout);

    shape shapes[5] = {
        {.M = 256, .K = 256, .N = 256},
        {.M = 1024, .K = 1024, .N = 1024},
        {.M = 2048, .K = 2048, .N = 2048},
        {.M = tokens, .K = 4096, .N = 4096, .linear = 1},  /* q/k/v/o projections */
        {.M = tokens, .K = 4096, .N = 11008, .linear = 1}, /* LLaMA-7B gate/up */
    };
    for (int i = 0; i < 5; i++) {
        shape *s = &shapes[i];
        if (s->linear)
            snprintf(s->name, sizeof s->name, "linear %lldx%lldx%lld", (long long)s->M,
                     (long long)s->K, (long long)s->N);
        else
            snprintf(s->name, sizeof s->name, "cube %lld", (long long)s->M);
    }

    if (runtime_init(backend_cpu(), 0) != ASPO_OK) {
        fprintf(stderr, "bench_matmul: runtime_init: %s\n", aspo_error_message());
        return 1;
    }
    autograd_set_enabled(false); /* inference-style: no tape nodes */
    int failures = 0;
    for (int i = 0; i < 5; i++)
        if (!only || strstr(shapes[i].name, only)) failures += bench_shape(&shapes[i], reps, threads);
    runtime_shutdown();
    return failures ? 1 : 0;
}
