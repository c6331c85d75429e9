#version 450
// OP_SUM: o = x summed over the dims where o has size 1 (red = those dims' sizes in x, 1
// elsewhere), any strides and dtypes, f32 accumulation. A workgroup is a tile of OX
// consecutive outputs (x) by RY = 256 / OX lanes (y) that split each output's reduction;
// the lanes meet in a shared-memory tree. The host picks OX: 1 when the innermost dim is
// reduced (lanes read along it), more when it is kept (neighbouring invocations read
// neighbouring outputs, as for column sums). When few outputs would leave the device
// idle, the host splits the reduction into chunks of `chunk` (workgroup z = part): part
// z writes its sums at o + z * n_out (a contiguous f32 scratch), and a second launch of
// this shader adds the parts.
#include "common.glsl"
layout(constant_id = 0) const uint OX = 1;
const uint WG = 256;
const uint RY = WG / OX;
layout(local_size_x = 256) in;
layout(buffer_reference, std430) readonly buffer Params {
    View x; View o;
    ivec4 red;
    int n_out; int n_red; int chunk; int pad0;
};

shared float partial[WG];

void main()
{
    Params p = Params(push.params);
    uint tx = gl_LocalInvocationID.x % OX, ty = gl_LocalInvocationID.x / OX;
    int e = int((gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * OX + tx);
    float acc = 0.0;
    int part = int(gl_WorkGroupID.z), j1 = min(p.n_red, (part + 1) * p.chunk);
    if (e < p.n_out) {
        int base = view_offset(p.x, view_index(p.o.ne, e));
        for (int j = part * p.chunk + int(ty); j < j1; j += int(RY))
            acc += view_load(p.x, base + view_offset(p.x, view_index(p.red, j)));
    }
    partial[gl_LocalInvocationID.x] = acc;
    barrier();
    for (uint s = RY / 2; s > 0; s >>= 1) {
        if (ty < s) partial[ty * OX + tx] += partial[(ty + s) * OX + tx];
        barrier();
    }
    if (ty == 0 && e < p.n_out)
        view_store(p.o, view_offset(p.o, view_index(p.o.ne, e)) + part * p.n_out, partial[tx]);
}
