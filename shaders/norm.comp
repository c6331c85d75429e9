#version 450
// Row passes of the norms over the last dim of contiguous (R,C) tensors, one workgroup per
// row, f32 math with the formulas of backends/cpu/cpu_norm.c. `kind` (shader_kinds.h):
//   NORM_RMS:      o = w * to_dtype(x * rstd), rstd = 1/sqrt(mean(x^2) + eps); writes rstd
//   NORM_RMS_DX:   o = rstd * (g - h * mean(g*h)), g = dy*w, h = x*rstd
//   NORM_LAYER:    o = (x - mean) * rstd * w + b, rstd = 1/sqrt(var + eps); writes mean, rstd
//   NORM_LAYER_DX: o = rstd * (g - mean(g) - xhat * mean(g*xhat)), g = dy*w
//   NORM_L2:       o = x / max(||x||, eps); rstd = 1/max(||x||, eps), negated when clamped
//   NORM_L2_DX (x = y, rstd = signed inv_norm): o = inv * (dy - y * sum(dy*y)), or
//                  dy / eps where clamped
// Any other kind writes nothing (the host only sends these).
// Weight and bias gradients are column sums over rows: shaders/norm_columns.comp.
#include "common.glsl"
#include "shader_kinds.h"
#include "workgroup_reduce.glsl"
layout(constant_id = 0) const uint WG = 256;
layout(constant_id = 1) const bool SUBGROUPS = false;
layout(local_size_x_id = 0) in;
layout(buffer_reference, std430) readonly buffer Params {
    View x; View w; View b; View mean; View rstd; View dy; View o;
    int R; int C; int kind; float eps;
};

shared vec2 red_s[WG];

WORKGROUP_REDUCE(vec2, workgroup_sum, red_s, subgroupAdd, REDUCE_ADD)

float row_sum(float v) { return workgroup_sum(vec2(v, 0.0)).x; }

// v rounded to dtype dt and back, as a cast to x's dtype is in Hugging Face's RMSNorm.
float round_to(int dt, float v)
{
    if (dt == DT_BF16) return bf16_to_f32(f32_to_bf16(v));
    if (dt == DT_F16) return unpackHalf2x16(packHalf2x16(vec2(v, 0.0)) & 0xffffu).x;
    return v;
}

void main()
{
    Params p = Params(push.params);
    int r = int(gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x);
    if (r >= p.R) return; // the whole workgroup: no barrier is left waiting
    int C = p.C, off = r * C, t = int(gl_LocalInvocationID.x), step = int(WG);
    bool first = t == 0;
    float fC = float(C);

    if (p.kind == NORM_RMS) {
        float acc = 0.0;
        for (int i = t; i < C; i += step) {
            float v = view_load(p.x, off + i);
            acc += v * v;
        }
        float rs = 1.0 / sqrt(row_sum(acc) / fC + p.eps);
        if (first) view_store(p.rstd, r, rs);
        for (int i = t; i < C; i += step) {
            float h = round_to(p.x.dt, view_load(p.x, off + i) * rs);
            view_store(p.o, off + i, view_load(p.w, i) * h);
        }
    } else if (p.kind == NORM_RMS_DX) {
        float rs = view_load(p.rstd, r), acc = 0.0;
        for (int i = t; i < C; i += step)
            acc += view_load(p.dy, off + i) * view_load(p.w, i) * (view_load(p.x, off + i) * rs);
        float m = row_sum(acc) / fC;
        for (int i = t; i < C; i += step) {
            float g = view_load(p.dy, off + i) * view_load(p.w, i);
            float h = view_load(p.x, off + i) * rs;
            view_store(p.o, off + i, rs * (g - h * m));
        }
    } else if (p.kind == NORM_LAYER) {
        float acc = 0.0;
        for (int i = t; i < C; i += step) acc += view_load(p.x, off + i);
        float mu = row_sum(acc) / fC;
        acc = 0.0;
        for (int i = t; i < C; i += step) { // two passes: no cancellation for large means
            float d = view_load(p.x, off + i) - mu;
            acc += d * d;
        }
        float rs = 1.0 / sqrt(row_sum(acc) / fC + p.eps);
        if (first) {
            view_store(p.mean, r, mu);
            view_store(p.rstd, r, rs);
        }
        for (int i = t; i < C; i += step) {
            float xhat = (view_load(p.x, off + i) - mu) * rs;
            view_store(p.o, off + i, xhat * view_load(p.w, i) + view_load(p.b, i));
        }
    } else if (p.kind == NORM_LAYER_DX) {
        float mu = view_load(p.mean, r), rs = view_load(p.rstd, r);
        vec2 acc = vec2(0.0); // sum g, sum g*xhat
        for (int i = t; i < C; i += step) {
            float g = view_load(p.dy, off + i) * view_load(p.w, i);
            acc += vec2(g, g * ((view_load(p.x, off + i) - mu) * rs));
        }
        vec2 m = workgroup_sum(acc) / fC;
        for (int i = t; i < C; i += step) {
            float g = view_load(p.dy, off + i) * view_load(p.w, i);
            float xhat = (view_load(p.x, off + i) - mu) * rs;
            view_store(p.o, off + i, rs * (g - m.x - xhat * m.y));
        }
    } else if (p.kind == NORM_L2) {
        float acc = 0.0;
        for (int i = t; i < C; i += step) {
            float v = view_load(p.x, off + i);
            acc += v * v;
        }
        float norm = sqrt(row_sum(acc));
        bool clamped = !(norm > p.eps);
        float denom = clamped ? p.eps : norm;
        if (first) view_store(p.rstd, r, clamped ? -1.0 / denom : 1.0 / denom);
        for (int i = t; i < C; i += step) view_store(p.o, off + i, view_load(p.x, off + i) / denom);
    } else if (p.kind == NORM_L2_DX) {
        float inv = view_load(p.rstd, r); // the same for the whole workgroup
        if (inv < 0.0) {                  // clamped: y = x / eps is linear in x
            for (int i = t; i < C; i += step)
                view_store(p.o, off + i, view_load(p.dy, off + i) * -inv);
            return;
        }
        float acc = 0.0;
        for (int i = t; i < C; i += step) acc += view_load(p.dy, off + i) * view_load(p.x, off + i);
        float d = row_sum(acc);
        for (int i = t; i < C; i += step) {
            float g = view_load(p.dy, off + i), y = view_load(p.x, off + i);
            view_store(p.o, off + i, inv * (g - y * d));
        }
    }
}
