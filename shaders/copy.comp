#version 450
// OP_COPY: dst[i] = src[i] with dtype conversion, any strides (src broadcast to dst).
#include "common.glsl"
layout(local_size_x = 256) in;
layout(buffer_reference, std430) readonly buffer Params { View src; View dst; };

void main()
{
    Params p = Params(push.params);
    int n = linear_id(256);
    if (n >= numel(p.dst)) return;
    ivec4 i = view_index(p.dst.ne, n);
    int so = view_offset(p.src, i), d = view_offset(p.dst, i);
    if (p.src.dt == DT_I32 && p.dst.dt == DT_I32) I32Buf(p.dst.addr).v[d] = I32Buf(p.src.addr).v[so];
    else if (p.src.dt == p.dst.dt && p.src.dt != DT_F32) U16Buf(p.dst.addr).v[d] = U16Buf(p.src.addr).v[so];
    else view_store(p.dst, d, view_load(p.src, so));
}
