// Reductions: sums over any dims (any strides and dtypes), the sum of squares, and softmax /
// log-softmax over the last dim with their backward; the semantics of backends/cpu/
// cpu_reduce.c and cpu_softmax.c, the decomposition of the Vulkan shaders sum.comp,
// reduce_sumsq.comp and softmax.comp. f32 accumulation in an order fixed by the launch
// shape (which depends only on the tensor shapes): no float atomics, results are the same
// run to run.
//
// Verified: compiles -Wall clean with nvcc (CUDA 13) for sm_80, sm_89 and sm_90.
// Not verified: never run here (no GPU on the build machine); scripts/gpu-check.sh runs
// tests/ops/test_ops --backend cuda against the CPU for cu_sum, cu_sumsq, cu_softmax and
// cu_softmax_backward (forward and backward cases, NMSE).
#include <limits.h>
#include <math.h>

#include "cuda_common.cuh"

namespace {

// Threads of the sum tile and the largest row block: 8 warps (4 on 64-wide HIP waves)
// keep several blocks resident per SM; a multiple of 64 so every warp is full on both.
constexpr int THREADS = 256;
// Warps in a block at most: 1024 threads (the CUDA limit) over warps of >= 32 lanes.
constexpr int MAX_WARPS = 32;

constexpr int SUM_TARGET_BLOCKS = 256; // blocks that keep a large GPU busy
constexpr int SUM_MIN_PER_LANE = 16;   // elements per lane below which splitting costs more
constexpr int SUM_MAX_PARTS = 64;
constexpr int SUMSQ_PER_THREAD = 4;    // elements per thread before sumsq takes another block
constexpr int SUMSQ_MAX_BLOCKS = 512;



// Threads per row block: short rows take a smaller block, fewer idle threads per row.
unsigned row_threads(int64_t C) { return C <= 64 ? 64 : C <= 128 ? 128 : THREADS; }

// ---- sum over dims ----

struct dims4 {
    int64_t ne[4];
};

// o = x summed over the dims in `red` (x's sizes there, 1 elsewhere; o has 1 there). A
// block is a tile of `ox` consecutive outputs (threadIdx % ox) by THREADS/ox lanes
// (threadIdx / ox) splitting each output's reduction; the lanes meet in a shared-memory
// tree (they are ox apart, not in one warp). With the reduction split into parts
// (blockIdx.y, `chunk` reduced elements each), part z writes its sums to
// partial[z * n_out + e] and sum_parts_kernel adds them; partial is NULL with one part.
// one_stride >= 0: x's stride along the only dim with red > 1 (row sums, column sums), so
// offsets need no 64-bit divisions; -1: several such dims.
// x (any), o (x's dims, 1 where reduced), partial (parts, n_out) f32.
__global__ void sum_kernel(cu_view x, cu_view o, dims4 red, int64_t n_out, int64_t n_red,
                           int64_t chunk, int ox, int64_t one_stride, float *partial)
{
    CU_SHARED(float, tree, [THREADS]);
    int tx = threadIdx.x % ox, ty = threadIdx.x / ox, ry = THREADS / ox;
    int64_t part = blockIdx.y, j1 = min(n_red, (part + 1) * chunk);
    int64_t tiles = (n_out + ox - 1) / ox;
    for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) { // uniform per block
        int64_t e = tile * ox + tx;
        float acc = 0.0f;
        if (e < n_out) {
            int64_t base = cu_offset_of(x, o.ne, e); // o's index in x: 0 at the reduced dims
            for (int64_t j = part * chunk + ty; j < j1; j += ry)
                acc += cu_load(x, base + (one_stride >= 0 ? j * one_stride
                                                          : cu_offset_of(x, red.ne, j)));
        }
        tree[threadIdx.x] = acc;
        __syncthreads();
        for (int s = ry / 2; s > 0; s >>= 1) {
            if (ty < s) tree[threadIdx.x] += tree[threadIdx.x + s * ox];
            __syncthreads();
        }
        if (ty == 0 && e < n_out) {
            if (partial) partial[part * n_out + e] = tree[tx];
            else cu_store(o, cu_offset_of(o, o.ne, e), tree[tx]);
        }
        __syncthreads(); // tree[tx] is read before the next tile overwrites it
    }
}

// o[e] = sum over parts z of partial[z * n_out + e], in order of z.
__global__ void sum_parts_kernel(const float *partial, int64_t parts, cu_view o, int64_t n_out)
{
    CU_FOR(e, n_out)
    {
        float acc = 0.0f;
        for (int64_t z = 0; z < parts; z++) acc += partial[z * n_out + e];
        cu_store(o, cu_offset_of(o, o.ne, e), acc);
    }
}

int pow2_at_least(int64_t n, int cap)
{
    int p = 1;
    while (p < cap && p < n) p <<= 1;
    return p;
}

// ---- sum of squares ----

// Block b adds x[i]^2 (square) or x[i] over a grid-stride slice of the contiguous x (n)
// into partial[b], or into out[0] when partial is NULL (one block).
__global__ void sumsq_kernel(cu_view x, int64_t n, int square, float *partial, cu_view out)
{
    CU_SHARED(float, shared, [MAX_WARPS]);
    float acc = 0.0f;
    CU_FOR(i, n)
    {
        float v = cu_load(x, i);
        acc += square ? v * v : v;
    }
    float total = cu_block_reduce(acc, shared, CuAdd());
    if (threadIdx.x == 0) {
        if (partial) partial[blockIdx.x] = total;
        else cu_store(out, 0, total);
    }
}

// ---- softmax ----

// One block per row of contiguous x, y (R,C): y = softmax(x) or, with log_softmax,
// (x - max) - log(sum exp(x - max)). Each thread keeps a running max and a sum rescaled
// to it (online softmax), so the row is read twice (statistics, output), not three times.
__global__ void softmax_kernel(cu_view x, cu_view y, int64_t R, int64_t C, int log_softmax)
{
    CU_SHARED(float, shared, [MAX_WARPS]);
    for (int64_t r = blockIdx.x; r < R; r += gridDim.x) { // uniform per block
        int64_t off = r * C;
        float m = -INFINITY, sum = 0.0f; // sum of exp(x - m) over this thread's elements
        for (int64_t j = threadIdx.x; j < C; j += blockDim.x) {
            float v = cu_load(x, off + j);
            if (v > m) {
                sum = sum * expf(m - v) + 1.0f; // m = -inf at first: exp(-inf) = 0
                m = v;
            } else if (v != -INFINITY) { // -inf adds nothing; exp(-inf - -inf) would be NaN
                sum += expf(v - m);      // a NaN lands here and makes the row NaN, as on the CPU
            }
        }
        float row_max = cu_block_reduce(m, shared, CuMax());
        float row_sum = cu_block_reduce(sum == 0.0f ? 0.0f : sum * expf(m - row_max), shared, CuAdd());
        if (log_softmax) {
            float log_sum = logf(row_sum);
            for (int64_t j = threadIdx.x; j < C; j += blockDim.x)
                cu_store(y, off + j, (cu_load(x, off + j) - row_max) - log_sum);
        } else {
            float inv = 1.0f / row_sum;
            for (int64_t j = threadIdx.x; j < C; j += blockDim.x)
                cu_store(y, off + j, expf(cu_load(x, off + j) - row_max) * inv);
        }
    }
}

// One block per row of contiguous y, dy, dx (R,C):
// softmax: dx = y*(dy - sum(dy*y)); log-softmax: dx = dy - exp(y)*sum(dy).
__global__ void softmax_backward_kernel(cu_view y, cu_view dy, cu_view dx, int64_t R, int64_t C,
                                        int log_softmax)
{
    CU_SHARED(float, shared, [MAX_WARPS]);
    for (int64_t r = blockIdx.x; r < R; r += gridDim.x) {
        int64_t off = r * C;
        float acc = 0.0f;
        for (int64_t j = threadIdx.x; j < C; j += blockDim.x) {
            float g = cu_load(dy, off + j);
            acc += log_softmax ? g : g * cu_load(y, off + j);
        }
        float s = cu_block_reduce(acc, shared, CuAdd());
        for (int64_t j = threadIdx.x; j < C; j += blockDim.x) {
            float yj = cu_load(y, off + j), g = cu_load(dy, off + j);
            cu_store(dx, off + j, log_softmax ? g - expf(yj) * s : yj * (g - s));
        }
    }
}

// Rows and row length of a contiguous (...,C) tensor, as the CPU's rows_of.
void rows_of(const tensor *t, int64_t *R, int64_t *C)
{
    *C = t->ndim ? t->shape[t->ndim - 1] : 1;
    *R = *C ? tensor_numel(t) / *C : 0;
}

aspo_status softmax_rows(const tensor *x, const tensor *dy, tensor *o, bool log_softmax)
{
    int64_t R, C;
    rows_of(x, &R, &C);
    if (R == 0) return ASPO_OK;
    unsigned threads = row_threads(C);
    if (!dy) {
        CU_LAUNCH(cu_blocks(R, 1), threads, 0, softmax_kernel)(
            cu_view_of(x, NULL), cu_view_of(o, NULL), R, C, log_softmax);
        return cu_check_launch("softmax");
    }
    CU_LAUNCH(cu_blocks(R, 1), threads, 0, softmax_backward_kernel)(
        cu_view_of(x, NULL), cu_view_of(dy, NULL), cu_view_of(o, NULL), R, C, log_softmax);
    return cu_check_launch("softmax backward");
}

} // namespace

extern "C" {

// in: x (any strides, dtype); out: x's shape with 1 at the reduced dims.
CU_KERNEL(cu_sum)
{
    const tensor *x = c->in[0];
    tensor *out = c->out[0];
    cu_view xv = cu_view_of(x, NULL), ov = cu_view_of(out, NULL);
    dims4 red;
    int64_t n_red = 1, n_out = tensor_numel(out);
    int reduced = 0; // dims with more than one element to add
    int64_t one_stride = 0;
    for (int d = 0; d < 4; d++) {
        red.ne[d] = ov.ne[d] == 1 ? xv.ne[d] : 1;
        n_red *= red.ne[d];
        if (red.ne[d] > 1) one_stride = xv.st[d], reduced++;
    }
    if (reduced > 1 || one_stride < 0) one_stride = -1;
    if (n_out == 0) return ASPO_OK;
    // Lanes along the innermost dim when it is reduced (they read neighbouring elements);
    // else neighbouring outputs side by side (column sums), and lanes beyond the
    // reduction's length would idle, so they go to more outputs.
    int ox, ry;
    if (red.ne[3] > 1) {
        ry = pow2_at_least(n_red, THREADS);
        ox = THREADS / ry;
    } else {
        ox = pow2_at_least(n_out, 32);
        ry = pow2_at_least(n_red, THREADS / ox);
        ox = THREADS / ry;
    }
    // Few outputs and long reductions (a sum of everything): split the reduction into
    // parts that fill the device, partial sums (parts, n_out) in scratch, then add them.
    int64_t tiles = (n_out + ox - 1) / ox;
    int64_t parts = (SUM_TARGET_BLOCKS + tiles - 1) / tiles;
    if (parts > n_red / (THREADS * SUM_MIN_PER_LANE)) parts = n_red / (THREADS * SUM_MIN_PER_LANE);
    if (parts > SUM_MAX_PARTS) parts = SUM_MAX_PARTS;
    if (parts < 2) parts = 1;
    float *partial = NULL;
    if (parts > 1 && !(partial = (float *)cu_scratch(sizeof(float) * (size_t)(parts * n_out))))
        return aspo_error_status();
    int64_t chunk = (n_red + parts - 1) / parts;
    dim3 grid(cu_blocks(n_out, (unsigned)ox), (unsigned)parts);
    CU_LAUNCH(grid, THREADS, 0, sum_kernel)(xv, ov, red, n_out, n_red, chunk, ox, one_stride,
                                                  partial);
    aspo_status s = cu_check_launch("sum");
    if (s || parts == 1) return s;
    CU_LAUNCH(cu_blocks(n_out, THREADS), THREADS, 0, sum_parts_kernel)(partial, parts, ov,
                                                                            n_out);
    return cu_check_launch("sum (parts)");
}

// in: x (contiguous); out: scalar f32 sum of x^2. Partial sums per block, then one block
// adds them.
CU_KERNEL(cu_sumsq)
{
    const tensor *x = c->in[0];
    int64_t n = tensor_numel(x);
    int64_t blocks = (n + THREADS * SUMSQ_PER_THREAD - 1) / (THREADS * SUMSQ_PER_THREAD);
    if (blocks < 1) blocks = 1;
    if (blocks > SUMSQ_MAX_BLOCKS) blocks = SUMSQ_MAX_BLOCKS;
    cu_view xv = cu_view_of(x, NULL), out = cu_view_of(c->out[0], NULL);
    if (blocks == 1) {
        CU_LAUNCH(1, THREADS, 0, sumsq_kernel)(xv, n, 1, NULL, out);
        return cu_check_launch("sumsq");
    }
    float *partial = (float *)cu_scratch(sizeof(float) * (size_t)blocks);
    if (!partial) return aspo_error_status();
    CU_LAUNCH((unsigned)blocks, THREADS, 0, sumsq_kernel)(xv, n, 1, partial, out);
    aspo_status s = cu_check_launch("sumsq");
    if (s) return s;
    cu_view pv = {};
    pv.data = (char *)partial;
    pv.dt = DT_F32;
    CU_LAUNCH(1, THREADS, 0, sumsq_kernel)(pv, blocks, 0, NULL, out);
    return cu_check_launch("sumsq (partials)");
}

// in: x (...,C) contiguous; i[0] = 1: log-softmax; out: y (x's shape).
CU_KERNEL(cu_softmax) { return softmax_rows(c->in[0], NULL, c->out[0], c->p.i[0] != 0); }

// in: y (softmax or log-softmax output), dy; i[0] = 1: log-softmax; out: dx.
CU_KERNEL(cu_softmax_backward)
{
    return softmax_rows(c->in[0], c->in[1], c->out[0], c->p.i[0] != 0);
}

} // extern "C"
