/* Attention against naive double-precision softmax attention: causal self-attention with
 * grouped-query heads, key padding masks (f32 and i32), cross-attention, causal with
 * Tq < Tk and Tq > Tk, rows with no key to attend (zeros, zero gradients), a strided k,
 * half-precision k/v, and the segment layout of packed preference pairs. Gradients are
 * checked for q, k and v. */
#include <math.h>
#include <stdlib.h>

#include "op_cases.h"

/* ip[0]: causal; ip[1]: key mask none/f32/i32, or a segment layout; ip[2]: also check
 * error paths; ip[3]: padded keys. fp[0]: scale, 0 = 1/sqrt(D). */
enum { MASK_NONE, MASK_F32, MASK_I32, MASK_SEGMENTS };

/* Segment layout of batch row b over T tokens: preference pairs packed end to end as
 * [prompt, chosen, rejected] (answers see their prompt, never each other), one unit being
 * a lone sequence (no answers), the pattern shifted per row so the segments cross the
 * kernels' blocks at different places; the last `pad` tokens of row 1 are padding (-1).
 * From T = 200 on the parts are long enough (33 to 97) to fill whole GPU tiles that only a
 * query's base segment makes visible; for T in [250, 300) every pair is a 10-token prompt,
 * a 40-token chosen and a 200-token rejected answer, whose rows fill whole CPU query blocks
 * that skip the chosen keys between them and their prompt. Segment ids are not in order,
 * as nothing asks them to be. */
static void segment_layout(int64_t b, int64_t T, int64_t pad, int32_t *seg, int32_t *base)
{
    static const int short_units[][3] = {{4, 3, 2}, {2, 1, 1}, {5, 0, 0}, {1, 2, 3},
                                         {6, 17, 4}, {3, 1, 9}};
    static const int long_units[][3] = {{70, 66, 40}, {33, 97, 12}, {50, 0, 0}, {64, 35, 80},
                                        {90, 40, 41}, {36, 70, 33}};
    static const int gap_units[][3] = {{10, 40, 200}, {10, 40, 200}, {10, 40, 200},
                                       {10, 40, 200}, {10, 40, 200}, {10, 40, 200}};
    const int(*units)[3] = T >= 250 && T < 300 ? gap_units : T >= 200 ? long_units : short_units;
    int64_t t = 0, end = b == 1 ? T - pad : T;
    int32_t id = (int32_t)(100 - 10 * b);
    for (int u = (int)b; t < end; u++, id -= 3) {
        const int *n = units[u % 6];
        for (int part = 0; part < 3; part++)
            for (int x = 0; x < n[part] && t < end; x++, t++) {
                seg[t] = id + part;
                base[t] = id;
            }
    }
    for (; t < T; t++) seg[t] = base[t] = -1;
}

/* Whether query i may see key j under the case's segment layout (the rule of
 * tensor_attention, written out). */
static bool segment_sees(const op_case *c, int64_t b, int64_t i, int64_t j, int64_t T)
{
    static int32_t seg[512], base[512];
    static int64_t made_b = -1, made_T = -1, made_pad = -1; /* the layout last made */
    if (b != made_b || T != made_T || c->ip[3] != made_pad) {
        segment_layout(b, T, c->ip[3], seg, base);
        made_b = b, made_T = T, made_pad = c->ip[3];
    }
    return j <= i && seg[j] >= 0 && (seg[j] == seg[i] || seg[j] == base[i]);
}

/* With padding p: batch 1 is left-padded (keys j < p masked) and batch 0 loses its
 * last key (right padding), so both ends of the key range are exercised. */
static bool key_kept(const op_case *c, int64_t b, int64_t j, int64_t Tk)
{
    if (c->ip[1] == MASK_NONE) return true;
    if (b == 1) return j >= c->ip[3];
    if (b == 0) return j != Tk - 1;
    return true;
}

static double scale_of(const op_case *c, int64_t D)
{
    return c->fp[0] != 0 ? c->fp[0] : 1.0 / sqrt((double)D);
}

static void ref_attention(const ref_args *a, double *out)
{
    const op_case *c = a->c;
    const case_input *qi = &IN(a, 0), *ki = &IN(a, 1);
    int64_t B = qi->shape[0], H = qi->shape[1], Tq = qi->shape[2], D = qi->shape[3];
    int64_t Hkv = ki->shape[1], Tk = ki->shape[2], group = H / Hkv;
    double scale = scale_of(c, D);
    double *p = malloc(sizeof(double) * (size_t)Tk);
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t i = 0; i < Tq; i++) {
                const double *q = a->in[0] + ((b * H + h) * Tq + i) * D;
                const double *k = a->in[1] + (b * Hkv + h / group) * Tk * D;
                const double *v = a->in[2] + (b * Hkv + h / group) * Tk * D;
                double *o = out + ((b * H + h) * Tq + i) * D, m = -INFINITY, l = 0;
                for (int64_t j = 0; j < Tk; j++) {
                    bool ok = c->ip[1] == MASK_SEGMENTS
                                  ? segment_sees(c, b, i, j, Tk)
                                  : key_kept(c, b, j, Tk) && (!c->ip[0] || j <= i + (Tk - Tq));
                    p[j] = -INFINITY;
                    if (!ok) continue;
                    double s = 0;
                    for (int64_t d = 0; d < D; d++) s += q[d] * k[j * D + d];
                    p[j] = s * scale;
                    m = fmax(m, p[j]);
                }
                for (int64_t d = 0; d < D; d++) o[d] = 0;
                if (m == -INFINITY) continue; /* no key: zeros */
                for (int64_t j = 0; j < Tk; j++) l += p[j] = exp(p[j] - m);
                for (int64_t j = 0; j < Tk; j++)
                    for (int64_t d = 0; d < D; d++) o[d] += p[j] / l * v[j * D + d];
            }
    free(p);
}

static tensor *make_mask(const op_case *c, int64_t B, int64_t Tk)
{
    if (c->ip[1] == MASK_NONE) return NULL;
    float f[1024];
    int32_t n[2048];
    if (B * Tk > 1024) return NULL;
    if (c->ip[1] == MASK_SEGMENTS) {
        for (int64_t b = 0; b < B; b++)
            segment_layout(b, Tk, c->ip[3], n + 2 * b * Tk, n + (2 * b + 1) * Tk);
        return tensor_from_host(DT_I32, DIMS(B, 2, Tk), n); /* (B,2,T) */
    }
    for (int64_t b = 0; b < B; b++)
        for (int64_t j = 0; j < Tk; j++) {
            n[b * Tk + j] = key_kept(c, b, j, Tk) ? 1 : 0;
            f[b * Tk + j] = (float)n[b * Tk + j];
        }
    return c->ip[1] == MASK_F32 ? tensor_from_host(DT_F32, DIMS(B, Tk), f)
                                : tensor_from_host(DT_I32, DIMS(B, Tk), n);
}

/* Shape mistakes come back as ASPO_ERR_SHAPE: a head count that Hkv does not divide, and a
 * key mask of the wrong length. */
static bool refuses_bad_shapes(tensor *q, tensor *k, tensor *v)
{
    tensor *q3 = tensor_slice(q, 1, 0, 3); /* 3 heads over 2 kv heads */
    bool ok = !tensor_attention(q3, k, v, NULL, true, 1) && aspo_error_status() == ASPO_ERR_SHAPE;
    aspo_error_clear();
    tensor *mask = tensor_zeros(DT_F32, DIMS(q->shape[0], k->shape[2] + 1));
    ok = ok && !tensor_attention(q, k, v, mask, false, 1) && aspo_error_status() == ASPO_ERR_SHAPE;
    aspo_error_clear();
    /* A segment layout of f32, or one with a third row, is no layout. */
    tensor *f32_layout = tensor_zeros(DT_F32, DIMS(q->shape[0], 2, k->shape[2]));
    ok = ok && !tensor_attention(q, k, v, f32_layout, true, 1) &&
         aspo_error_status() == ASPO_ERR_SHAPE;
    aspo_error_clear();
    tensor *three_rows = tensor_zeros(DT_I32, DIMS(q->shape[0], 3, k->shape[2]));
    ok = ok && !tensor_attention(q, k, v, three_rows, true, 1) &&
         aspo_error_status() == ASPO_ERR_SHAPE;
    aspo_error_clear();
    return ok;
}

static tensor *run_attention(tensor **in, const op_case *c)
{
    if (c->ip[2] && !refuses_bad_shapes(in[0], in[1], in[2])) {
        aspo_fail_replace(ASPO_ERR_USAGE, "attention accepted bad shapes (last message: %s)",
                          aspo_error_message());
        return NULL;
    }
    tensor *mask = make_mask(c, in[0]->shape[0], in[1]->shape[2]);
    if (c->ip[1] != MASK_NONE && !mask) return NULL;
    return tensor_attention(in[0], in[1], in[2], mask, c->ip[0] != 0,
                            (float)scale_of(c, in[0]->shape[3]));
}

#define QKV(dt, layout, grad, b, h, t, d) {dt, 4, {b, h, t, d}, layout, grad, -1, 1}
#define Q(b, h, t, d) QKV(DT_F32, LAYOUT_CONTIGUOUS, true, b, h, t, d)
/* name, causal, mask, check errors, padding, scale, then q, k, v */
#define ATTN(name, causal, mask, errors, pad, scale, ...)                                   \
    {name, 3, {__VA_ARGS__}, {causal, mask, errors, pad}, {scale}, run_attention,           \
     ref_attention, 0, 0}

/* f32 kernels against double: dot products and softmax sums over <= 70 terms round at
 * ~1e-6 relative, far inside the default 1e-10 NMSE forward and 1e-6 gradient bounds. */
const op_case cases_attention[] = {
    ATTN("attention_causal_gqa", 1, MASK_NONE, 1, 0, 0, Q(2, 4, 7, 8), Q(2, 2, 7, 8),
         Q(2, 2, 7, 8)),
    ATTN("attention_key_padding", 0, MASK_F32, 0, 3, 0, Q(2, 4, 6, 8), Q(2, 2, 6, 8),
         Q(2, 2, 6, 8)),
    ATTN("attention_cross", 0, MASK_NONE, 0, 0, 0, Q(2, 4, 3, 8), Q(2, 1, 9, 8), Q(2, 1, 9, 8)),
    /* Decoding-style: 3 new queries over 7 keys; k is a transposed (strided) view. */
    ATTN("attention_causal_tq_lt_tk", 1, MASK_NONE, 0, 0, 0, Q(2, 3, 3, 8),
         QKV(DT_F32, LAYOUT_TRANSPOSED, true, 2, 3, 7, 8), Q(2, 3, 7, 8)),
    /* Left padding under a causal mask: batch 1's first 3 queries see no key at all. */
    ATTN("attention_row_fully_masked", 1, MASK_I32, 0, 3, 0, Q(2, 2, 6, 4), Q(2, 1, 6, 4),
         Q(2, 1, 6, 4)),
    /* Tq > Tk: the first two queries precede every key. */
    ATTN("attention_causal_tq_gt_tk", 1, MASK_NONE, 0, 0, 0.5, Q(1, 2, 5, 4), Q(1, 2, 3, 4),
         Q(1, 2, 3, 4)),
    /* Frozen half-precision k/v go to the kernels as they are (widened as loaded); only dq
     * is checked. */
    ATTN("attention_bf16_kv", 1, MASK_F32, 0, 2, 0.3, Q(2, 2, 5, 8),
         QKV(DT_BF16, LAYOUT_CONTIGUOUS, false, 2, 2, 5, 8),
         QKV(DT_F16, LAYOUT_CONTIGUOUS, false, 2, 2, 5, 8)),
    /* bf16 activations: q, k, v and o in bf16 (f32 math; o rounded once to 8 mantissa bits,
     * NMSE <= ~4e-6); the gradients are f32 from the exact bf16 inputs but read the rounded
     * o (D_i = do.o, 8 terms whose 2^-9 relative errors can add): measured NMSE 2e-6 and
     * 1.1e-5 on two draws of the inputs (the draw moves when cases are added before this
     * one), bound 1e-5 for the output and 3e-5 for the gradients. */
    {"attention_bf16_qkv", 3,
     {QKV(DT_BF16, LAYOUT_CONTIGUOUS, true, 2, 4, 6, 8), QKV(DT_BF16, LAYOUT_CONTIGUOUS, true, 2, 2, 6, 8),
      QKV(DT_BF16, LAYOUT_CONTIGUOUS, true, 2, 2, 6, 8)},
     {1, MASK_F32, 0, 2}, {0}, run_attention, ref_attention, 1e-5, 3e-5},
    /* 70 queries cross the kernel's 64-row query blocks; 70-term sums stay ~1e-6. */
    ATTN("attention_long_blocks", 1, MASK_F32, 0, 5, 0, Q(2, 2, 70, 8), Q(2, 1, 70, 8),
         Q(2, 1, 70, 8)),
    /* Packed pairs: per-query visibility, answers that skip their sibling, padding queries
     * (zeros, no gradient) and a prompt's keys receiving gradient from both answers. */
    ATTN("attention_segments", 1, MASK_SEGMENTS, 1, 3, 0, Q(2, 4, 23, 8), Q(2, 2, 23, 8),
         Q(2, 2, 23, 8)),
    /* 150 tokens: segments across the 64-row blocks (CPU) and 16-row tiles (GPU), blocks
     * whose first key is past 0; sums of <= 30 terms. */
    ATTN("attention_segments_long", 1, MASK_SEGMENTS, 0, 7, 0, Q(2, 2, 150, 8),
         Q(2, 1, 150, 8), Q(2, 1, 150, 8)),
    /* Long parts, head size 40: whole tiles visible only through a query's base segment
     * (a tile skip that forgets the base drops them); sums of <= 200 terms stay ~1e-6. */
    ATTN("attention_segments_wide", 1, MASK_SEGMENTS, 0, 9, 0, Q(2, 2, 300, 40),
         Q(2, 1, 300, 40), Q(2, 1, 300, 40)),
    /* Rejected answers of 200 tokens: query blocks inside one read the prompt and the answer
     * as two key spans, past the chosen answer (the CPU's gap). */
    ATTN("attention_segments_gap", 1, MASK_SEGMENTS, 0, 5, 0, Q(2, 2, 260, 8),
         Q(2, 1, 260, 8), Q(2, 1, 260, 8)),
    {0},
};
