/* Normalisation kernels over the last dim: RMSNorm, LayerNorm, L2 normalisation and their
 * backward passes. Inputs are contiguous (the op table says so) and viewed as rows (R,C).
 * Row sums are accumulated in double and each row is done by one thread; parameter
 * gradients are reduced per block of columns by one thread walking the rows in order, so
 * every result is independent of the thread count. */
#include <math.h>

#include "cpu_internal.h"
#include "cpu_math.h"

/* Backward gradient mask in p.i[0], as in tensor/ops_norm.c: outputs are the wanted
 * gradients in this order. */

enum {
    PARALLEL_MIN = 32768, /* elements below which threads cost more than they save */
    COL_BLOCK = 64,       /* columns one thread reduces over all rows */
};

/* x (...,C) as (R,C). */
static void rows_of(const tensor *x, int64_t *R, int64_t *C)
{
    *C = x->shape[x->ndim - 1];
    *R = *C ? tensor_numel(x) / *C : 0;
}

/* Element i of a contiguous tensor, as f32. */
static inline float at(const tensor *t, int64_t i) { return dtype_load(t->data, t->dt, i); }

/* Sum of squares of the C elements of x from offset o, in double. */
static double row_sum_squares(const tensor *x, int64_t o, int64_t C)
{
    double ss = 0;
    for (int64_t i = 0; i < C; i++) {
        double v = at(x, o + i);
        ss += v * v;
    }
    return ss;
}

/* Rounds v to dtype dt, as a cast to that dtype and back does. */
static inline float round_to_dtype(dtype dt, float v)
{
    switch (dt) {
    case DT_BF16: return bf16_to_f32(f32_to_bf16(v));
    case DT_F16: return f16_to_f32(f32_to_f16(v));
    default: return v;
    }
}

/* Takes the wanted backward outputs in order; NULL for those not wanted. */
static void backward_outputs(const op_call *c, tensor **dx, tensor **dweight, tensor **dbias)
{
    int64_t want = c->p.i[0];
    int k = 0;
    *dx = (want & WANT_DX) ? c->out[k++] : NULL;
    *dweight = (want & WANT_DWEIGHT) ? c->out[k++] : NULL;
    if (dbias) *dbias = (want & WANT_DBIAS) ? c->out[k++] : NULL;
    ASPO_ASSERT(k == c->n_out);
}

/* ---- RMSNorm, as Hugging Face LlamaRMSNorm ---- */

/* sum_i a_i b_i in double over 8 fixed lanes added in a fixed order (a vectorizable dot). */
CPU_VECTOR_CLONES static double dot_f32(const float *a, const float *b, int64_t n)
{
    double lane[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) lane[k] += (double)a[i + k] * b[i + k];
    for (; i < n; i++) lane[0] += (double)a[i] * b[i];
    return cpu_sum_lanes(lane);
}

/* One f32 row of the forward: y = w * (x * rs); returns rs. */
CPU_VECTOR_CLONES static float rmsnorm_row_f32(const float *x, const float *w, float *y,
                                               int64_t C, float eps)
{
    float rs = 1.0f / sqrtf((float)(dot_f32(x, x, C) / (double)C) + eps);
    for (int64_t i = 0; i < C; i++) y[i] = w[i] * (x[i] * rs);
    return rs;
}

/* One f32 row of dx = rs * (g - h * mean(g*h)), g = dy*w, h = x*rs. */
CPU_VECTOR_CLONES static void rmsnorm_row_backward_f32(const float *x, const float *w,
                                                       const float *dy, float rs, float *dx,
                                                       int64_t C)
{
    double lane[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= C; i += 8)
        for (int k = 0; k < 8; k++) lane[k] += (double)(dy[i + k] * w[i + k]) * (x[i + k] * rs);
    for (; i < C; i++) lane[0] += (double)(dy[i] * w[i]) * (x[i] * rs);
    double dot = cpu_sum_lanes(lane);
    float m = (float)(dot / (double)C);
    for (int64_t j = 0; j < C; j++) dx[j] = rs * (dy[j] * w[j] - (x[j] * rs) * m);
}

/* y = weight * to_dtype(x * rstd), rstd = 1/sqrt(mean(x^2) + eps), all in f32. The cast
 * back to x's dtype before the weight is Hugging Face's (a no-op for f32 x). */
CPU_KERNEL(cpu_rmsnorm)
{
    const tensor *x = c->in[0], *w = c->in[1];
    tensor *y = c->out[0];
    float *rstd = (float *)c->out[1]->data; /* (R) */
    float eps = c->p.f[0];
    int64_t R, C;
    rows_of(x, &R, &C);
    if (x->dt == DT_F32 && w->dt == DT_F32 && y->dt == DT_F32) {
        const float *xf = (const float *)x->data, *wf = (const float *)w->data;
        float *yf = (float *)y->data;
#pragma omp parallel for schedule(static) if (R * C > PARALLEL_MIN)
        for (int64_t r = 0; r < R; r++)
            rstd[r] = rmsnorm_row_f32(xf + r * C, wf, yf + r * C, C, eps);
        return ASPO_OK;
    }
#pragma omp parallel for schedule(static) if (R * C > PARALLEL_MIN)
    for (int64_t r = 0; r < R; r++) {
        int64_t o = r * C;
        double ss = row_sum_squares(x, o, C);
        float rs = 1.0f / sqrtf((float)(ss / (double)C) + eps);
        rstd[r] = rs;
        for (int64_t i = 0; i < C; i++) {
            float h = round_to_dtype(x->dt, at(x, o + i) * rs);
            dtype_store(y->data, y->dt, o + i, at(w, i) * h);
        }
    }
    return ASPO_OK;
}

/* dx = rstd * (g - h * mean(g*h)) with g = dy*weight, h = x*rstd;
 * dweight = sum over rows of dy * h (h rounded as in the forward, which multiplied it). */
CPU_KERNEL(cpu_rmsnorm_backward)
{
    const tensor *x = c->in[0], *w = c->in[1], *dy = c->in[3];
    const float *rstd = (const float *)c->in[2]->data;
    tensor *dx_out, *dweight_out;
    backward_outputs(c, &dx_out, &dweight_out, NULL);
    int64_t R, C;
    rows_of(x, &R, &C);
    if (dx_out && x->dt == DT_F32 && w->dt == DT_F32 && dy->dt == DT_F32) {
        const float *xf = (const float *)x->data, *wf = (const float *)w->data,
                    *dyf = (const float *)dy->data;
        float *dx = (float *)dx_out->data;
#pragma omp parallel for schedule(static) if (R * C > PARALLEL_MIN)
        for (int64_t r = 0; r < R; r++)
            rmsnorm_row_backward_f32(xf + r * C, wf, dyf + r * C, rstd[r], dx + r * C, C);
    } else if (dx_out) {
        float *dx = (float *)dx_out->data;
#pragma omp parallel for schedule(static) if (R * C > PARALLEL_MIN)
        for (int64_t r = 0; r < R; r++) {
            int64_t o = r * C;
            float rs = rstd[r];
            double dot = 0;
            for (int64_t i = 0; i < C; i++) {
                float g = at(dy, o + i) * at(w, i), h = at(x, o + i) * rs;
                dot += (double)g * h;
            }
            float m = (float)(dot / (double)C);
            for (int64_t i = 0; i < C; i++) {
                float g = at(dy, o + i) * at(w, i);
                float h = at(x, o + i) * rs;
                dx[o + i] = rs * (g - h * m);
            }
        }
    }
    if (dweight_out) {
        float *dw = (float *)dweight_out->data;
        int64_t blocks = (C + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for schedule(static) if (R * C > PARALLEL_MIN)
        for (int64_t b = 0; b < blocks; b++) {
            int64_t c0 = b * COL_BLOCK, n = C - c0 < COL_BLOCK ? C - c0 : COL_BLOCK;
            double acc[COL_BLOCK] = {0};
            for (int64_t r = 0; r < R; r++)
                for (int64_t i = 0; i < n; i++) {
                    int64_t o = r * C + c0 + i;
                    float h = round_to_dtype(x->dt, at(x, o) * rstd[r]);
                    acc[i] += (double)at(dy, o) * h;
                }
            for (int64_t i = 0; i < n; i++) dw[c0 + i] = (float)acc[i];
        }
    }
    return ASPO_OK;
}

/* ---- LayerNorm, as torch.nn.LayerNorm (biased variance) ---- */

/* y = (x - mean) * rstd * weight + bias, rstd = 1/sqrt(var + eps). */
CPU_KERNEL(cpu_layernorm)
{
    const tensor *x = c->in[0], *w = c->in[1], *b = c->in[2];
    tensor *y = c->out[0];
    float *mean = (float *)c->out[1]->data, *rstd = (float *)c->out[2]->data; /* (R) */
    float eps = c->p.f[0];
    int64_t R, C;
    rows_of(x, &R, &C);
#pragma omp parallel for schedule(static) if (R * C > PARALLEL_MIN)
    for (int64_t r = 0; r < R; r++) {
        int64_t o = r * C;
        double sum = 0, var = 0;
        for (int64_t i = 0; i < C; i++) sum += at(x, o + i);
        double mu = sum / (double)C;
        for (int64_t i = 0; i < C; i++) { /* two passes: no cancellation for large means */
            double d = at(x, o + i) - mu;
            var += d * d;
        }
        float m = (float)mu, rs = (float)(1.0 / sqrt(var / (double)C + eps));
        mean[r] = m;
        rstd[r] = rs;
        for (int64_t i = 0; i < C; i++) {
            float xhat = (at(x, o + i) - m) * rs;
            dtype_store(y->data, y->dt, o + i, xhat * at(w, i) + at(b, i));
        }
    }
    return ASPO_OK;
}

/* dx = rstd * (g - mean(g) - xhat * mean(g*xhat)) with g = dy*weight;
 * dweight = sum over rows of dy * xhat, dbias = sum over rows of dy. */
CPU_KERNEL(cpu_layernorm_backward)
{
    const tensor *x = c->in[0], *w = c->in[1], *dy = c->in[4];
    const float *mean = (const float *)c->in[2]->data, *rstd = (const float *)c->in[3]->data;
    tensor *dx_out, *dweight_out, *dbias_out;
    backward_outputs(c, &dx_out, &dweight_out, &dbias_out);
    int64_t R, C;
    rows_of(x, &R, &C);
    if (dx_out) {
        float *dx = (float *)dx_out->data;
#pragma omp parallel for schedule(static) if (R * C > PARALLEL_MIN)
        for (int64_t r = 0; r < R; r++) {
            int64_t o = r * C;
            float m = mean[r], rs = rstd[r];
            double sum_g = 0, sum_gx = 0;
            for (int64_t i = 0; i < C; i++) {
                float g = at(dy, o + i) * at(w, i);
                float xhat = (at(x, o + i) - m) * rs;
                sum_g += g;
                sum_gx += (double)g * xhat;
            }
            float mg = (float)(sum_g / (double)C), mgx = (float)(sum_gx / (double)C);
            for (int64_t i = 0; i < C; i++) {
                float g = at(dy, o + i) * at(w, i);
                float xhat = (at(x, o + i) - m) * rs;
                dx[o + i] = rs * (g - mg - xhat * mgx);
            }
        }
    }
    if (dweight_out || dbias_out) {
        float *dw = dweight_out ? (float *)dweight_out->data : NULL, *db = dbias_out ? (float *)dbias_out->data : NULL;
        int64_t blocks = (C + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for schedule(static) if (R * C > PARALLEL_MIN)
        for (int64_t b = 0; b < blocks; b++) {
            int64_t c0 = b * COL_BLOCK, n = C - c0 < COL_BLOCK ? C - c0 : COL_BLOCK;
            double acc_w[COL_BLOCK] = {0}, acc_b[COL_BLOCK] = {0};
            for (int64_t r = 0; r < R; r++)
                for (int64_t i = 0; i < n; i++) {
                    int64_t o = r * C + c0 + i;
                    float xhat = (at(x, o) - mean[r]) * rstd[r];
                    acc_w[i] += (double)at(dy, o) * xhat;
                    acc_b[i] += at(dy, o);
                }
            for (int64_t i = 0; i < n; i++) {
                if (dw) dw[c0 + i] = (float)acc_w[i];
                if (db) db[c0 + i] = (float)acc_b[i];
            }
        }
    }
    return ASPO_OK;
}

/* ---- L2 normalisation, as F.normalize(p=2, dim=-1, eps) ---- */

/* y = x / max(||x||, eps). inv_norm = 1/max(||x||, eps), negated for rows whose norm did
 * not exceed eps (the denominator was the constant eps). */
CPU_KERNEL(cpu_l2norm)
{
    const tensor *x = c->in[0];
    tensor *y = c->out[0];
    float *inv_norm = (float *)c->out[1]->data; /* (R) */
    float eps = c->p.f[0];
    int64_t R, C;
    rows_of(x, &R, &C);
#pragma omp parallel for schedule(static) if (R * C > PARALLEL_MIN)
    for (int64_t r = 0; r < R; r++) {
        int64_t o = r * C;
        double ss = row_sum_squares(x, o, C);
        float norm = (float)sqrt(ss);
        bool clamped = !(norm > eps);
        float denom = clamped ? eps : norm;
        inv_norm[r] = clamped ? -1.0f / denom : 1.0f / denom;
        for (int64_t i = 0; i < C; i++)
            dtype_store(y->data, y->dt, o + i, at(x, o + i) / denom);
    }
    return ASPO_OK;
}

/* dx = inv_norm * (dy - y * sum(dy*y)) where the norm exceeded eps, else dy / eps. */
CPU_KERNEL(cpu_l2norm_backward)
{
    const tensor *y = c->in[0], *dy = c->in[2];
    const float *inv_norm = (const float *)c->in[1]->data;
    tensor *dx_out, *unused;
    backward_outputs(c, &dx_out, &unused, NULL);
    ASPO_ASSERT(dx_out && !unused);
    float *dx = (float *)dx_out->data;
    int64_t R, C;
    rows_of(y, &R, &C);
#pragma omp parallel for schedule(static) if (R * C > PARALLEL_MIN)
    for (int64_t r = 0; r < R; r++) {
        int64_t o = r * C;
        float inv = inv_norm[r];
        if (inv < 0) { /* clamped: y = x / eps is linear in x */
            for (int64_t i = 0; i < C; i++) dx[o + i] = at(dy, o + i) * -inv;
            continue;
        }
        double dot = 0;
        for (int64_t i = 0; i < C; i++) dot += (double)at(dy, o + i) * at(y, o + i);
        float d = (float)dot;
        for (int64_t i = 0; i < C; i++)
            dx[o + i] = inv * (at(dy, o + i) - at(y, o + i) * d);
    }
    return ASPO_OK;
}
