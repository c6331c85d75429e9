/* Math for the hot CPU loops: an exp the compiler can vectorize, and a marker that compiles
 * a function twice (AVX2 and baseline x86-64) with the choice made once at load time.
 *
 * Why: the build targets baseline x86-64 (SSE2), and glibc's expf is a scalar call, so a
 * loop of expf runs one element at a time. cpu_expf is plain float arithmetic with no
 * branches, so loops of it vectorize; CPU_VECTOR_CLONES adds 8-wide AVX2 code.
 *
 * Results stay identical across the clones and across thread counts: the AVX2 clone gets
 * no FMA (a separate target feature), so every lane rounds as the scalar code does, and
 * reductions in these loops keep explicit lanes in a fixed order. */
#ifndef ASPO_CPU_MATH_H
#define ASPO_CPU_MATH_H

#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(ASPO_NO_CPU_CLONES)
#define CPU_VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define CPU_VECTOR_CLONES
#endif

/* GCC does not inline a plain `static inline` function into a target_clones clone (their
 * target options differ), so the clone's loop would call it element by element and not
 * vectorize; always_inline makes it inline into every clone. */
#if defined(__GNUC__)
#define CPU_INLINE static inline __attribute__((always_inline))
#else
#define CPU_INLINE static inline
#endif

CPU_INLINE int32_t cpu_float_bits(float f)
{
    int32_t i;
    memcpy(&i, &f, sizeof i);
    return i;
}

CPU_INLINE float cpu_bits_float(int32_t i)
{
    float f;
    memcpy(&f, &i, sizeof f);
    return f;
}

/* exp(x) within 1.5 ulp (Cephes' expf polynomial), with exp(-inf) = 0, exp(inf) = inf,
 * NaN in -> NaN out, subnormal results near the bottom of the range. x = n ln2 + r with
 * |r| <= ln2/2; 2^n is applied as two powers so n may reach -159 or +159. */
CPU_INLINE float cpu_expf(float x)
{
    const float magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    int32_t u = cpu_float_bits(x), mag = u & 0x7fffffff;
    /* 110 < |x| <= inf: 0 or inf, chosen at the end. Integer selects, so the loop has no
     * float compare to branch on and vectorizes without -fno-trapping-math. */
    int32_t out = -(int32_t)((mag > 0x42dc0000) & (mag <= 0x7f800000));
    /* Those x are replaced by 0 here: near -1e7, x * log2(e) + magic is a small negative
     * float whose bits minus magic's overflow int32. Other x compute as before, bit for bit. */
    float xr = cpu_bits_float(u & ~out);
    int32_t n = cpu_float_bits(xr * 1.44269504088896341f + magic) - cpu_float_bits(magic);
    n = n < -160 ? -160 : n > 160 ? 160 : n; /* NaN's n is anything */
    float nf = (float)n;
    float r = (xr - nf * 0.693359375f) - nf * -2.12194440e-4f; /* ln2 in two parts */
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    int32_t n1 = n / 2, n2 = n - n1;
    float y = p * cpu_bits_float((n1 + 127) << 23) * cpu_bits_float((n2 + 127) << 23);
    int32_t special = u < 0 ? 0 : 0x7f800000;
    return cpu_bits_float((special & out) | (cpu_float_bits(y) & ~out));
}

/* An order-preserving integer key of a float (a < b iff key(a) < key(b) for non-NaN), so a
 * max is an integer max reduction, which vectorizes. The map is its own inverse. */
CPU_INLINE int32_t cpu_order_key(float f)
{
    int32_t i = cpu_float_bits(f);
    return i ^ (-(int32_t)((uint32_t)i >> 31) & 0x7fffffff);
}

CPU_INLINE float cpu_order_key_float(int32_t k)
{
    return cpu_bits_float(k ^ (-(int32_t)((uint32_t)k >> 31) & 0x7fffffff));
}

/* The 8 lane sums of a vectorized reduction, added in a fixed order. */
CPU_INLINE double cpu_sum_lanes(const double lane[8])
{
    return ((lane[0] + lane[1]) + (lane[2] + lane[3])) +
           ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

/* 1 / (1 + exp(-x)). */
CPU_INLINE float cpu_sigmoidf(float x) { return 1.0f / (1.0f + cpu_expf(-x)); }

#endif
