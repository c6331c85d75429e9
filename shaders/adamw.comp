#version 450
// OP_ADAMW on contiguous f32 param, grad, m, v (updated in place), element by element in the
// order torch's single-tensor AdamW applies its in-place ops (backends/cpu/cpu_optim.c).
// `precise` keeps the compiler from fusing into FMAs, so each step rounds as on the CPU.
#include "common.glsl"
layout(local_size_x = 256) in;
layout(buffer_reference, std430) readonly buffer Params {
    uint64_t param; uint64_t grad; uint64_t m; uint64_t v;
    int n; float decay; float one_minus_beta1; float one_minus_beta2;
    float beta1; float beta2; float eps; float step_size;
    float bc2_sqrt; int pad0_; int pad1_; int pad2_;
};

void main()
{
    Params p = Params(push.params);
    int i = linear_id(256);
    if (i >= p.n) return;
    F32Buf P = F32Buf(p.param), M = F32Buf(p.m), V = F32Buf(p.v);
    precise float g = F32Buf(p.grad).v[i];
    precise float pi = P.v[i] * p.decay;                              // decoupled decay
    precise float mi = M.v[i] * p.beta1 + g * p.one_minus_beta1;      // first moment
    precise float vi = V.v[i] * p.beta2 + g * g * p.one_minus_beta2;  // second moment
    precise float denom = sqrt(vi) / p.bc2_sqrt + p.eps;
    M.v[i] = mi;
    V.v[i] = vi;
    P.v[i] = pi + -p.step_size * (mi / denom);
}
