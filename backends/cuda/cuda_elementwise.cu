// Copies, fills and the elementwise ops: one thread per output element (grid-stride), any
// strides and dtypes, f32 math; the formulas are those of backends/cpu/cpu_elementwise.c.
#include <math.h>

#include "../../tensor/op_checks.h"
#include "cuda_common.cuh"

namespace {

enum { THREADS = 256 };

__global__ void copy_kernel(cu_view src, cu_view dst)
{
    int64_t n = cu_numel(dst);
    CU_FOR(i, n)
    {
        int64_t so = cu_offset_of(src, dst.ne, i), d = cu_offset_of(dst, dst.ne, i);
        if (src.dt == DT_I32 && dst.dt == DT_I32)
            ((int32_t *)dst.data)[d] = ((const int32_t *)src.data)[so];
        else if (src.dt == dst.dt && src.dt != DT_F32)
            ((uint16_t *)dst.data)[d] = ((const uint16_t *)src.data)[so];
        else
            cu_store(dst, d, cu_load(src, so));
    }
}

__global__ void fill_kernel(cu_view dst, float value)
{
    int64_t n = cu_numel(dst);
    CU_FOR(i, n)
    {
        int64_t d = cu_offset_of(dst, dst.ne, i);
        if (dst.dt == DT_I32) ((int32_t *)dst.data)[d] = (int32_t)value;
        else cu_store(dst, d, value);
    }
}

enum { EW_BINARY, EW_SCALE, EW_UNARY, EW_UNARY_BACKWARD, EW_MASKED_FILL };

__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

constexpr float GELU_TANH_C = 0.7978845608028654f; // sqrt(2/pi)

__device__ float unary_forward(int k, float x)
{
    switch (k) {
    case UNARY_EXP: return expf(x);
    case UNARY_LOG: return logf(x);
    case UNARY_SILU: return x * sigmoid(x);
    case UNARY_GELU_ERF: return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    case UNARY_GELU_TANH: return 0.5f * x * (1.0f + tanhf(GELU_TANH_C * (x + 0.044715f * x * x * x)));
    case UNARY_QUICK_GELU: return x * sigmoid(1.702f * x);
    case UNARY_SQRT: return sqrtf(x);
    case UNARY_RSQRT: return 1.0f / sqrtf(x);
    case UNARY_NEG: return -x;
    case UNARY_SQUARE: return x * x;
    }
    return NAN; // unreached: the host refused unknown kinds (op_check_kind)
}

// d unary / dx at x, where y = unary(x).
__device__ float unary_derivative(int k, float x, float y)
{
    switch (k) {
    case UNARY_EXP: return y;
    case UNARY_LOG: return 1.0f / x;
    case UNARY_SILU: { float s = sigmoid(x); return s * (1.0f + x * (1.0f - s)); }
    case UNARY_GELU_ERF:
        return 0.5f * (1.0f + erff(x * 0.70710678118654752f)) +
               x * expf(-0.5f * x * x) * 0.3989422804014327f;
    case UNARY_GELU_TANH: {
        float t = tanhf(GELU_TANH_C * (x + 0.044715f * x * x * x));
        return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * GELU_TANH_C * (1.0f + 3.0f * 0.044715f * x * x);
    }
    case UNARY_QUICK_GELU: { float s = sigmoid(1.702f * x); return s + 1.702f * x * s * (1.0f - s); }
    case UNARY_SQRT: return 0.5f / y;
    case UNARY_RSQRT: return -0.5f * y * y * y;
    case UNARY_NEG: return -1.0f;
    case UNARY_SQUARE: return 2.0f * x;
    }
    return NAN; // unreached: the host refused unknown kinds (op_check_kind)
}

__global__ void elementwise_kernel(cu_view a, cu_view b, cu_view c, cu_view o, int kind, int sub,
                                   float f)
{
    int64_t n = cu_numel(o);
    CU_FOR(i, n)
    {
        float x = cu_load(a, cu_offset_of(a, o.ne, i)), r;
        switch (kind) {
        case EW_BINARY: {
            float y = cu_load(b, cu_offset_of(b, o.ne, i));
            r = sub == BINARY_ADD ? x + y : sub == BINARY_SUB ? x - y : sub == BINARY_MUL ? x * y
              : sub == BINARY_DIV ? x / y : NAN; // NaN: unreached (op_check_kind)
            break;
        }
        case EW_SCALE: r = f * x; break;
        case EW_UNARY: r = unary_forward(sub, x); break;
        case EW_UNARY_BACKWARD: {
            float y = cu_load(b, cu_offset_of(b, o.ne, i)), dy = cu_load(c, cu_offset_of(c, o.ne, i));
            r = dy * unary_derivative(sub, x, y);
            break;
        }
        default: r = cu_load(b, cu_offset_of(b, o.ne, i)) != 0.0f ? f : x; break;
        }
        cu_store(o, cu_offset_of(o, o.ne, i), r);
    }
}

aspo_status elementwise(const op_call *c, int kind, int sub, float f)
{
    const tensor *out = c->out[0];
    cu_view o = cu_view_of(out, NULL), in[3];
    for (int i = 0; i < 3; i++) in[i] = i < c->n_in ? cu_view_of(c->in[i], out) : o;
    int64_t n = tensor_numel(out);
    if (n == 0) return ASPO_OK;
    CU_LAUNCH(cu_blocks(n, THREADS), THREADS, 0, elementwise_kernel)(in[0], in[1], in[2], o,
                                                                           kind, sub, f);
    return cu_check_launch("elementwise");
}

} // namespace

extern "C" {

CU_KERNEL(cu_copy)
{
    int64_t n = tensor_numel(c->out[0]);
    if (n == 0) return ASPO_OK;
    CU_LAUNCH(cu_blocks(n, THREADS), THREADS, 0, copy_kernel)(cu_view_of(c->in[0], c->out[0]),
                                                                    cu_view_of(c->out[0], NULL));
    return cu_check_launch("copy");
}

CU_KERNEL(cu_fill)
{
    int64_t n = tensor_numel(c->out[0]);
    if (n == 0) return ASPO_OK;
    CU_LAUNCH(cu_blocks(n, THREADS), THREADS, 0, fill_kernel)(cu_view_of(c->out[0], NULL),
                                                                    c->p.f[0]);
    return cu_check_launch("fill");
}

CU_KERNEL(cu_binary)
{
    aspo_status s = op_check_kind(c, "binary", BINARY_COUNT);
    return s ? s : elementwise(c, EW_BINARY, (int)c->p.i[0], 0);
}
CU_KERNEL(cu_scale) { return elementwise(c, EW_SCALE, 0, c->p.f[0]); }

CU_KERNEL(cu_unary)
{
    aspo_status s = op_check_kind(c, "unary", UNARY_COUNT);
    return s ? s : elementwise(c, EW_UNARY, (int)c->p.i[0], 0);
}

CU_KERNEL(cu_unary_backward)
{
    aspo_status s = op_check_kind(c, "unary backward", UNARY_COUNT);
    return s ? s : elementwise(c, EW_UNARY_BACKWARD, (int)c->p.i[0], 0);
}
CU_KERNEL(cu_masked_fill) { return elementwise(c, EW_MASKED_FILL, 0, c->p.f[0]); }

} // extern "C"
