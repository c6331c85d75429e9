/* Views, copies, casts and concat: values move, gradients must move back. */
#include <string.h>

#include "op_cases.h"

/* Reference for ops whose output is the input in row-major order. */
static void ref_identity(const ref_args *a, double *out) { memcpy(out, a->in[0], sizeof(double) * a->numel[0]); }

static tensor *run_reshape(tensor **in, const op_case *c)
{
    (void)c;
    return tensor_reshape(in[0], DIMS(-1, 4));
}

static tensor *run_contiguous(tensor **in, const op_case *c)
{
    (void)c;
    /* contiguous() of a contiguous tensor is the tensor itself: scale keeps a new node */
    return tensor_scale(tensor_contiguous(in[0]), 1.0f);
}

static tensor *run_cast(tensor **in, const op_case *c) { return tensor_cast(in[0], (dtype)c->ip[0]); }

/* permute (0,2,1,3) of a 4-D input */
static void ref_permute(const ref_args *a, double *out)
{
    const int64_t *s = IN(a, 0).shape;
    for (int64_t i = 0; i < s[0]; i++)
        for (int64_t j = 0; j < s[2]; j++)
            for (int64_t k = 0; k < s[1]; k++)
                for (int64_t l = 0; l < s[3]; l++)
                    *out++ = a->in[0][((i * s[1] + k) * s[2] + j) * s[3] + l];
}

static tensor *run_permute(tensor **in, const op_case *c)
{
    (void)c;
    return tensor_contiguous(tensor_permute(in[0], (const int[]){0, 2, 1, 3}));
}

/* slice of dim 1, [ip[0], ip[0]+ip[1]) of a 3-D input */
static void ref_slice(const ref_args *a, double *out)
{
    const int64_t *s = IN(a, 0).shape;
    for (int64_t i = 0; i < s[0]; i++)
        for (int64_t j = a->c->ip[0]; j < a->c->ip[0] + a->c->ip[1]; j++)
            for (int64_t k = 0; k < s[2]; k++) *out++ = a->in[0][(i * s[1] + j) * s[2] + k];
}

static tensor *run_slice(tensor **in, const op_case *c)
{
    return tensor_slice(in[0], 1, c->ip[0], c->ip[1]);
}

static void ref_expand(const ref_args *a, double *out)
{
    int64_t n = ref_numel(a->out_ndim, a->out_shape);
    for (int64_t o = 0; o < n; o++)
        out[o] = a->in[0][ref_broadcast_index(o, a->out_ndim, a->out_shape, IN(a, 0).ndim,
                                              IN(a, 0).shape)];
}

static tensor *run_expand(tensor **in, const op_case *c)
{
    (void)c;
    return tensor_expand(in[0], DIMS(3, 2, 4));
}

/* concat along dim 1 of three 3-D inputs */
static void ref_concat(const ref_args *a, double *out)
{
    int64_t outer = IN(a, 0).shape[0], inner = IN(a, 0).shape[2];
    for (int64_t i = 0; i < outer; i++)
        for (int k = 0; k < a->c->n_inputs; k++) {
            int64_t rows = IN(a, k).shape[1];
            for (int64_t j = 0; j < rows * inner; j++) *out++ = a->in[k][i * rows * inner + j];
        }
}

static tensor *run_concat(tensor **in, const op_case *c)
{
    return tensor_concat(in, c->n_inputs, 1);
}

#define X(dt, layout, ...) {dt, 3, {__VA_ARGS__}, layout, true, -2, 2}

const op_case cases_view[] = {
    {"reshape_of_sliced", 1, {X(DT_F32, LAYOUT_SLICED, 2, 3, 4)}, {0}, {0}, run_reshape, ref_identity, 0, 0},
    {"contiguous_of_transposed", 1, {X(DT_F32, LAYOUT_TRANSPOSED, 2, 5, 3)}, {0}, {0}, run_contiguous, ref_identity, 0, 0},
    {"permute", 1, {{DT_F32, 4, {2, 3, 4, 5}, LAYOUT_CONTIGUOUS, true, -2, 2}}, {0}, {0}, run_permute, ref_permute, 0, 0},
    {"slice", 1, {X(DT_F32, LAYOUT_CONTIGUOUS, 3, 5, 4)}, {1, 3}, {0}, run_slice, ref_slice, 0, 0},
    {"expand", 1, {{DT_F32, 2, {1, 4}, LAYOUT_CONTIGUOUS, true, -2, 2}}, {0}, {0}, run_expand, ref_expand, 0, 0},
    /* f32 -> bf16 rounds each value to 8 mantissa bits: NMSE up to ~(2^-9)^2. */
    {"cast_f32_bf16", 1, {X(DT_F32, LAYOUT_SLICED, 2, 3, 7)}, {DT_BF16}, {0}, run_cast, ref_identity, 1e-5, 0},
    {"cast_f32_f16", 1, {X(DT_F32, LAYOUT_CONTIGUOUS, 2, 3, 7)}, {DT_F16}, {0}, run_cast, ref_identity, 1e-6, 0},
    {"cast_bf16_f32", 1, {X(DT_BF16, LAYOUT_TRANSPOSED, 2, 3, 7)}, {DT_F32}, {0}, run_cast, ref_identity, 0, 0},
    {"concat", 3, {X(DT_F32, LAYOUT_CONTIGUOUS, 2, 3, 5), X(DT_F32, LAYOUT_SLICED, 2, 1, 5), X(DT_F32, LAYOUT_TRANSPOSED, 2, 4, 5)},
     {0}, {0}, run_concat, ref_concat, 0, 0},
    {0},
};
