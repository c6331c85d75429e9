// Rotary embedding and attention: a flash-attention-2 forward (online softmax; o and the
// row log-sum-exps written, never a Tq x Tk buffer) and a backward that recomputes the
// probabilities tile by tile from q, k and the saved lse: dk/dv by key block, then dq by
// query block, each output element written by one thread in a fixed order (no atomics,
// results the same run to run). The semantics are those of backends/cpu/cpu_rope.c and
// cpu_attention.c (tensor/ops_attention.c: grouped-query heads, key_mask, causal alignment
// j <= i + (Tk - Tq) when Tq != Tk, rows with no key give zeros and lse = -inf); the
// segment layout of packed sequences (p.i[1]) instead of a key mask lets query i see key j
// when j <= i, seg[j] >= 0 and seg[j] is seg[i] or base[i]: each row keeps its two ids, each
// key tile holds its keys' segments, and a block vote skips (loads included) the tiles no
// row of a block sees, so a pair costs about what it would alone. The
// decomposition is that of shaders/rope.comp, attention.comp and attention_backward.comp,
// with larger tiles and a register tile per thread instead of one cell per thread.
//
// Attention inputs arrive contiguous (op table flag) in any float dtype (bf16 q, k, v and o
// with half-precision activations) and are read through cu_view, which widens them; the
// math is f32 throughout, o is stored in its own dtype. The head
// size D picks a kernel instance whose tiles are HEAD >= D wide (32, 64, 128 or 256; the
// columns past D are zeros); each instance has a list of tile sizes, largest first, and the
// launch takes the first whose shared memory fits the device's opt-in limit. Larger D fails
// with ASPO_ERR_UNSUPPORTED.
//
// Verified: compiles -Wall -Wextra clean with nvcc (CUDA 13) for sm_80, sm_89 and sm_90, no
// register spills past 4 bytes (ptxas -v). cu_rope, cu_attention and cu_attention_backward
// ran, outside the repo, under the HIP-CPU runtime (the HIP API emulated on the CPU, a
// block's threads as fibers switching at __syncthreads) against a double-precision
// reference: every head-size instance and every tile size of each list (shared-memory
// limits of H100, A100, sm_89 and 64 KiB), GQA, f32/i32/random key masks, causal with
// Tq < Tk and Tq > Tk, rows with no key, Tk = 0, Tq = 0, D = 0, Tq and Tk across several
// tiles; o, lse, dq, dk, dv within 5e-5 of the reference's largest value. Mutants of the
// causal bound, the first query block of the key pass, delta and the row sums failed it.
// Segment layouts: on backends/simt (race checker on, 32- and 64-lane warps) against the
// CPU, the op tests' layouts and, outside the repo, ones whose prompts and answers span
// whole tiles (head sizes 8 to 200), where a tile skip blind to base[i] failed.
// Not verified: never run on a GPU (none on the build machine), so neither speed nor the
// interleaving of real warps was seen; scripts/gpu-check.sh runs tests/ops/test_ops
// --backend cuda against the CPU for these three ops (forward and backward, NMSE).
#include <inttypes.h>
#include <math.h>

#include <algorithm>

#include "cuda_common.cuh"

namespace {

__device__ __forceinline__ int imin(int a, int b) { return a < b ? a : b; }
__device__ __forceinline__ int imax(int a, int b) { return a > b ? a : b; }

// ---- rope ----

constexpr int ROPE_THREADS = 256; // one thread per pair: any multiple of the warp size

// x (B,H,T,D) of any float dtype and strides, cos/sin (B|1,T,D) as (1,B|1,T,D) views (a
// batch of 1 shared by every batch row), o (B,H,T,D). One thread per pair (i, i + D/2):
//   forward:   y1 = x1*c1 - x2*s1,   y2 = x2*c2 + x1*s2
//   transpose: y1 = x1*c1 + x2*s2,   y2 = x2*c2 - x1*s1   (backward; no c1 == c2 assumed)
__global__ void rope_kernel(cu_view x, cu_view cs, cu_view sn, cu_view o, int transpose)
{
    int64_t half = x.ne[3] / 2, T = x.ne[2], H = x.ne[1];
    CU_FOR(e, x.ne[0] * H * T * half)
    {
        int64_t i = e % half, row = e / half, t = row % T, h = row / T % H, b = row / (T * H);
        int64_t xo = b * x.st[0] + h * x.st[1] + t * x.st[2];
        int64_t co = (cs.ne[1] == 1 ? 0 : b) * cs.st[1] + t * cs.st[2];
        int64_t so = (sn.ne[1] == 1 ? 0 : b) * sn.st[1] + t * sn.st[2];
        int64_t oo = b * o.st[0] + h * o.st[1] + t * o.st[2];
        float x1 = cu_load(x, xo + i * x.st[3]), x2 = cu_load(x, xo + (i + half) * x.st[3]);
        float c1 = cu_load(cs, co + i * cs.st[3]), c2 = cu_load(cs, co + (i + half) * cs.st[3]);
        float s1 = cu_load(sn, so + i * sn.st[3]), s2 = cu_load(sn, so + (i + half) * sn.st[3]);
        float y1 = transpose ? x1 * c1 + x2 * s2 : x1 * c1 - x2 * s1;
        float y2 = transpose ? x2 * c2 - x1 * s1 : x2 * c2 + x1 * s2;
        cu_store(o, oo + i * o.st[3], y1);
        cu_store(o, oo + (i + half) * o.st[3], y2);
    }
}

// ---- attention: shapes, tiles, shared pieces ----

struct attention_args {
    cu_view q, k, v; // q (B,H,Tq,D), k, v (B,Hkv,Tk,D)
    cu_view mask;    // (B,Tk) f32 or i32 when has_mask; the layout (B,2,T) i32 when segments
    cu_view o, lse;  // o (B,H,Tq,D), lse (B,H,Tq): forward outputs, backward inputs
    cu_view dout;    // do (B,H,Tq,D), backward
    cu_view dq, dk, dv;
    const float *delta; // (B,H,Tq) do_i.o_i, backward
    int H, Hkv, Tq, Tk, D, causal, has_mask, segments;
    float scale;
};

constexpr float NEG_INF = -INFINITY;

// Every tile product spreads its output over the block's threads as a TM x TN grid:
// thread (ty, tx) = (tid / TN, tid % TN) owns rows ty + TM*i and columns tx + TN*j.
constexpr int TM = 16;
// 4 warps per forward block, as flash-attention-2's forward: the o accumulator (BR x HEAD)
// stays in registers at <= 64 floats a thread.
constexpr int FWD_THREADS = 128;
// 8 warps per backward block: the key pass keeps two BC x HEAD accumulators (dk, dv).
constexpr int BWD_THREADS = 256;

// Tiles of q, k, v and do have rows of HEAD + 1 floats, score tiles rows of BC + 1: the
// padding puts the threads that read one column of different rows in different banks.
template <int HEAD, int BR, int BC> struct forward_tiles {
    static constexpr int TN = FWD_THREADS / TM, LD = HEAD + 1, LS = BC + 1;
    // Q (BR,LD), K and V (BC,LD), S (BR,LS), row max and sum partials (BR,TN) each,
    // key ids (BC)
    static constexpr size_t bytes =
        sizeof(float) * ((size_t)BR * LD + 2 * (size_t)BC * LD + (size_t)BR * LS +
                         2 * (size_t)BR * TN + BC);
    static_assert(BR % TM == 0 && BC % TN == 0 && HEAD % TN == 0, "tiles split unevenly");
};

template <int HEAD, int BR, int BC> struct backward_tiles {
    static constexpr int TN = BWD_THREADS / TM, LD = HEAD + 1, LS = BC + 1;
    // key pass: K, V (BC,LD), Q, dO (BR,LD), P, dS (BR,LS), lse, delta (BR), key ids (BC)
    static constexpr size_t key_bytes =
        sizeof(float) * (2 * (size_t)BC * LD + 2 * (size_t)BR * LD + 2 * (size_t)BR * LS +
                         2 * (size_t)BR + BC);
    // query pass: the same without P
    static constexpr size_t query_bytes = key_bytes - sizeof(float) * (size_t)BR * LS;
    static_assert(BR % TM == 0 && BC % TM == 0 && BC % TN == 0 && HEAD % TN == 0,
                  "tiles split unevenly");
};

template <int BR_, int BC_> struct tile {
    static constexpr int BR = BR_, BC = BC_;
};

// Rows [r0, r0+R) of head `head` of batch b of x (B,heads,T,D) into dst (R, HEAD+1),
// zeros past T and D (so HEAD-wide dot products equal D-wide ones). Consecutive threads
// read consecutive d: coalesced.
template <int R, int HEAD, int NT>
__device__ __forceinline__ void load_rows(float *dst, const cu_view &x, int b, int head, int r0,
                                          int T, int D)
{
    int64_t base = b * x.st[0] + head * x.st[1];
    for (int e = threadIdx.x; e < R * HEAD; e += NT) {
        int r = e / HEAD, d = e % HEAD;
        float val = 0.0f;
        if (r0 + r < T && d < D)
            val = cu_load(x, base + (int64_t)(r0 + r) * x.st[2] + (int64_t)d * x.st[3]);
        dst[r * (HEAD + 1) + d] = val;
    }
}

// Entry (b, row, t) of the segment layout (B,2,T), a (1,B,2,T) view; read as int, as ids
// past 2^24 would not survive cu_load's float.
__device__ __forceinline__ int layout_at(const attention_args &a, int b, int row, int t)
{
    return ((const int32_t *)a.mask.data)[b * a.mask.st[1] + row * a.mask.st[2] +
                                          (int64_t)t * a.mask.st[3]];
}

// Key j of batch b as the tiles hold it: -1 where no query may attend it (past Tk, masked
// out, padding), else its segment (a segment layout) or 0 (a key mask, or none).
__device__ __forceinline__ int key_id(const attention_args &a, int b, int j)
{
    if (j >= a.Tk) return -1;
    if (a.segments) return imax(layout_at(a, b, 0, j), -1);
    return !a.has_mask ||
                   cu_load(a.mask, b * a.mask.st[2] + (int64_t)j * a.mask.st[3]) != 0.0f
               ? 0
               : -1;
}

// The key ids query row i of batch b attends: its segment and its base (a segment layout),
// else 0 and 0; none (-1) past Tq or for a padding query (segment -1, whatever its base).
// One load per row a thread owns, kept in registers.
struct row_ids {
    int seg, base;
};

__device__ __forceinline__ row_ids row_ids_of(const attention_args &a, int b, int i)
{
    if (i >= a.Tq) return {-1, -1};
    if (!a.segments) return {0, 0};
    int seg = layout_at(a, b, 0, i);
    return seg < 0 ? row_ids{-1, -1} : row_ids{seg, layout_at(a, b, 1, i)};
}

// Whether query row `row` (ids r) attends key `col` (id key): the mask or layout, then the
// causal window (a layout is causal, and Tq == Tk there).
__device__ __forceinline__ bool attended(const attention_args &a, int key, row_ids r, int row,
                                         int col)
{
    return key >= 0 && (key == r.seg || key == r.base) &&
           (!a.causal || col <= row + (a.Tk - a.Tq));
}

// Whether any of the thread's cells of the tile at (i0, j0) is attended (rows ty + TM*i,
// keys tx + TN*j); the block's vote over it skips the tiles no row of the block sees.
template <int RM, int RN, int TN>
__device__ __forceinline__ bool sees_any(const attention_args &a, const row_ids (&rows)[RM],
                                         const int *key_ids, int i0, int j0, int ty, int tx)
{
    bool any = false;
#pragma unroll
    for (int i = 0; i < RM; i++)
#pragma unroll
        for (int j = 0; j < RN; j++) {
            int c = tx + TN * j;
            any |= attended(a, key_ids[c], rows[i], i0 + ty + TM * i, j0 + c);
        }
    return any;
}

// acc[i][j] += sum_{k<K} A(TM*i, k) * B(TN*j, k), with A(r, k) = a[r*a_row + k*a_k] and
// B(c, k) = b[c*b_row + k*b_k] in shared memory; a and b already point at the thread's
// first row (ty) and column (tx). f32 FMAs in order of k.
template <int RM, int RN, int TN>
__device__ __forceinline__ void product(float (&acc)[RM][RN], const float *a, int a_row,
                                        int a_k, const float *b, int b_row, int b_k, int K)
{
#pragma unroll 4
    for (int k = 0; k < K; k++) {
        float av[RM], bv[RN];
#pragma unroll
        for (int i = 0; i < RM; i++) av[i] = a[i * TM * a_row + k * a_k];
#pragma unroll
        for (int j = 0; j < RN; j++) bv[j] = b[j * TN * b_row + k * b_k];
#pragma unroll
        for (int i = 0; i < RM; i++)
#pragma unroll
            for (int j = 0; j < RN; j++) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
    }
}

// ---- attention forward ----

// One block per (query block of BR rows, head h, batch b). Key blocks of BC keys pass
// through shared memory; each row keeps a running max m, sum l and output accumulator
// (online softmax), so no more than a BR x BC tile of scores exists:
//   s_j = scale * q_i.k_j,  m' = max(m, max_j s_j),  alpha = exp(m - m'),
//   l' = alpha*l + sum_j exp(s_j - m'),  acc' = alpha*acc + sum_j exp(s_j - m') v_j,
//   o_i = acc / l,  lse_i = m + log(l).
// A row's cells are spread over the TN threads of one ty; they combine their partial max
// and sum through shared memory in a fixed order, each ending with the same m and l.
template <int HEAD, int BR, int BC>
__global__ void __launch_bounds__(FWD_THREADS) attention_forward(attention_args a)
{
    using F = forward_tiles<HEAD, BR, BC>;
    constexpr int TN = F::TN, LD = F::LD, LS = F::LS;
    constexpr int RM = BR / TM, RN = BC / TN, RD = HEAD / TN; // rows, keys, dims a thread
    CU_DYNAMIC_SHARED(float, smem);
    float *Qs = smem, *Ks = Qs + BR * LD, *Vs = Ks + BC * LD; // (BR,LD) (BC,LD) (BC,LD)
    float *Ss = Vs + BC * LD;                                 // (BR,LS) probabilities
    float *part_max = Ss + BR * LS, *part_sum = part_max + BR * TN; // (BR,TN)
    int *key_ids = (int *)(part_sum + BR * TN);                     // (BC)
    const int tid = threadIdx.x, ty = tid / TN, tx = tid % TN;
    const int b = blockIdx.z, h = blockIdx.y, i0 = blockIdx.x * BR;
    const int kvh = h / (a.H / a.Hkv), shift = a.Tk - a.Tq;
    row_ids rows[RM];
#pragma unroll
    for (int i = 0; i < RM; i++) rows[i] = row_ids_of(a, b, i0 + ty + TM * i);

    load_rows<BR, HEAD, FWD_THREADS>(Qs, a.q, b, h, i0, a.Tq, a.D);
    // Keys any row of the block may see: the causal window of its last row.
    int last = imin(i0 + BR, a.Tq) - 1;
    int n_keys = a.causal ? imin(imax(last + shift + 1, 0), a.Tk) : a.Tk;

    float m[RM], l[RM], acc[RM][RD];
#pragma unroll
    for (int i = 0; i < RM; i++) {
        m[i] = NEG_INF;
        l[i] = 0.0f;
#pragma unroll
        for (int e = 0; e < RD; e++) acc[i][e] = 0.0f;
    }
    for (int j0 = 0; j0 < n_keys; j0 += BC) {
        __syncthreads(); // the previous block's readers of Ks, Vs, Ss and key_ids are done
        for (int c = tid; c < BC; c += FWD_THREADS) key_ids[c] = key_id(a, b, j0 + c);
        if (a.segments) { // uniform: every thread votes or none does
            __syncthreads(); // key_ids written
            if (!__syncthreads_or(sees_any<RM, RN, TN>(a, rows, key_ids, i0, j0, ty, tx)))
                continue; // all -inf: m, l and acc would not change
        }
        load_rows<BC, HEAD, FWD_THREADS>(Ks, a.k, b, kvh, j0, a.Tk, a.D);
        load_rows<BC, HEAD, FWD_THREADS>(Vs, a.v, b, kvh, j0, a.Tk, a.D);
        __syncthreads();

        float s[RM][RN] = {}; // q_i.k_j, then scaled with -inf where not attended
        product<RM, RN, TN>(s, Qs + ty * LD, LD, 1, Ks + tx * LD, LD, 1, a.D);
#pragma unroll
        for (int i = 0; i < RM; i++) {
            int r = ty + TM * i, row = i0 + r;
            float mx = NEG_INF;
#pragma unroll
            for (int j = 0; j < RN; j++) {
                int c = tx + TN * j;
                bool ok = attended(a, key_ids[c], rows[i], row, j0 + c);
                s[i][j] = ok ? a.scale * s[i][j] : NEG_INF;
                mx = fmaxf(mx, s[i][j]);
            }
            part_max[r * TN + tx] = mx;
        }
        __syncthreads();

        float alpha[RM];
#pragma unroll
        for (int i = 0; i < RM; i++) {
            int r = ty + TM * i;
            float mx = m[i];
            for (int t = 0; t < TN; t++) mx = fmaxf(mx, part_max[r * TN + t]);
            alpha[i] = m[i] == NEG_INF ? 0.0f : expf(m[i] - mx); // nothing accumulated yet: 0
            m[i] = mx;
            float sum = 0.0f;
#pragma unroll
            for (int j = 0; j < RN; j++) {
                float p = s[i][j] == NEG_INF ? 0.0f : expf(s[i][j] - mx); // s finite: mx too
                Ss[r * LS + tx + TN * j] = p;
                sum += p;
            }
            part_sum[r * TN + tx] = sum;
        }
        __syncthreads();

#pragma unroll
        for (int i = 0; i < RM; i++) {
            int r = ty + TM * i;
            float sum = 0.0f;
            for (int t = 0; t < TN; t++) sum += part_sum[r * TN + t];
            l[i] = l[i] * alpha[i] + sum;
#pragma unroll
            for (int e = 0; e < RD; e++) acc[i][e] *= alpha[i];
        }
        product<RM, RD, TN>(acc, Ss + ty * LS, LS, 1, Vs + tx, 1, LD, BC); // += P V
    }

#pragma unroll
    for (int i = 0; i < RM; i++) {
        int row = i0 + ty + TM * i;
        if (row >= a.Tq) continue;
        float inv = l[i] > 0.0f ? 1.0f / l[i] : 0.0f; // no key: zeros
        int64_t base = b * a.o.st[0] + h * a.o.st[1] + (int64_t)row * a.o.st[2];
#pragma unroll
        for (int e = 0; e < RD; e++) {
            int d = tx + TN * e;
            if (d < a.D) cu_store(a.o, base + (int64_t)d * a.o.st[3], acc[i][e] * inv);
        }
        if (tx == 0)
            cu_store(a.lse, b * a.lse.st[1] + h * a.lse.st[2] + (int64_t)row * a.lse.st[3],
                     m[i] == NEG_INF ? NEG_INF : m[i] + logf(l[i]));
    }
}

// ---- attention backward ----

// delta (B,H,Tq) = do_i.o_i, one thread per query row, summed over d in order (as the CPU).
__global__ void attention_delta(attention_args a, float *delta, int64_t rows)
{
    CU_FOR(n, rows)
    {
        int64_t i = n % a.Tq, h = n / a.Tq % a.H, b = n / ((int64_t)a.Tq * a.H);
        int64_t oo = b * a.o.st[0] + h * a.o.st[1] + i * a.o.st[2];
        int64_t go = b * a.dout.st[0] + h * a.dout.st[1] + i * a.dout.st[2];
        float s = 0.0f;
        for (int d = 0; d < a.D; d++)
            s += cu_load(a.dout, go + (int64_t)d * a.dout.st[3]) *
                 cu_load(a.o, oo + (int64_t)d * a.o.st[3]);
        delta[n] = s;
    }
}

// lse and delta of query rows [i0, i0+BR) of head h: -inf and 0 past Tq.
template <int BR, int NT>
__device__ __forceinline__ void load_row_stats(float *row_lse, float *row_delta,
                                               const attention_args &a, int b, int h, int i0)
{
    for (int r = threadIdx.x; r < BR; r += NT) {
        int i = i0 + r;
        bool ok = i < a.Tq;
        row_lse[r] = ok ? cu_load(a.lse, b * a.lse.st[1] + h * a.lse.st[2] +
                                             (int64_t)i * a.lse.st[3])
                        : NEG_INF;
        row_delta[r] = ok ? a.delta[((int64_t)b * a.H + h) * a.Tq + i] : 0.0f;
    }
}

// The thread's cells of the tile at (i0, j0): s = q_i.k_j and dp = do_i.v_j become
//   p = exp(scale s - lse_i),  ds = scale p (dp - delta_i),
// both 0 where the key is not attended (masks of the forward) or the row saw no key.
template <int RM, int RN, int TN>
__device__ __forceinline__ void score_gradients(const attention_args &a, float (&s)[RM][RN],
                                                float (&dp)[RM][RN], const float *row_lse,
                                                const float *row_delta, const row_ids (&rows)[RM],
                                                const int *key_ids, int i0, int j0, int ty,
                                                int tx)
{
#pragma unroll
    for (int i = 0; i < RM; i++) {
        int r = ty + TM * i, row = i0 + r;
        float lse = row_lse[r], delta = row_delta[r];
#pragma unroll
        for (int j = 0; j < RN; j++) {
            int c = tx + TN * j;
            bool ok = attended(a, key_ids[c], rows[i], row, j0 + c) && lse != NEG_INF;
            float p = ok ? expf(a.scale * s[i][j] - lse) : 0.0f;
            s[i][j] = p;
            dp[i][j] = ok ? a.scale * p * (dp[i][j] - delta) : 0.0f;
        }
    }
}

// dk and dv: one block per (key block of BC keys, kv head, batch). It keeps its K and V
// tiles, walks every query head sharing the kv head and every query block that can see
// its keys, and accumulates in registers (BC x HEAD each over the block):
//   dv_j = sum_i p_ij do_i,  dk_j = sum_i ds_ij q_i.
template <int HEAD, int BR, int BC>
__global__ void __launch_bounds__(BWD_THREADS) attention_backward_keys(attention_args a)
{
    using G = backward_tiles<HEAD, BR, BC>;
    constexpr int TN = G::TN, LD = G::LD, LS = G::LS;
    constexpr int RM = BR / TM, RN = BC / TN; // score cells a thread: rows, keys
    constexpr int RK = BC / TM, RD = HEAD / TN; // dk/dv cells a thread: keys, dims
    CU_DYNAMIC_SHARED(float, smem);
    float *Ks = smem, *Vs = Ks + BC * LD, *Qs = Vs + BC * LD, *dOs = Qs + BR * LD;
    float *Ps = dOs + BR * LD, *dSs = Ps + BR * LS;               // (BR,LS) each
    float *row_lse = dSs + BR * LS, *row_delta = row_lse + BR; // (BR) each
    int *key_ids = (int *)(row_delta + BR);                    // (BC)
    const int tid = threadIdx.x, ty = tid / TN, tx = tid % TN;
    const int b = blockIdx.z, kvh = blockIdx.y, j0 = blockIdx.x * BC;
    const int group = a.H / a.Hkv;

    load_rows<BC, HEAD, BWD_THREADS>(Ks, a.k, b, kvh, j0, a.Tk, a.D);
    load_rows<BC, HEAD, BWD_THREADS>(Vs, a.v, b, kvh, j0, a.Tk, a.D);
    for (int c = tid; c < BC; c += BWD_THREADS) key_ids[c] = key_id(a, b, j0 + c);
    __syncthreads(); // key_ids written: the votes below read them before their barrier
    // The first query row that sees key j0 under the causal mask: i >= j0 - (Tk - Tq).
    int first = a.causal ? imax(j0 - (a.Tk - a.Tq), 0) : 0;

    float dk[RK][RD] = {}, dv[RK][RD] = {};
    for (int h = kvh * group; h < (kvh + 1) * group; h++)
        for (int i0 = first / BR * BR; i0 < a.Tq; i0 += BR) {
            row_ids rows[RM];
#pragma unroll
            for (int i = 0; i < RM; i++) rows[i] = row_ids_of(a, b, i0 + ty + TM * i);
            // The previous tile's readers are done; under a segment layout the barrier is a
            // vote that skips the query blocks no row of which sees a key of the tile.
            if (!a.segments)
                __syncthreads();
            else if (!__syncthreads_or(sees_any<RM, RN, TN>(a, rows, key_ids, i0, j0, ty, tx)))
                continue; // p = ds = 0: dk and dv would not change
            load_rows<BR, HEAD, BWD_THREADS>(Qs, a.q, b, h, i0, a.Tq, a.D);
            load_rows<BR, HEAD, BWD_THREADS>(dOs, a.dout, b, h, i0, a.Tq, a.D);
            load_row_stats<BR, BWD_THREADS>(row_lse, row_delta, a, b, h, i0);
            __syncthreads();

            float s[RM][RN] = {}, dp[RM][RN] = {};
            product<RM, RN, TN>(s, Qs + ty * LD, LD, 1, Ks + tx * LD, LD, 1, a.D);
            product<RM, RN, TN>(dp, dOs + ty * LD, LD, 1, Vs + tx * LD, LD, 1, a.D);
            score_gradients<RM, RN, TN>(a, s, dp, row_lse, row_delta, rows, key_ids, i0, j0, ty,
                                        tx);
#pragma unroll
            for (int i = 0; i < RM; i++)
#pragma unroll
                for (int j = 0; j < RN; j++) {
                    int cell = (ty + TM * i) * LS + tx + TN * j;
                    Ps[cell] = s[i][j];
                    dSs[cell] = dp[i][j];
                }
            __syncthreads();
            // dv += P^T dO, dk += dS^T Q: rows are keys, the sum runs over the BR queries.
            product<RK, RD, TN>(dv, Ps + ty, 1, LS, dOs + tx, 1, LD, BR);
            product<RK, RD, TN>(dk, dSs + ty, 1, LS, Qs + tx, 1, LD, BR);
        }

#pragma unroll
    for (int i = 0; i < RK; i++) {
        int j = j0 + ty + TM * i;
        if (j >= a.Tk) continue;
        int64_t kb = b * a.dk.st[0] + kvh * a.dk.st[1] + (int64_t)j * a.dk.st[2];
        int64_t vb = b * a.dv.st[0] + kvh * a.dv.st[1] + (int64_t)j * a.dv.st[2];
#pragma unroll
        for (int e = 0; e < RD; e++) {
            int d = tx + TN * e;
            if (d >= a.D) continue;
            cu_store(a.dk, kb + (int64_t)d * a.dk.st[3], dk[i][e]);
            cu_store(a.dv, vb + (int64_t)d * a.dv.st[3], dv[i][e]);
        }
    }
}

// dq: one block per (query block of BR rows, head, batch); it walks the key blocks its
// rows can see and accumulates dq_i = sum_j ds_ij k_j in registers (BR x HEAD).
template <int HEAD, int BR, int BC>
__global__ void __launch_bounds__(BWD_THREADS) attention_backward_queries(attention_args a)
{
    using G = backward_tiles<HEAD, BR, BC>;
    constexpr int TN = G::TN, LD = G::LD, LS = G::LS;
    constexpr int RM = BR / TM, RN = BC / TN, RD = HEAD / TN;
    CU_DYNAMIC_SHARED(float, smem);
    float *Qs = smem, *dOs = Qs + BR * LD, *Ks = dOs + BR * LD, *Vs = Ks + BC * LD;
    float *dSs = Vs + BC * LD;                                 // (BR,LS)
    float *row_lse = dSs + BR * LS, *row_delta = row_lse + BR; // (BR) each
    int *key_ids = (int *)(row_delta + BR);                    // (BC)
    const int tid = threadIdx.x, ty = tid / TN, tx = tid % TN;
    const int b = blockIdx.z, h = blockIdx.y, i0 = blockIdx.x * BR;
    const int kvh = h / (a.H / a.Hkv);
    row_ids rows[RM];
#pragma unroll
    for (int i = 0; i < RM; i++) rows[i] = row_ids_of(a, b, i0 + ty + TM * i);

    load_rows<BR, HEAD, BWD_THREADS>(Qs, a.q, b, h, i0, a.Tq, a.D);
    load_rows<BR, HEAD, BWD_THREADS>(dOs, a.dout, b, h, i0, a.Tq, a.D);
    load_row_stats<BR, BWD_THREADS>(row_lse, row_delta, a, b, h, i0);
    int last = imin(i0 + BR, a.Tq) - 1;
    int n_keys = a.causal ? imin(imax(last + a.Tk - a.Tq + 1, 0), a.Tk) : a.Tk;

    float dq[RM][RD] = {};
    for (int j0 = 0; j0 < n_keys; j0 += BC) {
        __syncthreads(); // the previous tile's readers are done
        for (int c = tid; c < BC; c += BWD_THREADS) key_ids[c] = key_id(a, b, j0 + c);
        if (a.segments) { // uniform, as in the forward
            __syncthreads(); // key_ids written
            if (!__syncthreads_or(sees_any<RM, RN, TN>(a, rows, key_ids, i0, j0, ty, tx)))
                continue; // ds = 0: dq would not change
        }
        load_rows<BC, HEAD, BWD_THREADS>(Ks, a.k, b, kvh, j0, a.Tk, a.D);
        load_rows<BC, HEAD, BWD_THREADS>(Vs, a.v, b, kvh, j0, a.Tk, a.D);
        __syncthreads();

        float s[RM][RN] = {}, dp[RM][RN] = {};
        product<RM, RN, TN>(s, Qs + ty * LD, LD, 1, Ks + tx * LD, LD, 1, a.D);
        product<RM, RN, TN>(dp, dOs + ty * LD, LD, 1, Vs + tx * LD, LD, 1, a.D);
        score_gradients<RM, RN, TN>(a, s, dp, row_lse, row_delta, rows, key_ids, i0, j0, ty, tx);
#pragma unroll
        for (int i = 0; i < RM; i++)
#pragma unroll
            for (int j = 0; j < RN; j++) dSs[(ty + TM * i) * LS + tx + TN * j] = dp[i][j];
        __syncthreads();
        product<RM, RD, TN>(dq, dSs + ty * LS, LS, 1, Ks + tx, 1, LD, BC); // += dS K
    }

#pragma unroll
    for (int i = 0; i < RM; i++) {
        int row = i0 + ty + TM * i;
        if (row >= a.Tq) continue;
        int64_t base = b * a.dq.st[0] + h * a.dq.st[1] + (int64_t)row * a.dq.st[2];
#pragma unroll
        for (int e = 0; e < RD; e++) {
            int d = tx + TN * e;
            if (d < a.D) cu_store(a.dq, base + (int64_t)d * a.dq.st[3], dq[i][e]);
        }
    }
}

// ---- launches ----

// Shared memory for one block of the attention kernels: `block`, the most the device lets one
// block have (the opt-in limit, or on ROCm, which reports that attribute as 0 or refuses it,
// the per-block limit: 64 KiB on gfx90a); `pair`, what lets two blocks share a
// multiprocessor (half of its shared memory, less the 1 KiB NVIDIA keeps per block), so one
// block's loads overlap the other's barriers. Tiles are chosen to fit `pair` when the list
// has one that does, else `block`.
struct shared_budget {
    size_t block, pair;
};

aspo_status shared_memory_budget(shared_budget *m)
{
    int dev = 0, optin = 0, per_block = 0, per_sm = 0;
    aspo_status s = cu_check(cudaGetDevice(&dev), "cudaGetDevice");
    if (!s)
        s = cu_check(cudaDeviceGetAttribute(&per_block, cudaDevAttrMaxSharedMemoryPerBlock, dev),
                     "cudaDeviceGetAttribute (shared memory per block)");
    if (!s)
        s = cu_check(cudaDeviceGetAttribute(&per_sm, cudaDevAttrMaxSharedMemoryPerMultiprocessor,
                                            dev),
                     "cudaDeviceGetAttribute (shared memory per multiprocessor)");
    if (s) return s;
    if (cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) != cudaSuccess) {
        (void)cudaGetLastError(); /* refused (ROCm): the per-block limit is the limit */
        optin = 0;
    }
    m->block = (size_t)(optin > per_block ? optin : per_block);
    size_t half = (size_t)per_sm / 2;
    m->pair = half > 1024 ? half - 1024 : 0;
    if (m->pair > m->block) m->pair = m->block;
    return ASPO_OK;
}

// Above 48 KiB a kernel must be allowed its dynamic shared memory before the launch.
template <typename Kernel> aspo_status allow_shared(Kernel kernel, size_t bytes, const char *op)
{
    cudaError_t r = cudaFuncSetAttribute(reinterpret_cast<const void *>(kernel),
                                         cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes);
    return cu_check(r, op);
}

aspo_status no_room(const char *op, int D, size_t bytes, size_t limit)
{
    return aspo_fail(ASPO_ERR_UNSUPPORTED,
                     "%s on backend cuda: head size %d needs %zu bytes of shared memory per "
                     "block at the smallest tiles, the device allows %zu",
                     op, D, bytes, limit);
}

unsigned blocks_of(int n, int block) { return (unsigned)(((int64_t)n + block - 1) / block); }

// Launches the first tile size in the list (largest first) whose shared memory fits limit;
// *launched is false when none does.
template <int HEAD, typename T, typename... Smaller>
aspo_status forward_launch(const attention_args &a, int B, size_t limit, bool *launched)
{
    constexpr size_t bytes = forward_tiles<HEAD, T::BR, T::BC>::bytes;
    if (bytes > limit) {
        if constexpr (sizeof...(Smaller) > 0)
            return forward_launch<HEAD, Smaller...>(a, B, limit, launched);
        *launched = false;
        return ASPO_OK;
    }
    *launched = true;
    aspo_status s = allow_shared(attention_forward<HEAD, T::BR, T::BC>, bytes,
                                 "cudaFuncSetAttribute (attention)");
    if (s) return s;
    dim3 grid(blocks_of(a.Tq, T::BR), (unsigned)a.H, (unsigned)B);
    CU_LAUNCH(grid, FWD_THREADS, bytes, attention_forward<HEAD, T::BR, T::BC>)(a);
    return cu_check_launch("attention");
}

template <int HEAD, typename T, typename... Smaller>
aspo_status backward_launch(const attention_args &a, int B, size_t limit, bool *launched)
{
    using G = backward_tiles<HEAD, T::BR, T::BC>;
    if (G::key_bytes > limit) { // the key pass needs more than the query pass
        if constexpr (sizeof...(Smaller) > 0)
            return backward_launch<HEAD, Smaller...>(a, B, limit, launched);
        *launched = false;
        return ASPO_OK;
    }
    *launched = true;
    aspo_status s = ASPO_OK;
    if (a.Tk > 0) { // dk, dv are written even when Tq == 0 (as zeros)
        if ((s = allow_shared(attention_backward_keys<HEAD, T::BR, T::BC>, G::key_bytes,
                              "cudaFuncSetAttribute (attention backward)")))
            return s;
        dim3 grid(blocks_of(a.Tk, T::BC), (unsigned)a.Hkv, (unsigned)B);
        CU_LAUNCH(grid, BWD_THREADS, G::key_bytes, attention_backward_keys<HEAD, T::BR, T::BC>)(a);
        if ((s = cu_check_launch("attention backward (dk, dv)"))) return s;
    }
    if (a.Tq > 0) {
        if ((s = allow_shared(attention_backward_queries<HEAD, T::BR, T::BC>, G::query_bytes,
                              "cudaFuncSetAttribute (attention backward)")))
            return s;
        dim3 grid(blocks_of(a.Tq, T::BR), (unsigned)a.H, (unsigned)B);
        CU_LAUNCH(grid, BWD_THREADS, G::query_bytes,
                  attention_backward_queries<HEAD, T::BR, T::BC>)(a);
        s = cu_check_launch("attention backward (dq)");
    }
    return s;
}

// The tile list of a head size: the first that fits two blocks per multiprocessor, else the
// first that fits one block, else an error naming the smallest tiles' need.
template <int HEAD, typename... Tiles>
aspo_status forward_tiles_of(const attention_args &a, int B, const shared_budget &m)
{
    bool launched = false;
    aspo_status s = forward_launch<HEAD, Tiles...>(a, B, m.pair, &launched);
    if (!s && !launched) s = forward_launch<HEAD, Tiles...>(a, B, m.block, &launched);
    if (!s && !launched)
        s = no_room("attention", a.D, std::min({forward_tiles<HEAD, Tiles::BR, Tiles::BC>::bytes...}),
                    m.block);
    return s;
}

template <int HEAD, typename... Tiles>
aspo_status backward_tiles_of(const attention_args &a, int B, const shared_budget &m)
{
    bool launched = false;
    aspo_status s = backward_launch<HEAD, Tiles...>(a, B, m.pair, &launched);
    if (!s && !launched) s = backward_launch<HEAD, Tiles...>(a, B, m.block, &launched);
    if (!s && !launched)
        s = no_room("attention backward", a.D,
                    std::min({backward_tiles<HEAD, Tiles::BR, Tiles::BC>::key_bytes...}), m.block);
    return s;
}

// Tile sizes per head size, largest first. The first fits sm_89's 99 KiB per block, or
// for head sizes 128 and 256 A100's 163 KiB or H100's 227 KiB (the forward's registers
// bound BR to 32 at HEAD 256); the last fits the 64 KiB of AMD GPUs (HIP), except the
// backward at HEAD 256, which needs 67 KiB. At head size 128 the forward's 64 x 64 tiles
// (117 KiB) fit one block per H100 multiprocessor, 64 x 32 (77 KiB) two.
aspo_status forward(const attention_args &a, int B)
{
    shared_budget m;
    aspo_status s = shared_memory_budget(&m);
    if (s) return s;
    if (a.D <= 32) return forward_tiles_of<32, tile<64, 64>>(a, B, m);
    if (a.D <= 64) return forward_tiles_of<64, tile<64, 64>, tile<64, 32>>(a, B, m);
    if (a.D <= 128) return forward_tiles_of<128, tile<64, 64>, tile<64, 32>, tile<32, 32>>(a, B, m);
    return forward_tiles_of<256, tile<32, 64>, tile<32, 32>, tile<16, 32>, tile<16, 16>>(a, B, m);
}

aspo_status backward(const attention_args &a, int B)
{
    shared_budget m;
    aspo_status s = shared_memory_budget(&m);
    if (s) return s;
    if (a.D <= 32) return backward_tiles_of<32, tile<64, 64>, tile<32, 64>>(a, B, m);
    if (a.D <= 64) return backward_tiles_of<64, tile<32, 64>, tile<32, 32>>(a, B, m);
    if (a.D <= 128)
        return backward_tiles_of<128, tile<32, 64>, tile<32, 32>, tile<16, 32>>(a, B, m);
    return backward_tiles_of<256, tile<32, 32>, tile<16, 16>>(a, B, m);
}

constexpr int64_t MAX_HEAD = 256;
constexpr int64_t MAX_GRID_YZ = 65535; // heads and batch index the grid's y and z

// Shapes the kernels cannot take, as an error naming them; q (B,H,Tq,D) (Hkv <= H).
aspo_status attention_fits(const char *op, const tensor *q)
{
    int64_t B = q->shape[0], H = q->shape[1], D = q->shape[3];
    if (D > MAX_HEAD)
        return aspo_fail(ASPO_ERR_UNSUPPORTED, "%s on backend cuda: head size %" PRId64
                         " is above the kernels' largest, %" PRId64, op, D, MAX_HEAD);
    if (B > MAX_GRID_YZ || H > MAX_GRID_YZ)
        return aspo_fail(ASPO_ERR_UNSUPPORTED, "%s on backend cuda: batch %" PRId64 " or %" PRId64
                         " heads exceed the launch grid's %" PRId64, op, B, H, MAX_GRID_YZ);
    return ASPO_OK;
}

// Views and sizes of an attention call; the mask (or segment layout, p.i[1]) is input
// mask_input when present.
attention_args args_of(const op_call *c, int mask_input)
{
    const tensor *q = c->in[0], *k = c->in[1];
    bool masked = c->n_in > mask_input;
    attention_args a = {};
    a.q = cu_view_of(q, NULL);
    a.k = cu_view_of(k, NULL);
    a.v = cu_view_of(c->in[2], NULL);
    a.mask = cu_view_of(masked ? c->in[mask_input] : q, NULL);
    a.H = (int)q->shape[1];
    a.Hkv = (int)k->shape[1];
    a.Tq = (int)q->shape[2];
    a.Tk = (int)k->shape[2];
    a.D = (int)q->shape[3];
    a.segments = masked && c->p.i[1] != 0;
    a.causal = c->p.i[0] != 0 || a.segments; // a layout's rule has j <= i whatever i[0] says
    a.has_mask = masked && !a.segments;
    a.scale = c->p.f[0];
    return a;
}

} // namespace

extern "C" {

// in: x (B,H,T,D), cos, sin (B|1,T,D); i[0]: 1 = transpose (backward); out (B,H,T,D).
CU_KERNEL(cu_rope)
{
    const tensor *x = c->in[0];
    int64_t pairs = tensor_numel(x) / 2;
    if (pairs == 0) return ASPO_OK;
    CU_LAUNCH(cu_blocks(pairs, ROPE_THREADS), ROPE_THREADS, 0, rope_kernel)(
        cu_view_of(x, NULL), cu_view_of(c->in[1], NULL), cu_view_of(c->in[2], NULL),
        cu_view_of(c->out[0], NULL), c->p.i[0] != 0);
    return cu_check_launch("rope");
}

// in: q (B,H,Tq,D), k, v (B,Hkv,Tk,D) [, key_mask (B,Tk) or segment layout (B,2,T)];
// i[0]: causal; i[1]: 1 = the layout; f[0]: scale; out: o (B,H,Tq,D), lse (B,H,Tq).
CU_KERNEL(cu_attention)
{
    const tensor *q = c->in[0];
    if (q->shape[0] * q->shape[1] * q->shape[2] == 0) return ASPO_OK; // o and lse are empty
    aspo_status s = attention_fits("attention", q);
    if (s) return s;
    attention_args a = args_of(c, 3);
    a.o = cu_view_of(c->out[0], NULL);
    a.lse = cu_view_of(c->out[1], NULL);
    a.dout = a.dq = a.dk = a.dv = a.o; // unused
    return forward(a, (int)q->shape[0]);
}

// in: q, k, v, o, lse, do [, key_mask or layout]; params as the forward's; out: dq, dk, dv
// (overwritten).
CU_KERNEL(cu_attention_backward)
{
    const tensor *q = c->in[0];
    int64_t B = q->shape[0], H = q->shape[1], Tq = q->shape[2], D = q->shape[3];
    if (D == 0 || B == 0 || H == 0) return ASPO_OK; // every output is empty
    aspo_status s = attention_fits("attention backward", q);
    if (s) return s;
    attention_args a = args_of(c, 6);
    a.o = cu_view_of(c->in[3], NULL);
    a.lse = cu_view_of(c->in[4], NULL);
    a.dout = cu_view_of(c->in[5], NULL);
    a.dq = cu_view_of(c->out[0], NULL);
    a.dk = cu_view_of(c->out[1], NULL);
    a.dv = cu_view_of(c->out[2], NULL);
    int64_t rows = B * H * Tq;
    if (rows > 0) {
        // do_i.o_i per row, read by both passes: scratch, stream-ordered.
        float *delta = (float *)cu_scratch(sizeof(float) * (size_t)rows);
        if (!delta)
            return aspo_fail(ASPO_ERR_OOM, "attention backward on backend cuda: no device "
                             "memory for %" PRId64 " row sums", rows);
        CU_LAUNCH(cu_blocks(rows, BWD_THREADS), BWD_THREADS, 0, attention_delta)(a, delta,
                                                                                       rows);
        if ((s = cu_check_launch("attention backward (do.o)"))) return s;
        a.delta = delta;
    }
    return backward(a, (int)B);
}

} // extern "C"
