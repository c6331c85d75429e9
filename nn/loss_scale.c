#include "loss_scale.h"

#include <math.h>

loss_scale loss_scale_defaults(bool enabled)
{
    return (loss_scale){.enabled = enabled, .scale = enabled ? 65536.0 : 1.0,
                        .growth_interval = 2000};
}

aspo_status loss_scale_unscale(const loss_scale *ls, param_store *ps)
{
    if (!ls->enabled) return ASPO_OK;
    return param_store_scale_grads(ps, (float)(1.0 / ls->scale)); /* a power of two: exact */
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
