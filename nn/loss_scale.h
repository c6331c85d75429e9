/* Dynamic loss scaling for f16 activations, as torch.cuda.amp.GradScaler: the loss's
 * gradient is multiplied by `scale` so small gradients survive f16's range in the backward
 * (f16's smallest normal is 6e-5), the parameters' f32 gradients are divided by it before
 * clipping and the optimizer, and a step whose gradients overflowed (Inf or NaN) is not
 * taken: the scale halves and the step is run again. After `growth_interval` steps without
 * an overflow the scale doubles. bf16 has f32's range and needs none of this. */
#ifndef ASPO_LOSS_SCALE_H
#define ASPO_LOSS_SCALE_H

#include <stdbool.h>
#include <stdint.h>

#include "tensor/params.h"

typedef struct loss_scale {
    bool enabled;
    double scale;            /* GradScaler's init_scale: 2^16 */
    int64_t growth_interval; /* 2000 */
    int64_t good_steps;      /* since the last overflow or growth */
    int64_t overflows;       /* steps re-run, over the run */
} loss_scale;

/* Disabled: scale 1, nothing to do. */
loss_scale loss_scale_defaults(bool enabled);
/* Divides every gradient of ps by the scale (no-op when disabled). */
aspo_status loss_scale_unscale(const loss_scale *ls, param_store *ps);
/* After a step: overflow halves the scale and restarts the count; else the count grows and
 * the scale doubles at growth_interval. An error when the scale falls below 2^-24: the
 * gradients are not finite at any scale (a NaN, not an overflow, reached them). */
aspo_status loss_scale_update(loss_scale *ls, bool overflow);

#endif
