#version 450
// OP_ATTENTION_BACKWARD in two passes (PASS), each output element written once by one
// invocation, in a fixed order: no atomics, deterministic. Probabilities are recomputed
// tile by tile from q, k and the forward's lse (no Tq x Tk buffer was kept):
//   D_i = do_i.o_i,  p_ij = exp(scale q_i.k_j - lse_i),  ds_ij = scale p_ij (do_i.v_j - D_i),
//   dv_j = sum_i p_ij do_i,  dk_j = sum_i ds_ij q_i,  dq_i = sum_j ds_ij k_j.
// PASS 0: one workgroup per (key block of BC keys, kv head, batch); it walks every query
//         head sharing that kv head and every query block that can see its keys,
//         accumulating dk and dv in registers.
// PASS 1: one workgroup per (query block of BR rows, head, batch); it walks the key blocks
//         its rows can see, accumulating dq in registers.
// A tile's invocation (r, c) = (tid / BC, tid % BC) computes p and ds for query row r and
// key c; masks are those of the forward (shaders/attention.comp), and so is skipping a tile
// that no (row, key) of it sees under a mask or segment layout.
#include "common.glsl"
layout(local_size_x_id = 3) in;
layout(constant_id = 0) const uint BR = 16;
layout(constant_id = 1) const uint BC = 16;
layout(constant_id = 2) const uint HEAD = 64; // D
layout(constant_id = 3) const uint NT = 256;  // BR * BC
layout(constant_id = 4) const uint PASS = 0;
layout(buffer_reference, std430) readonly buffer Params {
    View q; View k; View v; View o; View lse; View dout; View mask;
    View dq; View dk; View dv;
    int H; int Hkv; int Tq; int Tk;
    int causal; int has_mask; float scale; int segments;
};

const float NEG_INF = -1.0 / 0.0;
const uint KS = HEAD + 1;              // K/V rows padded: lanes of one row read one key each
const uint ACCQ = (HEAD + BC - 1) / BC; // dq dims per invocation (PASS 1): d = c + a*BC
const uint ACCK = (HEAD + BR - 1) / BR; // dk/dv dims per invocation (PASS 0): d = t + a*BR

shared float Qs[BR * HEAD];
shared float dOs[BR * HEAD];
shared float Ks[BC * KS];
shared float Vs[BC * KS];
shared float P[BR * BC];
shared float dS[BR * BC];
shared float partial[BR * BC]; // row partial sums of do.o
shared float Ls[BR];
#include "attention_keys.glsl"

// q, do rows [i0, i0+BR) of head h into shared memory, with their lse and the partial
// sums of do.o; read D_i back with row_delta() after a barrier.
void load_queries(Params p, int b, int h, int i0)
{
    uint tid = gl_LocalInvocationID.x, r = tid / BC, c = tid % BC;
    int i = i0 + int(r);
    float part = 0.0;
    for (uint d = c; d < HEAD; d += BC) {
        float qv = 0.0, dov = 0.0;
        if (i < p.Tq) {
            ivec4 at = ivec4(b, h, i, int(d));
            qv = view_load(p.q, view_offset(p.q, at));
            dov = view_load(p.dout, view_offset(p.dout, at));
            part += dov * view_load(p.o, view_offset(p.o, at));
        }
        Qs[r * HEAD + d] = qv;
        dOs[r * HEAD + d] = dov;
    }
    partial[tid] = part;
    if (c == 0)
        Ls[r] = i < p.Tq ? view_load(p.lse, view_offset(p.lse, ivec4(0, b, h, i))) : NEG_INF;
}

float row_delta()
{
    uint r = gl_LocalInvocationID.x / BC;
    float s = 0.0;
    for (uint cc = 0; cc < BC; cc++) s += partial[r * BC + cc];
    return s;
}


// k, v rows [j0, j0+BC) of kv head kvh.
void load_keys(Params p, int b, int kvh, int j0)
{
    uint tid = gl_LocalInvocationID.x;
    for (uint e = tid; e < BC * HEAD; e += NT) {
        int j = j0 + int(e / HEAD), d = int(e % HEAD);
        bool in_range = j < p.Tk;
        ivec4 at = ivec4(b, kvh, j, d);
        Ks[(e / HEAD) * KS + d] = in_range ? view_load(p.k, view_offset(p.k, at)) : 0.0;
        Vs[(e / HEAD) * KS + d] = in_range ? view_load(p.v, view_offset(p.v, at)) : 0.0;
    }
}

// p and ds of this invocation's (row, key) into P and dS; seg_i: its row's (segment, base).
void tile(Params p, int i0, int j0, float delta, ivec2 seg_i)
{
    uint tid = gl_LocalInvocationID.x, r = tid / BC, c = tid % BC;
    int i = i0 + int(r), j = j0 + int(c);
    float pr = 0.0, ds = 0.0;
    if (sees(p, i, j, c, seg_i) && Ls[r] != NEG_INF) {
        float s = 0.0, dp = 0.0;
        for (uint d = 0; d < HEAD; d++) {
            s += Qs[r * HEAD + d] * Ks[c * KS + d];
            dp += dOs[r * HEAD + d] * Vs[c * KS + d];
        }
        pr = exp(p.scale * s - Ls[r]);
        ds = p.scale * pr * (dp - delta);
    }
    P[tid] = pr;
    dS[tid] = ds;
}

void keys_pass(Params p)
{
    uint tid = gl_LocalInvocationID.x, kc = tid / BR, t = tid % BR, r = tid / BC, c = tid % BC;
    int b = int(gl_WorkGroupID.z), kvh = int(gl_WorkGroupID.y), j0 = int(gl_WorkGroupID.x * BC);
    int group = p.H / p.Hkv, shift = p.Tk - p.Tq;
    // The first query row that sees key j0 under the causal mask (a layout implies it, and
    // the host sets causal with it; shift is then 0).
    int first = p.causal != 0 ? max(j0 - shift, 0) : 0;
    float dk[ACCK], dv[ACCK];
    for (uint a = 0; a < ACCK; a++) dk[a] = dv[a] = 0.0;
    load_key_masks(p, b, j0);
    load_keys(p, b, kvh, j0);
    if (tid == 0) seen_tile = 0u; // the loop's barriers order this before use
    uint n = 0;                   // tiles so far
    for (int h = kvh * group; h < (kvh + 1) * group; h++)
        for (int i0 = first / int(BR) * int(BR); i0 < p.Tq; i0 += int(BR)) {
            barrier(); // the previous tile's readers are done
            ivec2 seg_i = row_segments(p, b, i0 + int(r));
            n++;
            // Uniform: skip a query block none of whose rows sees these keys (padding rows,
            // the later sequences packed in the batch row).
            if (p.has_mask != 0 && !tile_seen(sees(p, i0 + int(r), j0 + int(c), c, seg_i), n))
                continue;
            load_queries(p, b, h, i0);
            barrier();
            tile(p, i0, j0, row_delta(), seg_i);
            barrier();
            for (uint a = 0; a < ACCK; a++) {
                uint d = t + a * BR;
                if (d >= HEAD) break;
                float x = 0.0, y = 0.0;
                for (uint rr = 0; rr < BR; rr++) {
                    x += P[rr * BC + kc] * dOs[rr * HEAD + d];
                    y += dS[rr * BC + kc] * Qs[rr * HEAD + d];
                }
                dv[a] += x;
                dk[a] += y;
            }
        }
    int j = j0 + int(kc);
    if (j >= p.Tk) return;
    for (uint a = 0; a < ACCK; a++) {
        uint d = t + a * BR;
        if (d >= HEAD) break;
        ivec4 at = ivec4(b, kvh, j, d);
        view_store(p.dk, view_offset(p.dk, at), dk[a]);
        view_store(p.dv, view_offset(p.dv, at), dv[a]);
    }
}

void queries_pass(Params p)
{
    uint tid = gl_LocalInvocationID.x, r = tid / BC, c = tid % BC;
    int b = int(gl_WorkGroupID.z), h = int(gl_WorkGroupID.y), i0 = int(gl_WorkGroupID.x * BR);
    int kvh = h / (p.H / p.Hkv), i = i0 + int(r);
    int last = min(i0 + int(BR), p.Tq) - 1;
    int n_keys = p.causal != 0 ? clamp(last + p.Tk - p.Tq + 1, 0, p.Tk) : p.Tk;
    float dq[ACCQ];
    for (uint a = 0; a < ACCQ; a++) dq[a] = 0.0;
    load_queries(p, b, h, i0);
    barrier();
    float delta = row_delta();
    ivec2 seg_i = row_segments(p, b, i); // loaded once: (segment, base)
    if (tid == 0) seen_tile = 0u;        // the loop's barriers order this before use
    for (int j0 = 0, n = 1; j0 < n_keys; j0 += int(BC), n++) {
        barrier(); // the previous tile's readers are done
        load_key_masks(p, b, j0);
        if (p.has_mask != 0) { // uniform: skip a key block none of the rows sees
            barrier();
            if (!tile_seen(sees(p, i, j0 + int(c), c, seg_i), uint(n))) continue;
        }
        load_keys(p, b, kvh, j0);
        barrier();
        tile(p, i0, j0, delta, seg_i);
        barrier();
        for (uint a = 0; a < ACCQ; a++) {
            uint d = c + a * BC;
            if (d >= HEAD) break;
            float x = 0.0;
            for (uint cc = 0; cc < BC; cc++) x += dS[r * BC + cc] * Ks[cc * KS + d];
            dq[a] += x;
        }
    }
    if (i >= p.Tq) return;
    for (uint a = 0; a < ACCQ; a++) {
        uint d = c + a * BC;
        if (d < HEAD) view_store(p.dq, view_offset(p.dq, ivec4(b, h, i, d)), dq[a]);
    }
}

void main()
{
    Params p = Params(push.params);
    if (PASS == 0) keys_pass(p);
    else queries_pass(p);
}
