/* Attention forward and backward on contiguous f32 (op table flag; the op layer casts).
 * q (B,H,Tq,D), k/v (B,Hkv,Tk,D), query head h reads kv head h / (H/Hkv). Query row i
 * may attend key j when key_mask[b,j] != 0 and, if causal, j <= i + (Tk - Tq). A row with
 * no such key outputs zeros, lse = -inf, and gets no gradient.
 *
 * Forward: s_j = scale * q_i.k_j, p_j = exp(s_j - lse_i), o_i = sum_j p_j v_j.
 * Backward recomputes p_j from lse_i (nothing of size Tq x Tk was kept):
 *   D_i = do_i.o_i,  dv_j += p_j do_i,  ds_j = p_j (do_i.v_j - D_i),
 *   dq_i += scale ds_j k_j,  dk_j += scale ds_j q_i. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_internal.h"

typedef struct attention_dims {
    int64_t B, H, Hkv, Tq, Tk, D;
    bool causal;
    float scale;
    const char *mask; /* (B,Tk) or NULL */
    dtype mask_dt;
} attention_dims;

static attention_dims dims_of(const op_call *c, int mask_input)
{
    const tensor *q = c->in[0], *k = c->in[1];
    attention_dims a = {.B = q->shape[0], .H = q->shape[1], .Tq = q->shape[2],
                        .D = q->shape[3], .Hkv = k->shape[1], .Tk = k->shape[2],
                        .causal = c->p.i[0] != 0, .scale = c->p.f[0]};
    if (c->n_in > mask_input) {
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

static inline bool key_allowed(const attention_dims *a, int64_t b, int64_t j)
{
    return !a->mask || dtype_load(a->mask, a->mask_dt, b * a->Tk + j) != 0.0f;
}

static inline float dot(const float *x, const float *y, int64_t n)
{
    float acc = 0;
    for (int64_t d = 0; d < n; d++) acc += x[d] * y[d];
    return acc;
}

CPU_KERNEL(cpu_attention)
{
    attention_dims a = dims_of(c, 3);
    const float *q = (const float *)c->in[0]->data, *k = (const float *)c->in[1]->data,
                *v = (const float *)c->in[2]->data;
    float *o = (float *)c->out[0]->data, *lse = (float *)c->out[1]->data;
    int64_t rows = a.B * a.H * a.Tq, group = a.H / a.Hkv, D = a.D;
    /* One row of scores per thread, allocated once per call. */
    int threads = omp_get_max_threads();
    float *scratch = cpu_scratch(SCRATCH_ROWS, sizeof(float) * (size_t)threads *
                                                   (size_t)(a.Tk ? a.Tk : 1));
    if (!scratch)
        return aspo_fail(ASPO_ERR_OOM, "attention on cpu: no memory for %d rows of %lld scores",
                         threads, (long long)a.Tk);
#pragma omp parallel for schedule(static) num_threads(threads) if (rows * a.Tk * D > 65536)
    for (int64_t r = 0; r < rows; r++) {
        int64_t b = r / (a.H * a.Tq), h = r / a.Tq % a.H, i = r % a.Tq;
        const float *qi = q + r * D;
        const float *kb = k + (b * a.Hkv + h / group) * a.Tk * D; /* (Tk,D) */
        const float *vb = v + (b * a.Hkv + h / group) * a.Tk * D;
        float *s = scratch + (int64_t)omp_get_thread_num() * a.Tk, *oi = o + r * D;
        int64_t end = key_end(&a, i);
        float m = -INFINITY;
        int64_t allowed = 0;
        for (int64_t j = 0; j < end; j++) {
            if (!key_allowed(&a, b, j)) continue;
            s[j] = a.scale * dot(qi, kb + j * D, D);
            m = allowed++ ? fmaxf(m, s[j]) : s[j];
        }
        memset(oi, 0, sizeof(float) * (size_t)D);
        if (!allowed) { /* no key to attend: zeros, not NaN */
            lse[r] = -INFINITY;
            continue;
        }
        float l = 0;
        for (int64_t j = 0; j < end; j++) {
            if (!key_allowed(&a, b, j)) continue;
            float p = expf(s[j] - m);
            l += p;
            for (int64_t d = 0; d < D; d++) oi[d] += p * vb[j * D + d];
        }
        for (int64_t d = 0; d < D; d++) oi[d] /= l;
        lse[r] = m + logf(l);
    }
    return ASPO_OK;
}

CPU_KERNEL(cpu_attention_backward)
{
    attention_dims a = dims_of(c, 6);
    const float *q = (const float *)c->in[0]->data, *k = (const float *)c->in[1]->data,
                *v = (const float *)c->in[2]->data, *o = (const float *)c->in[3]->data,
                *lse = (const float *)c->in[4]->data, *dout = (const float *)c->in[5]->data;
    float *dq = (float *)c->out[0]->data, *dk = (float *)c->out[1]->data,
          *dv = (float *)c->out[2]->data;
    int64_t groups = a.B * a.Hkv, group = a.H / a.Hkv, D = a.D;
    /* One thread per (b, kv head): it alone writes that head's dk/dv and the dq rows of
     * the query heads sharing it, each in a fixed order. */
#pragma omp parallel for schedule(static) if (a.B * a.H * a.Tq * a.Tk * D > 65536)
    for (int64_t g = 0; g < groups; g++) {
        int64_t b = g / a.Hkv;
        const float *kg = k + g * a.Tk * D, *vg = v + g * a.Tk * D; /* (Tk,D) */
        float *dkg = dk + g * a.Tk * D, *dvg = dv + g * a.Tk * D;
        memset(dkg, 0, sizeof(float) * (size_t)(a.Tk * D));
        memset(dvg, 0, sizeof(float) * (size_t)(a.Tk * D));
        for (int64_t h = (g % a.Hkv) * group; h < (g % a.Hkv + 1) * group; h++)
            for (int64_t i = 0; i < a.Tq; i++) {
                int64_t r = (b * a.H + h) * a.Tq + i;
                const float *qi = q + r * D, *oi = o + r * D, *doi = dout + r * D;
                float *dqi = dq + r * D;
                memset(dqi, 0, sizeof(float) * (size_t)D); /* stays 0 if no key is allowed */
                float Di = dot(doi, oi, D);
                for (int64_t j = 0, end = key_end(&a, i); j < end; j++) {
                    if (!key_allowed(&a, b, j)) continue;
                    const float *kj = kg + j * D, *vj = vg + j * D;
                    float p = expf(a.scale * dot(qi, kj, D) - lse[r]);
                    float ds = p * (dot(doi, vj, D) - Di) * a.scale;
                    for (int64_t d = 0; d < D; d++) {
                        dvg[j * D + d] += p * doi[d];
                        dkg[j * D + d] += ds * qi[d];
                        dqi[d] += ds * kj[d];
                    }
                }
            }
    }
    return ASPO_OK;
}
