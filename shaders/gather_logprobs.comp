#version 450
// OP_GATHER_LOGPROBS and its backward over contiguous (N,V) logits of any float dtype.
//   forward:  one workgroup per row; each invocation keeps an online (max, sum exp) over
//             its strided share of the row in one pass, then the workgroup merges them:
//             lse = m + log(sum), logp = logit[target] - lse. Ignored rows: 0, 0, unread.
//   backward: one invocation per element: dlogits = dlogp * (onehot(target) - exp(x - lse)),
//             0 on ignored rows.
// Targets were checked on the host; one outside [0,V) here reads nothing.
#include "common.glsl"
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint GROUP = 256; // a power of two (the reduction tree)
layout(buffer_reference, std430) readonly buffer Params {
    View logits;  // (N,V)
    View targets; // (N) i32
    View lse_in;  // backward: (N)
    View dlogp;   // backward: (N)
    View out0;    // forward: logp (N); backward: dlogits (N,V)
    View out1;    // forward: lse (N)
    int64_t ignore_index;
    int backward; int N; int V; int pad0; int pad1; int pad2;
};

const float NEG_INF = -1.0 / 0.0;

shared float partial[GROUP];

// Max (is_max) or sum of x over the workgroup; every invocation gets the result. A
// shared-memory tree: two per row next to a pass over the whole row, so subgroup
// operations would save little and need a second shader for devices without them.
float group_reduce(float x, bool is_max)
{
    uint tid = gl_LocalInvocationID.x;
    barrier(); // earlier readers of partial[0] are done
    partial[tid] = x;
    barrier();
    for (uint half_ = GROUP / 2; half_ > 0; half_ /= 2) {
        if (tid < half_) {
            float o = partial[tid + half_];
            partial[tid] = is_max ? max(partial[tid], o) : partial[tid] + o;
        }
        barrier();
    }
    return partial[0];
}

float logit(Params p, int n, int v)
{
    return view_load(p.logits, n * p.logits.st.z + v * p.logits.st.w);
}

void main()
{
    Params p = Params(push.params);
    if (p.backward != 0) {
        int e = linear_id(GROUP);
        if (e >= p.N * p.V) return;
        int n = e / p.V, v = e % p.V;
        int id = view_load_int(p.targets, n * p.targets.st.w);
        float g = 0.0;
        if (int64_t(id) != p.ignore_index) {
            float dl = view_load(p.dlogp, n * p.dlogp.st.w);
            float l = view_load(p.lse_in, n * p.lse_in.st.w);
            g = -dl * exp(logit(p, n, v) - l) + (v == id ? dl : 0.0);
        }
        view_store(p.out0, n * p.out0.st.z + v * p.out0.st.w, g);
        return;
    }
    // One workgroup per row; the grid is (x,y) over rows.
    int n = int(gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x);
    if (n >= p.N) return; // uniform over the workgroup
    int id = view_load_int(p.targets, n * p.targets.st.w);
    if (int64_t(id) == p.ignore_index) {
        if (gl_LocalInvocationID.x == 0) {
            view_store(p.out0, n * p.out0.st.w, 0.0);
            view_store(p.out1, n * p.out1.st.w, 0.0);
        }
        return;
    }
    float m = NEG_INF, s = 0.0;
    for (int v = int(gl_LocalInvocationID.x); v < p.V; v += int(GROUP)) {
        float x = logit(p, n, v);
        if (x > m) {
            s = s * exp(m - x) + 1.0; // m = -inf at first: exp(-inf) = 0
            m = x;
        } else if (x != NEG_INF) { // -inf adds 0, and exp(-inf - -inf) would be NaN
            s += exp(x - m);
        }
    }
    float M = group_reduce(m, true);
    float S = group_reduce(m == NEG_INF ? 0.0 : s * exp(m - M), false);
    if (gl_LocalInvocationID.x == 0) {
        float lse = M + log(S); // a row of -inf or V = 0: -inf
        float x = (id >= 0 && id < p.V) ? logit(p, n, id) : 0.0;
        view_store(p.out0, n * p.out0.st.w, x - lse);
        view_store(p.out1, n * p.out1.st.w, lse);
    }
}
