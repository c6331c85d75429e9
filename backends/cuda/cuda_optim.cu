// The training-only elementwise ops: the AdamW step and dropout, both bit for bit as the CPU
// backend computes them (backends/cpu/cpu_optim.c, cpu_dropout in cpu_elementwise.c).
//
// AdamW: one thread per element, the CPU's operation order, each step rounded on its own
// (__fmul_rn, __fadd_rn, __fdiv_rn, __fsqrt_rn: nvcc fuses a*b + c into an FMA by default,
// and --use_fast_math would make / and sqrtf approximate), with the scalars formed on the
// host exactly as cpu_adamw forms them (torch's Python doubles rounded to f32).
// Dropout: element i (the output's row-major index) keeps when the 24-bit uniform of word
// i % 4 of Philox4x32-10 at (seed, counter + i / 4) reaches p, i.e. when that word >> 8 is
// at least ceil(p 2^24): tensor/rng.h's mask on every backend. One thread serves the four
// elements of one Philox call, as shaders/dropout.comp does.
//
// Verified: compiles -Wall clean for sm_80, sm_89 and sm_90 (CUDA 13). This file's source,
// built as host C++ (the _rn intrinsics as plain IEEE f32 operations), gave tensor/rng.h's
// mask and cpu_adamw's values bit for bit: contiguous and transposed inputs, bf16 input,
// f16 output, tails of fewer than four elements, a counter crossing 2^32. Not verified:
// never run on a GPU (this machine has none).
#include <math.h>

#include "cuda_common.cuh"

namespace {

constexpr unsigned THREADS = 256;

// The scalars of one step, as cpu_adamw forms them.
struct adamw_scalars {
    float decay, beta1, beta2, one_minus_beta1, one_minus_beta2, eps, step_size, bc2_sqrt;
};

// param, m, v updated in place from grad; all contiguous f32 of n elements.
__global__ void adamw_kernel(float *param, const float *grad, float *m, float *v, int64_t n,
                             adamw_scalars s)
{
    CU_FOR(i, n)
    {
        float g = grad[i], gg = __fmul_rn(g, g);
        float p = __fmul_rn(param[i], s.decay);                                          // decay
        float mi = __fadd_rn(__fmul_rn(m[i], s.beta1), __fmul_rn(g, s.one_minus_beta1)); // 1st
        float vi = __fadd_rn(__fmul_rn(v[i], s.beta2), __fmul_rn(gg, s.one_minus_beta2)); // 2nd
        float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), s.bc2_sqrt), s.eps);
        m[i] = mi;
        v[i] = vi;
        param[i] = __fadd_rn(p, __fmul_rn(-s.step_size, __fdiv_rn(mi, denom)));
    }
}

// tensor/rng.h's philox4x32: __umulhi and the low product give the 64-bit products' halves.
__device__ __forceinline__ void philox4x32(uint64_t counter, uint64_t key, uint32_t r[4])
{
    uint32_t c0 = (uint32_t)counter, c1 = (uint32_t)(counter >> 32), c2 = 0, c3 = 0;
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
#pragma unroll
    for (int round = 0; round < 10; round++) {
        uint32_t hi0 = __umulhi(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
        uint32_t hi1 = __umulhi(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
        uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
        c1 = lo1;
        c3 = lo0;
        c0 = n0;
        c2 = n2;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    r[0] = c0, r[1] = c1, r[2] = c2, r[3] = c3;
}

// o = keep ? x * scale : 0, x broadcast to o (any strides and dtypes); FLAT: x and o
// contiguous of one shape, so element e lies at offset e in both.
template <bool FLAT>
__global__ void dropout_kernel(cu_view x, cu_view o, uint64_t seed, uint64_t counter,
                               uint32_t threshold, float scale)
{
    int64_t n = cu_numel(o), groups = (n + 3) / 4;
    CU_FOR(g, groups)
    {
        uint32_t r[4];
        philox4x32(counter + (uint64_t)g, seed, r);
#pragma unroll
        for (int k = 0; k < 4; k++) {
            int64_t e = 4 * g + k;
            if (e >= n) break;
            int64_t xo = FLAT ? e : cu_offset_of(x, o.ne, e);
            int64_t oo = FLAT ? e : cu_offset_of(o, o.ne, e);
            bool keep = (r[k] >> 8) >= threshold;
            cu_store(o, oo, keep ? __fmul_rn(cu_load(x, xo), scale) : 0.0f);
        }
    }
}

} // namespace

extern "C" {

CU_KERNEL(cu_adamw)
{
    int64_t n = tensor_numel(c->in[0]);
    for (int i = 0; i < 4; i++) {
        const tensor *t = c->in[i];
        if (t->dt != DT_F32 || !tensor_is_contiguous(t) || tensor_numel(t) != n) {
            char s[96];
            return aspo_fail(ASPO_ERR_UNSUPPORTED, "adamw on backend cuda: input %d is %s; "
                             "contiguous f32 of the parameter's size only", i,
                             tensor_describe(t, s, sizeof s));
        }
    }
    if (n == 0) return ASPO_OK;
    float lr = c->p.f[0], beta1 = c->p.f[1], beta2 = c->p.f[2], wd = c->p.f[4];
    adamw_scalars s;
    s.decay = (float)(1.0 - (double)lr * (double)wd);
    s.beta1 = beta1;
    s.beta2 = beta2;
    s.one_minus_beta1 = (float)(1.0 - (double)beta1);
    s.one_minus_beta2 = (float)(1.0 - (double)beta2);
    s.eps = c->p.f[3];
    s.step_size = (float)((double)lr / (double)c->p.f[5]);
    s.bc2_sqrt = (float)sqrt((double)c->p.f[6]);
    CU_LAUNCH(cu_blocks(n, THREADS), THREADS, 0, adamw_kernel)(
        (float *)c->in[0]->data, (const float *)c->in[1]->data, (float *)c->in[2]->data,
        (float *)c->in[3]->data, n, s);
    return cu_check_launch("adamw");
}

CU_KERNEL(cu_dropout)
{
    tensor *out = c->out[0];
    int64_t n = tensor_numel(out);
    float p = c->p.f[0];
    if (!(p >= 0.0f && p < 1.0f))
        return aspo_fail(ASPO_ERR_USAGE, "dropout on backend cuda: probability %g is outside "
                         "[0, 1)", (double)p);
    if (n == 0) return ASPO_OK;
    // u = m / 2^24 >= p exactly when m >= ceil(p 2^24); the scale is the CPU's f32
    // 1 / (1 - p), formed here rather than by a device division of another rounding.
    uint32_t threshold = (uint32_t)ceilf(p * 16777216.0f);
    float scale = 1.0f / (1.0f - p);
    uint64_t seed = (uint64_t)c->p.i[0], counter = (uint64_t)c->p.i[1];
    const tensor *x = c->in[0];
    bool flat = tensor_is_contiguous(x) && tensor_is_contiguous(out) && tensor_numel(x) == n;
    cu_view vx = cu_view_of(x, out), vo = cu_view_of(out, NULL);
    unsigned blocks = cu_blocks((n + 3) / 4, THREADS);
    if (flat)
        CU_LAUNCH(blocks, THREADS, 0, dropout_kernel<true>)(vx, vo, seed, counter,
                                                                  threshold, scale);
    else
        CU_LAUNCH(blocks, THREADS, 0, dropout_kernel<false>)(vx, vo, seed, counter,
                                                                   threshold, scale);
    return cu_check_launch("dropout");
}

} // extern "C"
