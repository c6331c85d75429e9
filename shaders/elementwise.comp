#version 450
// Elementwise ops over Views broadcast to the output's shape; `kind` picks the op
// (ELEMENTWISE_* in shader_kinds.h), `sub` the binary or unary kind (tensor/op_kinds.h).
// The host refuses kinds it does not know; here one gives NaN, never another op's result.
#include "common.glsl"
#include "shader_kinds.h"
layout(local_size_x = 256) in;
layout(buffer_reference, std430) readonly buffer Params {
    View a; View b; View c; View o;
    int kind; int sub; float f; int pad_;
};

float binary(int k, float x, float y)
{
    switch (k) {
    case ASPO_BINARY_ADD: return x + y;
    case ASPO_BINARY_SUB: return x - y;
    case ASPO_BINARY_MUL: return x * y;
    case ASPO_BINARY_DIV: return x / y;
    default: return NOT_A_NUMBER;
    }
}

float sigmoid(float x) { return 1.0 / (1.0 + exp(-x)); }

const float GELU_TANH_C = 0.7978845608028654;

float unary_fwd(int k, float x)
{
    switch (k) {
    case ASPO_UNARY_EXP: return exp(x);
    case ASPO_UNARY_LOG: return log(x);
    case ASPO_UNARY_SILU: return x * sigmoid(x);
    case ASPO_UNARY_GELU_ERF: return 0.5 * x * (1.0 + erf_approx(x * 0.70710678118654752));
    case ASPO_UNARY_GELU_TANH:
        return 0.5 * x * (1.0 + tanh(GELU_TANH_C * (x + 0.044715 * x * x * x)));
    case ASPO_UNARY_QUICK_GELU: return x * sigmoid(1.702 * x);
    case ASPO_UNARY_SQRT: return sqrt(x);
    case ASPO_UNARY_RSQRT: return inversesqrt(x);
    case ASPO_UNARY_NEG: return -x;
    case ASPO_UNARY_SQUARE: return x * x;
    default: return NOT_A_NUMBER;
    }
}

// d unary / dx at x (y = the forward output where that is cheaper).
float unary_grad(int k, float x, float y)
{
    switch (k) {
    case ASPO_UNARY_EXP: return y;
    case ASPO_UNARY_LOG: return 1.0 / x;
    case ASPO_UNARY_SILU: { float s = sigmoid(x); return s * (1.0 + x * (1.0 - s)); }
    case ASPO_UNARY_GELU_ERF:
        return 0.5 * (1.0 + erf_approx(x * 0.70710678118654752)) +
               x * 0.3989422804014327 * exp(-0.5 * x * x);
    case ASPO_UNARY_GELU_TANH: {
        float u = GELU_TANH_C * (x + 0.044715 * x * x * x), t = tanh(u);
        return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * GELU_TANH_C * (1.0 + 3.0 * 0.044715 * x * x);
    }
    case ASPO_UNARY_QUICK_GELU: {
        float s = sigmoid(1.702 * x);
        return s + 1.702 * x * s * (1.0 - s);
    }
    case ASPO_UNARY_SQRT: return 0.5 / y;
    case ASPO_UNARY_RSQRT: return -0.5 * y * y * y;
    case ASPO_UNARY_NEG: return -1.0;
    case ASPO_UNARY_SQUARE: return 2.0 * x;
    default: return NOT_A_NUMBER;
    }
}

void main()
{
    Params p = Params(push.params);
    int n = linear_id(256);
    if (n >= numel(p.o)) return;
    ivec4 i = view_index(p.o.ne, n);
    float x = view_load(p.a, view_offset(p.a, i)), r;
    if (p.kind == ELEMENTWISE_BINARY) {
        r = binary(p.sub, x, view_load(p.b, view_offset(p.b, i)));
    } else if (p.kind == ELEMENTWISE_SCALE) {
        r = p.f * x;
    } else if (p.kind == ELEMENTWISE_UNARY) {
        r = unary_fwd(p.sub, x);
    } else if (p.kind == ELEMENTWISE_UNARY_BACKWARD) {
        float y = view_load(p.b, view_offset(p.b, i)), dy = view_load(p.c, view_offset(p.c, i));
        r = dy * unary_grad(p.sub, x, y);
    } else if (p.kind == ELEMENTWISE_MASKED_FILL) {
        r = view_load(p.b, view_offset(p.b, i)) != 0.0 ? p.f : x;
    } else {
        r = NOT_A_NUMBER;
    }
    view_store(p.o, view_offset(p.o, i), r);
}
