/* Matmul through OpenBLAS sgemm. Each matrix may be row- or column-major (a transposed
 * view), so no transposes are copied. bf16/f16 operands are widened one panel of columns
 * at a time into a reused scratch buffer: never an f32 copy of a whole weight. */
#include <cblas.h>

#include "cpu_internal.h"

enum { PANEL = 256 }; /* columns of a half-precision operand widened per sgemm */

/* One matrix of a batch: base pointer, leading dim and whether it is column-major. */
typedef struct matrix {
    const char *data;
    dtype dt;
    int64_t rows, cols, ld;
    bool col_major;
} matrix;

static matrix matrix_of(const tensor *t, int64_t batch_offset)
{
    int n = t->ndim;
    matrix m = {.dt = t->dt, .rows = t->shape[n - 2], .cols = t->shape[n - 1]};
    m.data = t->data + batch_offset * (int64_t)dtype_size(t->dt);
    m.col_major = t->stride[n - 1] != 1;
    m.ld = m.col_major ? t->stride[n - 1] : t->stride[n - 2];
    /* BLAS wants ld >= the contiguous extent even when the other dim has size 1. */
    int64_t min_ld = m.col_major ? m.rows : m.cols;
    if (m.ld < min_ld || (m.col_major ? m.cols : m.rows) == 1) m.ld = min_ld > 1 ? min_ld : 1;
    return m;
}

/* Widens rows x cols of m into dst with the same layout and a tight leading dim. */
static void widen(const matrix *m, int64_t col0, int64_t cols, float *dst)
{
    if (m->col_major) {
#pragma omp parallel for schedule(static) if (cols * m->rows > 65536)
        for (int64_t j = 0; j < cols; j++)
            for (int64_t i = 0; i < m->rows; i++)
                dst[j * m->rows + i] = dtype_load(m->data, m->dt, (col0 + j) * m->ld + i);
    } else {
#pragma omp parallel for schedule(static) if (cols * m->rows > 65536)
        for (int64_t i = 0; i < m->rows; i++)
            for (int64_t j = 0; j < cols; j++)
                dst[i * cols + j] = dtype_load(m->data, m->dt, i * m->ld + col0 + j);
    }
}

enum {
    /* Rows or columns per output tile: each packed operand is reused at least this often.
     * Small GEMMs (LoRA's rank-r products) take narrower tiles, so two threads share them. */
    TILE_MIN = 256,
    TILE_MIN_SMALL = 128,
    TILE_MAX_COUNT = 8,
    TILE_SPLIT_MIN = 64, /* a dim of at least 2 x this is always cut in two */
};

/* out (M,N) row-major, leading dim ldo, = a (M,K) @ b (K,N), both f32, in output tiles.
 *
 * The tiles depend only on the shape: the larger output dim is cut into min(8, dim / 256)
 * (dim / 128 when M*N*K < 2^24) rounded down to a power of two equal parts, at least two
 * when dim >= 128. Threads take
 * whole tiles, and each tile is one sgemm that OpenBLAS runs single-threaded (it does
 * inside an active OpenMP region). So every output element comes from the same call with
 * the same blocking whatever the thread count: OpenBLAS's own threading splits K
 * differently from its single-threaded code for some K (688, for one) and would change the
 * rounding with the thread count. Cutting the larger dim keeps the repacked operand the
 * smaller one. */
static void gemm_f32(const matrix *a, const matrix *b, float *out, int64_t ldo, float beta)
{
    int64_t M = a->rows, K = a->cols, N = b->cols;
    bool by_rows = M >= N;
    int64_t dim = by_rows ? M : N;
    int64_t tiles = dim / (M * N * K < ((int64_t)1 << 24) ? TILE_MIN_SMALL : TILE_MIN);
    tiles = tiles < 1 ? 1 : tiles > TILE_MAX_COUNT ? TILE_MAX_COUNT : tiles;
    /* A power of two: 3 or 7 tiles leave a thread of 2 or 4 idle for a third or a seventh
     * of the product (896 rows, a packed batch, was 16% slower than 1024). */
    while (tiles & (tiles - 1)) tiles &= tiles - 1;
    if (tiles == 1 && dim >= 2 * TILE_SPLIT_MIN) tiles = 2; /* two threads for a 256 cube */
    int64_t step = (dim + tiles - 1) / tiles;
    CBLAS_TRANSPOSE ta = a->col_major ? CblasTrans : CblasNoTrans;
    CBLAS_TRANSPOSE tb = b->col_major ? CblasTrans : CblasNoTrans;
    const float *A = (const float *)a->data, *B = (const float *)b->data;
    /* No `if` clause: even one tile runs in an active region when threads are available,
     * so OpenBLAS never threads it. */
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < tiles; t++) {
        int64_t lo = t * step, n = dim - lo < step ? dim - lo : step;
        if (n <= 0) continue;
        /* Row i of A starts at i*ld (row-major) or i (column-major); column j of B at j
         * or j*ld. */
        const float *At = by_rows ? A + lo * (a->col_major ? 1 : a->ld) : A;
        const float *Bt = by_rows ? B : B + lo * (b->col_major ? b->ld : 1);
        float *Ct = out + (by_rows ? lo * ldo : lo);
        cblas_sgemm(CblasRowMajor, ta, tb, (int)(by_rows ? n : M), (int)(by_rows ? N : n),
                    (int)K, 1.0f, At, (int)a->ld, Bt, (int)b->ld, beta, Ct, (int)ldo);
    }
}

/* out (M,N) f32 row-major with leading dim ldo = a (M,K) @ b (K,N) + beta * out. */
static aspo_status gemm(cpu_state *cpu, const matrix *a, const matrix *b, float *out,
                        int64_t ldo, float beta)
{
    int64_t M = a->rows, K = a->cols, N = b->cols;
    matrix aw = *a;
    if (a->dt != DT_F32) {
        /* Activations in half precision: widen A once (it is activation-sized). */
        float *a_f32 = cpu_scratch(cpu, SCRATCH_MATMUL_A, (size_t)(M * K) * sizeof(float));
        if (!a_f32) return aspo_fail(ASPO_ERR_OOM, "matmul on cpu: no memory to widen A");
        widen(a, 0, K, a_f32);
        aw.data = (const char *)a_f32;
        aw.dt = DT_F32;
        aw.ld = a->col_major ? M : K;
    }
    if (b->dt == DT_F32) {
        gemm_f32(&aw, b, out, ldo, beta);
        return ASPO_OK;
    }
    float *panel = cpu_scratch(cpu, SCRATCH_MATMUL_PANEL,
                               sizeof(float) * (size_t)PANEL * (size_t)(K > 0 ? K : 1));
    if (!panel)
        return aspo_fail(ASPO_ERR_OOM, "matmul on cpu: no memory for a %d x %lld panel", PANEL,
                         (long long)K);
    for (int64_t n0 = 0; n0 < N; n0 += PANEL) {
        int64_t nb = N - n0 < PANEL ? N - n0 : PANEL;
        widen(b, n0, nb, panel);
        matrix mp = {.data = (const char *)panel, .dt = DT_F32, .rows = K, .cols = nb,
                     .ld = b->col_major ? K : nb, .col_major = b->col_major};
        gemm_f32(&aw, &mp, out + n0, ldo, beta);
    }
    return ASPO_OK;
}

/* out's rows*N elements from element `at` on (row-major, leading dim N) = a @ b, or
 * + a @ b with accumulate (GEMM beta = 1). A bf16/f16 output is computed in f32 and each
 * value rounded once on the way out (its old value added in f32 first), as a GEMM with f32
 * accumulation and a half-precision C does. */
static aspo_status gemm_into(const matrix *a, const matrix *b, tensor *out, int64_t at,
                             int64_t rows, int64_t N, bool accumulate)
{
    cpu_state *cpu = cpu_state_of(out->be);
    if (out->dt == DT_F32)
        return gemm(cpu, a, b, (float *)out->data + at, N, accumulate ? 1.0f : 0.0f);
    size_t n = (size_t)(rows * N);
    float *o = cpu_scratch(cpu, SCRATCH_MATMUL_OUT, n * sizeof(float));
    if (!o) return aspo_fail(ASPO_ERR_OOM, "matmul on cpu: no memory for a %s output",
                             dtype_name(out->dt));
    if (accumulate)
        for (size_t i = 0; i < n; i++) o[i] = dtype_load(out->data, out->dt, at + (int64_t)i);
    aspo_status s = gemm(cpu, a, b, o, N, accumulate ? 1.0f : 0.0f);
    if (!s) cpu_store_f32(out, at, o, (int64_t)n);
    return s;
}

/* Batch offset (elements) of operand t for output batch index (i0, i1), broadcasting. */
static int64_t batch_offset(const tensor *t, int64_t i0, int64_t i1, const tensor *out)
{
    int64_t off = 0;
    int64_t idx[2] = {i0, i1};
    for (int k = 0; k < 2; k++) {
        int d_out = out->ndim - 4 + k; /* batch dim k of the 4-D padded output */
        int d = d_out - (out->ndim - t->ndim);
        if (d_out < 0 || d < 0) continue;
        if (t->shape[d] != 1) off += idx[k] * t->stride[d];
    }
    return off;
}

CPU_KERNEL(cpu_matmul)
{
    const tensor *a = c->in[0], *b = c->in[1];
    tensor *out = c->out[0];
    int64_t M = out->shape[out->ndim - 2], N = out->shape[out->ndim - 1];
    int64_t nb0 = out->ndim >= 4 ? out->shape[out->ndim - 4] : 1;
    int64_t nb1 = out->ndim >= 3 ? out->shape[out->ndim - 3] : 1;
    bool accumulate = c->p.i[0] != 0; /* out is in[2]'s memory: c + a @ b */
    if (M == 0 || N == 0) return ASPO_OK;
    if (a->shape[a->ndim - 1] == 0) {
        if (accumulate) return ASPO_OK; /* c + 0 */
        op_call zero = {.op = OP_FILL, .n_out = 1, .out = {out}};
        return cpu_fill(&zero);
    }
    /* One weight for every batch and rows of A evenly spaced: fold the batch into M. */
    bool b_shared = b->ndim == 2;
    bool a_folds = a->ndim > 2 && a->stride[a->ndim - 1] == 1 && tensor_is_contiguous(a);
    if (b_shared && a_folds) {
        matrix ma = matrix_of(a, 0), mb = matrix_of(b, 0);
        ma.rows = tensor_numel(a) / ma.cols;
        return gemm_into(&ma, &mb, out, 0, ma.rows, N, accumulate);
    }
    for (int64_t i0 = 0; i0 < nb0; i0++)
        for (int64_t i1 = 0; i1 < nb1; i1++) {
            matrix ma = matrix_of(a, batch_offset(a, i0, i1, out));
            matrix mb = matrix_of(b, batch_offset(b, i0, i1, out));
            aspo_status s = gemm_into(&ma, &mb, out, (i0 * nb1 + i1) * M * N, M, N, accumulate);
            if (s) return s;
        }
    return ASPO_OK;
}
