/* The simt backend's cuBLAS stand-in (backends/simt/simt_cublas.c) against a naive
 * double-precision column-major reference of cublasGemmStridedBatchedEx: ops N/T (and C) on
 * each operand, leading dims above the minimum, strided batches with gaps and broadcast
 * (stride 0) operands, k = 0, empty m, n and batch, every supported dtype triple, alpha and
 * beta; elements outside the batch matrices must keep their bytes. Then the rounding of
 * half outputs (ties to even, overflow, subnormals, NaN), alpha and beta read at the call,
 * and the refusals: argument errors as the status, an operand past its allocation as the
 * stream's error naming it. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backends/simt/simt_cublas.h"
#include "backends/simt/simt_runtime.h"
#include "tests/check.h"

/* ---- host values: the test's own conversions, independent of the stand-in's ---- */

static size_t type_size(cudaDataType t) { return t == CUDA_R_32F ? 4 : 2; }
static const char *type_name(cudaDataType t)
{
    return t == CUDA_R_32F ? "f32" : t == CUDA_R_16F ? "f16" : "bf16";
}

static double decode(const void *data, cudaDataType t, size_t i)
{
    if (t == CUDA_R_32F) return ((const float *)data)[i];
    uint16_t h = ((const uint16_t *)data)[i];
    if (t == CUDA_R_16BF) {
        uint32_t bits = (uint32_t)h << 16;
        float f;
        memcpy(&f, &bits, sizeof f);
        return f;
    }
    int exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff;
    double magnitude = exponent == 0    ? ldexp(mantissa, -24)
                       : exponent == 31 ? (mantissa ? NAN : INFINITY)
                                        : ldexp(1024 + mantissa, exponent - 25);
    return (h & 0x8000) ? -magnitude : magnitude;
}

/* v must be exact in t and, for f16, a normal number or zero (the inputs below are). */
static void encode(void *data, cudaDataType t, size_t i, double v)
{
    if (t == CUDA_R_32F) {
        ((float *)data)[i] = (float)v;
        return;
    }
    uint16_t h;
    if (t == CUDA_R_16BF) {
        float f = (float)v;
        uint32_t bits;
        memcpy(&bits, &f, sizeof bits);
        h = (uint16_t)(bits >> 16);
    } else {
        int e;
        double fraction = frexp(fabs(v), &e); /* |v| = fraction 2^e, fraction in [0.5, 1) */
        h = v == 0 ? 0 : (uint16_t)((e + 14) << 10 | (int)((fraction * 2 - 1) * 1024));
        if (v < 0) h |= 0x8000;
    }
    ((uint16_t *)data)[i] = h;
}

static uint32_t lcg_state = 12345;
static uint32_t lcg(void) { return lcg_state = lcg_state * 1664525u + 1013904223u; }

/* f32 inputs: full 24-bit mantissas in [-1, 1). Half inputs: multiples of 2^-6 in [-2, 2),
 * 8 significant bits, exact in bf16 and f16; so products and sums of k <= 16 are exact in
 * f32 and a half output's only error is its final rounding. */
static double random_value(cudaDataType t)
{
    if (t == CUDA_R_32F) return (double)(float)((int32_t)(lcg() >> 8) - (1 << 23)) / (1 << 23);
    return (double)((int)(lcg() >> 24) - 128) / 64;
}

/* ---- one device operand ---- */

typedef struct buffer {
    cudaDataType type;
    size_t count; /* elements */
    void *host;   /* what the device held before the call */
    void *device;
} buffer;

/* count elements: random values, or (fill_ff) all bytes 0xff: NaN in every type. */
static buffer buffer_make(cudaDataType type, size_t count, int fill_ff)
{
    buffer b = {type, count ? count : 1, NULL, NULL};
    b.host = malloc(b.count * type_size(type));
    if (fill_ff) memset(b.host, 0xff, b.count * type_size(type));
    else
        for (size_t i = 0; i < b.count; i++) encode(b.host, type, i, random_value(type));
    if (cudaMalloc(&b.device, b.count * type_size(type)) ||
        cudaMemcpy(b.device, b.host, b.count * type_size(type), cudaMemcpyHostToDevice)) {
        fprintf(stderr, "cudaMalloc/cudaMemcpy of %zu bytes failed\n", b.count * type_size(type));
        exit(1);
    }
    return b;
}

static void buffer_free(buffer *b)
{
    cudaFree(b->device);
    free(b->host);
}

/* ---- the GEMM cases ---- */

typedef struct gemm_case {
    cublasOperation_t ta, tb;
    int m, n, k, batch;
    int pad_a, pad_b, pad_c;        /* ld = the minimum + pad */
    int broadcast_a, broadcast_b;   /* stride 0 */
    cudaDataType at, bt, ct;
    cublasComputeType_t compute;
    float alpha, beta;
} gemm_case;

enum { BATCH_GAP = 5 }; /* elements between batch matrices, which must stay untouched */

static int max_int(int a, int b) { return a > b ? a : b; }

static void describe(const gemm_case *c, char *out, size_t size)
{
    const char *ops = "NTC";
    snprintf(out, size, "%s x %s -> %s%s, op %c%c, m %d n %d k %d, %d matrices, pads %d/%d/%d%s%s,"
             " alpha %g beta %g", type_name(c->at), type_name(c->bt), type_name(c->ct),
             c->compute == CUBLAS_COMPUTE_32F_FAST_TF32 ? " (tf32)" : "", ops[c->ta], ops[c->tb],
             c->m, c->n, c->k, c->batch, c->pad_a, c->pad_b, c->pad_c,
             c->broadcast_a ? ", A broadcast" : "", c->broadcast_b ? ", B broadcast" : "",
             (double)c->alpha, (double)c->beta);
}

/* Runs c on the device and checks every element of C's buffer against the reference. */
static void run_case(cublasHandle_t handle, cudaStream_t stream, const gemm_case *c)
{
    char what[256];
    describe(c, what, sizeof what);
    int rows_a = c->ta == CUBLAS_OP_N ? c->m : c->k, cols_a = c->ta == CUBLAS_OP_N ? c->k : c->m;
    int rows_b = c->tb == CUBLAS_OP_N ? c->k : c->n, cols_b = c->tb == CUBLAS_OP_N ? c->n : c->k;
    int lda = max_int(1, rows_a) + c->pad_a, ldb = max_int(1, rows_b) + c->pad_b;
    int ldc = max_int(1, c->m) + c->pad_c;
    long long stride_a = c->broadcast_a ? 0 : (long long)lda * cols_a + BATCH_GAP;
    long long stride_b = c->broadcast_b ? 0 : (long long)ldb * cols_b + BATCH_GAP;
    long long stride_c = (long long)ldc * c->n + BATCH_GAP;
    int last = c->batch > 0 ? c->batch - 1 : 0;
    buffer a = buffer_make(c->at, (size_t)(last * stride_a + (long long)lda * cols_a), 0);
    buffer b = buffer_make(c->bt, (size_t)(last * stride_b + (long long)ldb * cols_b), 0);
    /* beta == 0 must not read C: give it NaN, as new device memory is. */
    size_t count_c = (size_t)(last * stride_c + (long long)ldc * c->n);
    buffer out = buffer_make(c->ct, count_c, c->beta == 0);

    float alpha = c->alpha, beta = c->beta;
    cublasStatus_t st = cublasGemmStridedBatchedEx(
        handle, c->ta, c->tb, c->m, c->n, c->k, &alpha, a.device, c->at, lda, stride_a, b.device,
        c->bt, ldb, stride_b, &beta, out.device, c->ct, ldc, stride_c, c->batch, c->compute,
        CUBLAS_GEMM_DEFAULT);
    CHECK(st == CUBLAS_STATUS_SUCCESS, "%s: %s", what, cublasGetStatusString(st));
    cudaError_t err = cudaStreamSynchronize(stream);
    CHECK(err == cudaSuccess, "%s: %s", what, cudaGetErrorString(err));
    void *got = malloc(out.count * type_size(c->ct));
    cudaMemcpy(got, out.device, out.count * type_size(c->ct), cudaMemcpyDeviceToHost);

    /* C_i's exact value in double. f32 out: k <= 16 products accumulate in f32 with an error
     * of ~sqrt(k) 2^-24 of their magnitude, which is about that of the largest output: 1e-6
     * of it. Half out: the f32 result is exact (see random_value), rounding to bf16 or f16
     * errs by at most 2^-9 or 2^-12 of the value: twice that. */
    double *want = calloc(out.count, sizeof *want), largest = 0;
    int *inside = calloc(out.count, sizeof *inside);
    for (int i = 0; i < c->batch; i++)
        for (int col = 0; col < c->n; col++)
            for (int row = 0; row < c->m; row++) {
                double sum = 0;
                for (int p = 0; p < c->k; p++) {
                    size_t ia = (size_t)(i * stride_a) + (c->ta == CUBLAS_OP_N
                                ? (size_t)p * lda + row : (size_t)row * lda + p);
                    size_t ib = (size_t)(i * stride_b) + (c->tb == CUBLAS_OP_N
                                ? (size_t)col * ldb + p : (size_t)p * ldb + col);
                    sum += decode(a.host, c->at, ia) * decode(b.host, c->bt, ib);
                }
                size_t ic = (size_t)(i * stride_c) + (size_t)col * ldc + row;
                double before = c->beta != 0 ? decode(out.host, c->ct, ic) : 0; /* NaN: unread */
                want[ic] = c->alpha * sum + c->beta * before;
                inside[ic] = 1;
                largest = fmax(largest, fabs(want[ic]));
            }
    int reported = 0; /* the first few failures of a case, not hundreds */
    for (size_t i = 0; i < out.count; i++) {
        size_t e = type_size(c->ct);
        int ok;
        double g = decode(got, c->ct, i);
        if (!inside[i]) ok = memcmp((char *)got + i * e, (char *)out.host + i * e, e) == 0;
        else if (c->ct == CUDA_R_32F) ok = fabs(g - want[i]) <= 1e-6 * largest;
        else ok = fabs(g - want[i]) <= ldexp(fabs(want[i]), c->ct == CUDA_R_16BF ? -8 : -11);
        if (!ok && reported++ < 3)
            CHECK(ok, "%s: element %zu (%s): got %.9g, want %.9g", what, i,
                  inside[i] ? "of a C matrix" : "outside every C matrix, must be unchanged", g,
                  inside[i] ? want[i] : decode(out.host, c->ct, i));
    }
    CHECK(reported == 0, "%s: %d elements wrong", what, reported);
    free(got), free(want), free(inside);
    buffer_free(&a), buffer_free(&b), buffer_free(&out);
}

static void check_gemms(cublasHandle_t handle, cudaStream_t stream)
{
    /* {m, n, k, batch, pad_a, pad_b, pad_c, broadcast_a, broadcast_b} */
    static const int shapes[][9] = {
        {5, 4, 3, 1, 0, 0, 0, 0, 0}, {7, 6, 9, 3, 2, 3, 1, 0, 0}, {4, 5, 16, 3, 1, 0, 2, 1, 0},
        {3, 8, 5, 3, 0, 2, 0, 0, 1}, {1, 1, 1, 1, 0, 0, 0, 0, 0}, {6, 3, 0, 2, 1, 1, 1, 0, 0},
        {0, 4, 3, 2, 0, 0, 0, 0, 0}, {4, 0, 3, 2, 0, 0, 0, 0, 0}, {3, 3, 3, 0, 0, 0, 0, 0, 0},
    };
    static const struct { cudaDataType a, c; cublasComputeType_t compute; } types[] = {
        {CUDA_R_32F, CUDA_R_32F, CUBLAS_COMPUTE_32F},
        {CUDA_R_32F, CUDA_R_32F, CUBLAS_COMPUTE_32F_FAST_TF32},
        {CUDA_R_16F, CUDA_R_16F, CUBLAS_COMPUTE_32F},
        {CUDA_R_16F, CUDA_R_32F, CUBLAS_COMPUTE_32F},
        {CUDA_R_16BF, CUDA_R_16BF, CUBLAS_COMPUTE_32F},
        {CUDA_R_16BF, CUDA_R_32F, CUBLAS_COMPUTE_32F},
    };
    static const float scalars[][2] = {{1, 0}, {1.5f, -0.5f}, {0, 2}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (size_t t = 0; t < sizeof types / sizeof types[0]; t++)
            for (int ops = 0; ops < 4; ops++)
                for (size_t ab = 0; ab < sizeof scalars / sizeof scalars[0]; ab++) {
                    const int *x = shapes[s];
                    gemm_case c = {ops & 1 ? CUBLAS_OP_T : CUBLAS_OP_N,
                                   ops & 2 ? CUBLAS_OP_T : CUBLAS_OP_N, x[0], x[1], x[2], x[3],
                                   x[4], x[5], x[6], x[7], x[8], types[t].a, types[t].a,
                                   types[t].c, types[t].compute, scalars[ab][0], scalars[ab][1]};
                    run_case(handle, stream, &c);
                }
    /* CUBLAS_OP_C is the transpose for real types. */
    gemm_case conjugate = {CUBLAS_OP_C, CUBLAS_OP_C, 4, 3, 5, 2, 1, 2, 0, 0, 0,
                           CUDA_R_32F, CUDA_R_32F, CUDA_R_32F, CUBLAS_COMPUTE_32F, 1, 0};
    run_case(handle, stream, &conjugate);
}

/* C (1x1, t) = alpha * 1 * 1: the f32 alpha rounded to t, bits compared exactly. */
static void check_rounding(cublasHandle_t handle, cudaStream_t stream)
{
    static const struct {
        cudaDataType t;
        float alpha;
        uint16_t bits;
        const char *what;
    } cases[] = {
        {CUDA_R_16F, 1 + 0x1p-11f, 0x3c00, "f16 tie to even (down)"},
        {CUDA_R_16F, 1 + 0x3p-11f, 0x3c02, "f16 tie to even (up)"},
        {CUDA_R_16F, 1 + 0x1p-11f + 0x1p-20f, 0x3c01, "f16 above the tie"},
        {CUDA_R_16F, 65504, 0x7bff, "f16 largest"},
        {CUDA_R_16F, 65519.996f, 0x7bff, "f16 below the overflow tie"},
        {CUDA_R_16F, 65520, 0x7c00, "f16 overflow tie to inf"},
        {CUDA_R_16F, -1e6f, 0xfc00, "f16 overflow to -inf"},
        {CUDA_R_16F, 0x1p-24f, 0x0001, "f16 smallest subnormal"},
        {CUDA_R_16F, 0x1p-25f, 0x0000, "f16 subnormal tie to even (zero)"},
        {CUDA_R_16F, 0x3p-25f, 0x0002, "f16 subnormal tie to even (up)"},
        {CUDA_R_16F, -0x1p-14f + 0x1p-26f, 0x8400, "f16 rounds up to the smallest normal"},
        {CUDA_R_16F, 0x1p-30f, 0x0000, "f16 underflow to zero"},
        {CUDA_R_16F, INFINITY, 0x7c00, "f16 inf"},
        {CUDA_R_16BF, 1 + 0x1p-8f, 0x3f80, "bf16 tie to even (down)"},
        {CUDA_R_16BF, 1 + 0x3p-8f, 0x3f82, "bf16 tie to even (up)"},
        {CUDA_R_16BF, FLT_MAX, 0x7f80, "bf16 largest f32 rounds to inf"},
        {CUDA_R_16BF, -0x1p-130f, 0x8008, "bf16 subnormal (f32 subnormal 2^-130)"},
    };
    buffer one_f16 = buffer_make(CUDA_R_16F, 1, 0), one_bf16 = buffer_make(CUDA_R_16BF, 1, 0);
    uint16_t one[2] = {0x3c00, 0x3f80}; /* 1 in f16, bf16 */
    cudaMemcpy(one_f16.device, &one[0], 2, cudaMemcpyHostToDevice);
    cudaMemcpy(one_bf16.device, &one[1], 2, cudaMemcpyHostToDevice);
    buffer out = buffer_make(CUDA_R_16F, 1, 1);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const void *x = cases[i].t == CUDA_R_16F ? one_f16.device : one_bf16.device;
        float alpha = cases[i].alpha, beta = 0;
        cublasStatus_t st = cublasGemmStridedBatchedEx(
            handle, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 1, &alpha, x, cases[i].t, 1, 0, x,
            cases[i].t, 1, 0, &beta, out.device, cases[i].t, 1, 0, 1, CUBLAS_COMPUTE_32F,
            CUBLAS_GEMM_DEFAULT);
        cudaError_t err = cudaStreamSynchronize(stream);
        uint16_t got = 0;
        cudaMemcpy(&got, out.device, 2, cudaMemcpyDeviceToHost);
        CHECK(st == CUBLAS_STATUS_SUCCESS && err == cudaSuccess && got == cases[i].bits,
              "%s: %.9g gave 0x%04x, want 0x%04x (%s, %s)", cases[i].what,
              (double)cases[i].alpha, got, cases[i].bits, cublasGetStatusString(st),
              cudaGetErrorString(err));
    }
    /* NaN stays a quiet NaN (exponent all ones, the mantissa's top bit set). */
    float alpha = NAN, beta = 0;
    for (int bf16 = 0; bf16 < 2; bf16++) {
        cudaDataType t = bf16 ? CUDA_R_16BF : CUDA_R_16F;
        const void *x = bf16 ? one_bf16.device : one_f16.device;
        cublasGemmStridedBatchedEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 1, &alpha, x, t, 1, 0,
                                   x, t, 1, 0, &beta, out.device, t, 1, 0, 1, CUBLAS_COMPUTE_32F,
                                   CUBLAS_GEMM_DEFAULT);
        cudaStreamSynchronize(stream);
        uint16_t got = 0, quiet = bf16 ? 0x7fc0 : 0x7e00;
        cudaMemcpy(&got, out.device, 2, cudaMemcpyDeviceToHost);
        CHECK((got & quiet) == quiet, "%s NaN gave 0x%04x", type_name(t), got);
    }
    /* f16 subnormal and largest inputs widen exactly: C f32 = a * 1. */
    uint16_t inputs[2] = {0x0001, 0x7bff};
    buffer a = buffer_make(CUDA_R_16F, 2, 0), c = buffer_make(CUDA_R_32F, 2, 1);
    cudaMemcpy(a.device, inputs, sizeof inputs, cudaMemcpyHostToDevice);
    alpha = 1;
    cublasGemmStridedBatchedEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, 2, 1, 1, &alpha, a.device,
                               CUDA_R_16F, 2, 0, one_f16.device, CUDA_R_16F, 1, 0, &beta, c.device,
                               CUDA_R_32F, 2, 0, 1, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    cudaStreamSynchronize(stream);
    float wide[2];
    cudaMemcpy(wide, c.device, sizeof wide, cudaMemcpyDeviceToHost);
    CHECK(wide[0] == 0x1p-24f && wide[1] == 65504, "f16 0x0001, 0x7bff widened to %g, %g",
          (double)wide[0], (double)wide[1]);
    buffer_free(&one_f16), buffer_free(&one_bf16), buffer_free(&out);
    buffer_free(&a), buffer_free(&c);
}

/* Argument errors are the call's status, nothing queued; a bad address is the stream's. */
static void check_refusals(cublasHandle_t handle, cudaStream_t stream)
{
    buffer a = buffer_make(CUDA_R_32F, 64, 0), b = buffer_make(CUDA_R_32F, 64, 0);
    buffer c = buffer_make(CUDA_R_32F, 64, 0);
    float one = 1, zero = 0;
#define GEMM(h, ta, tb, m, n, k, lda, ldb, ldc, count, at, bt, ct, compute)                       \
    cublasGemmStridedBatchedEx(h, ta, tb, m, n, k, &one, a.device, at, lda, 0, b.device, bt, ldb, \
                               0, &zero, c.device, ct, ldc, 0, count, compute, CUBLAS_GEMM_DEFAULT)
    const cublasOperation_t N = CUBLAS_OP_N, T = CUBLAS_OP_T;
    const cudaDataType F32 = CUDA_R_32F, F16 = CUDA_R_16F, BF16 = CUDA_R_16BF;
    const cublasComputeType_t C32 = CUBLAS_COMPUTE_32F;
    struct { cublasStatus_t got, want; const char *what; } cases[] = {
        {GEMM(handle, N, N, 4, 3, 2, 3, 2, 4, 1, F32, F32, F32, C32), CUBLAS_STATUS_INVALID_VALUE,
         "lda 3 < m 4 (op N)"},
        {GEMM(handle, T, N, 4, 3, 2, 1, 2, 4, 1, F32, F32, F32, C32), CUBLAS_STATUS_INVALID_VALUE,
         "lda 1 < k 2 (op T)"},
        {GEMM(handle, N, T, 4, 3, 2, 4, 2, 4, 1, F32, F32, F32, C32), CUBLAS_STATUS_INVALID_VALUE,
         "ldb 2 < n 3 (op T)"},
        {GEMM(handle, N, N, 4, 3, 2, 4, 2, 3, 1, F32, F32, F32, C32), CUBLAS_STATUS_INVALID_VALUE,
         "ldc 3 < m 4"},
        {GEMM(handle, N, N, 0, 3, 0, 0, 1, 1, 1, F32, F32, F32, C32), CUBLAS_STATUS_INVALID_VALUE,
         "lda 0 < max(1, m 0)"},
        {GEMM(handle, N, N, -1, 3, 2, 4, 2, 4, 1, F32, F32, F32, C32), CUBLAS_STATUS_INVALID_VALUE,
         "m -1"},
        {GEMM(handle, N, N, 4, 3, 2, 4, 2, 4, -1, F32, F32, F32, C32), CUBLAS_STATUS_INVALID_VALUE,
         "batchCount -1"},
        {GEMM(handle, (cublasOperation_t)3, N, 4, 3, 2, 4, 2, 4, 1, F32, F32, F32, C32),
         CUBLAS_STATUS_INVALID_VALUE, "transa 3"},
        {GEMM(NULL, N, N, 4, 3, 2, 4, 2, 4, 1, F32, F32, F32, C32), CUBLAS_STATUS_NOT_INITIALIZED,
         "NULL handle"},
        {GEMM(handle, N, N, 4, 3, 2, 4, 2, 4, 1, F16, BF16, F32, C32), CUBLAS_STATUS_NOT_SUPPORTED,
         "f16 x bf16"},
        {GEMM(handle, N, N, 4, 3, 2, 4, 2, 4, 1, F32, F32, F16, C32), CUBLAS_STATUS_NOT_SUPPORTED,
         "f32 x f32 -> f16"},
        {GEMM(handle, N, N, 4, 3, 2, 4, 2, 4, 1, F16, F16, BF16, C32), CUBLAS_STATUS_NOT_SUPPORTED,
         "f16 x f16 -> bf16"},
        {GEMM(handle, N, N, 4, 3, 2, 4, 2, 4, 1, F16, F16, F16, CUBLAS_COMPUTE_32F_FAST_TF32),
         CUBLAS_STATUS_NOT_SUPPORTED, "f16 with compute 32F_FAST_TF32"},
        {GEMM(handle, N, N, 4, 3, 2, 4, 2, 4, 1, F16, F16, F16, CUBLAS_COMPUTE_16F),
         CUBLAS_STATUS_NOT_SUPPORTED, "compute 16F (not modelled)"},
        {GEMM(handle, N, N, 4, 3, 2, 4, 2, 4, 1, F32, F32, F32, CUBLAS_COMPUTE_32F_FAST_16BF),
         CUBLAS_STATUS_NOT_SUPPORTED, "compute 32F_FAST_16BF (not modelled)"},
    };
#undef GEMM
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CHECK(cases[i].got == cases[i].want, "%s: got %s, want %s", cases[i].what,
              cublasGetStatusString(cases[i].got), cublasGetStatusString(cases[i].want));
    cudaError_t err = cudaStreamSynchronize(stream);
    CHECK(err == cudaSuccess, "refused calls queued work that failed: %s", cudaGetErrorString(err));

    /* alpha and beta are read at the call (host pointer mode), not when the stream runs. */
    float alpha = 2, beta = 0;
    cublasStatus_t st = cublasGemmStridedBatchedEx(
        handle, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 1, &alpha, a.device, CUDA_R_32F, 1, 0, b.device,
        CUDA_R_32F, 1, 0, &beta, c.device, CUDA_R_32F, 1, 0, 1, CUBLAS_COMPUTE_32F,
        CUBLAS_GEMM_DEFAULT);
    alpha = 100, beta = NAN;
    err = cudaStreamSynchronize(stream);
    float got;
    cudaMemcpy(&got, c.device, sizeof got, cudaMemcpyDeviceToHost);
    float want = 2 * ((float *)a.host)[0] * ((float *)b.host)[0];
    CHECK(st == CUBLAS_STATUS_SUCCESS && err == cudaSuccess && got == want,
          "alpha read at the call: got %g, want %g", (double)got, (double)want);
    buffer_free(&a), buffer_free(&b), buffer_free(&c);
}

/* One f32 GEMM of 4 matrices, C (4,2) = A (4,5) B (5,2), strides 0, 12, 8 and ldc 4, with
 * one operand reaching outside device memory: the call succeeds, the synchronization fails
 * naming operand, batch and ld, and C keeps its bytes. */
static void check_overruns(cublasHandle_t handle, cudaStream_t stream)
{
    static const struct {
        const char *what;
        int lda, ldb, host_a;
        size_t a_count, b_count, c_count;
        const char *expect[3];
    } cases[] = {
        {"B's batch 3 needs elements [36, 47) of 46", 4, 6, 0, 20, 46, 32,
         {"operand B", "batch 3 of 4", "ld 6"}},
        {"A with ld 9 spans 40 elements of 36", 9, 6, 0, 36, 47, 32,
         {"operand A", "batch 0 of 4", "its first element is device memory"}},
        {"C's batch 3 needs elements [24, 32) of 31", 4, 6, 0, 20, 47, 31,
         {"operand C", "batch 3 of 4", "ld 4"}},
        {"A in host memory", 4, 6, 1, 20, 47, 32,
         {"operand A", "batch 0 of 4", "its first element is not device memory"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        buffer a = buffer_make(CUDA_R_32F, cases[i].a_count, 0);
        buffer b = buffer_make(CUDA_R_32F, cases[i].b_count, 0);
        buffer c = buffer_make(CUDA_R_32F, cases[i].c_count, 0);
        const void *a_data = cases[i].host_a ? a.host : a.device;
        float alpha = 1, beta = 0;
        cublasStatus_t st = cublasGemmStridedBatchedEx(
            handle, CUBLAS_OP_N, CUBLAS_OP_N, 4, 2, 5, &alpha, a_data, CUDA_R_32F, cases[i].lda,
            0, b.device, CUDA_R_32F, cases[i].ldb, 12, &beta, c.device, CUDA_R_32F, 4, 8, 4,
            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
        CHECK(st == CUBLAS_STATUS_SUCCESS, "%s: the call gave %s; an address is the stream's "
              "error", cases[i].what, cublasGetStatusString(st));
        cudaError_t err = cudaStreamSynchronize(stream);
        const char *message = cudaGetErrorString(err);
        CHECK(err == cudaErrorIllegalAddress, "%s: got error %d (%s)", cases[i].what, (int)err,
              message);
        for (int e = 0; e < 3; e++)
            CHECK(strstr(message, cases[i].expect[e]), "%s: the message lacks \"%s\": %s",
                  cases[i].what, cases[i].expect[e], message);
        float *after = malloc(c.count * sizeof *after);
        cudaMemcpy(after, c.device, c.count * sizeof *after, cudaMemcpyDeviceToHost);
        CHECK(memcmp(after, c.host, c.count * sizeof *after) == 0, "%s: a failed GEMM wrote C",
              cases[i].what);
        free(after);
        buffer_free(&a), buffer_free(&b), buffer_free(&c);
    }
}

int main(void)
{
    cublasHandle_t handle;
    cudaStream_t stream;
    if (cublasCreate(&handle) || cudaStreamCreate(&stream) || cublasSetStream(handle, stream)) {
        fprintf(stderr, "test_simt_cublas: could not create a cuBLAS handle and a stream\n");
        return 1;
    }
    CHECK(strcmp(cublasGetStatusString(CUBLAS_STATUS_INVALID_VALUE),
                 "CUBLAS_STATUS_INVALID_VALUE") == 0, "status string");
    check_gemms(handle, stream);
    check_rounding(handle, stream);
    check_refusals(handle, stream);
    check_overruns(handle, stream);
    CHECK(cublasDestroy(handle) == CUBLAS_STATUS_SUCCESS, "cublasDestroy");
    cudaStreamDestroy(stream);
    return check_summary("test_simt_cublas");
}
