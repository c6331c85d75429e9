/* Ops with no gradient of their own: the AdamW update and the sum of squares used for
 * gradient norms. The runner still checks them against references and other backends. */
#include <math.h>

#include "op_cases.h"

static const adamw_hparams HP = {.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f,
                                 .weight_decay = 0.1f, .step = 3};

/* in: param, grad, m, v (v >= 0): returns the updated parameter (copies are updated, the
 * case's inputs stay as the reference sees them). */
static tensor *run_adamw(tensor **in, const op_case *c)
{
    (void)c;
    tensor *p = tensor_cast(in[0], DT_F32), *m = tensor_cast(in[2], DT_F32),
           *v = tensor_cast(in[3], DT_F32);
    return tensor_adamw_update(p, tensor_contiguous(in[1]), m, v, &HP) ? NULL : p;
}

/* torch.optim.AdamW's single-tensor step in double. */
static void ref_adamw(const ref_args *a, double *out)
{
    double bc1 = 1 - pow(HP.beta1, (double)HP.step), bc2 = 1 - pow(HP.beta2, (double)HP.step);
    for (int64_t i = 0; i < a->numel[0]; i++) {
        double p = a->in[0][i] * (1 - (double)HP.lr * HP.weight_decay), g = a->in[1][i];
        double m = a->in[2][i] * HP.beta1 + g * (1 - (double)HP.beta1);
        double v = a->in[3][i] * HP.beta2 + g * g * (1 - (double)HP.beta2);
        out[i] = p - HP.lr / bc1 * m / (sqrt(v) / sqrt(bc2) + HP.eps);
    }
}

static tensor *run_sumsq(tensor **in, const op_case *c)
{
    (void)c;
    return tensor_sumsq(in[0]);
}

static void ref_sumsq(const ref_args *a, double *out)
{
    *out = 0;
    for (int64_t i = 0; i < a->numel[0]; i++) *out += a->in[0][i] * a->in[0][i];
}

#define V(layout, lo, hi, ...) {DT_F32, 2, {__VA_ARGS__}, layout, false, lo, hi}

const op_case cases_optim[] = {
    {"adamw", 4, {V(LAYOUT_CONTIGUOUS, -1, 1, 7, 33), V(LAYOUT_SLICED, -1, 1, 7, 33),
                  V(LAYOUT_CONTIGUOUS, -0.1, 0.1, 7, 33), V(LAYOUT_CONTIGUOUS, 0, 0.01, 7, 33)},
     {0}, {0}, run_adamw, ref_adamw, 0, 0},
    {"sumsq", 1, {V(LAYOUT_TRANSPOSED, -1, 1, 9, 301)}, {0}, {0}, run_sumsq, ref_sumsq, 0, 0},
    {"sumsq_bf16", 1, {{DT_BF16, 3, {3, 5, 7}, LAYOUT_CONTIGUOUS, false, -1, 1}}, {0}, {0},
     run_sumsq, ref_sumsq, 0, 0},
    {0},
};
