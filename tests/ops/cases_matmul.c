/* Matmul: plain, batched, broadcast batch, transposed operands, half-precision weights;
 * and c + a @ b accumulated in place (tensor_matmul_into, GEMM beta = 1). */
#include "op_cases.h"

static void ref_matmul(const ref_args *a, double *out)
{
    const case_input *x = &IN(a, 0), *y = &IN(a, 1);
    int64_t M = x->shape[x->ndim - 2], K = x->shape[x->ndim - 1], N = y->shape[y->ndim - 1];
    int64_t batch = ref_numel(a->out_ndim - 2, a->out_shape);
    int64_t bshape[2] = {1, 1};
    for (int d = 0; d < a->out_ndim - 2; d++) bshape[2 - (a->out_ndim - 2) + d] = a->out_shape[d];
    int64_t xb[2] = {1, 1}, yb[2] = {1, 1};
    for (int d = 0; d < x->ndim - 2; d++) xb[2 - (x->ndim - 2) + d] = x->shape[d];
    for (int d = 0; d < y->ndim - 2; d++) yb[2 - (y->ndim - 2) + d] = y->shape[d];
    for (int64_t b = 0; b < batch; b++) {
        int64_t b0 = b / bshape[1], b1 = b % bshape[1];
        int64_t xo = ((xb[0] > 1 ? b0 : 0) * xb[1] + (xb[1] > 1 ? b1 : 0)) * M * K;
        int64_t yo = ((yb[0] > 1 ? b0 : 0) * yb[1] + (yb[1] > 1 ? b1 : 0)) * K * N;
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                double acc = 0;
                for (int64_t k = 0; k < K; k++) acc += a->in[0][xo + i * K + k] * a->in[1][yo + k * N + j];
                out[(b * M + i) * N + j] = acc;
            }
    }
}

static tensor *run_matmul(tensor **in, const op_case *c)
{
    (void)c;
    return tensor_matmul(in[0], in[1]);
}

/* c + a @ b: the reference's product plus input 2. */
static void ref_matmul_into(const ref_args *a, double *out)
{
    ref_matmul(a, out);
    int64_t n = ref_numel(a->out_ndim, a->out_shape);
    for (int64_t i = 0; i < n; i++) out[i] += a->in[2][i];
}

/* Into a copy of input 2 (the op writes its first operand's memory, and the harness
 * reruns the case on the same inputs); the copy's gradient reaches input 2. */
static tensor *run_matmul_into(tensor **in, const op_case *c)
{
    (void)c;
    return tensor_matmul_into(tensor_scale(in[2], 1.0f), in[0], in[1]);
}

#define M2(dt, layout, grad, r, c) {dt, 2, {r, c}, layout, grad, -1, 1}
#define MM(name, ...) {name, 2, {__VA_ARGS__}, {0}, {0}, run_matmul, ref_matmul, 0, 0}

const op_case cases_matmul[] = {
    MM("matmul_2d", M2(DT_F32, LAYOUT_CONTIGUOUS, true, 7, 5), M2(DT_F32, LAYOUT_CONTIGUOUS, true, 5, 9)),
    MM("matmul_b_transposed", M2(DT_F32, LAYOUT_CONTIGUOUS, true, 6, 13), M2(DT_F32, LAYOUT_TRANSPOSED, true, 13, 11)),
    MM("matmul_a_transposed", M2(DT_F32, LAYOUT_TRANSPOSED, true, 6, 13), M2(DT_F32, LAYOUT_CONTIGUOUS, true, 13, 11)),
    MM("matmul_sliced", M2(DT_F32, LAYOUT_SLICED, true, 6, 13), M2(DT_F32, LAYOUT_SLICED, true, 13, 4)),
    MM("matmul_3d_shared_weight", {DT_F32, 3, {2, 7, 5}, LAYOUT_CONTIGUOUS, true, -1, 1},
       M2(DT_F32, LAYOUT_TRANSPOSED, true, 5, 9)),
    MM("matmul_batched", {DT_F32, 4, {2, 3, 4, 5}, LAYOUT_CONTIGUOUS, true, -1, 1},
       {DT_F32, 4, {2, 3, 5, 6}, LAYOUT_TRANSPOSED, true, -1, 1}),
    MM("matmul_broadcast_batch", {DT_F32, 4, {2, 1, 4, 5}, LAYOUT_CONTIGUOUS, true, -1, 1},
       {DT_F32, 3, {3, 5, 6}, LAYOUT_CONTIGUOUS, true, -1, 1}),
    /* Frozen half-precision weights: dX flows, no dW. 300 columns cross a 256-column panel. */
    MM("matmul_bf16_weight", {DT_F32, 3, {2, 5, 40}, LAYOUT_CONTIGUOUS, true, -1, 1},
       M2(DT_BF16, LAYOUT_TRANSPOSED, false, 40, 300)),
    MM("matmul_f16_weight", M2(DT_F32, LAYOUT_CONTIGUOUS, true, 9, 17), M2(DT_F16, LAYOUT_CONTIGUOUS, false, 17, 7)),
    /* Real sizes, forward only (the backward is this same kernel on transposed views): the
     * vectorized paths and several output tiles; K = 300 sums stay ~1e-6 relative. */
    MM("matmul_large_nn", M2(DT_F32, LAYOUT_CONTIGUOUS, false, 129, 300), M2(DT_F32, LAYOUT_CONTIGUOUS, false, 300, 261)),
    MM("matmul_large_nt", M2(DT_F32, LAYOUT_CONTIGUOUS, false, 129, 300), M2(DT_F32, LAYOUT_TRANSPOSED, false, 300, 261)),
    MM("matmul_large_tn", M2(DT_F32, LAYOUT_TRANSPOSED, false, 129, 300), M2(DT_F32, LAYOUT_CONTIGUOUS, false, 300, 261)),
    MM("matmul_large_tt", M2(DT_F32, LAYOUT_TRANSPOSED, false, 129, 300), M2(DT_F32, LAYOUT_TRANSPOSED, false, 300, 261)),
    MM("matmul_large_bf16_weight", {DT_F32, 3, {2, 70, 256}, LAYOUT_CONTIGUOUS, false, -1, 1},
       M2(DT_BF16, LAYOUT_TRANSPOSED, false, 256, 520)),
    MM("matmul_bf16_activations", M2(DT_BF16, LAYOUT_CONTIGUOUS, true, 9, 17), M2(DT_F32, LAYOUT_CONTIGUOUS, true, 17, 7)),
    /* Both operands half (autocast's products): f32 accumulation, the output rounded once to
     * 8 (bf16) or 11 (f16) mantissa bits, relative error <= 2^-9 (NMSE <= ~4e-6); the
     * backward rounds dy to that dtype first (PyTorch's half gradients), the same bound. */
    {"matmul_bf16_both", 2, {M2(DT_BF16, LAYOUT_CONTIGUOUS, true, 9, 17), M2(DT_BF16, LAYOUT_TRANSPOSED, true, 17, 7)},
     {0}, {0}, run_matmul, ref_matmul, 1e-5, 1e-5},
    {"matmul_f16_both_batched", 2, {{DT_F16, 3, {2, 5, 12}, LAYOUT_CONTIGUOUS, true, -1, 1}, {DT_F16, 3, {2, 12, 6}, LAYOUT_CONTIGUOUS, true, -1, 1}},
     {0}, {0}, run_matmul, ref_matmul, 1e-5, 1e-5},
    {"matmul_large_bf16_both", 2, {{DT_BF16, 3, {2, 70, 256}, LAYOUT_CONTIGUOUS, false, -1, 1}, M2(DT_BF16, LAYOUT_TRANSPOSED, false, 256, 520)},
     {0}, {0}, run_matmul, ref_matmul, 1e-5, 0},
    /* Accumulated: the folded shared-weight path, the batched one, transposed operands,
     * f32 and bf16 (c + a @ b summed in f32 and rounded once: the bound of the half cases
     * above), and real sizes across output tiles. */
    {"matmul_into_2d", 3, {M2(DT_F32, LAYOUT_CONTIGUOUS, true, 7, 5), M2(DT_F32, LAYOUT_TRANSPOSED, true, 5, 9),
                           M2(DT_F32, LAYOUT_CONTIGUOUS, true, 7, 9)},
     {0}, {0}, run_matmul_into, ref_matmul_into, 0, 0},
    {"matmul_into_shared_weight", 3, {{DT_F32, 3, {2, 7, 5}, LAYOUT_CONTIGUOUS, true, -1, 1},
                                      M2(DT_F32, LAYOUT_TRANSPOSED, true, 5, 9),
                                      {DT_F32, 3, {2, 7, 9}, LAYOUT_CONTIGUOUS, true, -1, 1}},
     {0}, {0}, run_matmul_into, ref_matmul_into, 0, 0},
    {"matmul_into_batched", 3, {{DT_F32, 4, {2, 3, 4, 5}, LAYOUT_TRANSPOSED, true, -1, 1},
                                {DT_F32, 4, {2, 3, 5, 6}, LAYOUT_CONTIGUOUS, true, -1, 1},
                                {DT_F32, 4, {2, 3, 4, 6}, LAYOUT_CONTIGUOUS, true, -1, 1}},
     {0}, {0}, run_matmul_into, ref_matmul_into, 0, 0},
    {"matmul_into_bf16", 3, {{DT_BF16, 3, {2, 9, 17}, LAYOUT_CONTIGUOUS, true, -1, 1},
                             M2(DT_BF16, LAYOUT_TRANSPOSED, true, 17, 7),
                             {DT_BF16, 3, {2, 9, 7}, LAYOUT_CONTIGUOUS, true, -1, 1}},
     {0}, {0}, run_matmul_into, ref_matmul_into, 1e-5, 1e-5},
    {"matmul_into_bf16_weight", 3, {{DT_F32, 3, {2, 5, 40}, LAYOUT_CONTIGUOUS, true, -1, 1},
                                    M2(DT_BF16, LAYOUT_TRANSPOSED, false, 40, 300),
                                    {DT_F32, 3, {2, 5, 300}, LAYOUT_CONTIGUOUS, true, -1, 1}},
     {0}, {0}, run_matmul_into, ref_matmul_into, 0, 0},
    {"matmul_into_large", 3, {M2(DT_F32, LAYOUT_CONTIGUOUS, false, 129, 300), M2(DT_F32, LAYOUT_TRANSPOSED, false, 300, 261),
                              M2(DT_F32, LAYOUT_CONTIGUOUS, false, 129, 261)},
     {0}, {0}, run_matmul_into, ref_matmul_into, 0, 0},
    {0},
};
