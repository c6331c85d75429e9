/* Attention forward and backward on contiguous tensors (op table flag) of any float dtype:
 * half-precision q, k, v, o are widened to f32 scratch first and a half o is rounded once on
 * the way out (the math is f32 throughout).
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

#include <cblas.h>

#include "cpu_internal.h"
#include "cpu_math.h"

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

enum { QUERY_BLOCK = 64 }; /* query rows per sgemm block: bounds scratch to 64 x Tk */

/* allow (B,Tk): -1 (all bits) where key_mask lets a key be attended, else 0; a bit mask so
 * the row loops below select without branches and vectorize. */
static void key_masks(const attention_dims *a, int32_t *allow)
{
    for (int64_t i = 0; i < a->B * a->Tk; i++)
        allow[i] = !a->mask || dtype_load(a->mask, a->mask_dt, i) != 0.0f ? -1 : 0;
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

/* Scores of query rows [i0, i0+rows) of one head against keys [0, n_keys), scaled, masked
 * (allow: the batch row's key masks) and turned into probabilities:
 * P (rows, n_keys) = exp(scale * Q K^T - lse), 0 where a key is not allowed. When
 * `lse_out` is set the row log-sum-exps are computed here (forward: P = exp(s - m) / l
 * with m the row max, l = sum exp(s - m), lse = m + log l); otherwise `lse_in` gives them
 * (backward). */
static void probabilities(const attention_dims *a, const int32_t *allow, int64_t i0,
                          int64_t rows, int64_t n_keys, const float *q, const float *k,
                          float *P, const float *lse_in, float *lse_out)
{
    int64_t D = a->D;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)n_keys, (int)D,
                a->scale, q, (int)D, k, (int)D, 0.0f, P, (int)n_keys);
    for (int64_t r = 0; r < rows; r++) {
        float *p = P + r * n_keys;
        int64_t end = key_end(a, i0 + r);
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

/* Keys any of rows [i0, i0+rows) may see: the causal window of the last row. */
static int64_t block_keys(const attention_dims *a, int64_t i0, int64_t rows)
{
    return key_end(a, i0 + rows - 1);
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
    /* One block of probabilities per thread, then the key masks; allocated once and
     * reused across calls. */
    int threads = omp_get_max_threads();
    size_t per_thread = (size_t)QUERY_BLOCK * (size_t)(a.Tk ? a.Tk : 1);
    float *scratch = cpu_scratch(cpu, SCRATCH_ROWS,
                                 sizeof(float) * per_thread * (size_t)threads +
                                     sizeof(int32_t) * (size_t)(a.B * a.Tk));
    if (!scratch)
        return aspo_fail(ASPO_ERR_OOM, "attention on cpu: no memory for %d blocks of %zu scores",
                         threads, per_thread);
    int32_t *allow = (int32_t *)(scratch + per_thread * (size_t)threads);
    key_masks(&a, allow);
#pragma omp parallel for schedule(static) num_threads(threads) if (tasks > 1 && a.Tq * a.Tk * D > 4096)
    for (int64_t t = 0; t < tasks; t++) {
        int64_t bh = t / blocks_per_head, b = bh / a.H, h = bh % a.H;
        int64_t i0 = t % blocks_per_head * QUERY_BLOCK;
        int64_t rows = a.Tq - i0 < QUERY_BLOCK ? a.Tq - i0 : QUERY_BLOCK;
        int64_t kvh = (b * a.Hkv + h / group) * a.Tk * D;
        float *P = scratch + (size_t)omp_get_thread_num() * per_thread;
        float *oi = o + (bh * a.Tq + i0) * D;
        int64_t n_keys = block_keys(&a, i0, rows);
        if (n_keys <= 0) { /* no key visible to the whole block: zeros, not NaN */
            memset(oi, 0, sizeof(float) * (size_t)(rows * D));
            for (int64_t r = 0; r < rows; r++) lse[bh * a.Tq + i0 + r] = -INFINITY;
            continue;
        }
        probabilities(&a, allow + b * a.Tk, i0, rows, n_keys, q + (bh * a.Tq + i0) * D,
                      k + kvh, P, NULL, lse + bh * a.Tq + i0);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)D, (int)n_keys,
                    1.0f, P, (int)n_keys, v + kvh, (int)D, 0.0f, oi, (int)D);
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
    size_t per_thread = 2 * (size_t)QUERY_BLOCK * (size_t)(a.Tk ? a.Tk : 1) + QUERY_BLOCK;
    float *scratch = cpu_scratch(cpu, SCRATCH_ROWS,
                                 sizeof(float) * per_thread * (size_t)threads +
                                     sizeof(int32_t) * (size_t)(a.B * a.Tk));
    if (!scratch)
        return aspo_fail(ASPO_ERR_OOM, "attention backward on cpu: no memory for %d blocks",
                         threads);
    int32_t *allow = (int32_t *)(scratch + per_thread * (size_t)threads);
    key_masks(&a, allow);
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
        memset(dkg, 0, sizeof(float) * (size_t)(a.Tk * D));
        memset(dvg, 0, sizeof(float) * (size_t)(a.Tk * D));
        for (int64_t h = (g % a.Hkv) * group; h < (g % a.Hkv + 1) * group; h++)
            for (int64_t i0 = 0; i0 < a.Tq; i0 += QUERY_BLOCK) {
                int64_t rows = a.Tq - i0 < QUERY_BLOCK ? a.Tq - i0 : QUERY_BLOCK;
                int64_t r0 = (b * a.H + h) * a.Tq + i0; /* first row of the block */
                const float *qb = q + r0 * D, *ob = o + r0 * D, *dob = dout + r0 * D;
                float *dqb = dq + r0 * D;
                int64_t n_keys = block_keys(&a, i0, rows);
                if (n_keys <= 0) {
                    memset(dqb, 0, sizeof(float) * (size_t)(rows * D));
                    continue;
                }
                probabilities(&a, allow + b * a.Tk, i0, rows, n_keys, qb, kg, P, lse + r0, NULL);
                /* dV += P^T dO;  dP = dO V^T */
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)n_keys, (int)D,
                            (int)rows, 1.0f, P, (int)n_keys, dob, (int)D, 1.0f, dvg, (int)D);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)n_keys,
                            (int)D, 1.0f, dob, (int)D, vg, (int)D, 0.0f, dP, (int)n_keys);
                /* dS = scale * P * (dP - D_i), D_i = do_i . o_i */
                for (int64_t r = 0; r < rows; r++) {
                    float d = 0;
                    for (int64_t x = 0; x < D; x++) d += dob[r * D + x] * ob[r * D + x];
                    Di[r] = d;
                }
                score_gradients(P, dP, Di, rows * n_keys, n_keys, a.scale);
                /* dQ = dS K;  dK += dS^T Q */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)D,
                            (int)n_keys, 1.0f, dP, (int)n_keys, kg, (int)D, 0.0f, dqb, (int)D);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)n_keys, (int)D,
                            (int)rows, 1.0f, dP, (int)n_keys, qb, (int)D, 1.0f, dkg, (int)D);
            }
    }
    return ASPO_OK;
}
