#version 450
// Weight and bias gradients of rmsnorm and layernorm: column sums over the rows of
// contiguous (R,C) tensors, without float atomics, in two stages.
//   stage 0: workgroup (tile, part) sums rows [part*rows_per_part, ...) of 256 columns,
//     one column per invocation (neighbouring invocations read neighbouring elements):
//     dw += dy * h, db += dy, with h = to_dtype(x * rstd) (rmsnorm, layer = 0, as the
//     forward multiplied it) or (x - mean) * rstd (layernorm). With one part the sums go
//     to dw, db; else to the partials pw, pb (parts, C).
//   stage 1: dw[c] = sum over parts of pw[part, c], and db from pb.
// `want` says which of dw and db to write (ASPO_WANT_* in tensor/op_kinds.h).
#include "common.glsl"
layout(local_size_x = 256) in;
layout(buffer_reference, std430) readonly buffer Params {
    View x; View dy; View mean; View rstd; View dw; View db; View pw; View pb;
    int R; int C; int rows_per_part; int parts;
    int want; int layer; int stage; int pad0;
};

float round_to(int dt, float v)
{
    if (dt == DT_BF16) return bf16_to_f32(f32_to_bf16(v));
    if (dt == DT_F16) return unpackHalf2x16(packHalf2x16(vec2(v, 0.0)) & 0xffffu).x;
    return v;
}

void main()
{
    Params p = Params(push.params);
    int c = int(gl_WorkGroupID.x * 256 + gl_LocalInvocationID.x), C = p.C;
    if (c >= C) return;
    bool want_w = (p.want & ASPO_WANT_DWEIGHT) != 0, want_b = (p.want & ASPO_WANT_DBIAS) != 0;
    if (p.stage == 1) {
        float acc_w = 0.0, acc_b = 0.0;
        for (int part = 0; part < p.parts; part++) {
            if (want_w) acc_w += view_load(p.pw, part * C + c);
            if (want_b) acc_b += view_load(p.pb, part * C + c);
        }
        if (want_w) view_store(p.dw, c, acc_w);
        if (want_b) view_store(p.db, c, acc_b);
        return;
    }
    int part = int(gl_WorkGroupID.y), r0 = part * p.rows_per_part;
    int r1 = min(p.R, r0 + p.rows_per_part);
    float acc_w = 0.0, acc_b = 0.0;
    for (int r = r0; r < r1; r++) {
        float g = view_load(p.dy, r * C + c), xv = view_load(p.x, r * C + c);
        float rs = view_load(p.rstd, r);
        float h = p.layer != 0 ? (xv - view_load(p.mean, r)) * rs : round_to(p.x.dt, xv * rs);
        acc_w += g * h;
        acc_b += g;
    }
    if (p.parts == 1) {
        if (want_w) view_store(p.dw, c, acc_w);
        if (want_b) view_store(p.db, c, acc_b);
    } else {
        if (want_w) view_store(p.pw, part * C + c, acc_w);
        if (want_b) view_store(p.pb, part * C + c, acc_b);
    }
}
