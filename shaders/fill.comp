#version 450
// OP_FILL: every element of dst = value.
#include "common.glsl"
layout(local_size_x = 256) in;
layout(buffer_reference, std430) readonly buffer Params { View dst; float value; };

void main()
{
    Params p = Params(push.params);
    int n = linear_id(256);
    if (n >= numel(p.dst)) return;
    int d = view_offset(p.dst, view_index(p.dst.ne, n));
    if (p.dst.dt == DT_I32) I32Buf(p.dst.addr).v[d] = int(p.value);
    else view_store(p.dst, d, p.value);
}
