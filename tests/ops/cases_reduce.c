/* Sums and means over dims. */
#include "op_cases.h"

/* Sum over the dims in mask ip[0] (keepdim or not: same row-major order), scaled by fp[0]. */
static void ref_sum(const ref_args *a, double *out)
{
    const case_input *x = &IN(a, 0);
    int64_t n_out = ref_numel(a->out_ndim, a->out_shape);
    for (int64_t o = 0; o < n_out; o++) out[o] = 0;
    int64_t kept[4];
    for (int d = 0; d < x->ndim; d++) kept[d] = (a->c->ip[0] >> d) & 1 ? 1 : x->shape[d];
    for (int64_t i = 0; i < a->numel[0]; i++) {
        int64_t rem = i, o = 0, stride = 1;
        for (int d = x->ndim - 1; d >= 0; d--) {
            int64_t idx = rem % x->shape[d];
            rem /= x->shape[d];
            if (kept[d] != 1) o += idx * stride;
            stride *= kept[d];
        }
        out[o] += a->in[0][i] * a->c->fp[0];
    }
}

static tensor *run_sum(tensor **in, const op_case *c)
{
    if (c->fp[0] == 1.0) return tensor_sum_dims(in[0], (unsigned)c->ip[0], c->ip[1]);
    return tensor_mean_dims(in[0], (unsigned)c->ip[0], c->ip[1]);
}

static tensor *run_sum_all(tensor **in, const op_case *c)
{
    (void)c;
    return tensor_sum_all(in[0]);
}

#define X(layout, ...) {DT_F32, 3, {__VA_ARGS__}, layout, true, -2, 2}

const op_case cases_reduce[] = {
    {"sum_last", 1, {X(LAYOUT_CONTIGUOUS, 3, 5, 7)}, {4, 0}, {1.0}, run_sum, ref_sum, 0, 0},
    {"sum_first_last_keepdim", 1, {X(LAYOUT_SLICED, 3, 5, 7)}, {5, 1}, {1.0}, run_sum, ref_sum, 0, 0},
    {"mean_middle", 1, {X(LAYOUT_TRANSPOSED, 2, 6, 3)}, {2, 0}, {1.0 / 6}, run_sum, ref_sum, 0, 0},
    {"sum_all", 1, {X(LAYOUT_TRANSPOSED, 3, 4, 5)}, {7, 0}, {1.0}, run_sum_all, ref_sum, 0, 0},
    {0},
};
