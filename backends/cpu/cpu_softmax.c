/* Softmax, log-softmax and target log-probabilities over the last dim, with their backward
 * kernels. Inputs are contiguous (the op table says so); each row is done by one thread in
 * a fixed order, so results do not depend on the thread count. Sums are in double after
 * subtracting the row max, so large logits neither overflow nor lose the small terms. */
#include <math.h>
#include <string.h>

#include "../../tensor/op_checks.h"
#include "cpu_internal.h"
#include "cpu_math.h"

/* Rows and row length of a contiguous (...,C) tensor. */
static void rows_of(const tensor *t, int64_t *R, int64_t *C)
{
    *C = t->ndim ? t->shape[t->ndim - 1] : 1;
    *R = *C ? tensor_numel(t) / *C : 0;
}

/* The row max through integer keys (cpu_order_key), so it vectorizes. */
CPU_VECTOR_CLONES static float row_max_f32(const float *x, int64_t n)
{
    int32_t m = cpu_order_key(-INFINITY);
    for (int64_t i = 0; i < n; i++) {
        int32_t k = cpu_order_key(x[i]);
        m = k > m ? k : m;
    }
    return cpu_order_key_float(m);
}

/* sum_i exp(x_i - m) in double over 8 fixed lanes added in a fixed order. */
CPU_VECTOR_CLONES static double row_sum_exp_f32(const float *x, int64_t n, float m)
{
    double lane[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) lane[k] += (double)cpu_expf(x[i + k] - m);
    for (; i < n; i++) lane[0] += (double)cpu_expf(x[i] - m);
    return cpu_sum_lanes(lane);
}

/* The two passes over a row, with the dtype switch outside the loops so the f32 path (the
 * (N,32000) logits of a language model) is a vectorized loop over floats. A NaN in the row
 * makes the sum NaN. */
static float row_max(const char *data, dtype dt, int64_t off, int64_t n)
{
    if (dt == DT_F32) return row_max_f32((const float *)data + off, n);
    float m = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        float v = dtype_load(data, dt, off + i);
        m = v > m ? v : m;
    }
    return m;
}

/* sum_i exp(x_i - m). */
static double row_sum_exp(const char *data, dtype dt, int64_t off, int64_t n, float m)
{
    if (dt == DT_F32) return row_sum_exp_f32((const float *)data + off, n, m);
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += cpu_expf(dtype_load(data, dt, off + i) - m);
    return s;
}

/* log sum_i exp(x_i) of one row. */
static double row_logsumexp(const char *data, dtype dt, int64_t off, int64_t n)
{
    float m = row_max(data, dt, off, n);
    return (double)m + log(row_sum_exp(data, dt, off, n, m));
}

/* row = -g * exp(x - l), the softmax part of d logp / d logits. */
CPU_VECTOR_CLONES static void scaled_softmax_f32(const float *x, float *row, int64_t n, float g,
                                                 float l)
{
    for (int64_t v = 0; v < n; v++) row[v] = -g * cpu_expf(x[v] - l);
}

static inline float load(const tensor *t, int64_t i) { return dtype_load(t->data, t->dt, i); }

/* in: x (...,C); out: y (...,C); i[0] = 1: log-softmax. */
CPU_KERNEL(cpu_softmax)
{
    const tensor *x = c->in[0];
    tensor *y = c->out[0];
    bool log_softmax = c->p.i[0] != 0;
    int64_t R, C;
    rows_of(x, &R, &C);
#pragma omp parallel for schedule(static) if (R * C > 16384)
    for (int64_t r = 0; r < R; r++) {
        int64_t off = r * C;
        float m = row_max(x->data, x->dt, off, C);
        double sum = row_sum_exp(x->data, x->dt, off, C, m);
        if (log_softmax) {
            double log_sum = log(sum); /* y = (x - m) - log(sum) */
            for (int64_t j = 0; j < C; j++)
                dtype_store(y->data, y->dt, off + j,
                            (float)((double)(load(x, off + j) - m) - log_sum));
        } else {
            double inv = 1.0 / sum;
            for (int64_t j = 0; j < C; j++)
                dtype_store(y->data, y->dt, off + j, (float)(cpu_expf(load(x, off + j) - m) * inv));
        }
    }
    return ASPO_OK;
}

/* in: y (softmax or log-softmax output), dy; out: dx f32.
 * softmax: dx = y*(dy - sum(dy*y)); log-softmax: dx = dy - exp(y)*sum(dy). */
CPU_KERNEL(cpu_softmax_backward)
{
    const tensor *y = c->in[0], *dy = c->in[1];
    tensor *dx = c->out[0];
    bool log_softmax = c->p.i[0] != 0;
    int64_t R, C;
    rows_of(y, &R, &C);
#pragma omp parallel for schedule(static) if (R * C > 16384)
    for (int64_t r = 0; r < R; r++) {
        int64_t off = r * C;
        double s = 0;
        for (int64_t j = 0; j < C; j++)
            s += log_softmax ? (double)load(dy, off + j)
                             : (double)load(dy, off + j) * load(y, off + j);
        for (int64_t j = 0; j < C; j++) {
            double yj = load(y, off + j), gj = load(dy, off + j);
            double v = log_softmax ? gj - exp(yj) * s : yj * (gj - s);
            dtype_store(dx->data, dx->dt, off + j, (float)v);
        }
    }
    return ASPO_OK;
}

/* in: logits (N,V), targets (N) i32; i[0]: ignore index; out: logp (N) f32, lse (N) f32.
 * logp = logit[target] - logsumexp(row), in two passes over the row and no (N,V) buffer.
 * Ignored rows give logp = 0 and lse = 0 and are not read (padding costs nothing). */
CPU_KERNEL(cpu_gather_logprobs)
{
    const tensor *logits = c->in[0], *targets = c->in[1];
    float *logp = (float *)c->out[0]->data, *lse = (float *)c->out[1]->data;
    int64_t ignore_index = c->p.i[0];
    int64_t N, V;
    rows_of(logits, &N, &V);
    if (V == 0) N = tensor_numel(targets); /* (N,0): no rows in logits, but N targets */
    const int32_t *ids = (const int32_t *)targets->data;
    aspo_status s = op_check_targets("gather_logprobs", ids, N, V, ignore_index);
    if (s) return s;
#pragma omp parallel for schedule(static) if (N * V > 16384)
    for (int64_t n = 0; n < N; n++) {
        if (ids[n] == ignore_index) {
            logp[n] = 0.0f;
            lse[n] = 0.0f;
            continue;
        }
        double l = row_logsumexp(logits->data, logits->dt, n * V, V);
        logp[n] = (float)((double)load(logits, n * V + ids[n]) - l);
        lse[n] = (float)l;
    }
    return ASPO_OK;
}

/* in: logits (N,V), targets (N), lse (N), dlogp (N); i[0]: ignore index; out: dlogits (N,V)
 * f32 = dlogp[n] * (onehot(target) - exp(logit - lse)); ignored rows are zero. */
CPU_KERNEL(cpu_gather_logprobs_backward)
{
    const tensor *logits = c->in[0], *targets = c->in[1], *lse = c->in[2], *dlogp = c->in[3];
    float *dx = (float *)c->out[0]->data;
    int64_t ignore_index = c->p.i[0];
    int64_t N, V;
    rows_of(logits, &N, &V);
    if (V == 0) return ASPO_OK;
    const int32_t *ids = (const int32_t *)targets->data;
    aspo_status s = op_check_targets("gather_logprobs backward", ids, N, V, ignore_index);
    if (s) return s;
#pragma omp parallel for schedule(static) if (N * V > 16384)
    for (int64_t n = 0; n < N; n++) {
        float *row = dx + n * V;
        if (ids[n] == ignore_index) {
            memset(row, 0, sizeof(float) * V);
            continue;
        }
        float g = load(dlogp, n), l = load(lse, n);
        if (logits->dt == DT_F32) {
            const float *x = (const float *)logits->data + n * V;
            scaled_softmax_f32(x, row, V, g, l);
        } else {
            for (int64_t v = 0; v < V; v++) row[v] = -g * cpu_expf(load(logits, n * V + v) - l);
        }
        row[ids[n]] += g;
    }
    return ASPO_OK;
}
