#version 450
// OP_SUMSQ in at most two passes and no float atomics. Pass 1 (square = 1): workgroup g
// adds x[i]^2 over a grid-stride slice of the contiguous x (neighbouring invocations read
// neighbouring elements) into o[g]. Pass 2 (square = 0): one workgroup adds those partials
// into o[0]. With one workgroup, pass 1 writes the result itself.
#include "common.glsl"
#include "workgroup_reduce.glsl"
layout(constant_id = 0) const uint WG = 256;
layout(constant_id = 1) const bool SUBGROUPS = false;
layout(local_size_x_id = 0) in;
layout(buffer_reference, std430) readonly buffer Params {
    View x; View o;
    int n; int square; int pad0; int pad1;
};

shared float red_s[WG];

WORKGROUP_REDUCE(float, workgroup_sum, red_s, subgroupAdd, REDUCE_ADD)

void main()
{
    Params p = Params(push.params);
    uint stride = gl_NumWorkGroups.x * WG;
    float acc = 0.0;
    // uint: i + stride stays below 2^32 for any n < 2^31
    for (uint i = gl_WorkGroupID.x * WG + gl_LocalInvocationID.x; i < uint(p.n); i += stride) {
        float v = view_load(p.x, int(i));
        acc += p.square != 0 ? v * v : v;
    }
    float total = workgroup_sum(acc);
    if (gl_LocalInvocationID.x == 0) view_store(p.o, int(gl_WorkGroupID.x), total);
}
