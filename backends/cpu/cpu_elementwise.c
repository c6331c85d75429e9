/* Elementwise kernels. Each output element is computed by one thread from its own inputs,
 * so results do not depend on the thread count. */
#include <math.h>

#include "../../tensor/rng.h"
#include "cpu_internal.h"
#include "../../tensor/op_checks.h"
#include "cpu_math.h"

/* Loops over out's elements with (i0,i1,i2) rows in parallel and i3 inside. */
#define FOR_EACH_ROW(o, n_total)                                                        \
    int64_t rows_ = (o).ne[0] * (o).ne[1] * (o).ne[2], n_total_ = (n_total);            \
    _Pragma("omp parallel for schedule(static) if (n_total_ > 65536)")                \
    for (int64_t r_ = 0; r_ < rows_; r_++)

#define ROW_INDEX(o) \
    int64_t i0 = r_ / ((o).ne[1] * (o).ne[2]), i1 = r_ / (o).ne[2] % (o).ne[1], i2 = r_ % (o).ne[2]

/* True when every input and the output are contiguous f32 of the output's element count:
 * the common case, served by flat loops without per-element index or dtype work. */
static bool flat_f32(const op_call *c)
{
    int64_t n = tensor_numel(c->out[0]);
    if (c->out[0]->dt != DT_F32 || !tensor_is_contiguous(c->out[0])) return false;
    for (int i = 0; i < c->n_in; i++)
        if (c->in[i]->dt != DT_F32 || !tensor_is_contiguous(c->in[i]) ||
            tensor_numel(c->in[i]) != n)
            return false;
    return true;
}

#define F32(t) ((float *)(t)->data)

/* The kind in p.i[0] is one of `count`: the kind switches below compute no other. */
static inline float apply_binary(binary_kind k, float a, float b)
{
    switch (k) {
    case BINARY_ADD: return a + b;
    case BINARY_SUB: return a - b;
    case BINARY_MUL: return a * b;
    case BINARY_DIV: return a / b;
    }
    return 0;
}

enum { FLAT_CHUNK = 4096 }; /* elements per parallel task of the vectorized flat loops */

/* Runs body(i0, i1) over [0, n) in fixed chunks of FLAT_CHUNK, in parallel when large. */
#define FOR_EACH_CHUNK(n, body)                                                         \
    do {                                                                                \
        int64_t n_ = (n), chunks_ = (n_ + FLAT_CHUNK - 1) / FLAT_CHUNK;                 \
        _Pragma("omp parallel for schedule(static) if (n_ > 16384)")                  \
        for (int64_t k_ = 0; k_ < chunks_; k_++) {                                      \
            int64_t i0 = k_ * FLAT_CHUNK, i1 = i0 + FLAT_CHUNK < n_ ? i0 + FLAT_CHUNK : n_; \
            body;                                                                       \
        }                                                                               \
    } while (0)

/* Contiguous f32 operands of one size: one loop per kind, so each vectorizes. */
CPU_VECTOR_CLONES static void binary_flat(binary_kind k, const float *x, const float *y,
                                          float *z, int64_t i0, int64_t i1)
{
    switch (k) {
    case BINARY_ADD: for (int64_t i = i0; i < i1; i++) z[i] = x[i] + y[i]; break;
    case BINARY_SUB: for (int64_t i = i0; i < i1; i++) z[i] = x[i] - y[i]; break;
    case BINARY_MUL: for (int64_t i = i0; i < i1; i++) z[i] = x[i] * y[i]; break;
    case BINARY_DIV: for (int64_t i = i0; i < i1; i++) z[i] = x[i] / y[i]; break;
    }
}

CPU_VECTOR_CLONES static void scale_flat(const float *x, float *y, float s, int64_t i0,
                                         int64_t i1)
{
    for (int64_t i = i0; i < i1; i++) y[i] = s * x[i];
}

CPU_KERNEL(cpu_binary)
{
    aspo_status s = op_check_kind(c, "binary", BINARY_COUNT);
    if (s) return s;
    binary_kind k = (binary_kind)c->p.i[0];
    tensor *out = c->out[0];
    int64_t n = tensor_numel(out);
    const tensor *a = c->in[0], *b = c->in[1];
    if (flat_f32(c)) {
        const float *x = (const float *)a->data, *y = (const float *)b->data;
        float *z = (float *)out->data;
        FOR_EACH_CHUNK(n, binary_flat(k, x, y, z, i0, i1));
        return ASPO_OK;
    }
    cpu_view va = cpu_view_of(a, out), vb = cpu_view_of(b, out), vo = cpu_view_of(out, NULL);
    if (va.dt == DT_F32 && vb.dt == DT_F32 && vo.dt == DT_F32 && va.st[3] == 1 &&
        vb.st[3] == 1 && vo.st[3] == 1) {
        /* f32 rows contiguous on every side, e.g. a linear's bias (C) added to (B,T,C):
         * the vectorized loop per row instead of per-element index and dtype work. */
        FOR_EACH_ROW(vo, n)
        {
            ROW_INDEX(vo);
            binary_flat(k, (const float *)va.data + cpu_offset(&va, i0, i1, i2, 0),
                        (const float *)vb.data + cpu_offset(&vb, i0, i1, i2, 0),
                        (float *)vo.data + cpu_offset(&vo, i0, i1, i2, 0), 0, vo.ne[3]);
        }
        return ASPO_OK;
    }
    FOR_EACH_ROW(vo, n)
    {
        ROW_INDEX(vo);
        int64_t oa = cpu_offset(&va, i0, i1, i2, 0), ob = cpu_offset(&vb, i0, i1, i2, 0),
                oo = cpu_offset(&vo, i0, i1, i2, 0);
        for (int64_t i3 = 0; i3 < vo.ne[3]; i3++)
            cpu_store(&vo, oo + i3 * vo.st[3],
                      apply_binary(k, cpu_load(&va, oa + i3 * va.st[3]),
                                   cpu_load(&vb, ob + i3 * vb.st[3])));
    }
    return ASPO_OK;
}

CPU_KERNEL(cpu_scale)
{
    tensor *out = c->out[0];
    float s = c->p.f[0];
    int64_t n = tensor_numel(out);
    if (flat_f32(c)) {
        const float *x = F32(c->in[0]);
        float *y = F32(out);
        FOR_EACH_CHUNK(n, scale_flat(x, y, s, i0, i1));
        return ASPO_OK;
    }
    cpu_view vx = cpu_view_of(c->in[0], out), vo = cpu_view_of(out, NULL);
    FOR_EACH_ROW(vo, n)
    {
        ROW_INDEX(vo);
        int64_t ox = cpu_offset(&vx, i0, i1, i2, 0), oo = cpu_offset(&vo, i0, i1, i2, 0);
        for (int64_t i3 = 0; i3 < vo.ne[3]; i3++)
            cpu_store(&vo, oo + i3 * vo.st[3], s * cpu_load(&vx, ox + i3 * vx.st[3]));
    }
    return ASPO_OK;
}

static const float GELU_TANH_C = 0.7978845608028654f; /* sqrt(2/pi) */

static inline float unary_forward(unary_kind k, float x)
{
    switch (k) {
    case UNARY_EXP: return cpu_expf(x);
    case UNARY_LOG: return logf(x);
    case UNARY_SILU: return x * cpu_sigmoidf(x);
    case UNARY_GELU_ERF: return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    case UNARY_GELU_TANH:
        return 0.5f * x * (1.0f + tanhf(GELU_TANH_C * (x + 0.044715f * x * x * x)));
    case UNARY_QUICK_GELU: return x * cpu_sigmoidf(1.702f * x);
    case UNARY_SQRT: return sqrtf(x);
    case UNARY_RSQRT: return 1.0f / sqrtf(x);
    case UNARY_NEG: return -x;
    case UNARY_SQUARE: return x * x;
    case UNARY_COUNT: break;
    }
    return 0;
}

/* d(unary)/dx at x, where y = unary(x). */
static inline float unary_derivative(unary_kind k, float x, float y)
{
    switch (k) {
    case UNARY_EXP: return y;
    case UNARY_LOG: return 1.0f / x;
    case UNARY_SILU: {
        float s = cpu_sigmoidf(x);
        return s * (1.0f + x * (1.0f - s));
    }
    case UNARY_GELU_ERF:
        return 0.5f * (1.0f + erff(x * 0.70710678118654752f)) +
               x * expf(-0.5f * x * x) * 0.3989422804014327f; /* 1/sqrt(2 pi) */
    case UNARY_GELU_TANH: {
        float t = tanhf(GELU_TANH_C * (x + 0.044715f * x * x * x));
        return 0.5f * (1.0f + t) +
               0.5f * x * (1.0f - t * t) * GELU_TANH_C * (1.0f + 3.0f * 0.044715f * x * x);
    }
    case UNARY_QUICK_GELU: {
        float s = cpu_sigmoidf(1.702f * x);
        return s + 1.702f * x * s * (1.0f - s);
    }
    case UNARY_SQRT: return 0.5f / y;
    case UNARY_RSQRT: return -0.5f * y * y * y;
    case UNARY_NEG: return -1.0f;
    case UNARY_SQUARE: return 2.0f * x;
    case UNARY_COUNT: break;
    }
    return 0;
}

/* SiLU over contiguous f32 (every LLaMA MLP), the same formulas as unary_forward and
 * unary_derivative in loops that vectorize. */
CPU_VECTOR_CLONES static void silu_flat(const float *x, float *y, int64_t i0, int64_t i1)
{
    for (int64_t i = i0; i < i1; i++) y[i] = x[i] * cpu_sigmoidf(x[i]);
}

CPU_VECTOR_CLONES static void silu_backward_flat(const float *x, const float *dy, float *dx,
                                                 int64_t i0, int64_t i1)
{
    for (int64_t i = i0; i < i1; i++) {
        float s = cpu_sigmoidf(x[i]);
        dx[i] = dy[i] * (s * (1.0f + x[i] * (1.0f - s)));
    }
}

/* quick_gelu (CLIP's MLP) the same way: x * sigmoid(1.702 x) and its derivative. */
CPU_VECTOR_CLONES static void quick_gelu_flat(const float *x, float *y, int64_t i0, int64_t i1)
{
    for (int64_t i = i0; i < i1; i++) y[i] = x[i] * cpu_sigmoidf(1.702f * x[i]);
}

CPU_VECTOR_CLONES static void quick_gelu_backward_flat(const float *x, const float *dy, float *dx,
                                                       int64_t i0, int64_t i1)
{
    for (int64_t i = i0; i < i1; i++) {
        float s = cpu_sigmoidf(1.702f * x[i]);
        dx[i] = dy[i] * (s + 1.702f * x[i] * s * (1.0f - s));
    }
}

CPU_KERNEL(cpu_unary)
{
    aspo_status s = op_check_kind(c, "unary", UNARY_COUNT);
    if (s) return s;
    unary_kind k = (unary_kind)c->p.i[0];
    tensor *out = c->out[0];
    int64_t n = tensor_numel(out);
    if (flat_f32(c)) {
        const float *x = F32(c->in[0]);
        float *y = F32(out);
        if (k == UNARY_SILU) {
            FOR_EACH_CHUNK(n, silu_flat(x, y, i0, i1));
            return ASPO_OK;
        }
        if (k == UNARY_QUICK_GELU) {
            FOR_EACH_CHUNK(n, quick_gelu_flat(x, y, i0, i1));
            return ASPO_OK;
        }
#pragma omp parallel for schedule(static) if (n > 16384)
        for (int64_t i = 0; i < n; i++) y[i] = unary_forward(k, x[i]);
        return ASPO_OK;
    }
    cpu_view vx = cpu_view_of(c->in[0], out), vo = cpu_view_of(out, NULL);
    FOR_EACH_ROW(vo, n)
    {
        ROW_INDEX(vo);
        int64_t ox = cpu_offset(&vx, i0, i1, i2, 0), oo = cpu_offset(&vo, i0, i1, i2, 0);
        for (int64_t i3 = 0; i3 < vo.ne[3]; i3++)
            cpu_store(&vo, oo + i3 * vo.st[3], unary_forward(k, cpu_load(&vx, ox + i3 * vx.st[3])));
    }
    return ASPO_OK;
}

CPU_KERNEL(cpu_unary_backward)
{
    aspo_status s = op_check_kind(c, "unary backward", UNARY_COUNT);
    if (s) return s;
    unary_kind k = (unary_kind)c->p.i[0];
    tensor *out = c->out[0];
    int64_t n = tensor_numel(out);
    if (flat_f32(c)) {
        const float *x = F32(c->in[0]), *y = F32(c->in[1]), *dy = F32(c->in[2]);
        float *dx = F32(out);
        if (k == UNARY_SILU) {
            FOR_EACH_CHUNK(n, silu_backward_flat(x, dy, dx, i0, i1));
            return ASPO_OK;
        }
        if (k == UNARY_QUICK_GELU) {
            FOR_EACH_CHUNK(n, quick_gelu_backward_flat(x, dy, dx, i0, i1));
            return ASPO_OK;
        }
#pragma omp parallel for schedule(static) if (n > 16384)
        for (int64_t i = 0; i < n; i++) dx[i] = dy[i] * unary_derivative(k, x[i], y[i]);
        return ASPO_OK;
    }
    cpu_view vx = cpu_view_of(c->in[0], out), vy = cpu_view_of(c->in[1], out),
             vd = cpu_view_of(c->in[2], out), vo = cpu_view_of(out, NULL);
    FOR_EACH_ROW(vo, n)
    {
        ROW_INDEX(vo);
        int64_t ox = cpu_offset(&vx, i0, i1, i2, 0), oy = cpu_offset(&vy, i0, i1, i2, 0),
                od = cpu_offset(&vd, i0, i1, i2, 0), oo = cpu_offset(&vo, i0, i1, i2, 0);
        for (int64_t i3 = 0; i3 < vo.ne[3]; i3++) {
            float x = cpu_load(&vx, ox + i3 * vx.st[3]), y = cpu_load(&vy, oy + i3 * vy.st[3]);
            cpu_store(&vo, oo + i3 * vo.st[3],
                      cpu_load(&vd, od + i3 * vd.st[3]) * unary_derivative(k, x, y));
        }
    }
    return ASPO_OK;
}

CPU_KERNEL(cpu_masked_fill)
{
    tensor *out = c->out[0];
    int64_t n = tensor_numel(out);
    float value = c->p.f[0];
    cpu_view vx = cpu_view_of(c->in[0], out), vm = cpu_view_of(c->in[1], out),
             vo = cpu_view_of(out, NULL);
    FOR_EACH_ROW(vo, n)
    {
        ROW_INDEX(vo);
        int64_t ox = cpu_offset(&vx, i0, i1, i2, 0), om = cpu_offset(&vm, i0, i1, i2, 0),
                oo = cpu_offset(&vo, i0, i1, i2, 0);
        for (int64_t i3 = 0; i3 < vo.ne[3]; i3++) {
            bool fill = cpu_load(&vm, om + i3 * vm.st[3]) != 0.0f;
            cpu_store(&vo, oo + i3 * vo.st[3], fill ? value : cpu_load(&vx, ox + i3 * vx.st[3]));
        }
    }
    return ASPO_OK;
}

/* Contiguous f32 dropout of groups [g0, g1) of 4 elements: the Philox call at counter + g
 * gives the uniforms of elements 4g..4g+3 (rng_uniform's numbering), so one call serves 4
 * elements. u = m / 2^24 >= p exactly when the integer m >= ceil(p 2^24), and the select is
 * a bit mask, so the loop vectorizes. */
CPU_VECTOR_CLONES static void dropout_groups(const float *x, float *y, int64_t g0, int64_t g1,
                                             uint64_t seed, uint64_t counter,
                                             uint32_t threshold, float scale)
{
    for (int64_t g = g0; g < g1; g++) {
        philox_out r = philox4x32(counter + (uint64_t)g, seed);
        for (int k = 0; k < 4; k++) {
            int32_t keep = -(int32_t)((r.v[k] >> 8) >= threshold);
            y[4 * g + k] = cpu_bits_float(cpu_float_bits(x[4 * g + k] * scale) & keep);
        }
    }
}

enum { DROPOUT_CHUNK = 1024 }; /* groups of 4 per parallel task */

CPU_KERNEL(cpu_dropout)
{
    tensor *out = c->out[0];
    int64_t n = tensor_numel(out);
    uint64_t seed = (uint64_t)c->p.i[0], counter = (uint64_t)c->p.i[1];
    float p = c->p.f[0], keep_scale = 1.0f / (1.0f - p);
    if (flat_f32(c)) {
        const float *x = F32(c->in[0]);
        float *y = F32(out);
        int64_t groups = n / 4, chunks = (groups + DROPOUT_CHUNK - 1) / DROPOUT_CHUNK;
        uint32_t threshold = (uint32_t)ceilf(p * 16777216.0f);
#pragma omp parallel for schedule(static) if (n > 16384)
        for (int64_t k = 0; k < chunks; k++) {
            int64_t g1 = (k + 1) * DROPOUT_CHUNK < groups ? (k + 1) * DROPOUT_CHUNK : groups;
            dropout_groups(x, y, k * DROPOUT_CHUNK, g1, seed, counter, threshold, keep_scale);
        }
        for (int64_t i = groups * 4; i < n; i++) /* the last, partial group */
            y[i] = rng_uniform(seed, counter, (uint64_t)i) >= p ? x[i] * keep_scale : 0.0f;
        return ASPO_OK;
    }
    cpu_view vx = cpu_view_of(c->in[0], out), vo = cpu_view_of(out, NULL);
    FOR_EACH_ROW(vo, n)
    {
        ROW_INDEX(vo);
        int64_t ox = cpu_offset(&vx, i0, i1, i2, 0), oo = cpu_offset(&vo, i0, i1, i2, 0);
        for (int64_t i3 = 0; i3 < vo.ne[3]; i3++) {
            /* The mask of element i (row-major index) is the same on every backend. */
            uint64_t i = (uint64_t)(r_ * vo.ne[3] + i3);
            bool keep = rng_uniform(seed, counter, i) >= p;
            cpu_store(&vo, oo + i3 * vo.st[3],
                      keep ? cpu_load(&vx, ox + i3 * vx.st[3]) * keep_scale : 0.0f);
        }
    }
    return ASPO_OK;
}
