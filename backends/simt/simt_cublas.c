/* cuBLAS's cublasGemmStridedBatchedEx on the CPU (simt_cublas.h): the argument rules of the
 * cuBLAS documentation checked at the call, the GEMM queued on the handle's stream, and
 * there, when the stream runs it, every operand's touched memory checked against device
 * memory before OpenBLAS computes it in f32. */
#include "simt_cublas.h"

#include "../../tensor/dtype.h"

#include <cblas.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct cublasContext {
    cudaStream_t stream; /* NULL: the default stream, as after cuBLAS's cublasCreate */
};

cublasStatus_t cublasCreate(cublasHandle_t *handle)
{
    if (!handle) return CUBLAS_STATUS_INVALID_VALUE;
    *handle = calloc(1, sizeof **handle);
    return *handle ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_ALLOC_FAILED;
}

/* No synchronization (cuBLAS's does one): queued GEMMs hold copies of their arguments, not
 * the handle, and a synchronization here would report and clear a stream error that the
 * caller's next synchronization should see. */
cublasStatus_t cublasDestroy(cublasHandle_t handle)
{
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    free(handle);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream)
{
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    handle->stream = stream;
    return CUBLAS_STATUS_SUCCESS;
}

const char *cublasGetStatusString(cublasStatus_t status)
{
    switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
    }
    return "<unknown>";
}

/* Half precision <-> f32: tensor/dtype.h's conversions (exact widening; round to nearest even,
 * overflow to inf, NaN kept quiet), as the GPU's converting stores. */

static size_t element_size(cudaDataType t) { return t == CUDA_R_32F ? 4 : 2; }

static const char *type_name(cudaDataType t)
{
    return t == CUDA_R_32F ? "f32" : t == CUDA_R_16F ? "f16" : "bf16";
}

/* ---- the queued GEMM ---- */

typedef struct gemm_args {
    cublasOperation_t transa, transb;
    int m, n, k, lda, ldb, ldc, batch_count;
    const void *A, *B;
    void *C;
    cudaDataType a_type, b_type, c_type;
    long long stride_a, stride_b, stride_c;
    float alpha, beta; /* read at the call: host pointer mode */
} gemm_args;

/* One operand as it lies in memory: batch i's column-major (rows, cols) matrix, columns
 * ld apart, starts stride * i elements after data. */
typedef struct operand {
    const char *name, *dims; /* "A", "m x k": for reports */
    cublasOperation_t op;
    const void *data;
    cudaDataType type;
    int rows, cols, ld;
    long long stride;
} operand;

static operand operand_a(const gemm_args *g)
{
    bool n = g->transa == CUBLAS_OP_N;
    return (operand){"A", n ? "m x k" : "k x m", g->transa, g->A, g->a_type,
                     n ? g->m : g->k, n ? g->k : g->m, g->lda, g->stride_a};
}

static operand operand_b(const gemm_args *g)
{
    bool n = g->transb == CUBLAS_OP_N;
    return (operand){"B", n ? "k x n" : "n x k", g->transb, g->B, g->b_type,
                     n ? g->k : g->n, n ? g->n : g->k, g->ldb, g->stride_b};
}

static operand operand_c(const gemm_args *g)
{
    return (operand){"C", "m x n", CUBLAS_OP_N, g->C, g->c_type, g->m, g->n, g->ldc, g->stride_c};
}

/* Batch i's first touched byte, as an offset from data: false when it overflows (then it
 * lies outside any memory). i >= 0. */
static bool batch_offset(const operand *x, long long i, long long *bytes)
{
    long long s = x->stride, size = (long long)element_size(x->type);
    if (i > 0 && (s > LLONG_MAX / i || s < LLONG_MIN / i)) return false;
    long long elements = s * i;
    if (elements > LLONG_MAX / size || elements < LLONG_MIN / size) return false;
    *bytes = elements * size;
    return true;
}

static const void *byte_at(const void *p, long long offset)
{
    return (const void *)((uintptr_t)p + (uintptr_t)offset); /* wraps: no UB off the object */
}

/* Bytes from batch matrix's first touched element to past its last: column cols-1 ends at
 * element (cols-1) ld + rows. */
static size_t touched_bytes(const operand *x)
{
    return ((size_t)(x->cols - 1) * (size_t)x->ld + (size_t)x->rows) * element_size(x->type);
}

/* Whether every batch matrix of x lies in device memory; if not, the stream's error names
 * the first one that does not, with what decides its extent. */
static bool operand_in_device_memory(const operand *x, int batch_count)
{
    if (x->rows == 0 || x->cols == 0) return true; /* nothing touched */
    size_t span = touched_bytes(x);
    for (int i = 0; i < batch_count; i++) {
        long long offset;
        bool ok = batch_offset(x, i, &offset);
        const void *first = ok ? byte_at(x->data, offset) : NULL;
        if (ok && simt_is_device_range(first, span)) continue;
        /* Whether the first element is device memory tells a wrong base or stride from a
         * too-large ld or a too-small allocation. */
        bool first_ok = ok && simt_is_device_range(first, element_size(x->type));
        simt_fail(cudaErrorIllegalAddress,
                  "cublasGemmStridedBatchedEx: operand %s, batch %d of %d (counted from 0), "
                  "reaches outside device memory: %s at %p + %lld x %lld elements (stride) "
                  "= %p, op %s, stored %s = %d x %d column-major, ld %d, spanning %zu bytes; "
                  "%s. Check the leading dimension, the batch stride and the "
                  "allocation's size",
                  x->name, i, batch_count, type_name(x->type), x->data, (long long)i,
                  x->stride, first, x->op == CUBLAS_OP_N ? "N" : "T", x->dims, x->rows,
                  x->cols, x->ld, span,
                  first_ok ? "its first element is device memory, its last is not"
                           : "its first element is not device memory");
        return false;
    }
    return true;
}

/* dst (rows, cols) tight column-major f32 = batch matrix src widened; exact. */
static void widen(const void *src, cudaDataType type, int rows, int cols, int ld, float *dst)
{
    for (int c = 0; c < cols; c++) {
        size_t at = (size_t)c * (size_t)ld;
        float *out = dst + (size_t)c * (size_t)rows;
        if (type == CUDA_R_32F) {
            memcpy(out, (const float *)src + at, (size_t)rows * sizeof *out);
        } else {
            const uint16_t *column = (const uint16_t *)src + at;
            for (int r = 0; r < rows; r++)
                out[r] = type == CUDA_R_16F ? f16_to_f32(column[r]) : bf16_to_f32(column[r]);
        }
    }
}

/* Batch matrix dst (rows, cols, ld) of a half type = src (tight f32) rounded. */
static void narrow(const float *src, int rows, int cols, void *dst, cudaDataType type, int ld)
{
    for (int c = 0; c < cols; c++) {
        uint16_t *column = (uint16_t *)dst + (size_t)c * (size_t)ld;
        const float *in = src + (size_t)c * (size_t)rows;
        for (int r = 0; r < rows; r++)
            column[r] = type == CUDA_R_16F ? f32_to_f16(in[r]) : f32_to_bf16(in[r]);
    }
}

/* An f32 operand for cblas_sgemm: x's batch matrix itself when f32, else widened into
 * panel. */
static const float *as_f32(const operand *x, long long offset, float *panel, int *ld)
{
    const void *data = byte_at(x->data, offset);
    if (x->type == CUDA_R_32F) {
        *ld = x->ld;
        return data;
    }
    widen(data, x->type, x->rows, x->cols, x->ld, panel);
    *ld = x->rows > 1 ? x->rows : 1;
    return panel;
}

static size_t panel_floats(const operand *x, bool needed)
{
    return needed && x->type != CUDA_R_32F ? (size_t)x->rows * (size_t)x->cols : 0;
}

/* Runs on the stream: the GEMM of every batch, or nothing if any operand reaches outside
 * device memory (checked first, so a failed call writes nothing). */
static void gemm_run(void *arg)
{
    const gemm_args *g = arg;
    operand a = operand_a(g), b = operand_b(g), c = operand_c(g);
    bool products = g->k > 0 && g->alpha != 0.0f; /* else C = beta C: A and B unread */
    if (g->k > 0 && (!operand_in_device_memory(&a, g->batch_count) ||
                     !operand_in_device_memory(&b, g->batch_count)))
        return;
    if (!operand_in_device_memory(&c, g->batch_count)) return;

    /* Widened half-precision operands, one batch matrix at a time (tests are small; a
     * real-size weight here is one panel of its size). */
    size_t floats_a = panel_floats(&a, products), floats_b = panel_floats(&b, products),
           floats_c = panel_floats(&c, true);
    float *scratch = malloc((floats_a + floats_b + floats_c + 1) * sizeof *scratch);
    if (!scratch) {
        simt_fail(cudaErrorMemoryAllocation, "cublasGemmStridedBatchedEx: no host memory for "
                  "%zu bytes of f32 panels (%d x %d x %d, %d matrices)",
                  (floats_a + floats_b + floats_c) * sizeof *scratch, g->m, g->n, g->k,
                  g->batch_count);
        return;
    }
    float *panel_a = scratch, *panel_b = panel_a + floats_a, *panel_c = panel_b + floats_b;

    for (int i = 0; i < g->batch_count; i++) {
        long long offset_a = 0, offset_b = 0, offset_c = 0; /* checked above */
        batch_offset(&a, i, &offset_a);
        batch_offset(&b, i, &offset_b);
        batch_offset(&c, i, &offset_c);
        float *out; /* C_i as f32 (m, n), columns ld_out apart */
        int ld_out;
        if (c.type == CUDA_R_32F) {
            out = (float *)byte_at(g->C, offset_c);
            ld_out = g->ldc;
        } else {
            out = panel_c;
            ld_out = g->m;
            if (g->beta != 0.0f) widen(byte_at(g->C, offset_c), c.type, g->m, g->n, g->ldc, out);
        }
        /* beta == 0 does not read C (new device memory is NaN): zeros, then += products. */
        for (int col = 0; col < g->n; col++) {
            float *column = out + (size_t)col * (size_t)ld_out;
            for (int row = 0; row < g->m; row++)
                column[row] = g->beta == 0.0f ? 0.0f : g->beta * column[row];
        }
        if (products) {
            int ld_a, ld_b;
            const float *fa = as_f32(&a, offset_a, panel_a, &ld_a);
            const float *fb = as_f32(&b, offset_b, panel_b, &ld_b);
            cblas_sgemm(CblasColMajor, g->transa == CUBLAS_OP_N ? CblasNoTrans : CblasTrans,
                        g->transb == CUBLAS_OP_N ? CblasNoTrans : CblasTrans, g->m, g->n, g->k,
                        g->alpha, fa, ld_a, fb, ld_b, 1.0f, out, ld_out);
        }
        if (c.type != CUDA_R_32F) narrow(out, g->m, g->n, (void *)byte_at(g->C, offset_c),
                                         c.type, g->ldc);
    }
    free(scratch);
}

/* The combinations of cuBLAS's cublasGemmEx table that are computed here: compute 32F with
 * A, B of one type and C of theirs or f32; 32F_FAST_TF32 with all f32, computed as plain
 * f32 (more exact than TF32's 10-bit mantissas, which callers opt into for speed). */
static bool types_supported(cublasComputeType_t compute, cudaDataType a, cudaDataType b,
                            cudaDataType c)
{
    if (compute == CUBLAS_COMPUTE_32F_FAST_TF32)
        return a == CUDA_R_32F && b == CUDA_R_32F && c == CUDA_R_32F;
    if (compute != CUBLAS_COMPUTE_32F || a != b) return false;
    if (a == CUDA_R_32F) return c == CUDA_R_32F;
    return (a == CUDA_R_16F || a == CUDA_R_16BF) && (c == a || c == CUDA_R_32F);
}

static bool valid_op(cublasOperation_t op)
{
    return op == CUBLAS_OP_N || op == CUBLAS_OP_T || op == CUBLAS_OP_C;
}

static int at_least_1(int v) { return v > 1 ? v : 1; }

cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t handle, cublasOperation_t transa,
                                          cublasOperation_t transb, int m, int n, int k,
                                          const void *alpha, const void *A, cudaDataType Atype,
                                          int lda, long long int strideA, const void *B,
                                          cudaDataType Btype, int ldb, long long int strideB,
                                          const void *beta, void *C, cudaDataType Ctype,
                                          int ldc, long long int strideC, int batchCount,
                                          cublasComputeType_t computeType,
                                          cublasGemmAlgo_t algo)
{
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    /* cuBLAS's rules for gemm: lda >= max(1, rows of A as stored), likewise ldb, ldc. */
    if (!valid_op(transa) || !valid_op(transb) || m < 0 || n < 0 || k < 0 || batchCount < 0 ||
        lda < at_least_1(transa == CUBLAS_OP_N ? m : k) ||
        ldb < at_least_1(transb == CUBLAS_OP_N ? k : n) || ldc < at_least_1(m) || !alpha ||
        !beta)
        return CUBLAS_STATUS_INVALID_VALUE;
    if (algo != CUBLAS_GEMM_DEFAULT || !types_supported(computeType, Atype, Btype, Ctype))
        return CUBLAS_STATUS_NOT_SUPPORTED;
    if (m == 0 || n == 0 || batchCount == 0) return CUBLAS_STATUS_SUCCESS; /* nothing touched */

    gemm_args g = {
        .transa = transa == CUBLAS_OP_N ? CUBLAS_OP_N : CUBLAS_OP_T, /* C: real types */
        .transb = transb == CUBLAS_OP_N ? CUBLAS_OP_N : CUBLAS_OP_T,
        .m = m, .n = n, .k = k, .lda = lda, .ldb = ldb, .ldc = ldc, .batch_count = batchCount,
        .A = A, .B = B, .C = C, .a_type = Atype, .b_type = Btype, .c_type = Ctype,
        .stride_a = strideA, .stride_b = strideB, .stride_c = strideC,
    };
    memcpy(&g.alpha, alpha, sizeof g.alpha);
    memcpy(&g.beta, beta, sizeof g.beta);
    cudaError_t e = simt_enqueue(handle->stream, "cublasGemmStridedBatchedEx", gemm_run, &g,
                                 sizeof g);
    return e == cudaSuccess ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_EXECUTION_FAILED;
}
