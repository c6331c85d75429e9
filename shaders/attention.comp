#version 450
// OP_ATTENTION forward, flash-attention style. One workgroup per (query block of BR rows,
// head h, batch b); invocation (r, c) = (tid / BC, tid % BC). Key blocks of BC keys pass
// through shared memory; each row keeps a running max m, sum l and output accumulator
// (online softmax), so no Tq x Tk scores exist outside one BR x BC tile:
//   s_j = scale * q_i.k_j,  m' = max(m, max_j s_j),  a = exp(m - m'),
//   l' = a*l + sum_j exp(s_j - m'),  acc' = a*acc + sum_j exp(s_j - m') v_j,
//   o_i = acc / l,  lse_i = m + log(l).
// Query head h reads kv head h / (H/Hkv). Row i may attend key j when key_mask[b,j] != 0
// and, if causal, j <= i + (Tk - Tq); with a segment layout instead (segments; Tq = Tk and
// the host sets causal), when j <= i, seg[j] >= 0 and seg[j] is seg[i] or base[i]. A row
// with no such key gets zeros and lse = -inf. Under a mask or layout a key block that no
// row of the workgroup sees is skipped: padding, and the other sequences packed in a row.
#include "common.glsl"
layout(local_size_x_id = 3) in;
layout(constant_id = 0) const uint BR = 16;   // query rows per workgroup
layout(constant_id = 1) const uint BC = 16;   // keys per shared-memory block
layout(constant_id = 2) const uint HEAD = 64; // D
layout(constant_id = 3) const uint NT = 256;  // BR * BC invocations
layout(buffer_reference, std430) readonly buffer Params {
    View q;    // (B,H,Tq,D)
    View k;    // (B,Hkv,Tk,D)
    View v;
    View mask; // (B,Tk) f32 or i32 when has_mask; a layout (B,2,T) i32 when segments too
    View o;    // (B,H,Tq,D) f32
    View lse;  // (B,H,Tq) f32
    int H; int Hkv; int Tq; int Tk;
    int causal; int has_mask; float scale; int segments;
};

const float NEG_INF = -1.0 / 0.0;
const uint KS = HEAD + 1;                  // K rows padded: lanes of one row read one k_j each
const uint ACC = (HEAD + BC - 1) / BC;     // output dims per invocation: d = c + a*BC

shared float Qs[BR * HEAD];
shared float Ks[BC * KS];
shared float Vs[BC * HEAD];
shared float S[BR * BC];
#include "attention_keys.glsl"

void main()
{
    Params p = Params(push.params);
    uint tid = gl_LocalInvocationID.x, r = tid / BC, c = tid % BC;
    int b = int(gl_WorkGroupID.z), h = int(gl_WorkGroupID.y), i0 = int(gl_WorkGroupID.x * BR);
    int kvh = h / (p.H / p.Hkv), i = i0 + int(r), shift = p.Tk - p.Tq;
    bool row_ok = i < p.Tq;
    ivec2 seg_i = row_segments(p, b, i); // loaded once: (segment, base)
    if (tid == 0) seen_tile = 0u;        // the loop's barriers order this before use

    for (uint e = tid; e < BR * HEAD; e += NT) {
        int rr = i0 + int(e / HEAD), d = int(e % HEAD);
        Qs[e] = rr < p.Tq ? view_load(p.q, view_offset(p.q, ivec4(b, h, rr, d))) : 0.0;
    }
    // Keys any row of the block may see: the causal window of its last row.
    int last = min(i0 + int(BR), p.Tq) - 1;
    int n_keys = p.causal != 0 ? clamp(last + shift + 1, 0, p.Tk) : p.Tk;

    float m = NEG_INF, l = 0.0, acc[ACC];
    for (uint a = 0; a < ACC; a++) acc[a] = 0.0;
    for (int j0 = 0, n = 1; j0 < n_keys; j0 += int(BC), n++) {
        barrier(); // the previous block's readers are done
        load_key_masks(p, b, j0);
        int j = j0 + int(c);
        if (p.has_mask != 0) { // uniform: skip a key block none of the rows sees
            barrier();
            if (!tile_seen(sees(p, i, j, c, seg_i), uint(n))) continue;
        }
        for (uint e = tid; e < BC * HEAD; e += NT) {
            int jk = j0 + int(e / HEAD), d = int(e % HEAD);
            bool in_range = jk < p.Tk;
            ivec4 at = ivec4(b, kvh, jk, d);
            Ks[(e / HEAD) * KS + d] = in_range ? view_load(p.k, view_offset(p.k, at)) : 0.0;
            Vs[e] = in_range ? view_load(p.v, view_offset(p.v, at)) : 0.0;
        }
        barrier();

        float s = NEG_INF;
        if (sees(p, i, j, c, seg_i)) {
            float dot = 0.0;
            for (uint d = 0; d < HEAD; d++) dot += Qs[r * HEAD + d] * Ks[c * KS + d];
            s = p.scale * dot;
        }
        S[tid] = s;
        barrier();
        float block_max = NEG_INF;
        for (uint cc = 0; cc < BC; cc++) block_max = max(block_max, S[r * BC + cc]);
        float m_new = max(m, block_max);
        float pr = s == NEG_INF ? 0.0 : exp(s - m_new); // s finite: m_new is too
        barrier();
        S[tid] = pr;
        barrier();
        float alpha = m == NEG_INF ? 0.0 : exp(m - m_new); // nothing accumulated yet: 0
        float row_sum = 0.0;
        for (uint cc = 0; cc < BC; cc++) row_sum += S[r * BC + cc];
        l = l * alpha + row_sum;
        for (uint a = 0; a < ACC; a++) {
            uint d = c + a * BC;
            if (d >= HEAD) break;
            float x = 0.0;
            for (uint cc = 0; cc < BC; cc++) x += S[r * BC + cc] * Vs[cc * HEAD + d];
            acc[a] = acc[a] * alpha + x;
        }
        m = m_new;
    }
    if (!row_ok) return;
    float inv = l > 0.0 ? 1.0 / l : 0.0; // no key: zeros
    for (uint a = 0; a < ACC; a++) {
        uint d = c + a * BC;
        if (d < HEAD) view_store(p.o, view_offset(p.o, ivec4(b, h, i, d)), acc[a] * inv);
    }
    if (c == 0)
        view_store(p.lse, view_offset(p.lse, ivec4(0, b, h, i)), m == NEG_INF ? NEG_INF : m + log(l));
}
