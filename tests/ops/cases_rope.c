/* RoPE: tables from positions that are not 0..T-1 (a continued sequence and a
 * left-padded one), per-batch and shared tables, linear scaling, x given as a permuted
 * (B,T,H,D) view, and explicit cos/sin whose halves differ (checks the transpose used in
 * backward without assuming c1 == c2). The reference recomputes the tables in double. */
#include <math.h>
#include <string.h>

#include "op_cases.h"

enum { X_BHTD = 0, X_BTHD = 1, X_EXPLICIT = 2 }; /* ip[0]: how x and the tables are given */

/* (2,5) positions: batch 0 continues after 5 tokens, batch 1 is left-padded the way
 * transformers fills position_ids (cumsum(mask) - 1, padding set to 1). */
static const int32_t positions[2][5] = {{5, 6, 7, 8, 9}, {1, 1, 0, 1, 2}};

static void ref_rope(const ref_args *a, double *out)
{
    const op_case *c = a->c;
    const case_input *x = &IN(a, 0);
    int64_t B, H, T, D = x->shape[3];
    if (c->ip[0] == X_BTHD) B = x->shape[0], T = x->shape[1], H = x->shape[2];
    else B = x->shape[0], H = x->shape[1], T = x->shape[2];
    int64_t half = D / 2, table_b = c->ip[1];
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t t = 0; t < T; t++)
                for (int64_t j = 0; j < D; j++) {
                    int64_t i = j % half, cb = table_b == 1 ? 0 : b;
                    double cs, sn;
                    if (c->ip[0] == X_EXPLICIT) {
                        cs = a->in[1][(cb * T + t) * D + j];
                        sn = a->in[2][(cb * T + t) * D + j];
                    } else {
                        double inv_freq = pow(c->fp[0], -2.0 * (double)i / (double)D);
                        double angle = positions[cb][t] / c->fp[1] * inv_freq;
                        cs = cos(angle);
                        sn = sin(angle);
                    }
                    int64_t xo = c->ip[0] == X_BTHD ? ((b * T + t) * H + h) * D
                                                    : ((b * H + h) * T + t) * D;
                    double x1 = a->in[0][xo + i], x2 = a->in[0][xo + half + i];
                    /* x*cos + rotate_half(x)*sin, rotate_half(x) = (-x2, x1) */
                    double rot = j < half ? -x2 : x1;
                    out[((b * H + h) * T + t) * D + j] = a->in[0][xo + j] * cs + rot * sn;
                }
}

/* Bad arguments must come back as errors, not crashes: an odd head size for the tables
 * and cos/sin whose T does not match x. */
static bool refuses_bad_arguments(tensor *x)
{
    tensor *cos, *sin;
    int32_t pos[3] = {0, 1, 2};
    if (tensor_rope_tables(pos, 1, 3, 7, 10000, 1, &cos, &sin) != ASPO_ERR_USAGE || cos)
        return false;
    aspo_error_clear();
    if (tensor_rope_tables(pos, 1, 3, x->shape[3], 10000, 1, &cos, &sin)) return false;
    bool refused = !tensor_rope(x, cos, sin) && aspo_error_status() == ASPO_ERR_SHAPE;
    aspo_error_clear();
    return refused;
}

static tensor *run_rope(tensor **in, const op_case *c)
{
    tensor *x = in[0], *cos = NULL, *sin = NULL;
    if (c->ip[2] && !refuses_bad_arguments(x)) {
        aspo_fail_replace(ASPO_ERR_USAGE, "rope accepted bad arguments (last message: %s)",
                          aspo_error_message());
        return NULL;
    }
    if (c->ip[0] == X_BTHD) x = tensor_permute(x, (const int[]){0, 2, 1, 3}); /* (B,H,T,D) */
    if (c->ip[0] == X_EXPLICIT) {
        cos = in[1];
        sin = in[2];
    } else {
        /* One row of positions per table batch; the flat array is (table_b, T). */
        int64_t table_b = c->ip[1], T = x->shape[2];
        int32_t pos[2 * 5];
        for (int64_t b = 0; b < table_b; b++) memcpy(pos + b * T, positions[b], sizeof(int32_t) * T);
        if (tensor_rope_tables(pos, table_b, T, x->shape[3], c->fp[0], c->fp[1], &cos, &sin))
            return NULL;
    }
    return tensor_rope(x, cos, sin);
}

#define X4(a, b, c, d) {DT_F32, 4, {a, b, c, d}, LAYOUT_CONTIGUOUS, true, -2, 2}
#define ROPE(name, mode, table_b, errors, theta, scale, ...)                                  \
    {name, 1, {__VA_ARGS__}, {mode, table_b, errors}, {theta, scale}, run_rope, ref_rope, 0, 0}

const op_case cases_rope[] = {
    /* f32 tables vs double: angles up to 9 rad carry ~1e-6 absolute error, NMSE ~1e-12. */
    ROPE("rope_contiguous", X_BHTD, 2, 1, 10000, 1, X4(2, 3, 5, 8)),
    ROPE("rope_permuted_view", X_BTHD, 2, 0, 10000, 1, X4(2, 5, 3, 8)),
    ROPE("rope_shared_table_linear_scaling", X_BHTD, 1, 0, 500000, 2, X4(2, 3, 5, 8)),
    /* Half-precision activations: each output rounded once to bf16 (NMSE <= ~4e-6). */
    {"rope_bf16", 1, {{DT_BF16, 4, {2, 3, 5, 8}, LAYOUT_CONTIGUOUS, true, -2, 2}}, {X_BHTD, 2, 0},
     {10000, 1}, run_rope, ref_rope, 1e-5, 0},
    {"rope_explicit_tables", 3,
     {X4(2, 2, 4, 6), {DT_F32, 3, {1, 4, 6}, LAYOUT_CONTIGUOUS, false, -1, 1},
      {DT_F32, 3, {1, 4, 6}, LAYOUT_SLICED, false, -1, 1}},
     {X_EXPLICIT, 1, 0}, {0}, run_rope, ref_rope, 0, 0},
    {0},
};
