#version 450
// Elementwise ops over Views broadcast to the output's shape; `kind` picks the op:
//   0 binary (a, b; sub = binary_kind)   1 scale (a * f)   2 unary (a; sub = unary_kind)
//   3 unary backward (x = a, y = b, dy = c; sub = unary_kind)   4 masked fill (a, mask = b, f)
#include "common.glsl"
layout(local_size_x = 256) in;
layout(buffer_reference, std430) readonly buffer Params {
    View a; View b; View c; View o;
    int kind; int sub; float f; int pad_;
};

float sigmoid(float x) { return 1.0 / (1.0 + exp(-x)); }

const float GELU_TANH_C = 0.7978845608028654;

float unary_fwd(int k, float x)
{
    switch (k) {
    case 0: return exp(x);
    case 1: return log(x);
    case 2: return x * sigmoid(x);
    case 3: return 0.5 * x * (1.0 + erf_approx(x * 0.70710678118654752));
    case 4: return 0.5 * x * (1.0 + tanh(GELU_TANH_C * (x + 0.044715 * x * x * x)));
    case 5: return x * sigmoid(1.702 * x);
    case 6: return sqrt(x);
    case 7: return inversesqrt(x);
    case 8: return -x;
    default: return x * x;
    }
}

// d unary / dx at x (y = the forward output where that is cheaper).
float unary_grad(int k, float x, float y)
{
    switch (k) {
    case 0: return y;
    case 1: return 1.0 / x;
    case 2: { float s = sigmoid(x); return s * (1.0 + x * (1.0 - s)); }
    case 3: return 0.5 * (1.0 + erf_approx(x * 0.70710678118654752)) +
                   x * 0.3989422804014327 * exp(-0.5 * x * x);
    case 4: {
        float u = GELU_TANH_C * (x + 0.044715 * x * x * x), t = tanh(u);
        return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * GELU_TANH_C * (1.0 + 3.0 * 0.044715 * x * x);
    }
    case 5: { float s = sigmoid(1.702 * x); return s + 1.702 * x * s * (1.0 - s); }
    case 6: return 0.5 / y;
    case 7: return -0.5 * y * y * y;
    case 8: return -1.0;
    default: return 2.0 * x;
    }
}

void main()
{
    Params p = Params(push.params);
    int n = linear_id(256);
    if (n >= numel(p.o)) return;
    ivec4 i = view_index(p.o.ne, n);
    float x = view_load(p.a, view_offset(p.a, i)), r;
    if (p.kind == 0) {
        float y = view_load(p.b, view_offset(p.b, i));
        r = p.sub == 0 ? x + y : p.sub == 1 ? x - y : p.sub == 2 ? x * y : x / y;
    } else if (p.kind == 1) {
        r = p.f * x;
    } else if (p.kind == 2) {
        r = unary_fwd(p.sub, x);
    } else if (p.kind == 3) {
        float y = view_load(p.b, view_offset(p.b, i)), dy = view_load(p.c, view_offset(p.c, i));
        r = dy * unary_grad(p.sub, x, y);
    } else {
        r = view_load(p.b, view_offset(p.b, i)) != 0.0 ? p.f : x;
    }
    view_store(p.o, view_offset(p.o, i), r);
}
