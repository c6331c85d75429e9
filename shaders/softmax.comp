#version 450
// OP_SOFTMAX and OP_SOFTMAX_BACKWARD over the last dim of contiguous (R,C) tensors, one
// workgroup per row, f32 math (as backends/cpu/cpu_softmax.c):
//   forward (backward = 0): o = softmax(x) or, with log, (x - max) - log(sum exp(x - max)).
//     Each invocation keeps a running max and a sum rescaled to it (online softmax), so
//     the row is read twice (statistics, output) rather than three times.
//   backward (backward = 1, x = y): softmax: o = y*(dy - sum(dy*y));
//     log-softmax: o = dy - exp(y)*sum(dy).
#include "common.glsl"
#include "workgroup_reduce.glsl"
layout(constant_id = 0) const uint WG = 256;
layout(constant_id = 1) const bool SUBGROUPS = false;
layout(local_size_x_id = 0) in;
layout(buffer_reference, std430) readonly buffer Params {
    View x; View dy; View o;
    int R; int C; int log_softmax; int backward;
};

shared float red_s[WG];

WORKGROUP_REDUCE(float, workgroup_add, red_s, subgroupAdd, REDUCE_ADD)
WORKGROUP_REDUCE(float, workgroup_max, red_s, subgroupMax, REDUCE_MAX)
float workgroup_reduce(float v, bool is_max) { return is_max ? workgroup_max(v) : workgroup_add(v); }

void main()
{
    Params p = Params(push.params);
    int r = int(gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x);
    if (r >= p.R) return; // the whole workgroup: no barrier is left waiting
    int off = r * p.C, t = int(gl_LocalInvocationID.x);
    const float NEG_INF = uintBitsToFloat(0xff800000u);
    if (p.backward != 0) {
        float acc = 0.0;
        for (int j = t; j < p.C; j += int(WG)) {
            float g = view_load(p.dy, off + j);
            acc += p.log_softmax != 0 ? g : g * view_load(p.x, off + j);
        }
        float s = workgroup_reduce(acc, false);
        for (int j = t; j < p.C; j += int(WG)) {
            float y = view_load(p.x, off + j), g = view_load(p.dy, off + j);
            view_store(p.o, off + j, p.log_softmax != 0 ? g - exp(y) * s : y * (g - s));
        }
        return;
    }
    float m = NEG_INF, sum = 0.0; // sum of exp(x - m) over this invocation's elements
    for (int j = t; j < p.C; j += int(WG)) {
        float v = view_load(p.x, off + j);
        if (v > m) {
            sum = sum * exp(m - v) + 1.0;
            m = v;
        } else if (v != NEG_INF) { // -inf adds nothing; exp(-inf - -inf) would be NaN
            sum += exp(v - m);     // a NaN lands here and makes the row NaN, as on the CPU
        }
    }
    float row_max = workgroup_reduce(m, true);
    float row_sum = workgroup_reduce(sum == 0.0 ? 0.0 : sum * exp(m - row_max), false);
    if (p.log_softmax != 0) {
        float log_sum = log(row_sum);
        for (int j = t; j < p.C; j += int(WG))
            view_store(p.o, off + j, (view_load(p.x, off + j) - row_max) - log_sum);
    } else {
        float inv = 1.0 / row_sum;
        for (int j = t; j < p.C; j += int(WG))
            view_store(p.o, off + j, exp(view_load(p.x, off + j) - row_max) * inv);
    }
}
