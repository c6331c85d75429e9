#version 450
// OP_DROPOUT: o = keep ? x * scale : 0 over any strides (x broadcast to o). Element i (o's
// row-major index) keeps when the 24-bit uniform (word i % 4 of Philox4x32-10 at
// (seed, counter + i / 4)) >> 8 reaches threshold = ceil(p 2^24): the mask of tensor/rng.h,
// bit for bit, on every backend. One invocation serves the 4 elements of one Philox call.
#include "common.glsl"
layout(local_size_x = 256) in;
layout(buffer_reference, std430) readonly buffer Params {
    View x; View o;
    uint64_t seed; uint64_t counter;
    uint threshold; float scale; int pad0_; int pad1_;
};

// tensor/rng.h's philox4x32 in 32-bit words: umulExtended gives the 64-bit products.
uvec4 philox4x32(uint64_t counter, uint64_t key)
{
    uint c0 = uint(counter), c1 = uint(counter >> 32), c2 = 0u, c3 = 0u;
    uint k0 = uint(key), k1 = uint(key >> 32);
    for (int round = 0; round < 10; round++) {
        uint hi0, lo0, hi1, lo1;
        umulExtended(0xD2511F53u, c0, hi0, lo0);
        umulExtended(0xCD9E8D57u, c2, hi1, lo1);
        uint n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
        c1 = lo1;
        c3 = lo0;
        c0 = n0;
        c2 = n2;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    return uvec4(c0, c1, c2, c3);
}

void main()
{
    Params p = Params(push.params);
    int g = linear_id(256), n = numel(p.o);
    if (g > (n - 1) / 4) return; // n >= 1: the host dispatches nothing for an empty o
    uvec4 r = philox4x32(p.counter + uint64_t(g), p.seed);
    for (int k = 0; k < 4; k++) {
        int e = 4 * g + k;
        if (e >= n) break;
        ivec4 i = view_index(p.o.ne, e);
        bool keep = (r[k] >> 8) >= p.threshold;
        view_store(p.o, view_offset(p.o, i), keep ? view_load(p.x, view_offset(p.x, i)) * p.scale : 0.0);
    }
}
