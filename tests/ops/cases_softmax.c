/* Softmax family: softmax and log-softmax over the last dim (odd shapes, strided views,
 * bf16, large logits), gather_logprobs with ignored rows and a language-model-sized row,
 * and cross-entropy with an ignore index. References in double. */
#include <math.h>
#include <stdlib.h>

#include "op_cases.h"

/* ---- softmax / log-softmax; ip[0] = 1 for log-softmax ---- */

static void ref_softmax(const ref_args *a, double *out)
{
    const case_input *x = &IN(a, 0);
    int64_t C = x->shape[x->ndim - 1], R = a->numel[0] / C;
    for (int64_t r = 0; r < R; r++) {
        const double *row = a->in[0] + r * C;
        double m = -INFINITY, s = 0;
        for (int64_t j = 0; j < C; j++) m = fmax(m, row[j]);
        for (int64_t j = 0; j < C; j++) s += exp(row[j] - m);
        for (int64_t j = 0; j < C; j++)
            out[r * C + j] = a->c->ip[0] ? row[j] - m - log(s) : exp(row[j] - m) / s;
    }
}

static tensor *run_softmax(tensor **in, const op_case *c)
{
    return c->ip[0] ? tensor_log_softmax(in[0]) : tensor_softmax(in[0]);
}

/* ---- gather_logprobs / cross_entropy; ip[0] = ignore index, ip[1] = 1: ignore all ---- */

/* The fixed rule both run and reference use to mark rows ignored: rows 2, 5, 8, ... */
static bool row_ignored(const op_case *c, int64_t n) { return c->ip[1] || n % 3 == 2; }

/* Targets drawn in [0,V) by the runner, with the ignored rows set to the ignore index. */
static tensor *make_targets(tensor *drawn, const op_case *c)
{
    int64_t N = tensor_numel(drawn);
    int32_t *ids = malloc(sizeof(int32_t) * (N ? N : 1));
    tensor *t = NULL;
    if (tensor_to_host(drawn, ids) == ASPO_OK) {
        for (int64_t n = 0; n < N; n++)
            if (row_ignored(c, n)) ids[n] = (int32_t)c->ip[0];
        t = tensor_from_host(DT_I32, drawn->ndim, drawn->shape, ids);
    }
    free(ids);
    return t;
}

/* log p(target) of row n in double, or 0 for an ignored row. */
static double ref_logp(const ref_args *a, int64_t n)
{
    const case_input *x = &IN(a, 0);
    int64_t V = x->shape[x->ndim - 1];
    if (row_ignored(a->c, n)) return 0;
    const double *row = a->in[0] + n * V;
    double m = -INFINITY, s = 0;
    for (int64_t v = 0; v < V; v++) m = fmax(m, row[v]);
    for (int64_t v = 0; v < V; v++) s += exp(row[v] - m);
    return row[(int64_t)a->in[1][n]] - m - log(s);
}

static void ref_gather(const ref_args *a, double *out)
{
    for (int64_t n = 0; n < a->numel[1]; n++) out[n] = ref_logp(a, n);
}

static tensor *run_gather(tensor **in, const op_case *c)
{
    return tensor_gather_logprobs(in[0], make_targets(in[1], c), (int)c->ip[0]);
}

/* torch.nn.functional.cross_entropy(reduction='mean', ignore_index=...): 0 if all ignored. */
static void ref_cross_entropy(const ref_args *a, double *out)
{
    double sum = 0;
    int64_t count = 0;
    for (int64_t n = 0; n < a->numel[1]; n++)
        if (!row_ignored(a->c, n)) sum -= ref_logp(a, n), count++;
    out[0] = count ? sum / count : 0;
}

static tensor *run_cross_entropy(tensor **in, const op_case *c)
{
    return tensor_cross_entropy(in[0], make_targets(in[1], c), (int)c->ip[0]);
}

#define X(dt, layout, lo, hi, ...) {dt, (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), \
                                     {__VA_ARGS__}, layout, true, lo, hi}
/* Targets: integers in [0,V), no gradient. */
#define TGT(V, ...) {DT_I32, (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), \
                     {__VA_ARGS__}, LAYOUT_CONTIGUOUS, false, 0, V}
#define TGT_SCALAR(V) {DT_I32, 0, {0}, LAYOUT_CONTIGUOUS, false, 0, V}
#define SOFTMAX(name, log, ftol, gtol, x) {name, 1, {x}, {log}, {0}, run_softmax, ref_softmax, ftol, gtol}
#define GATHER(name, ignore, all, x, t) {name, 2, {x, t}, {ignore, all}, {0}, run_gather, ref_gather, 0, 0}
#define XENT(name, ignore, all, x, t) {name, 2, {x, t}, {ignore, all}, {0}, run_cross_entropy, ref_cross_entropy, 0, 0}

/* f32 cases keep the runner's defaults (NMSE 1e-10 forward, 1e-6 against finite
 * differences): one max-subtracted row sum in double, f32 output; observed ~1e-15 (the
 * 5000-wide row ~1e-13). bf16 logits in gather_logprobs are only widened: f32 math, f32 out.
 * bf16 output: every y is rounded to 8 mantissa bits (relative error <= 2^-9, NMSE
 * <= 4e-6); backward reads that rounded y, so dx carries the same relative error. */
#define BF16_TOL 1e-5

const op_case cases_softmax[] = {
    SOFTMAX("softmax_3d", 0, 0, 0, X(DT_F32, LAYOUT_CONTIGUOUS, -3, 3, 3, 7, 13)),
    SOFTMAX("log_softmax_3d", 1, 0, 0, X(DT_F32, LAYOUT_CONTIGUOUS, -3, 3, 3, 7, 13)),
    SOFTMAX("softmax_sliced", 0, 0, 0, X(DT_F32, LAYOUT_SLICED, -3, 3, 5, 11)),
    SOFTMAX("log_softmax_sliced", 1, 0, 0, X(DT_F32, LAYOUT_SLICED, -3, 3, 2, 3, 9)),
    SOFTMAX("softmax_1d", 0, 0, 0, X(DT_F32, LAYOUT_CONTIGUOUS, -3, 3, 21)),
    SOFTMAX("softmax_transposed", 0, 0, 0, X(DT_F32, LAYOUT_TRANSPOSED, -3, 3, 6, 9)),
    SOFTMAX("softmax_bf16", 0, BF16_TOL, BF16_TOL, X(DT_BF16, LAYOUT_CONTIGUOUS, -3, 3, 4, 5, 17)),
    SOFTMAX("log_softmax_bf16", 1, BF16_TOL, BF16_TOL, X(DT_BF16, LAYOUT_CONTIGUOUS, -3, 3, 4, 5, 17)),
    /* Logits in [-50,50]: exp(50) ~ 5e21 would lose every small term without the max. */
    SOFTMAX("softmax_large", 0, 0, 0, X(DT_F32, LAYOUT_CONTIGUOUS, -50, 50, 4, 33)),
    SOFTMAX("log_softmax_large", 1, 0, 0, X(DT_F32, LAYOUT_CONTIGUOUS, -50, 50, 4, 33)),
    /* Rows 2 and 5 of 7 take the ignore index -100. */
    GATHER("gather_logprobs", -100, 0, X(DT_F32, LAYOUT_CONTIGUOUS, -3, 3, 7, 11), TGT(11, 7)),
    GATHER("gather_logprobs_sliced", -100, 0, X(DT_F32, LAYOUT_SLICED, -3, 3, 6, 9), TGT(9, 6)),
    GATHER("gather_logprobs_bf16", -1, 0, X(DT_BF16, LAYOUT_CONTIGUOUS, -3, 3, 5, 37), TGT(37, 5)),
    /* (B,T,V) logits with (B,T) targets, a vocabulary-sized row. */
    GATHER("gather_logprobs_vocab", -100, 0, X(DT_F32, LAYOUT_CONTIGUOUS, -4, 4, 2, 3, 5000),
           TGT(5000, 2, 3)),
    /* One row: logits (V) with a 0-d target. */
    GATHER("gather_logprobs_one_row", -100, 0, X(DT_F32, LAYOUT_CONTIGUOUS, -3, 3, 6),
           TGT_SCALAR(6)),
    XENT("cross_entropy", -100, 0, X(DT_F32, LAYOUT_CONTIGUOUS, -3, 3, 7, 11), TGT(11, 7)),
    XENT("cross_entropy_3d", -100, 0, X(DT_F32, LAYOUT_CONTIGUOUS, -3, 3, 2, 4, 13), TGT(13, 2, 4)),
    XENT("cross_entropy_all_ignored", -100, 1, X(DT_F32, LAYOUT_CONTIGUOUS, -3, 3, 4, 6), TGT(6, 4)),
    {0},
};
