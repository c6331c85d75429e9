/* Normalisation over the last dim: rmsnorm (Hugging Face LlamaRMSNorm), layernorm
 * (torch.nn.LayerNorm) and l2norm (F.normalize), with double-precision references.
 *
 * Tolerances: unless a case says otherwise the runner's defaults hold. Forward NMSE 1e-10:
 * f32 math with row sums in double leaves ~1e-7 relative error per element (NMSE ~1e-13).
 * Backward NMSE 1e-6: central differences with h = 1e-5 on inputs of magnitude <= 2 are
 * accurate to ~1e-9 here, and the f32 gradient to ~1e-7 relative. Inputs keep rows away
 * from zero norm (x in [-2,2], C >= 7) so the differences are well conditioned. */
#include <math.h>
#include <string.h>

#include "op_cases.h"

/* x (...,C) as (R,C) for the references. */
static void ref_rows(const ref_args *a, int64_t *R, int64_t *C)
{
    *C = IN(a, 0).shape[IN(a, 0).ndim - 1];
    *R = a->numel[0] / *C;
}

static void ref_rmsnorm(const ref_args *a, double *out)
{
    int64_t R, C;
    ref_rows(a, &R, &C);
    const double *x = a->in[0], *w = a->in[1];
    for (int64_t r = 0; r < R; r++) {
        double ss = 0;
        for (int64_t i = 0; i < C; i++) ss += x[r * C + i] * x[r * C + i];
        double rstd = 1 / sqrt(ss / C + a->c->fp[0]);
        for (int64_t i = 0; i < C; i++) out[r * C + i] = x[r * C + i] * rstd * w[i];
    }
}

static void ref_layernorm(const ref_args *a, double *out)
{
    int64_t R, C;
    ref_rows(a, &R, &C);
    const double *x = a->in[0], *w = a->in[1], *b = a->in[2];
    for (int64_t r = 0; r < R; r++) {
        double mean = 0, var = 0;
        for (int64_t i = 0; i < C; i++) mean += x[r * C + i];
        mean /= C;
        for (int64_t i = 0; i < C; i++) var += (x[r * C + i] - mean) * (x[r * C + i] - mean);
        double rstd = 1 / sqrt(var / C + a->c->fp[0]); /* biased variance, as torch */
        for (int64_t i = 0; i < C; i++)
            out[r * C + i] = (x[r * C + i] - mean) * rstd * w[i] + b[i];
    }
}

static void ref_l2norm(const ref_args *a, double *out)
{
    int64_t R, C;
    ref_rows(a, &R, &C);
    const double *x = a->in[0];
    for (int64_t r = 0; r < R; r++) {
        double ss = 0;
        for (int64_t i = 0; i < C; i++) ss += x[r * C + i] * x[r * C + i];
        double denom = fmax(sqrt(ss), a->c->fp[0]);
        for (int64_t i = 0; i < C; i++) out[r * C + i] = x[r * C + i] / denom;
    }
}

static tensor *run_rmsnorm(tensor **in, const op_case *c)
{
    return tensor_rmsnorm(in[0], in[1], (float)c->fp[0]);
}

static tensor *run_layernorm(tensor **in, const op_case *c)
{
    return tensor_layernorm(in[0], in[1], in[2], (float)c->fp[0]);
}

static tensor *run_l2norm(tensor **in, const op_case *c)
{
    return tensor_l2_normalize(in[0], (float)c->fp[0]);
}

/* A call that must fail with `status` and a message mentioning `word`; clears the error. */
static bool fails_with(tensor *result, aspo_status status, const char *word, const char *what)
{
    bool ok = !result && aspo_error_status() == status && strstr(aspo_error_message(), word);
    if (!ok) {
        aspo_fail_replace(ASPO_ERR_USAGE, "%s: expected a %s error naming '%s', got %s (%s)",
                          what, aspo_status_name(status), word,
                          result ? "a result" : aspo_status_name(aspo_error_status()),
                          aspo_error_message());
        return false;
    }
    aspo_error_clear();
    return true;
}

/* Bad shapes, dtypes and eps are errors with a message, not aborts; then the real case. */
static tensor *run_norm_errors(tensor **in, const op_case *c)
{
    tensor *x = in[0], *w = in[1]; /* (3,4,9), (9) */
    tensor *w8 = tensor_zeros(DT_F32, DIMS(8)), *w33 = tensor_zeros(DT_F32, DIMS(3, 3));
    tensor *ids = tensor_zeros(DT_I32, DIMS(2, 9)), *empty = tensor_zeros(DT_F32, DIMS(2, 0));
    tensor *w0 = tensor_zeros(DT_F32, DIMS(0));
    if (!w8 || !w33 || !ids || !empty || !w0) return NULL;
    if (!fails_with(tensor_rmsnorm(x, w8, 1e-6f), ASPO_ERR_SHAPE, "weight", "rmsnorm weight (8)") ||
        !fails_with(tensor_rmsnorm(x, w33, 1e-6f), ASPO_ERR_SHAPE, "weight", "rmsnorm weight (3,3)") ||
        !fails_with(tensor_rmsnorm(ids, w, 1e-6f), ASPO_ERR_SHAPE, "i32", "rmsnorm on i32") ||
        !fails_with(tensor_rmsnorm(empty, w0, 1e-6f), ASPO_ERR_SHAPE, "empty", "rmsnorm C = 0") ||
        !fails_with(tensor_rmsnorm(x, w, -1e-6f), ASPO_ERR_USAGE, "eps", "rmsnorm eps < 0") ||
        !fails_with(tensor_layernorm(x, w, w8, 1e-5f), ASPO_ERR_SHAPE, "bias", "layernorm bias (8)") ||
        !fails_with(tensor_layernorm(x, w8, w, 1e-5f), ASPO_ERR_SHAPE, "weight", "layernorm weight (8)") ||
        !fails_with(tensor_l2_normalize(x, NAN), ASPO_ERR_USAGE, "eps", "l2_normalize eps NaN"))
        return NULL;
    /* A NULL input (an earlier failure) gives NULL without a new error. */
    if (tensor_rmsnorm(NULL, w, 1e-6f) || tensor_layernorm(x, w, NULL, 1e-5f) ||
        tensor_l2_normalize(NULL, 1e-6f) || aspo_error_status()) {
        aspo_fail_replace(ASPO_ERR_USAGE, "a NULL input must give NULL and set no error");
        return NULL;
    }
    return run_rmsnorm(in, c);
}

#define INPUT(dt, layout, grad, lo, hi, ...) \
    {dt, (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), {__VA_ARGS__}, layout, grad, lo, hi}
#define X(layout, grad, ...) INPUT(DT_F32, layout, grad, -2, 2, __VA_ARGS__)
#define WEIGHT(dt, grad, C) INPUT(dt, LAYOUT_CONTIGUOUS, grad, 0.5, 1.5, C)
#define BIAS(dt, grad, C) INPUT(dt, LAYOUT_CONTIGUOUS, grad, -1, 1, C)

const op_case cases_norm[] = {
    {"rmsnorm", 2, {X(LAYOUT_CONTIGUOUS, true, 3, 5, 33), WEIGHT(DT_F32, true, 33)},
     {0}, {1e-6}, run_rmsnorm, ref_rmsnorm, 0, 0},
    /* A frozen half-precision weight: dx flows, no dweight. */
    {"rmsnorm_bf16_weight", 2, {X(LAYOUT_CONTIGUOUS, true, 2, 7, 45), WEIGHT(DT_BF16, false, 45)},
     {0}, {1e-6}, run_rmsnorm, ref_rmsnorm, 0, 0},
    {"rmsnorm_f16_weight", 2, {X(LAYOUT_CONTIGUOUS, true, 9, 13), WEIGHT(DT_F16, false, 13)},
     {0}, {1e-5}, run_rmsnorm, ref_rmsnorm, 0, 0},
    {"rmsnorm_sliced", 2, {X(LAYOUT_SLICED, true, 4, 9, 17), WEIGHT(DT_F32, true, 17)},
     {0}, {1e-5}, run_rmsnorm, ref_rmsnorm, 0, 0},
    {"rmsnorm_transposed", 2, {X(LAYOUT_TRANSPOSED, true, 2, 11, 7), WEIGHT(DT_F32, true, 7)},
     {0}, {1e-6}, run_rmsnorm, ref_rmsnorm, 0, 0},
    /* Frozen input, trainable weight: only dweight is computed. */
    {"rmsnorm_weight_only", 2, {X(LAYOUT_CONTIGUOUS, false, 5, 3, 10), WEIGHT(DT_F32, true, 10)},
     {0}, {1e-6}, run_rmsnorm, ref_rmsnorm, 0, 0},
    /* bf16 activations: y and the normalised x are each rounded to bf16 before and after
     * the weight, as Hugging Face does, so up to 2^-9 relative twice (NMSE ~3e-6); the
     * gradient is computed in f32 from the exact bf16 inputs. */
    {"rmsnorm_bf16_x", 2, {INPUT(DT_BF16, LAYOUT_CONTIGUOUS, true, -2, 2, 3, 5, 21), WEIGHT(DT_BF16, false, 21)},
     {0}, {1e-6}, run_rmsnorm, ref_rmsnorm, 1e-5, 0},
    /* 64 x 600 > the kernels' threading threshold; 600 columns end in a partial block. */
    {"rmsnorm_large", 2, {X(LAYOUT_CONTIGUOUS, true, 64, 600), WEIGHT(DT_F32, true, 600)},
     {0}, {1e-6}, run_rmsnorm, ref_rmsnorm, 0, 0},
    {"rmsnorm_errors", 2, {X(LAYOUT_CONTIGUOUS, true, 3, 4, 9), WEIGHT(DT_F32, true, 9)},
     {0}, {1e-6}, run_norm_errors, ref_rmsnorm, 0, 0},

    {"layernorm", 3, {X(LAYOUT_CONTIGUOUS, true, 2, 7, 19), WEIGHT(DT_F32, true, 19), BIAS(DT_F32, true, 19)},
     {0}, {1e-5}, run_layernorm, ref_layernorm, 0, 0},
    {"layernorm_transposed", 3, {X(LAYOUT_TRANSPOSED, true, 3, 13, 11), WEIGHT(DT_F32, true, 11), BIAS(DT_F32, true, 11)},
     {0}, {1e-5}, run_layernorm, ref_layernorm, 0, 0},
    {"layernorm_sliced_f16_params", 3, {X(LAYOUT_SLICED, true, 5, 23), WEIGHT(DT_F16, false, 23), BIAS(DT_BF16, false, 23)},
     {0}, {1e-6}, run_layernorm, ref_layernorm, 0, 0},
    /* A shifted input (mean ~3): the two-pass variance keeps the normalisation exact. */
    {"layernorm_shifted_frozen_weight", 3, {INPUT(DT_F32, LAYOUT_CONTIGUOUS, true, 1, 5, 4, 3, 9), WEIGHT(DT_F32, false, 9), BIAS(DT_F32, true, 9)},
     {0}, {1e-5}, run_layernorm, ref_layernorm, 0, 0},
    {"layernorm_large", 3, {X(LAYOUT_CONTIGUOUS, true, 48, 701), WEIGHT(DT_F32, true, 701), BIAS(DT_F32, true, 701)},
     {0}, {1e-5}, run_layernorm, ref_layernorm, 0, 0},

    {"l2norm", 1, {X(LAYOUT_CONTIGUOUS, true, 5, 17)}, {0}, {1e-12}, run_l2norm, ref_l2norm, 0, 0},
    {"l2norm_sliced", 1, {X(LAYOUT_SLICED, true, 3, 6, 13)}, {0}, {1e-6}, run_l2norm, ref_l2norm, 0, 0},
    /* Every row's norm (<= sqrt(5)*0.3) is below eps = 1: y = x / eps, no projection. */
    {"l2norm_clamped", 1, {INPUT(DT_F32, LAYOUT_CONTIGUOUS, true, -0.3, 0.3, 4, 5)}, {0}, {1.0},
     run_l2norm, ref_l2norm, 0, 0},
    {0},
};
