/* Attention forward and backward on contiguous tensors (op table flag) of any float dtype:
 * half-precision q, k, v, o are widened to f32 scratch first and a half o is rounded once on
 * the way out (the math is f32 throughout).
 * q (B,H,Tq,D), k/v (B,Hkv,Tk,D), query head h reads kv head h / (H/Hkv). Query row i
 * may attend key j when key_mask[b,j] != 0 and, if causal, j <= i + (Tk - Tq); with a
 * segment layout instead (packed sequences, tensor_attention), when j <= i, seg[j] >= 0 and
 * seg[j] is seg[i] or base[i]. A row with no such key outputs zeros, lse = -inf, and gets
 * no gradient. Under a segment layout a query block reads only keys some row of it may see:
 * from the first such key, and past a run of keys none of its rows sees (a rejected answer's
 * rows skip the chosen answer between them and their prompt), so pairs packed end to end in
 * one row cost what their prompt and answers do.
 *
 * Forward: s_j = scale * q_i.k_j, p_j = exp(s_j - lse_i), o_i = sum_j p_j v_j.
 * Backward recomputes p_j from lse_i (nothing of size Tq x Tk was kept):
 *   D_i = do_i.o_i,  dv_j += p_j do_i,  ds_j = p_j (do_i.v_j - D_i),
 *   dq_i += scale ds_j k_j,  dk_j += scale ds_j q_i. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "cpu_internal.h"
#include "cpu_math.h"

typedef struct attention_dims {
    int64_t B, H, Hkv, Tq, Tk, D;
    bool causal;
    float scale;
    const char *mask; /* (B,Tk) or NULL */
    dtype mask_dt;
    const int32_t *seg; /* segment layout (B,2,T): segment, base; or NULL */
} attention_dims;

static attention_dims dims_of(const op_call *c, int mask_input)
{
    const tensor *q = c->in[0], *k = c->in[1];
    attention_dims a = {.B = q->shape[0], .H = q->shape[1], .Tq = q->shape[2],
                        .D = q->shape[3], .Hkv = k->shape[1], .Tk = k->shape[2],
                        .causal = c->p.i[0] != 0 || c->p.i[1] != 0, .scale = c->p.f[0]};
    if (c->n_in > mask_input && c->p.i[1]) {
        a.seg = (const int32_t *)c->in[mask_input]->data;
    } else if (c->n_in > mask_input) {
        a.mask = c->in[mask_input]->data;
        a.mask_dt = c->in[mask_input]->dt;
    }
    return a;
}

/* Keys [0, *end) are candidates for row i of batch b; masked ones are skipped by
 * key_allowed. Returns the end of the causal window (Tk when not causal). */
static inline int64_t key_end(const attention_dims *a, int64_t i)
{
    if (!a->causal) return a->Tk;
    int64_t end = i + (a->Tk - a->Tq) + 1;
    return end < 0 ? 0 : end > a->Tk ? a->Tk : end;
}

enum { QUERY_BLOCK = 64 }; /* query rows per sgemm block: bounds scratch to 64 x Tk */

/* allow (B,Tk): -1 (all bits) where key_mask lets a key be attended (a segment layout: the
 * key is not padding), else 0; a bit mask so the row loops below select without branches
 * and vectorize. */
static void key_masks(const attention_dims *a, int32_t *allow)
{
    for (int64_t b = 0; b < a->B; b++)
        for (int64_t j = 0; j < a->Tk; j++) {
            int64_t i = b * a->Tk + j;
            bool ok = a->seg ? a->seg[2 * b * a->Tk + j] >= 0
                             : !a->mask || dtype_load(a->mask, a->mask_dt, i) != 0.0f;
            allow[i] = ok ? -1 : 0;
        }
}

/* Segment layouts only, for each query i (B,T each): first, the first key it may see (i + 1
 * when none: padding), the smallest j <= i whose segment is seg[i] or base[i]; and
 * [gap_lo, gap_hi), keys before i's own run that it does not see, found by walking back
 * from that run's start (empty when none). Runs (consecutive tokens of one segment) are
 * walked once each, so a layout of few runs per row costs O(T * runs). */
static void key_ranges(const attention_dims *a, int32_t *first, int32_t *gap_lo,
                       int32_t *gap_hi)
{
    int64_t T = a->Tk;
    for (int64_t b = 0; b < a->B; b++) {
        const int32_t *seg = a->seg + 2 * b * T, *base = seg + T;
        int32_t *f = first + b * T, *lo = gap_lo + b * T, *hi = gap_hi + b * T;
        int64_t run = 0; /* start of i's run */
        for (int64_t i = 0; i < T; i++) {
            bool same = i > 0 && seg[i] == seg[i - 1] && base[i] == base[i - 1];
            if (i > 0 && seg[i] != seg[i - 1]) run = i;
            if (same) { /* what the token before found */
                f[i] = f[i - 1], lo[i] = lo[i - 1], hi[i] = hi[i - 1];
                continue;
            }
            f[i] = (int32_t)(i + 1), lo[i] = hi[i] = (int32_t)run;
            if (seg[i] < 0) continue;
            for (int64_t j = 0; j <= i; j++) {
                if (seg[j] == seg[i] || seg[j] == base[i]) {
                    f[i] = (int32_t)j;
                    break;
                }
                while (j < i && seg[j + 1] == seg[j]) j++; /* the rest of the run */
            }
            while (lo[i] > f[i] && seg[lo[i] - 1] != seg[i] && seg[lo[i] - 1] != base[i]) lo[i]--;
        }
    }
}

/* Keys [key, key + n) of a query block, at columns [col, col + n) of its score rows. */
typedef struct key_span {
    int64_t key, col, n;
} key_span;

/* A segment layout's allow bits for query i of batch b over the first n columns of the two
 * spans: the key masks' and'ed with "in i's segment or its base". */
static void row_allow(const attention_dims *a, int64_t b, int64_t i, const key_span *span,
                      int64_t n, const int32_t *allow, int32_t *out)
{
    const int32_t *seg = a->seg + 2 * b * a->Tk;
    int32_t s = seg[i], base = s < 0 ? -1 : seg[a->Tk + i]; /* padding sees nothing */
    for (int k = 0; k < 2; k++)
        for (int64_t c = span[k].col; c < span[k].col + span[k].n && c < n; c++) {
            int64_t j = span[k].key + (c - span[k].col);
            out[c] = allow[j] & (seg[j] == s || seg[j] == base ? -1 : 0);
        }
}

/* t's values as f32: its own memory when it is f32, else widened into scratch `slot`. */
static const float *f32_values(cpu_state *cpu, const tensor *t, enum cpu_scratch_slot slot)
{
    if (t->dt == DT_F32) return (const float *)t->data;
    int64_t n = tensor_numel(t);
    float *w = cpu_scratch(cpu, slot, sizeof(float) * (size_t)(n ? n : 1));
    if (!w) {
        aspo_fail(ASPO_ERR_OOM, "attention on cpu: no memory to widen a %s input of %lld values",
                  dtype_name(t->dt), (long long)n);
        return NULL;
    }
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) w[i] = dtype_load(t->data, t->dt, i);
    return w;
}

/* max_j x_j over the allowed j < n (-inf when none). */
CPU_VECTOR_CLONES static float masked_row_max(const float *x, const int32_t *allow, int64_t n)
{
    int32_t none = cpu_order_key(-INFINITY), m = none;
    for (int64_t j = 0; j < n; j++) {
        int32_t k = (cpu_order_key(x[j]) & allow[j]) | (none & ~allow[j]);
        m = k > m ? k : m;
    }
    return cpu_order_key_float(m);
}

/* p_j = exp(p_j - m) for allowed j < n, 0 for the others; returns sum_j p_j in double,
 * over 8 fixed lanes added in a fixed order. */
CPU_VECTOR_CLONES static double masked_row_exp(float *p, const int32_t *allow, int64_t n, float m)
{
    /* Two loops: the float one vectorizes (with the double sums in it, GCC vectorized
     * neither); the sums keep their lanes and order, so the result is the same. */
    for (int64_t j = 0; j < n; j++)
        p[j] = cpu_bits_float(cpu_float_bits(cpu_expf(p[j] - m)) & allow[j]);
    double lane[8] = {0};
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int k = 0; k < 8; k++) lane[k] += (double)p[j + k];
    for (; j < n; j++) lane[0] += (double)p[j];
    return cpu_sum_lanes(lane);
}

CPU_VECTOR_CLONES static void scale_row(float *p, int64_t n, float s)
{
    for (int64_t j = 0; j < n; j++) p[j] *= s;
}

/* The query block [i0, i0+rows) of batch b: the keys any of its rows may see, as one or two
 * spans (n_keys columns of scores in all), and where it reads the allow bits. */
typedef struct query_block {
    int64_t b, i0, rows, n_keys;
    key_span span[2];     /* span[1].n = 0: one span */
    const int32_t *allow; /* (Tk) the batch row's key masks */
    int32_t *row_buf;     /* n_keys of scratch: one row's bits under a segment layout */
} query_block;

/* Segment layouts' ranges per query (key_ranges); NULL otherwise. */
typedef struct key_ranges_of {
    const int32_t *first, *gap_lo, *gap_hi;
} key_ranges_of;

/* Keys the block's rows may see: from the first key of any row (segment layouts; else 0) to
 * the causal window of the last row, less the keys that every real row's gap holds. */
static query_block block_of(const attention_dims *a, const int32_t *allow,
                            const key_ranges_of *kr, int64_t b, int64_t i0, int64_t rows,
                            int32_t *row_buf)
{
    query_block k = {.b = b, .i0 = i0, .rows = rows, .allow = allow + b * a->Tk,
                     .row_buf = row_buf};
    int64_t k0 = 0, end = key_end(a, i0 + rows - 1), g0 = 0, g1 = a->Tk;
    if (kr) {
        k0 = a->Tk;
        for (int64_t r = 0, t = b * a->Tk + i0; r < rows; r++, t++) {
            k0 = kr->first[t] < k0 ? kr->first[t] : k0;
            if (a->seg[2 * b * a->Tk + i0 + r] < 0) continue; /* padding sees nothing */
            g0 = kr->gap_lo[t] > g0 ? kr->gap_lo[t] : g0;
            g1 = kr->gap_hi[t] < g1 ? kr->gap_hi[t] : g1;
        }
    }
    if (!kr || g0 <= k0 || g1 >= end || g1 <= g0) g0 = g1 = end; /* no gap: one span */
    k.span[0] = (key_span){k0, 0, g0 - k0};
    k.span[1] = (key_span){g1, g0 - k0, end - g1};
    k.n_keys = k.span[0].n + k.span[1].n;
    return k;
}

/* Columns of the block's row for query i that its causal window reaches. */
static int64_t row_columns(const attention_dims *a, const query_block *blk, int64_t i)
{
    int64_t e = key_end(a, i), n = 0;
    for (int k = 0; k < 2; k++) {
        const key_span *s = &blk->span[k];
        int64_t in = e - s->key;
        n += in <= 0 ? 0 : in > s->n ? s->n : in;
    }
    return n;
}

/* out (rows, D) [+]= P (rows, n_keys; leading dim n_keys) @ x's spans (keys, D): the first
 * span's product written (beta) and the second's added. */
static void spans_times(const query_block *blk, const float *P, const float *x, int64_t D,
                        float beta, float *out)
{
    for (int k = 0; k < 2; k++) {
        const key_span *s = &blk->span[k];
        if (s->n == 0) continue;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)blk->rows, (int)D,
                    (int)s->n, 1.0f, P + s->col, (int)blk->n_keys, x + s->key * D, (int)D,
                    beta, out, (int)D);
        beta = 1.0f;
    }
}

/* The spans of x (keys, D) += P^T (n_keys, rows) @ y (rows, D). */
static void spans_add_transposed(const query_block *blk, const float *P, const float *y,
                                 int64_t D, float *x)
{
    for (int k = 0; k < 2; k++) {
        const key_span *s = &blk->span[k];
        if (s->n)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)s->n, (int)D,
                        (int)blk->rows, 1.0f, P + s->col, (int)blk->n_keys, y, (int)D, 1.0f,
                        x + s->key * D, (int)D);
    }
}

/* S (rows, n_keys) = alpha * y (rows, D) @ x's spans^T. */
static void spans_scores(const query_block *blk, const float *y, const float *x, int64_t D,
                         float alpha, float *S)
{
    for (int k = 0; k < 2; k++) {
        const key_span *s = &blk->span[k];
        if (s->n)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)blk->rows, (int)s->n,
                        (int)D, alpha, y, (int)D, x + s->key * D, (int)D, 0.0f, S + s->col,
                        (int)blk->n_keys);
    }
}

/* Scores of the block's query rows of one head against its keys, scaled, masked and turned
 * into probabilities: P (rows, n_keys) = exp(scale * Q K^T - lse), 0 where a key is not
 * allowed; k is the head's (Tk,D). When `lse_out` is set the row log-sum-exps are computed
 * here (forward: P = exp(s - m) / l with m the row max, l = sum exp(s - m), lse = m + log l);
 * otherwise `lse_in` gives them (backward). */
static void probabilities(const attention_dims *a, const query_block *blk, const float *q,
                          const float *k, float *P, const float *lse_in, float *lse_out)
{
    int64_t n_keys = blk->n_keys;
    spans_scores(blk, q, k, a->D, a->scale, P);
    for (int64_t r = 0; r < blk->rows; r++) {
        float *p = P + r * n_keys;
        int64_t end = row_columns(a, blk, blk->i0 + r);
        const int32_t *allow = blk->allow + blk->span[0].key; /* one span without a layout */
        if (a->seg) {
            row_allow(a, blk->b, blk->i0 + r, blk->span, end, blk->allow, blk->row_buf);
            allow = blk->row_buf;
        }
        float lse = lse_out ? masked_row_max(p, allow, end) : lse_in[r];
        if (lse == -INFINITY) { /* no key: zeros, lse -inf */
            end = 0;
        } else if (lse_out) {
            double l = masked_row_exp(p, allow, end, lse);
            scale_row(p, end, (float)(1.0 / l));
            lse += (float)log(l);
        } else {
            masked_row_exp(p, allow, end, lse);
        }
        if (lse_out) lse_out[r] = lse;
        memset(p + end, 0, sizeof(float) * (size_t)(n_keys - end));
    }
}

/* Scratch for the key masks (B,Tk) and, under a segment layout, the key ranges (3 x (B,T))
 * after `floats` floats of per-thread blocks; all filled here. kr is set to the ranges, or
 * to NULL without a layout. */
static float *block_scratch(cpu_state *cpu, const attention_dims *a, size_t floats,
                            int32_t **allow, key_ranges_of *ranges, const key_ranges_of **kr)
{
    size_t cells = (size_t)(a->B * a->Tk), masks = cells * (a->seg ? 4 : 1);
    float *scratch = cpu_scratch(cpu, SCRATCH_ROWS,
                                 sizeof(float) * floats + sizeof(int32_t) * masks);
    if (!scratch) return NULL;
    *allow = (int32_t *)(scratch + floats);
    key_masks(a, *allow);
    *kr = NULL;
    if (a->seg) {
        int32_t *first = *allow + cells, *lo = first + cells, *hi = lo + cells;
        key_ranges(a, first, lo, hi);
        *ranges = (key_ranges_of){first, lo, hi};
        *kr = ranges;
    }
    return scratch;
}

CPU_KERNEL(cpu_attention)
{
    attention_dims a = dims_of(c, 3);
    const tensor *out = c->out[0];
    cpu_state *cpu = cpu_state_of(out->be);
    const float *q = f32_values(cpu, c->in[0], SCRATCH_ATTN_Q),
                *k = f32_values(cpu, c->in[1], SCRATCH_ATTN_K),
                *v = f32_values(cpu, c->in[2], SCRATCH_ATTN_V);
    int64_t n_out = tensor_numel(out);
    float *o = out->dt == DT_F32 ? (float *)out->data
                                 : cpu_scratch(cpu, SCRATCH_ATTN_O,
                                               sizeof(float) * (size_t)(n_out ? n_out : 1));
    float *lse = (float *)c->out[1]->data;
    if (!q || !k || !v) return aspo_error_status();
    if (!o) return aspo_fail(ASPO_ERR_OOM, "attention on cpu: no memory for a %s output",
                             dtype_name(out->dt));
    int64_t group = a.H / a.Hkv, D = a.D;
    int64_t blocks_per_head = (a.Tq + QUERY_BLOCK - 1) / QUERY_BLOCK;
    int64_t tasks = a.B * a.H * blocks_per_head;
    /* One block of probabilities and one row of allow bits per thread, then the key masks;
     * allocated once and reused across calls. */
    int threads = omp_get_max_threads();
    size_t per_thread = (size_t)(QUERY_BLOCK + 1) * (size_t)(a.Tk ? a.Tk : 1);
    int32_t *allow;
    key_ranges_of ranges;
    const key_ranges_of *kr;
    float *scratch = block_scratch(cpu, &a, per_thread * (size_t)threads, &allow, &ranges, &kr);
    if (!scratch)
        return aspo_fail(ASPO_ERR_OOM, "attention on cpu: no memory for %d blocks of %zu scores",
                         threads, per_thread);
#pragma omp parallel for schedule(static) num_threads(threads) if (tasks > 1 && a.Tq * a.Tk * D > 4096)
    for (int64_t t = 0; t < tasks; t++) {
        int64_t bh = t / blocks_per_head, b = bh / a.H, h = bh % a.H;
        int64_t i0 = t % blocks_per_head * QUERY_BLOCK;
        int64_t rows = a.Tq - i0 < QUERY_BLOCK ? a.Tq - i0 : QUERY_BLOCK;
        int64_t kvh = (b * a.Hkv + h / group) * a.Tk * D;
        float *P = scratch + (size_t)omp_get_thread_num() * per_thread;
        float *oi = o + (bh * a.Tq + i0) * D;
        query_block blk = block_of(&a, allow, kr, b, i0, rows,
                                   (int32_t *)(P + (size_t)QUERY_BLOCK * (size_t)a.Tk));
        if (blk.n_keys <= 0) { /* no key visible to the whole block: zeros, not NaN */
            memset(oi, 0, sizeof(float) * (size_t)(rows * D));
            for (int64_t r = 0; r < rows; r++) lse[bh * a.Tq + i0 + r] = -INFINITY;
            continue;
        }
        probabilities(&a, &blk, q + (bh * a.Tq + i0) * D, k + kvh, P, NULL, lse + bh * a.Tq + i0);
        spans_times(&blk, P, v + kvh, D, 0.0f, oi); /* o = P V */
    }
    if (out->dt != DT_F32) cpu_store_f32(out, 0, o, tensor_numel(out));
    return ASPO_OK;
}

/* dS = scale * P * (dP - D_i) over rows of n_keys, in place of dP. */
CPU_VECTOR_CLONES static void score_gradients(const float *P, float *dP, const float *Di,
                                              int64_t cells, int64_t n_keys, float scale)
{
    for (int64_t r = 0; r < cells / n_keys; r++)
        for (int64_t j = r * n_keys; j < (r + 1) * n_keys; j++)
            dP[j] = scale * P[j] * (dP[j] - Di[r]);
}

CPU_KERNEL(cpu_attention_backward)
{
    attention_dims a = dims_of(c, 6);
    cpu_state *cpu = cpu_state_of(c->out[0]->be);
    const float *q = f32_values(cpu, c->in[0], SCRATCH_ATTN_Q),
                *k = f32_values(cpu, c->in[1], SCRATCH_ATTN_K),
                *v = f32_values(cpu, c->in[2], SCRATCH_ATTN_V),
                *o = f32_values(cpu, c->in[3], SCRATCH_ATTN_O),
                *lse = (const float *)c->in[4]->data,
                *dout = f32_values(cpu, c->in[5], SCRATCH_ATTN_DO);
    if (!q || !k || !v || !o || !dout) return aspo_error_status();
    float *dq = (float *)c->out[0]->data, *dk = (float *)c->out[1]->data,
          *dv = (float *)c->out[2]->data;
    int64_t groups = a.B * a.Hkv, group = a.H / a.Hkv, D = a.D;
    int threads = omp_get_max_threads();
    size_t per_thread = (2 * (size_t)QUERY_BLOCK + 1) * (size_t)(a.Tk ? a.Tk : 1) + QUERY_BLOCK;
    int32_t *allow;
    key_ranges_of ranges;
    const key_ranges_of *kr;
    float *scratch = block_scratch(cpu, &a, per_thread * (size_t)threads, &allow, &ranges, &kr);
    if (!scratch)
        return aspo_fail(ASPO_ERR_OOM, "attention backward on cpu: no memory for %d blocks",
                         threads);
    /* One thread per (b, kv head): it alone writes that head's dk/dv and the dq rows of
     * the query heads sharing it, each in a fixed order. Probabilities are recomputed
     * block by block from q, k and lse. */
#pragma omp parallel for schedule(static) num_threads(threads) if (groups > 1 && a.Tq * a.Tk * D > 4096)
    for (int64_t g = 0; g < groups; g++) {
        int64_t b = g / a.Hkv;
        const float *kg = k + g * a.Tk * D, *vg = v + g * a.Tk * D; /* (Tk,D) */
        float *dkg = dk + g * a.Tk * D, *dvg = dv + g * a.Tk * D;
        float *P = scratch + (size_t)omp_get_thread_num() * per_thread;
        float *dP = P + (size_t)QUERY_BLOCK * (size_t)a.Tk, *Di = dP + (size_t)QUERY_BLOCK * (size_t)a.Tk;
        int32_t *row_buf = (int32_t *)(Di + QUERY_BLOCK);
        memset(dkg, 0, sizeof(float) * (size_t)(a.Tk * D));
        memset(dvg, 0, sizeof(float) * (size_t)(a.Tk * D));
        for (int64_t h = (g % a.Hkv) * group; h < (g % a.Hkv + 1) * group; h++)
            for (int64_t i0 = 0; i0 < a.Tq; i0 += QUERY_BLOCK) {
                int64_t rows = a.Tq - i0 < QUERY_BLOCK ? a.Tq - i0 : QUERY_BLOCK;
                int64_t r0 = (b * a.H + h) * a.Tq + i0; /* first row of the block */
                const float *qb = q + r0 * D, *ob = o + r0 * D, *dob = dout + r0 * D;
                float *dqb = dq + r0 * D;
                query_block blk = block_of(&a, allow, kr, b, i0, rows, row_buf);
                int64_t n_keys = blk.n_keys;
                if (n_keys <= 0) {
                    memset(dqb, 0, sizeof(float) * (size_t)(rows * D));
                    continue;
                }
                probabilities(&a, &blk, qb, kg, P, lse + r0, NULL);
                /* dV += P^T dO;  dP = dO V^T */
                spans_add_transposed(&blk, P, dob, D, dvg);
                spans_scores(&blk, dob, vg, D, 1.0f, dP);
                /* dS = scale * P * (dP - D_i), D_i = do_i . o_i */
                for (int64_t r = 0; r < rows; r++) {
                    float d = 0;
                    for (int64_t x = 0; x < D; x++) d += dob[r * D + x] * ob[r * D + x];
                    Di[r] = d;
                }
                score_gradients(P, dP, Di, rows * n_keys, n_keys, a.scale);
                /* dQ = dS K;  dK += dS^T Q */
                spans_times(&blk, dP, kg, D, 0.0f, dqb);
                spans_add_transposed(&blk, dP, qb, D, dkg);
            }
    }
    return ASPO_OK;
}
