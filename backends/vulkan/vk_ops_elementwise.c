/* Copies, fills and the elementwise ops: one invocation per output element
 * (shaders/copy.comp, fill.comp, elementwise.comp). */
#include "../../shaders/shader_kinds.h"
#include "vk_internal.h"
#include "../../tensor/op_checks.h"

enum { GROUP = 256 }; /* local_size_x of these shaders */

static aspo_status over_output(const char *shader, const tensor *out, const void *params,
                               size_t size)
{
    vk_state *vk = vk_state_of(out->be);
    uint32_t gx, gy;
    vk_groups_1d(vk, tensor_numel(out), GROUP, &gx, &gy);
    return vk_dispatch(vk, shader, NULL, 0, params, size, gx, gy, 1);
}

VK_KERNEL(vk_copy)
{
    struct { vk_view src, dst; } p = {vk_view_of(c->in[0], c->out[0]), vk_view_of(c->out[0], NULL)};
    return over_output("copy", c->out[0], &p, sizeof p);
}

VK_KERNEL(vk_fill)
{
    struct { vk_view dst; float value; float pad_[3]; } p = {vk_view_of(c->out[0], NULL), c->p.f[0], {0}};
    return over_output("fill", c->out[0], &p, sizeof p);
}

/* The parameter block of shaders/elementwise.comp. */
typedef struct elementwise_params {
    vk_view a, b, c, o;
    int32_t kind, sub;
    float f;
    int32_t pad_;
} elementwise_params;

static aspo_status elementwise(const op_call *c, int kind, int sub, float f)
{
    const tensor *o = c->out[0];
    elementwise_params p = {.o = vk_view_of(o, NULL), .kind = kind, .sub = sub, .f = f};
    vk_view *in[3] = {&p.a, &p.b, &p.c};
    for (int i = 0; i < c->n_in && i < 3; i++) *in[i] = vk_view_of(c->in[i], o);
    for (int i = c->n_in; i < 3; i++) *in[i] = p.a; /* unused, but a valid address */
    return over_output("elementwise", o, &p, sizeof p);
}

/* The kind in p.i[0] is one of `count`: the shader gives NaN for any other. */
VK_KERNEL(vk_binary)
{
    aspo_status s = op_check_kind(c, "binary", BINARY_COUNT);
    return s ? s : elementwise(c, ELEMENTWISE_BINARY, (int)c->p.i[0], 0);
}

VK_KERNEL(vk_scale) { return elementwise(c, ELEMENTWISE_SCALE, 0, c->p.f[0]); }

VK_KERNEL(vk_unary)
{
    aspo_status s = op_check_kind(c, "unary", UNARY_COUNT);
    return s ? s : elementwise(c, ELEMENTWISE_UNARY, (int)c->p.i[0], 0);
}

VK_KERNEL(vk_unary_backward)
{
    aspo_status s = op_check_kind(c, "unary backward", UNARY_COUNT);
    return s ? s : elementwise(c, ELEMENTWISE_UNARY_BACKWARD, (int)c->p.i[0], 0);
}

VK_KERNEL(vk_masked_fill) { return elementwise(c, ELEMENTWISE_MASKED_FILL, 0, c->p.f[0]); }
