// RMSNorm, LayerNorm and L2 normalisation over the last dim, with their backward passes;
// the formulas of backends/cpu/cpu_norm.c, the decomposition of the Vulkan shaders
// norm.comp and norm_columns.comp. Inputs are contiguous (the op table says so), viewed as
// rows (R,C): one block per row for y, dx and the row statistics (warp shuffles, then
// shared memory across warps), and column sums over rows for the weight and bias
// gradients (partial sums per block of rows, then one pass adding the partials). f32 math,
// a fixed order per launch shape, no float atomics: results are the same run to run.
//
// Verified: compiles -Wall clean with nvcc (CUDA 13) for sm_80, sm_89 and sm_90.
// Not verified: never run here (no GPU on the build machine); scripts/gpu-check.sh runs
// tests/ops/test_ops --backend cuda against the CPU for cu_rmsnorm, cu_layernorm,
// cu_l2norm and their backward kernels (forward and backward cases, NMSE).
#include <math.h>

#include "cuda_common.cuh"

namespace {

constexpr int THREADS = 256; // the largest row block; a multiple of 64 (full HIP waves)
constexpr int COLUMN_THREADS = 256; // columns per column-sum block, one per thread
constexpr int MAX_WARPS = 32;       // 1024 threads (the CUDA limit) over warps of >= 32
constexpr int64_t PART_MIN_ROWS = 16; // rows one column-sum thread adds at least
constexpr int64_t MAX_PARTS = 64;     // partial sums per column at most


// v rounded to dtype dt and back, as the cast to x's dtype in Hugging Face's RMSNorm.
__device__ __forceinline__ float round_to_dtype(int dt, float v)
{
    if (dt == DT_BF16) return cu_bf16_to_f32(cu_f32_to_bf16(v));
    if (dt == DT_F16) return cu_f16_to_f32(cu_f32_to_f16(v));
    return v;
}

// Rows are contiguous: element i of row r of x (R,C) is at r*C + i in every (R,C) tensor
// and at i in the (C) parameters.

// y = w * to_dtype(x * rstd), rstd = 1/sqrt(mean(x^2) + eps). x, y (R,C); w (C); rstd (R).
__global__ void rmsnorm_kernel(cu_view x, cu_view w, cu_view y, float *rstd, int64_t R,
                               int64_t C, float eps)
{
    CU_SHARED(float, shared, [MAX_WARPS]);
    for (int64_t r = blockIdx.x; r < R; r += gridDim.x) { // uniform per block
        int64_t off = r * C;
        float acc = 0.0f;
        for (int64_t i = threadIdx.x; i < C; i += blockDim.x) {
            float v = cu_load(x, off + i);
            acc += v * v;
        }
        float rs = 1.0f / sqrtf(cu_block_reduce(acc, shared, CuAdd()) / (float)C + eps);
        if (threadIdx.x == 0) rstd[r] = rs;
        for (int64_t i = threadIdx.x; i < C; i += blockDim.x) {
            float h = round_to_dtype(x.dt, cu_load(x, off + i) * rs);
            cu_store(y, off + i, cu_load(w, i) * h);
        }
    }
}

// dx = rstd * (g - h * mean(g*h)), g = dy*w, h = x*rstd. x, dy (R,C); dx (R,C) f32.
__global__ void rmsnorm_dx_kernel(cu_view x, cu_view w, const float *rstd, cu_view dy, float *dx,
                                  int64_t R, int64_t C)
{
    CU_SHARED(float, shared, [MAX_WARPS]);
    for (int64_t r = blockIdx.x; r < R; r += gridDim.x) {
        int64_t off = r * C;
        float rs = rstd[r], acc = 0.0f;
        for (int64_t i = threadIdx.x; i < C; i += blockDim.x)
            acc += (cu_load(dy, off + i) * cu_load(w, i)) * (cu_load(x, off + i) * rs);
        float m = cu_block_reduce(acc, shared, CuAdd()) / (float)C;
        for (int64_t i = threadIdx.x; i < C; i += blockDim.x) {
            float g = cu_load(dy, off + i) * cu_load(w, i), h = cu_load(x, off + i) * rs;
            dx[off + i] = rs * (g - h * m);
        }
    }
}

// y = (x - mean) * rstd * w + b, rstd = 1/sqrt(var + eps) (biased variance, two passes so
// large means do not cancel). x, y (R,C); w, b (C); mean, rstd (R).
__global__ void layernorm_kernel(cu_view x, cu_view w, cu_view b, cu_view y, float *mean,
                                 float *rstd, int64_t R, int64_t C, float eps)
{
    CU_SHARED(float, shared, [MAX_WARPS]);
    for (int64_t r = blockIdx.x; r < R; r += gridDim.x) {
        int64_t off = r * C;
        float acc = 0.0f;
        for (int64_t i = threadIdx.x; i < C; i += blockDim.x) acc += cu_load(x, off + i);
        float mu = cu_block_reduce(acc, shared, CuAdd()) / (float)C;
        acc = 0.0f;
        for (int64_t i = threadIdx.x; i < C; i += blockDim.x) {
            float d = cu_load(x, off + i) - mu;
            acc += d * d;
        }
        float rs = 1.0f / sqrtf(cu_block_reduce(acc, shared, CuAdd()) / (float)C + eps);
        if (threadIdx.x == 0) {
            mean[r] = mu;
            rstd[r] = rs;
        }
        for (int64_t i = threadIdx.x; i < C; i += blockDim.x) {
            float xhat = (cu_load(x, off + i) - mu) * rs;
            cu_store(y, off + i, xhat * cu_load(w, i) + cu_load(b, i));
        }
    }
}

// dx = rstd * (g - mean(g) - xhat * mean(g*xhat)), g = dy*w. x, dy (R,C); dx (R,C) f32.
__global__ void layernorm_dx_kernel(cu_view x, cu_view w, const float *mean, const float *rstd,
                                    cu_view dy, float *dx, int64_t R, int64_t C)
{
    CU_SHARED(float, shared, [MAX_WARPS]);
    for (int64_t r = blockIdx.x; r < R; r += gridDim.x) {
        int64_t off = r * C;
        float mu = mean[r], rs = rstd[r], acc_g = 0.0f, acc_gx = 0.0f;
        for (int64_t i = threadIdx.x; i < C; i += blockDim.x) {
            float g = cu_load(dy, off + i) * cu_load(w, i);
            acc_g += g;
            acc_gx += g * ((cu_load(x, off + i) - mu) * rs);
        }
        float mg = cu_block_reduce(acc_g, shared, CuAdd()) / (float)C;
        float mgx = cu_block_reduce(acc_gx, shared, CuAdd()) / (float)C;
        for (int64_t i = threadIdx.x; i < C; i += blockDim.x) {
            float g = cu_load(dy, off + i) * cu_load(w, i);
            float xhat = (cu_load(x, off + i) - mu) * rs;
            dx[off + i] = rs * (g - mg - xhat * mgx);
        }
    }
}

// y = x / max(||x||, eps); inv_norm = 1/max(||x||, eps), negated where the norm did not
// exceed eps (the denominator was the constant eps). x, y (R,C); inv_norm (R).
__global__ void l2norm_kernel(cu_view x, cu_view y, float *inv_norm, int64_t R, int64_t C,
                              float eps)
{
    CU_SHARED(float, shared, [MAX_WARPS]);
    for (int64_t r = blockIdx.x; r < R; r += gridDim.x) {
        int64_t off = r * C;
        float acc = 0.0f;
        for (int64_t i = threadIdx.x; i < C; i += blockDim.x) {
            float v = cu_load(x, off + i);
            acc += v * v;
        }
        float norm = sqrtf(cu_block_reduce(acc, shared, CuAdd()));
        bool clamped = !(norm > eps);
        float denom = clamped ? eps : norm;
        if (threadIdx.x == 0) inv_norm[r] = clamped ? -1.0f / denom : 1.0f / denom;
        for (int64_t i = threadIdx.x; i < C; i += blockDim.x)
            cu_store(y, off + i, cu_load(x, off + i) / denom);
    }
}

// dx = inv * (dy - y * sum(dy*y)) where the norm exceeded eps, else dy / eps.
// y, dy (R,C); inv_norm (R) signed; dx (R,C) f32.
__global__ void l2norm_dx_kernel(cu_view y, const float *inv_norm, cu_view dy, float *dx,
                                 int64_t R, int64_t C)
{
    CU_SHARED(float, shared, [MAX_WARPS]);
    for (int64_t r = blockIdx.x; r < R; r += gridDim.x) {
        int64_t off = r * C;
        float inv = inv_norm[r]; // the same for the whole block: the branch is uniform
        if (inv < 0.0f) {        // clamped: y = x / eps is linear in x
            for (int64_t i = threadIdx.x; i < C; i += blockDim.x)
                dx[off + i] = cu_load(dy, off + i) * -inv;
            continue;
        }
        float acc = 0.0f;
        for (int64_t i = threadIdx.x; i < C; i += blockDim.x)
            acc += cu_load(dy, off + i) * cu_load(y, off + i);
        float d = cu_block_reduce(acc, shared, CuAdd());
        for (int64_t i = threadIdx.x; i < C; i += blockDim.x)
            dx[off + i] = inv * (cu_load(dy, off + i) - cu_load(y, off + i) * d);
    }
}

// Weight and bias gradients: column sums over rows, one column per thread (neighbouring
// threads read neighbouring elements). Block (tile, part) adds rows [part*rows_per_part,
// ...) of its COLUMN_THREADS columns: dw += dy * h, db += dy, with h = (x - mean) * rstd
// (layernorm: mean non-NULL) or to_dtype(x * rstd) (rmsnorm, as the forward multiplied
// it). With one part the sums go to dw, db; else to the partials pw, pb (parts, C), added
// by columns_total_kernel. dw, db, pw, pb are NULL where not wanted.
__global__ void columns_kernel(cu_view x, cu_view dy, const float *mean, const float *rstd,
                               int64_t R, int64_t C, int64_t rows_per_part, float *dw, float *db,
                               float *pw, float *pb)
{
    int64_t c = (int64_t)blockIdx.x * COLUMN_THREADS + threadIdx.x, part = blockIdx.y;
    if (c >= C) return;
    int64_t r0 = part * rows_per_part, r1 = min(R, r0 + rows_per_part);
    float acc_w = 0.0f, acc_b = 0.0f;
    for (int64_t r = r0; r < r1; r++) {
        float g = cu_load(dy, r * C + c), xv = cu_load(x, r * C + c);
        float h = mean ? (xv - mean[r]) * rstd[r] : round_to_dtype(x.dt, xv * rstd[r]);
        acc_w += g * h;
        acc_b += g;
    }
    if (pw || pb) { // several parts
        if (pw) pw[part * C + c] = acc_w;
        if (pb) pb[part * C + c] = acc_b;
        return;
    }
    if (dw) dw[c] = acc_w;
    if (db) db[c] = acc_b;
}

// dw[c] = sum over parts of pw[part, c] in order of part, and db from pb.
__global__ void columns_total_kernel(const float *pw, const float *pb, int64_t parts, int64_t C,
                                     float *dw, float *db)
{
    CU_FOR(c, C)
    {
        float acc_w = 0.0f, acc_b = 0.0f;
        for (int64_t part = 0; part < parts; part++) {
            if (pw) acc_w += pw[part * C + c];
            if (pb) acc_b += pb[part * C + c];
        }
        if (dw) dw[c] = acc_w;
        if (db) db[c] = acc_b;
    }
}

// x (...,C) as (R,C).
void rows_of(const tensor *x, int64_t *R, int64_t *C)
{
    *C = x->shape[x->ndim - 1];
    *R = *C ? tensor_numel(x) / *C : 0;
}

// Threads per row block: short rows take a smaller block, fewer idle threads per row.
unsigned row_threads(int64_t C) { return C <= 64 ? 64 : C <= 128 ? 128 : THREADS; }

float *f32_data(const tensor *t) { return t ? (float *)t->data : NULL; }

// dweight and/or dbias (NULL when not wanted), f32 (C): sums over rows of dy*h and dy;
// mean is NULL for rmsnorm.
aspo_status column_sums(const tensor *x, const tensor *dy, const tensor *mean,
                        const tensor *rstd, tensor *dw, tensor *db, int64_t R, int64_t C)
{
    if (C == 0) return ASPO_OK;
    int64_t rows_per_part = (R + MAX_PARTS - 1) / MAX_PARTS;
    if (rows_per_part < PART_MIN_ROWS) rows_per_part = PART_MIN_ROWS;
    int64_t parts = R ? (R + rows_per_part - 1) / rows_per_part : 1;
    float *pw = NULL, *pb = NULL;
    if (parts > 1) { // partials (parts, C) for each wanted output, then their sums
        float *partial = (float *)cu_scratch(sizeof(float) * (size_t)(2 * parts * C));
        if (!partial) return aspo_error_status();
        pw = dw ? partial : NULL;
        pb = db ? partial + parts * C : NULL;
    }
    dim3 grid((unsigned)((C + COLUMN_THREADS - 1) / COLUMN_THREADS), (unsigned)parts);
    CU_LAUNCH(grid, COLUMN_THREADS, 0, columns_kernel)(
        cu_view_of(x, NULL), cu_view_of(dy, NULL), f32_data(mean), f32_data(rstd), R, C,
        rows_per_part, f32_data(dw), f32_data(db), pw, pb);
    aspo_status s = cu_check_launch("norm column sums");
    if (s || parts == 1) return s;
    CU_LAUNCH(cu_blocks(C, COLUMN_THREADS), COLUMN_THREADS, 0, columns_total_kernel)(
        pw, pb, parts, C, f32_data(dw), f32_data(db));
    return cu_check_launch("norm column sums (partials)");
}

// The wanted backward outputs in order (tensor/ops_norm.c); NULL for those not wanted.
void backward_outputs(const op_call *c, tensor **dx, tensor **dweight, tensor **dbias)
{
    int64_t want = c->p.i[0];
    int k = 0;
    *dx = (want & WANT_DX) ? c->out[k++] : NULL;
    *dweight = (want & WANT_DWEIGHT) ? c->out[k++] : NULL;
    if (dbias) *dbias = (want & WANT_DBIAS) ? c->out[k++] : NULL;
    ASPO_ASSERT(k == c->n_out);
}

} // namespace

extern "C" {

// in: x (R,C), weight (C); f[0]: eps; out: y (x's dtype), rstd (R) f32.
CU_KERNEL(cu_rmsnorm)
{
    const tensor *x = c->in[0];
    int64_t R, C;
    rows_of(x, &R, &C);
    if (R == 0) return ASPO_OK;
    CU_LAUNCH(cu_blocks(R, 1), row_threads(C), 0, rmsnorm_kernel)(
        cu_view_of(x, NULL), cu_view_of(c->in[1], NULL), cu_view_of(c->out[0], NULL),
        f32_data(c->out[1]), R, C, c->p.f[0]);
    return cu_check_launch("rmsnorm");
}

// in: x, weight, rstd, dy; i[0]: norm_grads mask; out: the wanted subset of dx, dweight.
CU_KERNEL(cu_rmsnorm_backward)
{
    const tensor *x = c->in[0], *w = c->in[1], *rstd = c->in[2], *dy = c->in[3];
    tensor *dx, *dw;
    backward_outputs(c, &dx, &dw, NULL);
    int64_t R, C;
    rows_of(x, &R, &C);
    if (dx && R > 0) {
        CU_LAUNCH(cu_blocks(R, 1), row_threads(C), 0, rmsnorm_dx_kernel)(
            cu_view_of(x, NULL), cu_view_of(w, NULL), f32_data(rstd), cu_view_of(dy, NULL),
            f32_data(dx), R, C);
        aspo_status s = cu_check_launch("rmsnorm backward");
        if (s) return s;
    }
    return dw ? column_sums(x, dy, NULL, rstd, dw, NULL, R, C) : ASPO_OK;
}

// in: x (R,C), weight (C), bias (C); f[0]: eps; out: y, mean (R), rstd (R).
CU_KERNEL(cu_layernorm)
{
    const tensor *x = c->in[0];
    int64_t R, C;
    rows_of(x, &R, &C);
    if (R == 0) return ASPO_OK;
    CU_LAUNCH(cu_blocks(R, 1), row_threads(C), 0, layernorm_kernel)(
        cu_view_of(x, NULL), cu_view_of(c->in[1], NULL), cu_view_of(c->in[2], NULL),
        cu_view_of(c->out[0], NULL), f32_data(c->out[1]), f32_data(c->out[2]), R, C, c->p.f[0]);
    return cu_check_launch("layernorm");
}

// in: x, weight, mean, rstd, dy; i[0]: norm_grads mask; out: the wanted subset of dx,
// dweight, dbias.
CU_KERNEL(cu_layernorm_backward)
{
    const tensor *x = c->in[0], *w = c->in[1], *mean = c->in[2], *rstd = c->in[3], *dy = c->in[4];
    tensor *dx, *dw, *db;
    backward_outputs(c, &dx, &dw, &db);
    int64_t R, C;
    rows_of(x, &R, &C);
    if (dx && R > 0) {
        CU_LAUNCH(cu_blocks(R, 1), row_threads(C), 0, layernorm_dx_kernel)(
            cu_view_of(x, NULL), cu_view_of(w, NULL), f32_data(mean), f32_data(rstd),
            cu_view_of(dy, NULL), f32_data(dx), R, C);
        aspo_status s = cu_check_launch("layernorm backward");
        if (s) return s;
    }
    return dw || db ? column_sums(x, dy, mean, rstd, dw, db, R, C) : ASPO_OK;
}

// in: x (R,C); f[0]: eps; out: y, signed inv_norm (R).
CU_KERNEL(cu_l2norm)
{
    const tensor *x = c->in[0];
    int64_t R, C;
    rows_of(x, &R, &C);
    if (R == 0) return ASPO_OK;
    CU_LAUNCH(cu_blocks(R, 1), row_threads(C), 0, l2norm_kernel)(
        cu_view_of(x, NULL), cu_view_of(c->out[0], NULL), f32_data(c->out[1]), R, C, c->p.f[0]);
    return cu_check_launch("l2norm");
}

// in: y, inv_norm, dy; out: dx (the only gradient).
CU_KERNEL(cu_l2norm_backward)
{
    const tensor *y = c->in[0];
    tensor *dx, *unused;
    backward_outputs(c, &dx, &unused, NULL);
    ASPO_ASSERT(dx && !unused);
    int64_t R, C;
    rows_of(y, &R, &C);
    if (R == 0) return ASPO_OK;
    CU_LAUNCH(cu_blocks(R, 1), row_threads(C), 0, l2norm_dx_kernel)(
        cu_view_of(y, NULL), f32_data(c->in[1]), cu_view_of(c->in[2], NULL), f32_data(dx), R, C);
    return cu_check_launch("l2norm backward");
}

} // extern "C"
