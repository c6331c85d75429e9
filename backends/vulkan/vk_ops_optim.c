/* The training-only elementwise ops: the AdamW step (shaders/adamw.comp) and dropout
 * (shaders/dropout.comp), whose mask must match the CPU's bit for bit. */
#include <math.h>

#include "vk_internal.h"

enum { GROUP = 256 }; /* local_size_x of both shaders */

/* The parameter block of shaders/adamw.comp. */
typedef struct adamw_params {
    uint64_t param, grad, m, v;
    int32_t n;
    float decay, one_minus_beta1, one_minus_beta2, beta1, beta2, eps, step_size, bc2_sqrt;
    int32_t pad_[3];
} adamw_params;

_Static_assert(sizeof(adamw_params) % 16 == 0, "std430 blocks are 16-byte multiples");

VK_KERNEL(vk_adamw)
{
    for (int i = 0; i < 4; i++)
        if (c->in[i]->dt != DT_F32)
            return aspo_fail(ASPO_ERR_UNSUPPORTED, "adamw on backend vulkan: input %d is %s; "
                             "f32 only", i, dtype_name(c->in[i]->dt));
    int64_t n = tensor_numel(c->in[0]);
    if (n > INT32_MAX)
        return aspo_fail(ASPO_ERR_UNSUPPORTED, "adamw on backend vulkan: %lld elements in one "
                         "tensor (at most 2^31 - 1)", (long long)n);
    if (n == 0) return ASPO_OK;
    float lr = c->p.f[0], beta1 = c->p.f[1], beta2 = c->p.f[2], wd = c->p.f[4];
    /* The scalars exactly as cpu_adamw forms them (torch's Python doubles, then f32). */
    adamw_params p = {
        .param = (uint64_t)(uintptr_t)c->in[0]->data,
        .grad = (uint64_t)(uintptr_t)c->in[1]->data,
        .m = (uint64_t)(uintptr_t)c->in[2]->data,
        .v = (uint64_t)(uintptr_t)c->in[3]->data,
        .n = (int32_t)n,
        .decay = (float)(1.0 - (double)lr * (double)wd),
        .one_minus_beta1 = (float)(1.0 - (double)beta1),
        .one_minus_beta2 = (float)(1.0 - (double)beta2),
        .beta1 = beta1, .beta2 = beta2, .eps = c->p.f[3],
        .step_size = (float)((double)lr / (double)c->p.f[5]),
        .bc2_sqrt = (float)sqrt((double)c->p.f[6]),
    };
    vk_state *vk = vk_state_of(c->out[0]->be);
    uint32_t gx, gy;
    vk_groups_1d(vk, n, GROUP, &gx, &gy);
    return vk_dispatch(vk, "adamw", NULL, 0, &p, sizeof p, gx, gy, 1);
}

/* The parameter block of shaders/dropout.comp. */
typedef struct dropout_params {
    vk_view x, o;
    uint64_t seed, counter;
    uint32_t threshold;
    float scale;
    int32_t pad_[2];
} dropout_params;

_Static_assert(sizeof(dropout_params) % 16 == 0, "std430 blocks are 16-byte multiples");

VK_KERNEL(vk_dropout)
{
    tensor *out = c->out[0];
    int64_t n = tensor_numel(out);
    if (n > INT32_MAX)
        return aspo_fail(ASPO_ERR_UNSUPPORTED, "dropout on backend vulkan: %lld elements in "
                         "one tensor (at most 2^31 - 1)", (long long)n);
    if (n == 0) return ASPO_OK;
    float p = c->p.f[0];
    /* u = m / 2^24 >= p exactly when m >= ceil(p 2^24) (cpu_dropout's test); the scale is
     * the CPU's f32 1 / (1 - p), not a shader division of another rounding. */
    dropout_params d = {.x = vk_view_of(c->in[0], out), .o = vk_view_of(out, NULL),
                        .seed = (uint64_t)c->p.i[0], .counter = (uint64_t)c->p.i[1],
                        .threshold = (uint32_t)ceilf(p * 16777216.0f),
                        .scale = 1.0f / (1.0f - p)};
    vk_state *vk = vk_state_of(out->be);
    uint32_t gx, gy;
    vk_groups_1d(vk, (n + 3) / 4, GROUP, &gx, &gy);
    return vk_dispatch(vk, "dropout", NULL, 0, &d, sizeof d, gx, gy, 1);
}
