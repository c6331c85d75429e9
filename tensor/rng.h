/* Counter-based random numbers (Philox-4x32-10): the value at (key, counter) is the same on
 * every backend and after a resume, so dropout masks and initialisations reproduce. */
#ifndef ASPO_RNG_H
#define ASPO_RNG_H

#include <stdint.h>

typedef struct philox_out {
    uint32_t v[4];
} philox_out;

static inline philox_out philox4x32(uint64_t counter, uint64_t key)
{
    uint32_t c0 = (uint32_t)counter, c1 = (uint32_t)(counter >> 32), c2 = 0, c3 = 0;
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c0, p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c1 = (uint32_t)p1;
        c3 = (uint32_t)p0;
        c0 = n0;
        c2 = n2;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    return (philox_out){{c0, c1, c2, c3}};
}

/* Uniform in [0, 1) with 24 random bits, the i-th value of the stream at (key, counter). */
static inline float rng_uniform(uint64_t key, uint64_t counter, uint64_t i)
{
    philox_out r = philox4x32(counter + i / 4, key);
    return (float)(r.v[i % 4] >> 8) * (1.0f / 16777216.0f);
}

#endif
