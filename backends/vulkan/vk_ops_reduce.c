/* Reductions: sums over any dims (shaders/sum.comp), the sum of squares (reduce_sumsq.comp)
 * and softmax / log-softmax with their backward (softmax.comp, one workgroup per row). All
 * accumulate in f32 in a fixed order per launch shape; no float atomics, so results are the
 * same run to run. */
#include <limits.h>
#include <stdlib.h>

#include "vk_internal.h"

enum {
    GROUP = 256,             /* local size of sum.comp and the largest of the row shaders */
    SUM_TARGET_GROUPS = 256, /* workgroups that keep a large GPU busy */
    SUM_MIN_PER_LANE = 16,   /* elements per lane below which splitting a sum costs more */
    SUM_MAX_PARTS = 64,
    SUMSQ_PER_THREAD = 4,    /* elements per invocation before sumsq takes another workgroup */
    SUMSQ_MAX_GROUPS = 512,
};

/* Shaders address elements with 32-bit ints: the furthest element of t must fit. */
static aspo_status check_int32(const char *op, const tensor *t)
{
    int64_t far = 0;
    for (int d = 0; d < t->ndim; d++)
        if (t->shape[d] > 0) far += (t->shape[d] - 1) * llabs(t->stride[d]);
    if (tensor_numel(t) <= INT_MAX && far < INT_MAX) return ASPO_OK;
    char b[96];
    return aspo_fail(ASPO_ERR_UNSUPPORTED, "%s on backend vulkan: tensor %s spans more than "
                     "2^31 elements (32-bit shader indices)", op, tensor_describe(t, b, sizeof b));
}

static uint32_t pow2_at_least(int64_t n, uint32_t cap)
{
    uint32_t p = 1;
    while (p < cap && p < n) p <<= 1;
    return p;
}

/* Contiguous f32 of sizes ne at device address addr. */
static vk_view contiguous_f32(void *addr, const int32_t ne[4])
{
    vk_view v = {.addr = (uint64_t)(uintptr_t)addr, .dt = DT_F32};
    int32_t stride = 1;
    for (int d = 3; d >= 0; d--) {
        v.ne[d] = ne[d];
        v.st[d] = stride;
        stride *= ne[d];
    }
    return v;
}

/* A contiguous vector of n elements of dtype dt at device address addr. */
static vk_view vector_view(const void *addr, dtype dt, int64_t n)
{
    return (vk_view){.addr = (uint64_t)(uintptr_t)addr, .dt = (int32_t)dt,
                     .ne = {1, 1, 1, (int32_t)n}, .st = {0, 0, 0, 1}};
}

/* ---- sum over dims ---- */

/* The parameter block of shaders/sum.comp. */
typedef struct sum_params {
    vk_view x, o;
    int32_t red[4]; /* sizes of the reduced dims in x, 1 at the kept ones */
    int32_t n_out, n_red, chunk, pad_;
} sum_params;
_Static_assert(sizeof(sum_params) == 128, "sum_params mirrors sum.comp's Params (std430)");

/* One launch of sum.comp over `parts` chunks of the reduction. A tile of OX outputs by
 * GROUP/OX lanes over the reduction: lanes along the innermost dim when it is reduced,
 * else neighbouring outputs side by side; lanes beyond the reduction's length would idle,
 * so they go to more outputs. */
static aspo_status sum_launch(vk_state *vk, sum_params *p, int64_t parts)
{
    uint32_t ox, ry;
    if (p->red[3] > 1) {
        ry = pow2_at_least(p->n_red, GROUP);
        ox = GROUP / ry;
    } else {
        ox = pow2_at_least(p->n_out, 32);
        ry = pow2_at_least(p->n_red, GROUP / ox);
        ox = GROUP / ry;
    }
    p->chunk = (int32_t)((p->n_red + parts - 1) / parts);
    uint32_t gx, gy;
    vk_groups_1d(vk, p->n_out, ox, &gx, &gy);
    return vk_dispatch(vk, "sum", &ox, 1, p, sizeof *p, gx, gy, (uint32_t)parts);
}

VK_KERNEL(vk_sum)
{
    const tensor *x = c->in[0];
    tensor *out = c->out[0];
    vk_state *vk = vk_state_of(out->be);
    aspo_status s = check_int32("sum", x);
    if (s || (s = check_int32("sum", out))) return s;
    sum_params p = {.x = vk_view_of(x, NULL), .o = vk_view_of(out, NULL)};
    int64_t n_red = 1, n_out = tensor_numel(out);
    for (int d = 0; d < 4; d++) {
        p.red[d] = p.o.ne[d] == 1 ? p.x.ne[d] : 1;
        n_red *= p.red[d];
    }
    if (n_out == 0) return ASPO_OK;
    p.n_out = (int32_t)n_out;
    p.n_red = (int32_t)n_red;
    /* Few outputs and long reductions (a sum of everything): split the reduction into
     * parts that fill the device, written to scratch (parts, n_out), then add the parts. */
    int64_t groups = (n_out + 31) / 32, parts = (SUM_TARGET_GROUPS + groups - 1) / groups;
    if (parts > n_red / (GROUP * SUM_MIN_PER_LANE)) parts = n_red / (GROUP * SUM_MIN_PER_LANE);
    if (parts < 2) return sum_launch(vk, &p, 1);
    if (parts > SUM_MAX_PARTS) parts = SUM_MAX_PARTS;
    float *partial = vk_scratch(vk, sizeof(float) * (size_t)(parts * n_out));
    if (!partial) return aspo_error_status();
    sum_params p1 = p; /* part z's sums at partial + z * n_out, in out's element order */
    p1.o = contiguous_f32(partial, p.o.ne);
    if ((s = sum_launch(vk, &p1, parts))) return s;
    /* The parts lie along a reduced dim d of out (size 1 there, > 1 in x). */
    int d = 0;
    while (p.red[d] == 1) d++;
    sum_params p2 = {.x = contiguous_f32(partial, p.o.ne), .o = p.o, .red = {1, 1, 1, 1},
                     .n_out = p.n_out, .n_red = (int32_t)parts};
    p2.x.ne[d] = p2.red[d] = (int32_t)parts;
    p2.x.st[d] = p.n_out;
    return sum_launch(vk, &p2, 1);
}

/* ---- sum of squares ---- */

/* The parameter block of shaders/reduce_sumsq.comp. */
typedef struct sumsq_params {
    vk_view x, o;
    int32_t n, square, pad_[2];
} sumsq_params;
_Static_assert(sizeof(sumsq_params) == 112, "sumsq_params mirrors reduce_sumsq.comp's Params");

VK_KERNEL(vk_sumsq)
{
    const tensor *x = c->in[0];
    vk_state *vk = vk_state_of(c->out[0]->be);
    aspo_status s = check_int32("sumsq", x);
    if (s) return s;
    int64_t n = tensor_numel(x);
    uint32_t groups = (uint32_t)((n + GROUP * SUMSQ_PER_THREAD - 1) / (GROUP * SUMSQ_PER_THREAD));
    if (groups < 1) groups = 1;
    if (groups > SUMSQ_MAX_GROUPS) groups = SUMSQ_MAX_GROUPS;
    uint32_t spec[2] = {GROUP, vk->subgroup_arithmetic};
    vk_view out = vk_view_of(c->out[0], NULL);
    vk_view xv = vector_view(x->data, x->dt, n); /* contiguous (the op table says so) */
    if (groups == 1) {
        sumsq_params p = {.x = xv, .o = out, .n = (int32_t)n, .square = 1};
        return vk_dispatch(vk, "reduce_sumsq", spec, 2, &p, sizeof p, 1, 1, 1);
    }
    /* Partial sums per workgroup, then one workgroup adds them. */
    float *partial = vk_scratch(vk, sizeof(float) * groups);
    if (!partial) return aspo_error_status();
    sumsq_params p1 = {.x = xv, .o = vector_view(partial, DT_F32, groups), .n = (int32_t)n,
                       .square = 1};
    sumsq_params p2 = {.x = p1.o, .o = out, .n = (int32_t)groups, .square = 0};
    if ((s = vk_dispatch(vk, "reduce_sumsq", spec, 2, &p1, sizeof p1, groups, 1, 1))) return s;
    return vk_dispatch(vk, "reduce_sumsq", spec, 2, &p2, sizeof p2, 1, 1, 1);
}

/* ---- softmax ---- */

/* The parameter block of shaders/softmax.comp. */
typedef struct softmax_params {
    vk_view x, dy, o;
    int32_t R, C, log_softmax, backward;
} softmax_params;
_Static_assert(sizeof(softmax_params) == 160, "softmax_params mirrors softmax.comp's Params");

/* x, dy (NULL for the forward) and o are contiguous (...,C) (the op table says so). */
static aspo_status softmax_rows(const char *op, const tensor *x, const tensor *dy, tensor *o,
                                bool log_softmax)
{
    aspo_status s = check_int32(op, x);
    if (s) return s;
    int64_t C = x->ndim ? x->shape[x->ndim - 1] : 1, R = C ? tensor_numel(x) / C : 0;
    if (R == 0) return ASPO_OK;
    softmax_params p = {.x = vk_view_of(x, NULL), .dy = vk_view_of(dy ? dy : x, NULL),
                        .o = vk_view_of(o, NULL), .R = (int32_t)R, .C = (int32_t)C,
                        .log_softmax = log_softmax, .backward = dy != NULL};
    /* Short rows take a smaller workgroup: fewer idle invocations per row. */
    vk_state *vk = vk_state_of(o->be);
    uint32_t spec[2] = {C <= 64 ? 64 : C <= 128 ? 128 : GROUP, vk->subgroup_arithmetic};
    uint32_t gx, gy;
    vk_groups_1d(vk, R, 1, &gx, &gy);
    return vk_dispatch(vk, "softmax", spec, 2, &p, sizeof p, gx, gy, 1);
}

VK_KERNEL(vk_softmax)
{
    return softmax_rows("softmax", c->in[0], NULL, c->out[0], c->p.i[0] != 0);
}

VK_KERNEL(vk_softmax_backward)
{
    return softmax_rows("softmax backward", c->in[0], c->in[1], c->out[0], c->p.i[0] != 0);
}
