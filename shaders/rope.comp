#version 450
// OP_ROPE over (B,H,T,D) rows, one invocation per pair (i, i + D/2) of one row. x, cos and
// sin are Views of any float dtype and strides; cos/sin are (B|1,T,D) as (1,B|1,T,D)
// Views, a batch of 1 shared by every batch row. Halves 1 = [0, D/2), 2 = [D/2, D):
//   forward:   y1 = x1*c1 - x2*s1,   y2 = x2*c2 + x1*s2
//   transpose: y1 = x1*c1 + x2*s2,   y2 = x2*c2 - x1*s1   (backward; no c1 == c2 assumed)
#include "common.glsl"
layout(local_size_x = 256) in;
layout(buffer_reference, std430) readonly buffer Params {
    View x; View cs; View sn; View o;
    int transpose; int pad0; int pad1; int pad2;
};

void main()
{
    Params p = Params(push.params);
    int half_ = p.x.ne.w / 2;
    int e = linear_id(256);
    if (e >= p.x.ne.x * p.x.ne.y * p.x.ne.z * half_) return;
    ivec4 i = view_index(ivec4(p.x.ne.xyz, half_), e); // (b, h, t, i < D/2)
    ivec4 i2 = i + ivec4(0, 0, 0, half_);
    // the table's batch row: b, or 0 when shared
    ivec4 ti = ivec4(0, p.cs.ne.y == 1 ? 0 : i.x, i.z, i.w), ti2 = ti + ivec4(0, 0, 0, half_);
    float x1 = view_load(p.x, view_offset(p.x, i)), x2 = view_load(p.x, view_offset(p.x, i2));
    float c1 = view_load(p.cs, view_offset(p.cs, ti)), c2 = view_load(p.cs, view_offset(p.cs, ti2));
    float s1 = view_load(p.sn, view_offset(p.sn, ti)), s2 = view_load(p.sn, view_offset(p.sn, ti2));
    float y1 = p.transpose != 0 ? x1 * c1 + x2 * s2 : x1 * c1 - x2 * s1;
    float y2 = p.transpose != 0 ? x2 * c2 - x1 * s1 : x2 * c2 + x1 * s2;
    view_store(p.o, view_offset(p.o, i), y1);
    view_store(p.o, view_offset(p.o, i2), y2);
}
