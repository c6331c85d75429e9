/* RMSNorm, LayerNorm and L2 normalisation over the last dim, with their backward passes:
 * one workgroup per row (shaders/norm.comp) for y, dx and the row statistics, and column
 * sums over rows (shaders/norm_columns.comp) for the weight and bias gradients: partial
 * sums per block of rows, then one pass adding the partials, so no float atomics. Inputs
 * are contiguous (the op table says so), viewed as rows (R,C). */
#include <limits.h>

#include "../../shaders/shader_kinds.h"
#include "vk_internal.h"

enum {
    GROUP = 256,          /* the largest row workgroup; norm_columns.comp's local size */
    PART_MIN_ROWS = 16,   /* rows one column-sum invocation adds at least */
    MAX_PARTS = 64,       /* partial sums per column at most */
};

/* The parameter block of shaders/norm.comp. */
typedef struct norm_params {
    vk_view x, w, b, mean, rstd, dy, o;
    int32_t R, C, kind;
    float eps;
} norm_params;
_Static_assert(sizeof(norm_params) == 352, "norm_params mirrors norm.comp's Params (std430)");

/* The parameter block of shaders/norm_columns.comp. */
typedef struct columns_params {
    vk_view x, dy, mean, rstd, dw, db, pw, pb;
    int32_t R, C, rows_per_part, parts;
    int32_t want, layer, stage, pad_;
} columns_params;
_Static_assert(sizeof(columns_params) == 416, "columns_params mirrors norm_columns.comp's Params");

/* x (...,C) as (R,C); fails when shaders' 32-bit indices cannot reach every element. */
static aspo_status rows_of(const char *op, const tensor *x, int64_t *R, int64_t *C)
{
    *C = x->shape[x->ndim - 1];
    *R = *C ? tensor_numel(x) / *C : 0;
    if (tensor_numel(x) <= INT_MAX) return ASPO_OK;
    char b[96];
    return aspo_fail(ASPO_ERR_UNSUPPORTED, "%s on backend vulkan: x %s has more than 2^31 "
                     "elements (32-bit shader indices)", op, tensor_describe(x, b, sizeof b));
}

/* One norm.comp pass over R rows (p->kind: NORM_* in shaders/shader_kinds.h). Views the
 * kind does not read are set to x: any valid address will do. */
static aspo_status row_pass(vk_state *vk, norm_params *p, int64_t R, int64_t C)
{
    if (R == 0) return ASPO_OK;
    vk_view *views[] = {&p->w, &p->b, &p->mean, &p->rstd, &p->dy};
    for (size_t i = 0; i < sizeof views / sizeof views[0]; i++)
        if (!views[i]->addr) *views[i] = p->x;
    p->R = (int32_t)R;
    p->C = (int32_t)C;
    /* Short rows take a smaller workgroup: fewer idle invocations per row. */
    uint32_t spec[2] = {C <= 64 ? 64 : C <= 128 ? 128 : GROUP, vk->subgroup_arithmetic};
    uint32_t gx, gy;
    vk_groups_1d(vk, R, 1, &gx, &gy);
    return vk_dispatch(vk, "norm", spec, 2, p, sizeof *p, gx, gy, 1);
}

/* dweight and/or dbias (NULL when not wanted), f32 (C): sums over rows of dy*h and dy,
 * with h as norm_columns.comp says; mean is NULL for rmsnorm. */
static aspo_status column_sums(vk_state *vk, const tensor *x, const tensor *dy,
                               const tensor *mean, const tensor *rstd, tensor *dw, tensor *db,
                               int64_t R, int64_t C)
{
    int64_t rows_per_part = (R + MAX_PARTS - 1) / MAX_PARTS;
    if (rows_per_part < PART_MIN_ROWS) rows_per_part = PART_MIN_ROWS;
    int64_t parts = R ? (R + rows_per_part - 1) / rows_per_part : 1;
    vk_view rv = vk_view_of(rstd, NULL);
    columns_params p = {.x = vk_view_of(x, NULL), .dy = vk_view_of(dy, NULL),
                        .mean = mean ? vk_view_of(mean, NULL) : rv, .rstd = rv,
                        .R = (int32_t)R, .C = (int32_t)C, .rows_per_part = (int32_t)rows_per_part,
                        .parts = (int32_t)parts, .layer = mean != NULL,
                        .want = (dw ? WANT_DWEIGHT : 0) | (db ? WANT_DBIAS : 0)};
    p.dw = vk_view_of(dw ? dw : db, NULL);
    p.db = vk_view_of(db ? db : dw, NULL);
    p.pw = p.pb = p.dw;
    uint32_t tiles = (uint32_t)((C + GROUP - 1) / GROUP);
    if (parts > 1) { /* partials (parts, C) for each wanted output, then their sums */
        float *partial = vk_scratch(vk, sizeof(float) * (size_t)(2 * parts * C));
        if (!partial) return aspo_error_status();
        vk_view all = {.addr = (uint64_t)(uintptr_t)partial, .dt = DT_F32,
                       .ne = {1, 1, (int32_t)parts, (int32_t)C}, .st = {0, 0, (int32_t)C, 1}};
        p.pw = p.pb = all;
        p.pb.addr += sizeof(float) * (uint64_t)(parts * C);
    }
    aspo_status s =
        vk_dispatch(vk, "norm_columns", NULL, 0, &p, sizeof p, tiles, (uint32_t)parts, 1);
    if (s || parts == 1) return s;
    p.stage = 1;
    return vk_dispatch(vk, "norm_columns", NULL, 0, &p, sizeof p, tiles, 1, 1);
}

/* The wanted backward outputs in order (tensor/ops_norm.c); NULL for those not wanted. */
static void backward_outputs(const op_call *c, tensor **dx, tensor **dweight, tensor **dbias)
{
    int64_t want = c->p.i[0];
    int k = 0;
    *dx = (want & WANT_DX) ? c->out[k++] : NULL;
    *dweight = (want & WANT_DWEIGHT) ? c->out[k++] : NULL;
    if (dbias) *dbias = (want & WANT_DBIAS) ? c->out[k++] : NULL;
    ASPO_ASSERT(k == c->n_out);
}

/* in: x, weight; out: y, rstd (R). */
VK_KERNEL(vk_rmsnorm)
{
    vk_state *vk = vk_state_of(c->out[0]->be);
    int64_t R, C;
    aspo_status s = rows_of("rmsnorm", c->in[0], &R, &C);
    if (s) return s;
    norm_params p = {.x = vk_view_of(c->in[0], NULL), .w = vk_view_of(c->in[1], NULL),
                     .rstd = vk_view_of(c->out[1], NULL), .o = vk_view_of(c->out[0], NULL),
                     .kind = NORM_RMS, .eps = c->p.f[0]};
    return row_pass(vk, &p, R, C);
}

/* in: x, weight, rstd, dy; out: the wanted subset of dx, dweight. */
VK_KERNEL(vk_rmsnorm_backward)
{
    const tensor *x = c->in[0], *w = c->in[1], *rstd = c->in[2], *dy = c->in[3];
    tensor *dx, *dw;
    backward_outputs(c, &dx, &dw, NULL);
    vk_state *vk = vk_state_of(c->out[0]->be);
    int64_t R, C;
    aspo_status s = rows_of("rmsnorm backward", x, &R, &C);
    if (s) return s;
    if (dx) {
        norm_params p = {.x = vk_view_of(x, NULL), .w = vk_view_of(w, NULL),
                         .rstd = vk_view_of(rstd, NULL), .dy = vk_view_of(dy, NULL),
                         .o = vk_view_of(dx, NULL), .kind = NORM_RMS_DX};
        if ((s = row_pass(vk, &p, R, C))) return s;
    }
    return dw ? column_sums(vk, x, dy, NULL, rstd, dw, NULL, R, C) : ASPO_OK;
}

/* in: x, weight, bias; out: y, mean (R), rstd (R). */
VK_KERNEL(vk_layernorm)
{
    vk_state *vk = vk_state_of(c->out[0]->be);
    int64_t R, C;
    aspo_status s = rows_of("layernorm", c->in[0], &R, &C);
    if (s) return s;
    norm_params p = {.x = vk_view_of(c->in[0], NULL), .w = vk_view_of(c->in[1], NULL),
                     .b = vk_view_of(c->in[2], NULL), .mean = vk_view_of(c->out[1], NULL),
                     .rstd = vk_view_of(c->out[2], NULL), .o = vk_view_of(c->out[0], NULL),
                     .kind = NORM_LAYER, .eps = c->p.f[0]};
    return row_pass(vk, &p, R, C);
}

/* in: x, weight, mean, rstd, dy; out: the wanted subset of dx, dweight, dbias. */
VK_KERNEL(vk_layernorm_backward)
{
    const tensor *x = c->in[0], *w = c->in[1], *mean = c->in[2], *rstd = c->in[3], *dy = c->in[4];
    tensor *dx, *dw, *db;
    backward_outputs(c, &dx, &dw, &db);
    vk_state *vk = vk_state_of(c->out[0]->be);
    int64_t R, C;
    aspo_status s = rows_of("layernorm backward", x, &R, &C);
    if (s) return s;
    if (dx) {
        norm_params p = {.x = vk_view_of(x, NULL), .w = vk_view_of(w, NULL),
                         .mean = vk_view_of(mean, NULL), .rstd = vk_view_of(rstd, NULL),
                         .dy = vk_view_of(dy, NULL), .o = vk_view_of(dx, NULL),
                         .kind = NORM_LAYER_DX};
        if ((s = row_pass(vk, &p, R, C))) return s;
    }
    return dw || db ? column_sums(vk, x, dy, mean, rstd, dw, db, R, C) : ASPO_OK;
}

/* in: x; out: y, signed inv_norm (R). */
VK_KERNEL(vk_l2norm)
{
    vk_state *vk = vk_state_of(c->out[0]->be);
    int64_t R, C;
    aspo_status s = rows_of("l2norm", c->in[0], &R, &C);
    if (s) return s;
    norm_params p = {.x = vk_view_of(c->in[0], NULL), .rstd = vk_view_of(c->out[1], NULL),
                     .o = vk_view_of(c->out[0], NULL), .kind = NORM_L2, .eps = c->p.f[0]};
    return row_pass(vk, &p, R, C);
}

/* in: y, inv_norm, dy; out: dx (the only gradient). */
VK_KERNEL(vk_l2norm_backward)
{
    const tensor *y = c->in[0];
    tensor *dx, *unused;
    backward_outputs(c, &dx, &unused, NULL);
    ASPO_ASSERT(dx && !unused);
    vk_state *vk = vk_state_of(c->out[0]->be);
    int64_t R, C;
    aspo_status s = rows_of("l2norm backward", y, &R, &C);
    if (s) return s;
    norm_params p = {.x = vk_view_of(y, NULL), .rstd = vk_view_of(c->in[1], NULL),
                     .dy = vk_view_of(c->in[2], NULL), .o = vk_view_of(dx, NULL),
                     .kind = NORM_L2_DX};
    return row_pass(vk, &p, R, C);
}
