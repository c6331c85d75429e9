#version 450
// OP_MATMUL: o (b0,b1,M,N) = a (b0,b1,M,K) @ b (b0,b1,K,N), each operand any float dtype and
// any strides (transposed views, broadcast batch dims with stride 0), f32 accumulation.
// With accumulate, o's old value is added before the single rounding (GEMM beta = 1); each
// output element is read and written by the one invocation that owns it (no split-K).
//
// One workgroup computes a BM x BN output tile of one batch matrix (gl_WorkGroupID.z),
// stepping through K in BK-deep slabs staged in shared memory. Each invocation owns a
// TM x TN micro-tile whose rows and columns are strided by the thread grid (row
// ty + i*BM/TM, column tx + j*BN/TN), so neighbouring invocations read neighbouring shared
// words and write neighbouring output columns. Out-of-range elements load as 0.
//
// The dtypes and load orders are specialization constants (VARIANT), so the driver compiles
// one straight-line load per operand instead of a dtype switch per element.
#include "common.glsl"

layout(constant_id = 0) const uint BM = 64;
layout(constant_id = 1) const uint BN = 64;
layout(constant_id = 2) const uint BK = 16;
layout(constant_id = 3) const uint TM = 4;
layout(constant_id = 4) const uint TN = 4;
layout(local_size_x_id = 5) in; // (BM/TM) * (BN/TN), set by the host
// bits 0-1 a's dtype, 2-3 b's, 4-5 o's (DT_F32/BF16/F16); bit 6: a's K stride is 1 (load
// K-fastest, else M-fastest); bit 7: b's N stride is 1 (load N-fastest, else K-fastest)
layout(constant_id = 6) const uint VARIANT = 0;

const uint A_DT = VARIANT & 3u, B_DT = (VARIANT >> 2) & 3u, O_DT = (VARIANT >> 4) & 3u;
const bool A_K_UNIT = (VARIANT & 64u) != 0u, B_N_UNIT = (VARIANT & 128u) != 0u;
const uint THREADS = (BM / TM) * (BN / TN);

layout(buffer_reference, std430) readonly buffer Params {
    View a;
    View b;
    View o;
    int accumulate; // 1: o = o + a @ b
};

float load(uint dt, uint64_t addr, int off)
{
    if (dt == uint(DT_F32)) return F32Buf(addr).v[off];
    uint h = uint(U16Buf(addr).v[off]);
    return dt == uint(DT_BF16) ? bf16_to_f32(h) : unpackHalf2x16(h).x;
}

// +1 word of padding per row: K-fastest loads write down a column of a slab, and an
// unpadded power-of-two row would put the whole column in one bank.
shared float As[BK][BM + 1];
shared float Bs[BK][BN + 1];

void main()
{
    Params p = Params(push.params);
    int M = p.o.ne.z, N = p.o.ne.w, K = p.a.ne.w;
    int z = int(gl_WorkGroupID.z), b0 = z / p.o.ne.y, b1 = z % p.o.ne.y;
    int a_base = b0 * p.a.st.x + b1 * p.a.st.y, b_base = b0 * p.b.st.x + b1 * p.b.st.y;
    int o_base = b0 * p.o.st.x + b1 * p.o.st.y;
    int row0 = int(gl_WorkGroupID.y * BM), col0 = int(gl_WorkGroupID.x * BN);
    uint tid = gl_LocalInvocationID.x;
    uint tx = tid % (BN / TN), ty = tid / (BN / TN);

    float acc[TM][TN];
    for (uint i = 0; i < TM; i++)
        for (uint j = 0; j < TN; j++) acc[i][j] = 0.0;

    for (int k0 = 0; k0 < K; k0 += int(BK)) {
        // Stage a[row0.., k0..] and b[k0.., col0..], reading along each one's unit stride.
        for (uint e = tid; e < BM * BK; e += THREADS) {
            uint m = A_K_UNIT ? e / BK : e % BM, k = A_K_UNIT ? e % BK : e / BM;
            int gm = row0 + int(m), gk = k0 + int(k);
            As[k][m] = gm < M && gk < K ? load(A_DT, p.a.addr, a_base + gm * p.a.st.z + gk * p.a.st.w) : 0.0;
        }
        for (uint e = tid; e < BK * BN; e += THREADS) {
            uint n = B_N_UNIT ? e % BN : e / BK, k = B_N_UNIT ? e / BN : e % BK;
            int gk = k0 + int(k), gn = col0 + int(n);
            Bs[k][n] = gk < K && gn < N ? load(B_DT, p.b.addr, b_base + gk * p.b.st.z + gn * p.b.st.w) : 0.0;
        }
        barrier();
        for (uint k = 0; k < BK; k++) {
            float av[TM], bv[TN];
            for (uint i = 0; i < TM; i++) av[i] = As[k][ty + i * (BM / TM)];
            for (uint j = 0; j < TN; j++) bv[j] = Bs[k][tx + j * (BN / TN)];
            for (uint i = 0; i < TM; i++)
                for (uint j = 0; j < TN; j++) acc[i][j] += av[i] * bv[j];
        }
        barrier();
    }

    View o = p.o;
    o.dt = int(O_DT);
    for (uint i = 0; i < TM; i++) {
        int m = row0 + int(ty + i * (BM / TM));
        if (m >= M) break;
        for (uint j = 0; j < TN; j++) {
            int n = col0 + int(tx + j * (BN / TN));
            if (n >= N) continue;
            int off = o_base + m * o.st.z + n * o.st.w;
            view_store(o, off, p.accumulate != 0 ? view_load(o, off) + acc[i][j] : acc[i][j]);
        }
    }
}
