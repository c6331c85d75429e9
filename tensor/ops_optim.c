/* The optimizer step as an op: AdamW exactly as torch.optim.AdamW (decoupled weight decay,
 * bias-corrected moments). It updates param, m and v in place and is never recorded. */
#include <math.h>

#include "op_backward.h"
#include "tensor_ops.h"

static aspo_status check_state(const char *what, const tensor *t, const tensor *param)
{
    char a[96], b[96];
    if (t->dt != DT_F32 || !tensor_same_shape(t, param) || !tensor_is_contiguous(t))
        return aspo_fail(ASPO_ERR_SHAPE,
                         "adamw: %s %s must be contiguous f32 of the parameter's shape %s", what,
                         tensor_describe(t, a, sizeof a), tensor_describe(param, b, sizeof b));
    if (t->be != param->be)
        return aspo_fail(ASPO_ERR_USAGE, "adamw: %s is on backend %s, the parameter on %s", what,
                         t->be->name, param->be->name);
    return ASPO_OK;
}

aspo_status tensor_adamw_update(tensor *param, tensor *grad, tensor *m, tensor *v,
                                const adamw_hparams *h)
{
    if (!param || !grad || !m || !v || !h)
        return aspo_error_status() ? aspo_error_status()
                                   : aspo_fail(ASPO_ERR_USAGE, "adamw: a NULL argument");
    aspo_status s;
    if ((s = check_state("parameter", param, param)) || (s = check_state("grad", grad, param)) ||
        (s = check_state("exp_avg", m, param)) || (s = check_state("exp_avg_sq", v, param)))
        return s;
    if (h->step < 1)
        return aspo_fail(ASPO_ERR_USAGE, "adamw %s: step %lld; steps count from 1",
                         param->name ? param->name : "", (long long)h->step);
    if (!(h->beta1 >= 0.0f && h->beta1 < 1.0f) || !(h->beta2 >= 0.0f && h->beta2 < 1.0f) ||
        !(h->eps >= 0.0f) || !isfinite(h->lr) || !isfinite(h->weight_decay) || isinf(h->eps))
        return aspo_fail(ASPO_ERR_USAGE,
                         "adamw: betas (%g, %g) must lie in [0, 1), eps %g >= 0, lr %g and "
                         "weight decay %g finite",
                         (double)h->beta1, (double)h->beta2, (double)h->eps, (double)h->lr,
                         (double)h->weight_decay);
    /* Bias corrections in double as torch does them in Python (1 - beta ** step). */
    double bc1 = 1.0 - pow((double)h->beta1, (double)h->step);
    double bc2 = 1.0 - pow((double)h->beta2, (double)h->step);
    op_call call = {.op = OP_ADAMW, .n_in = 4, .n_out = 1, .in = {param, grad, m, v},
                    .out = {param},
                    .p.f = {h->lr, h->beta1, h->beta2, h->eps, h->weight_decay, (float)bc1,
                            (float)bc2}};
    return op_run_kernel(&call);
}
