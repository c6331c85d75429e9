// OP_MATMUL: o (...,M,N) = a (...,M,K) @ b (...,K,N), batch dims broadcast, each matrix
// row- or column-major (transposed views arrive as they are, nothing is copied), semantics
// of tensor/ops_matmul.c and backends/cpu/cpu_matmul.c. With p.i[0] = 1 (accumulate) the
// output is in[2]'s memory and gets c + a @ b: beta = 1 on every path below (cuBLAS adds C
// in f32 and rounds once, as the own GEMM's epilogue does); each output element is written
// by exactly one GEMM, so c is added once.
//
// The plan: batch dims padded to two (b0, b1), with stride 0 where an operand broadcasts;
// one weight shared by every batch (x @ W) folds the batch into M when a's and o's rows are
// evenly spaced, so one tall GEMM runs instead of many short ones. Then cuBLAS
// (cublasGemmStridedBatchedEx, f32 compute) takes it when it can:
//  - row-major o = a b is the column-major o^T = b^T a^T; each operand is passed as it lies
//    (CUBLAS_OP_N for column-major, CUBLAS_OP_T for row-major), leading dims from strides;
//  - the batch is one strided-batched call when the two batch dims fold into one stride
//    (0 for a broadcast operand), else one call per index of batch dim 0;
//  - a and b of one dtype: f32 (f32 out), or bf16/f16 with an f32 or same-dtype output;
//  - an f32 operand with a bf16/f16 one (f32 activations and a frozen half-precision weight,
//    or the reverse), f32 out, one batch matrix: the half operand is widened to f32 one panel
//    of at most 64 MiB at a time (never an f32 copy of a whole weight, as on the CPU), and
//    each panel is an f32 GEMM into its columns of o.
// Everything else goes to the own tiled GEMM (cuda_gemm.cu): mixed dtypes cuBLAS lacks, an
// operand neither row- nor column-major (or overlapping rows), dims or leading dims past
// int, K = 0 (zeros; nothing at all with accumulate).
//
// Options (environment, read once):
//   ASPO_CUDA_TF32=1   f32 products on TF32 tensor cores (CUBLAS_COMPUTE_32F_FAST_TF32):
//                      inputs rounded to 10 mantissa bits, f32 accumulation; several times
//                      faster, ~1e-3 relative error per product. Off by default, so the
//                      backend matches the CPU to f32 rounding.
//   ASPO_CUDA_GEMM=own every matmul on the own GEMM (what a build without BLAS does), so a
//                      GPU check can test that kernel where cuBLAS exists.
// Build option ASPO_NO_BLAS (the HIP build defines it when ROCm has no hipBLAS): no BLAS
// calls are compiled and every matmul takes the own GEMM.
//
// cuBLAS names used (for backends/hip/hip_compat.h): cublasHandle_t, cublasStatus_t,
// cublasOperation_t, cublasComputeType_t, cublasCreate, cublasSetStream,
// cublasGemmStridedBatchedEx, cublasGetStatusString, CUBLAS_STATUS_SUCCESS,
// CUBLAS_STATUS_ALLOC_FAILED, CUBLAS_OP_N, CUBLAS_OP_T, CUBLAS_COMPUTE_32F,
// CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_GEMM_DEFAULT, cudaDataType, CUDA_R_32F, CUDA_R_16BF,
// CUDA_R_16F. The handle is created once, bound to cu_stream(), with cuBLAS's own workspace.
// cuBLASLt is not called: GemmEx already runs its kernels, and nothing here needs the
// epilogues that are Lt's reason to exist.
//
// Verified: compiles -Wall clean for sm_80, sm_89 and sm_90 (CUDA 13), and with
// ASPO_NO_BLAS. This file's planning (folding, orientation, operations, leading dims, batch
// strides, widened panels) was run on the host, ASan and UBSan on, against a column-major
// reference of cublasGemmStridedBatchedEx that also enforces cuBLAS's argument rules (leading
// dims, dtype pairs, compute types), for every dtype triple and the layouts of the op tests
// and more, with several panels per widened operand. Accumulate (beta = 1) matched the CPU
// on the simt backend, whose cuBLAS stand-in honours beta. Not verified: it has never run on
// a GPU (this machine has none); that real cuBLAS accepts every call, and the speed, are
// unchecked.
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <initializer_list>

#include "cuda_common.cuh"
#include "cuda_gemm.h"

#if defined(ASPO_SIMT)
#include "../simt/simt_cublas.h" /* cuBLAS's documented behaviour, on OpenBLAS */
#elif !defined(ASPO_NO_BLAS) && !defined(ASPO_HIP)
#include <cublas_v2.h>
#endif

namespace {

// Operand or output t with its batch dims aligned to out's, padded to (b0, b1) in front:
// stride 0 where t has no such dim or size 1 (broadcast), as cpu_matmul's batch_offset.
cu_matrix matrix_of(const tensor *t, const tensor *out)
{
    int n = t->ndim;
    cu_matrix m = {};
    m.data = t->data;
    m.dt = t->dt;
    m.rows = t->shape[n - 2], m.cols = t->shape[n - 1];
    m.rs = t->stride[n - 2], m.cs = t->stride[n - 1];
    for (int k = 0; k < 2; k++) {
        int d_out = out->ndim - 4 + k, d = d_out - (out->ndim - n);
        m.bs[k] = d_out >= 0 && d >= 0 && t->shape[d] != 1 ? t->stride[d] : 0;
    }
    return m;
}

// The rows of every batch matrix of x at one stride (x's batch continues its rows), so
// the batch folds into the rows. A size-1 batch dim's stride is arbitrary and not checked.
bool rows_fold(const cu_matrix &x, const int64_t *batch)
{
    int64_t want = x.rows * x.rs;
    for (int k = 1; k >= 0; k--) {
        if (batch[k] > 1 && x.bs[k] != want) return false;
        want *= batch[k];
    }
    return true;
}

// One weight for every batch (x @ W): one tall GEMM of all rows, when a's and o's rows fold.
void fold_shared_weight(cu_gemm_problem *p)
{
    int64_t nb = p->batch[0] * p->batch[1];
    if (nb == 1) return;
    for (int k = 0; k < 2; k++)
        if (p->batch[k] > 1 && p->b.bs[k] != 0) return;
    if (!rows_fold(p->a, p->batch) || !rows_fold(p->o, p->batch)) return;
    p->a.rows *= nb;
    p->o.rows *= nb;
    for (cu_matrix *x : {&p->a, &p->b, &p->o}) x->bs[0] = x->bs[1] = 0;
    p->batch[0] = p->batch[1] = 1;
}

#ifndef ASPO_NO_BLAS

// Whether environment variable `name` is `value` (callers keep the answer in a static).
bool env_is(const char *name, const char *value)
{
    const char *v = getenv(name);
    return v && strcmp(v, value) == 0;
}

// x^T: rows and cols swapped, a view of the same memory.
cu_matrix transposed(cu_matrix x)
{
    int64_t r = x.rows, s = x.rs;
    x.rows = x.cols, x.rs = x.cs;
    x.cols = r, x.cs = s;
    return x;
}

// o = a b as o^T = b^T a^T: the same memory, roles swapped.
cu_gemm_problem transposed_problem(const cu_gemm_problem &p)
{
    cu_gemm_problem t = p;
    t.a = transposed(p.b);
    t.b = transposed(p.a);
    t.o = transposed(p.o);
    return t;
}

// BLAS sees column-major storage: x as it lies, with leading dim *ld, when its rows are at
// unit stride and its columns do not overlap (ld >= rows). A size-1 dim's stride is
// arbitrary, and BLAS still wants ld >= 1 and >= rows.
bool column_major(const cu_matrix &x, int64_t *ld)
{
    if (x.rows > 1 && x.rs != 1) return false;
    int64_t min_ld = x.rows > 1 ? x.rows : 1;
    if (x.cols > 1 && x.cs < min_ld) return false;
    *ld = x.cols > 1 ? x.cs : min_ld;
    return *ld <= INT_MAX;
}

// x as a BLAS operand: column-major as it lies (OP_N), or row-major, which BLAS reads as
// the column-major x^T and transposes back (OP_T).
bool blas_operand(const cu_matrix &x, cublasOperation_t *op, int64_t *ld)
{
    if (column_major(x, ld)) {
        *op = CUBLAS_OP_N;
        return true;
    }
    if (column_major(transposed(x), ld)) {
        *op = CUBLAS_OP_T;
        return true;
    }
    return false;
}

cudaDataType blas_type(dtype dt)
{
    return dt == DT_BF16 ? CUDA_R_16BF : dt == DT_F16 ? CUDA_R_16F : CUDA_R_32F;
}

// cuBLAS's GemmEx with f32 compute takes a and b of one dtype, and an f32 output or, for
// half-precision inputs, one of their dtype.
bool blas_dtypes(dtype a, dtype b, dtype o)
{
    return a == b && (o == DT_F32 || o == a);
}

// The arguments of the strided-batched calls that compute p (column-major after orienting).
struct blas_plan {
    cublasOperation_t ta, tb;
    int m, n, k, lda, ldb, ldc;
    cu_matrix A, B, C;    // the column-major problem C = op(A) op(B)
    int count;            // matrices per call
    float beta;           // 1 with accumulate: C += op(A) op(B)
    long long sA, sB, sC; // their batch strides
    int64_t calls;        // calls, one per index of batch dim 0 when the batch does not fold
};

bool fits_int(int64_t v) { return v >= 0 && v <= INT_MAX; }

// Whether cuBLAS can take p's layout and sizes (dtypes are checked apart).
bool plan_blas(const cu_gemm_problem &p, blas_plan *q)
{
    // cuBLAS writes a column-major C: o itself, or o^T (row-major o) with a and b swapped.
    int64_t ldc;
    cu_gemm_problem c = p;
    if (!column_major(c.o, &ldc)) {
        c = transposed_problem(p);
        if (!column_major(c.o, &ldc)) return false;
    }
    int64_t lda, ldb;
    if (!blas_operand(c.a, &q->ta, &lda) || !blas_operand(c.b, &q->tb, &ldb)) return false;
    if (!fits_int(c.o.rows) || !fits_int(c.o.cols) || !fits_int(c.a.cols)) return false;
    q->A = c.a, q->B = c.b, q->C = c.o;
    q->m = (int)c.o.rows, q->n = (int)c.o.cols, q->k = (int)c.a.cols;
    q->lda = (int)lda, q->ldb = (int)ldb, q->ldc = (int)ldc;

    // One stride for the whole batch when every matrix's dim-0 stride continues dim 1's.
    int64_t n0 = c.batch[0], n1 = c.batch[1];
    bool folds = n0 == 1 || n1 == 1;
    if (!folds) {
        folds = true;
        for (const cu_matrix *x : {&c.a, &c.b, &c.o}) folds = folds && x->bs[0] == n1 * x->bs[1];
    }
    int64_t count = folds ? n0 * n1 : n1;
    int k = n1 > 1 ? 1 : 0; // the batch dim whose stride steps the calls' matrices
    if (!fits_int(count)) return false;
    q->count = (int)count;
    q->sA = c.a.bs[k], q->sB = c.b.bs[k], q->sC = c.o.bs[k];
    q->calls = folds ? 1 : n0;
    q->beta = p.accumulate ? 1.0f : 0.0f;
    return true;
}

aspo_status blas_status(cublasStatus_t st, const char *what)
{
    if (st == CUBLAS_STATUS_SUCCESS) return ASPO_OK;
    return aspo_fail(st == CUBLAS_STATUS_ALLOC_FAILED ? ASPO_ERR_OOM : ASPO_ERR_UNSUPPORTED,
                     "op matmul on backend cuda: %s: %s", what, cublasGetStatusString(st));
}

// The instance's cuBLAS handle (cu_state.blas), made on first use and bound to cu_stream(), so
// its GEMMs are ordered with every other kernel. cuBLAS keeps its own workspace.
aspo_status blas_handle(cublasHandle_t *out)
{
    cu_state *st = cu_state_of_process();
    if (!st->blas) {
        cublasHandle_t handle;
        aspo_status s = blas_status(cublasCreate(&handle), "cublasCreate");
        if (!s) s = blas_status(cublasSetStream(handle, cu_stream()), "cublasSetStream");
        if (s) return s;
        st->blas = (void *)handle;
    }
    *out = (cublasHandle_t)st->blas;
    return ASPO_OK;
}

aspo_status run_blas(const blas_plan &q)
{
    static const bool tf32 = env_is("ASPO_CUDA_TF32", "1");
    cublasHandle_t h;
    aspo_status s = blas_handle(&h);
    if (s) return s;
    cublasComputeType_t compute =
        tf32 && q.A.dt == DT_F32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    const float alpha = 1.0f, beta = q.beta;
    size_t ea = dtype_size(q.A.dt), eb = dtype_size(q.B.dt), ec = dtype_size(q.C.dt);
    for (int64_t i = 0; i < q.calls; i++) {
        // Calls step batch dim 0 (only when the batch does not fold into one stride).
        const char *A = q.A.data + i * q.A.bs[0] * (int64_t)ea;
        const char *B = q.B.data + i * q.B.bs[0] * (int64_t)eb;
        char *C = q.C.data + i * q.C.bs[0] * (int64_t)ec;
        cublasStatus_t st = cublasGemmStridedBatchedEx(
            h, q.ta, q.tb, q.m, q.n, q.k, &alpha, A, blas_type(q.A.dt), q.lda, q.sA, B,
            blas_type(q.B.dt), q.ldb, q.sB, &beta, C, blas_type(q.C.dt), q.ldc, q.sC, q.count,
            compute, CUBLAS_GEMM_DEFAULT);
        if (st != CUBLAS_STATUS_SUCCESS) {
            char what[160];
            snprintf(what, sizeof what, "cublasGemmStridedBatchedEx (%d x %d x %d, %d matrices, "
                     "%s @ %s -> %s)", q.m, q.n, q.k, q.count, dtype_name(q.A.dt),
                     dtype_name(q.B.dt), dtype_name(q.C.dt));
            return blas_status(st, what);
        }
    }
    return ASPO_OK;
}

constexpr unsigned WIDEN_THREADS = 256;
constexpr int64_t PANEL_FLOATS = (int64_t)16 << 20; // 64 MiB of widened operand per GEMM

// dst (rows,cols) f32, tight, column-major when col_major else row-major = src widened.
// Threads walk dst in order (coalesced writes; reads too where src has the same layout).
__global__ void widen_kernel(cu_matrix src, float *dst, bool col_major)
{
    cu_view v = {};
    v.data = src.data;
    v.dt = (int32_t)src.dt;
    int64_t n = src.rows * src.cols;
    CU_FOR(i, n)
    {
        int64_t r = col_major ? i % src.rows : i / src.cols;
        int64_t c = col_major ? i / src.rows : i % src.cols;
        dst[i] = cu_load(v, r * src.rs + c * src.cs);
    }
}

// p (one batch matrix, f32 output) with one f32 and one bf16/f16 operand: the half
// operand widened panel by panel, each panel an f32 cuBLAS GEMM. *taken is false when
// cuBLAS cannot take the layout (the caller runs the own GEMM).
aspo_status widen_and_blas(const cu_gemm_problem &p0, bool *taken)
{
    *taken = false;
    // The half operand as b: o^T = b^T a^T when it is a. Panels are then columns of b and o.
    cu_gemm_problem p = p0.a.dt != DT_F32 ? transposed_problem(p0) : p0;
    int64_t K = p.b.rows, N = p.b.cols;
    int64_t width = PANEL_FLOATS / K < 1 ? 1 : PANEL_FLOATS / K;
    if (width > N) width = N;
    // Keep b's own layout (reads at unit stride); a size-1 dim leaves the choice free.
    bool col_major = p.b.rs == 1 || K == 1;
    float *panel = (float *)cu_scratch((size_t)(K * width) * sizeof(float));
    if (!panel) return aspo_error_status() ? aspo_error_status() : ASPO_ERR_OOM;
    for (int64_t n0 = 0; n0 < N; n0 += width) {
        int64_t nb = N - n0 < width ? N - n0 : width;
        cu_matrix src = p.b;
        src.data += n0 * p.b.cs * (int64_t)dtype_size(p.b.dt);
        src.cols = nb;
        cu_gemm_problem q = p;
        q.b = {(char *)panel, DT_F32, K, nb, col_major ? 1 : nb, col_major ? K : 1, {0, 0}};
        q.o.data += n0 * p.o.cs * (int64_t)dtype_size(p.o.dt);
        q.o.cols = nb;
        blas_plan plan;
        if (!plan_blas(q, &plan)) {
            if (n0 == 0) return ASPO_OK; // not taken: nothing written yet
            return aspo_fail(ASPO_ERR_UNSUPPORTED, "op matmul on backend cuda: panel at column "
                             "%lld of a widened operand does not fit cuBLAS", (long long)n0);
        }
        *taken = true;
        CU_LAUNCH(cu_blocks(K * nb, WIDEN_THREADS), WIDEN_THREADS, 0, widen_kernel)(
            src, panel, col_major);
        aspo_status s = cu_check_launch("matmul (widen a half-precision operand)");
        if (!s) s = run_blas(plan);
        if (s) return s;
    }
    return ASPO_OK;
}

// cuBLAS for p when it can take it (*taken), else nothing done.
aspo_status try_blas(const cu_gemm_problem &p, bool *taken)
{
    *taken = false;
    dtype a = p.a.dt, b = p.b.dt, o = p.o.dt;
    if (blas_dtypes(a, b, o)) {
        blas_plan plan;
        if (!plan_blas(p, &plan)) return ASPO_OK;
        *taken = true;
        return run_blas(plan);
    }
    bool one_half = (a == DT_F32) != (b == DT_F32);
    if (one_half && o == DT_F32 && p.batch[0] * p.batch[1] == 1) return widen_and_blas(p, taken);
    return ASPO_OK;
}

#endif // ASPO_NO_BLAS

} // namespace

extern "C" CU_KERNEL(cu_matmul)
{
    const tensor *a = c->in[0], *b = c->in[1];
    tensor *out = c->out[0];
    if (!dtype_is_float(a->dt) || !dtype_is_float(b->dt) || !dtype_is_float(out->dt))
        return aspo_fail(ASPO_ERR_UNSUPPORTED, "op matmul on backend cuda: %s @ %s -> %s "
                         "(float dtypes only)", dtype_name(a->dt), dtype_name(b->dt),
                         dtype_name(out->dt));
    if (a->ndim < 2 || b->ndim < 2 || out->ndim < a->ndim || out->ndim < b->ndim ||
        a->shape[a->ndim - 1] != b->shape[b->ndim - 2] ||
        out->shape[out->ndim - 2] != a->shape[a->ndim - 2] ||
        out->shape[out->ndim - 1] != b->shape[b->ndim - 1]) {
        char x[96], y[96], z[96];
        return aspo_fail(ASPO_ERR_SHAPE, "op matmul on backend cuda: %s @ %s -> %s do not fit",
                         tensor_describe(a, x, sizeof x), tensor_describe(b, y, sizeof y),
                         tensor_describe(out, z, sizeof z));
    }
    cu_gemm_problem p = {};
    p.a = matrix_of(a, out);
    p.b = matrix_of(b, out);
    p.o = matrix_of(out, out);
    for (int k = 0; k < 2; k++) {
        int d = out->ndim - 4 + k;
        p.batch[k] = d >= 0 ? out->shape[d] : 1;
    }
    p.accumulate = c->p.i[0] != 0;
    if (p.accumulate && (c->n_in < 3 || c->in[2]->data != out->data || out->dt != c->in[2]->dt))
        return aspo_fail(ASPO_ERR_UNSUPPORTED, "op matmul on backend cuda: accumulate needs "
                         "the output to be input 2's memory (tensor_matmul_into)");
    if (tensor_numel(out) == 0) return ASPO_OK;
    if (p.accumulate && p.a.cols == 0) return ASPO_OK; // c + 0
    fold_shared_weight(&p);
#ifndef ASPO_NO_BLAS
    static const bool own_only = env_is("ASPO_CUDA_GEMM", "own");
    if (!own_only && p.a.cols > 0) {
        bool taken;
        aspo_status s = try_blas(p, &taken);
        if (s || taken) return s;
    }
#endif
    return cu_gemm_own(&p);
}
