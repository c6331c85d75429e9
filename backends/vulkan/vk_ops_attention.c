/* Rotary embedding (shaders/rope.comp) and attention: a flash-attention forward
 * (shaders/attention.comp) and a two-pass backward that recomputes the probabilities
 * from q, k and the saved lse (shaders/attention_backward.comp). Attention inputs are
 * contiguous (op table flag) in any float dtype, read and written through views that widen
 * and round (view_load, view_store); the key mask f32 or i32, or a segment layout (B,2,T)
 * i32 (p.i[1]), which implies causal.
 *
 * Tile sizes are specialization constants: BR query rows by BC keys per workgroup, one
 * invocation per (row, key) of a tile, head size D baked into the pipeline (shared-memory
 * tiles are D wide). They shrink from 16 x 16 until the tiles fit the device's shared
 * memory. */
#include <inttypes.h>

#include "vk_internal.h"

/* ---- rope ---- */

typedef struct rope_params {
    vk_view x, cs, sn, o;
    int32_t transpose, pad_[3];
} rope_params;

/* in: x (B,H,T,D), cos, sin (B|1,T,D); i[0]: 1 = transpose (backward); out (B,H,T,D). */
VK_KERNEL(vk_rope)
{
    const tensor *x = c->in[0];
    int64_t pairs = tensor_numel(x) / 2;
    if (tensor_numel(x) > INT32_MAX || tensor_numel(c->in[1]) > INT32_MAX)
        return aspo_fail(ASPO_ERR_UNSUPPORTED, "rope on backend vulkan: x of %" PRId64
                         " elements exceeds the shader's 32-bit indexing", tensor_numel(x));
    if (pairs == 0) return ASPO_OK;
    rope_params p = {.x = vk_view_of(x, NULL), .cs = vk_view_of(c->in[1], NULL),
                     .sn = vk_view_of(c->in[2], NULL), .o = vk_view_of(c->out[0], NULL),
                     .transpose = c->p.i[0] != 0};
    vk_state *vk = vk_state_of(c->out[0]->be);
    uint32_t gx, gy;
    vk_groups_1d(vk, pairs, 256, &gx, &gy);
    return vk_dispatch(vk, "rope", NULL, 0, &p, sizeof p, gx, gy, 1);
}

/* ---- attention ---- */

/* std430 `Params` of the shaders: the views (48 bytes each, 8-aligned), then eight 4-byte
 * fields, so no padding; has_mask is set with segments (input 3 is there). */
typedef struct attention_params {
    vk_view q, k, v, mask, o, lse;
    int32_t H, Hkv, Tq, Tk, causal, has_mask;
    float scale;
    int32_t segments;
} attention_params;
_Static_assert(sizeof(attention_params) == 6 * 48 + 32, "attention Params layout");

typedef struct attention_backward_params {
    vk_view q, k, v, o, lse, dout, mask, dq, dk, dv;
    int32_t H, Hkv, Tq, Tk, causal, has_mask;
    float scale;
    int32_t segments;
} attention_backward_params;
_Static_assert(sizeof(attention_backward_params) == 10 * 48 + 32,
               "attention backward Params layout");

/* Shared-memory bytes of each shader's tiles (their `shared` declarations; the last
 * 2 * bc + 1 words: allowed_key, key_seg, seen_tile). */
static size_t forward_bytes(uint32_t br, uint32_t bc, uint32_t D)
{
    return 4 * ((size_t)br * D + (size_t)bc * (D + 1) + (size_t)bc * D + (size_t)br * bc +
                2 * (size_t)bc + 1);
}

static size_t backward_bytes(uint32_t br, uint32_t bc, uint32_t D)
{
    return 4 * (2 * (size_t)br * D + 2 * (size_t)bc * (D + 1) + 3 * (size_t)br * bc + br +
                2 * (size_t)bc + 1);
}

/* spec = {BR, BC, D, BR*BC}: the largest tiles up to 16 x 16 that fit, halving BR and BC
 * in turn. D > 0. */
static aspo_status tile_sizes(const vk_state *vk, const char *op, int64_t D, bool backward,
                              uint32_t spec[4])
{
    size_t limit = vk->props.limits.maxComputeSharedMemorySize;
    uint32_t br = 16, bc = 16, d = D < 65536 ? (uint32_t)D : 65536;
    size_t need;
    while ((need = backward ? backward_bytes(br, bc, d) : forward_bytes(br, bc, d)) > limit &&
           bc > 1) {
        if (br >= bc) br /= 2;
        else bc /= 2;
    }
    if (need > limit || D > 65536)
        return aspo_fail(ASPO_ERR_UNSUPPORTED,
                         "%s on backend vulkan: head size %" PRId64 " needs more than the "
                         "device's %zu bytes of shared memory per workgroup",
                         op, D, limit);
    spec[0] = br;
    spec[1] = bc;
    spec[2] = d;
    spec[3] = br * bc;
    return ASPO_OK;
}

/* Shaders index with 32-bit ints. */
static aspo_status attention_fits(const char *op, const tensor *q, const tensor *k)
{
    if (tensor_numel(q) <= INT32_MAX && tensor_numel(k) <= INT32_MAX) return ASPO_OK;
    return aspo_fail(ASPO_ERR_UNSUPPORTED, "%s on backend vulkan: q of %" PRId64 " or k of %"
                     PRId64 " elements exceeds the shaders' 32-bit indexing",
                     op, tensor_numel(q), tensor_numel(k));
}

static uint32_t blocks(int64_t n, uint32_t block) { return (uint32_t)((n + block - 1) / block); }

/* in: q (B,H,Tq,D), k, v (B,Hkv,Tk,D) [, key_mask (B,Tk) or layout (B,2,T)]; i[0]: causal;
 * i[1]: input 3 is a segment layout; f[0]: scale; out: o (B,H,Tq,D), lse (B,H,Tq). */
VK_KERNEL(vk_attention)
{
    vk_state *vk = vk_state_of(c->out[0]->be);
    const tensor *q = c->in[0], *k = c->in[1];
    int64_t B = q->shape[0], H = q->shape[1], Tq = q->shape[2], D = q->shape[3];
    aspo_status s = attention_fits("attention", q, k);
    if (s || B * H * Tq == 0) return s;
    if (D == 0) /* o is empty but lse is not; the shaders' tiles are D wide */
        return aspo_fail(ASPO_ERR_UNSUPPORTED, "attention on backend vulkan: head size 0 "
                         "(q %" PRId64 " x %" PRId64 " x %" PRId64 " x 0)", B, H, Tq);
    uint32_t spec[4];
    if ((s = tile_sizes(vk, "attention", D, false, spec))) return s;
    bool masked = c->n_in > 3, segments = masked && c->p.i[1];
    attention_params p = {.q = vk_view_of(q, NULL), .k = vk_view_of(k, NULL),
                          .v = vk_view_of(c->in[2], NULL),
                          .mask = vk_view_of(masked ? c->in[3] : q, NULL),
                          .o = vk_view_of(c->out[0], NULL), .lse = vk_view_of(c->out[1], NULL),
                          .H = (int32_t)H, .Hkv = (int32_t)k->shape[1], .Tq = (int32_t)Tq,
                          .Tk = (int32_t)k->shape[2], .causal = c->p.i[0] || segments,
                          .has_mask = masked, .scale = c->p.f[0], .segments = segments};
    return vk_dispatch(vk, "attention", spec, 4, &p, sizeof p, blocks(Tq, spec[0]),
                       (uint32_t)H, (uint32_t)B);
}

/* in: q, k, v, o, lse, do [, key_mask or layout]; params as the forward's; out: dq, dk, dv
 * (overwritten). */
VK_KERNEL(vk_attention_backward)
{
    vk_state *vk = vk_state_of(c->out[0]->be);
    const tensor *q = c->in[0], *k = c->in[1];
    int64_t B = q->shape[0], H = q->shape[1], Tq = q->shape[2], D = q->shape[3];
    int64_t Hkv = k->shape[1], Tk = k->shape[2];
    aspo_status s = attention_fits("attention backward", q, k);
    if (s || D == 0) return s; /* D == 0: every output is empty */
    uint32_t spec[5];
    if ((s = tile_sizes(vk, "attention backward", D, true, spec))) return s;
    bool masked = c->n_in > 6, segments = masked && c->p.i[1];
    attention_backward_params p = {
        .q = vk_view_of(q, NULL), .k = vk_view_of(k, NULL), .v = vk_view_of(c->in[2], NULL),
        .o = vk_view_of(c->in[3], NULL), .lse = vk_view_of(c->in[4], NULL),
        .dout = vk_view_of(c->in[5], NULL), .mask = vk_view_of(masked ? c->in[6] : q, NULL),
        .dq = vk_view_of(c->out[0], NULL), .dk = vk_view_of(c->out[1], NULL),
        .dv = vk_view_of(c->out[2], NULL), .H = (int32_t)H, .Hkv = (int32_t)Hkv,
        .Tq = (int32_t)Tq, .Tk = (int32_t)Tk, .causal = c->p.i[0] || segments,
        .has_mask = masked, .scale = c->p.f[0], .segments = segments};
    /* Pass 0 writes dk, dv by key block; pass 1 writes dq by query block. */
    spec[4] = 0;
    if (B * Hkv * Tk > 0 &&
        (s = vk_dispatch(vk, "attention_backward", spec, 5, &p, sizeof p,
                         blocks(Tk, spec[1]), (uint32_t)Hkv, (uint32_t)B)))
        return s;
    spec[4] = 1;
    if (B * H * Tq > 0)
        s = vk_dispatch(vk, "attention_backward", spec, 5, &p, sizeof p, blocks(Tq, spec[0]),
                        (uint32_t)H, (uint32_t)B);
    return s;
}
