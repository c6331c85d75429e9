/* AdamW on f32 contiguous tensors, element by element in the order torch's single-tensor
 * AdamW applies its in-place ops, so each element depends only on its own inputs. */
#include <math.h>

#include "cpu_internal.h"

CPU_KERNEL(cpu_adamw)
{
    float *p = (float *)c->in[0]->data;
    const float *g = (const float *)c->in[1]->data;
    float *m = (float *)c->in[2]->data, *v = (float *)c->in[3]->data;
    float lr = c->p.f[0], beta1 = c->p.f[1], beta2 = c->p.f[2], eps = c->p.f[3],
          wd = c->p.f[4], bc1 = c->p.f[5], bc2 = c->p.f[6];
    for (int i = 0; i < 4; i++)
        if (c->in[i]->dt != DT_F32)
            return aspo_fail(ASPO_ERR_UNSUPPORTED, "adamw on cpu: input %d is %s; f32 only", i,
                             dtype_name(c->in[i]->dt));
    /* Scalars as torch forms them: Python doubles, rounded to f32 where they meet f32
     * tensors. */
    float decay = (float)(1.0 - (double)lr * (double)wd);
    float one_minus_beta1 = (float)(1.0 - (double)beta1);
    float one_minus_beta2 = (float)(1.0 - (double)beta2);
    float step_size = (float)((double)lr / (double)bc1);
    float bc2_sqrt = (float)sqrt((double)bc2);
    int64_t n = tensor_numel(c->in[0]);
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i];
        p[i] *= decay;                                          /* decoupled decay */
        m[i] = m[i] * beta1 + gi * one_minus_beta1;             /* first moment    */
        v[i] = v[i] * beta2 + gi * gi * one_minus_beta2;        /* second moment   */
        float denom = sqrtf(v[i]) / bc2_sqrt + eps;
        p[i] += -step_size * (m[i] / denom);
    }
    return ASPO_OK;
}
