// Workgroup reductions for shaders that declare `const uint WG` (a power of two, the
// workgroup size) and `const bool SUBGROUPS` (the device has subgroup arithmetic; the host
// passes it as a specialization constant). WORKGROUP_REDUCE(T, NAME, SHARED, SUBGROUP_OP,
// COMBINE) defines `T NAME(T v)`: the reduction of v over the workgroup, returned in every
// invocation, called from uniform control flow, using `shared T SHARED[WG]`. With subgroup
// arithmetic each subgroup reduces its own values first and one barrier pair is enough;
// else a shared-memory tree.
#extension GL_KHR_shader_subgroup_arithmetic : enable

#define WORKGROUP_REDUCE(T, NAME, SHARED, SUBGROUP_OP, COMBINE)                             \
    T NAME(T v)                                                                             \
    {                                                                                       \
        if (SUBGROUPS) {                                                                    \
            T t = SUBGROUP_OP(v);                                                           \
            if (subgroupElect()) SHARED[gl_SubgroupID] = t;                                 \
            barrier();                                                                      \
            T r = SHARED[0];                                                                \
            for (uint k = 1; k < gl_NumSubgroups; k++) r = COMBINE(r, SHARED[k]);           \
            barrier();                                                                      \
            return r;                                                                       \
        }                                                                                   \
        uint i = gl_LocalInvocationID.x;                                                    \
        SHARED[i] = v;                                                                      \
        barrier();                                                                          \
        for (uint s = WG / 2; s > 0; s >>= 1) {                                             \
            if (i < s) SHARED[i] = COMBINE(SHARED[i], SHARED[i + s]);                       \
            barrier();                                                                      \
        }                                                                                   \
        T r = SHARED[0];                                                                    \
        barrier();                                                                          \
        return r;                                                                           \
    }

#define REDUCE_ADD(a, b) ((a) + (b))
#define REDUCE_MAX(a, b) max(a, b)
