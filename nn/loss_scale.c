#include "loss_scale.h"

#include <math.h>

#include "tensor/autograd.h"

loss_scale loss_scale_defaults(bool enabled)
{
    return (loss_scale){.enabled = enabled, .scale = enabled ? 65536.0 : 1.0,
                        .growth_interval = 2000};
}

aspo_status loss_scale_unscale(const loss_scale *ls, param_store *ps)
{
    if (!ls->enabled) return ASPO_OK;
    float inv = (float)(1.0 / ls->scale); /* a power of two: exact */
    for (int i = 0; i < ps->n; i++) {
        if (!ps->grads || !ps->grads[i]) continue;
        op_call scale = {.op = OP_SCALE, .n_in = 1, .n_out = 1, .in = {ps->grads[i]},
                         .out = {ps->grads[i]}, .p.f = {inv}};
        aspo_status s = op_run_kernel(&scale);
        if (s) return s;
    }
    return ASPO_OK;
}

aspo_status loss_scale_update(loss_scale *ls, bool overflow)
{
    if (!ls->enabled) return ASPO_OK;
    if (!overflow) {
        if (++ls->good_steps >= ls->growth_interval) {
            ls->scale *= 2.0;
            ls->good_steps = 0;
        }
        return ASPO_OK;
    }
    ls->overflows++;
    ls->good_steps = 0;
    ls->scale *= 0.5;
    if (ls->scale < ldexp(1.0, -24))
        return aspo_fail(ASPO_ERR_NUMERIC, "the gradients are not finite even at loss scale "
                         "%g: a NaN or Inf reached them that scaling cannot avoid (lower the "
                         "learning rate, check the data, or use --activation-dtype bf16)",
                         ls->scale * 2.0);
    return ASPO_OK;
}
