// The project's own GEMM: o = a @ b (or o += a @ b, accumulate: GEMM beta = 1) for every
// batch matrix, each operand of any float dtype and any strides (transposed, sliced,
// broadcast with stride 0, or neither row- nor column-major), f32 accumulation in a fixed
// order (deterministic: no atomics, no split K). cuda_matmul.cu sends it what cuBLAS cannot
// take (mixed dtypes it lacks, general strides, dims past int) and, in a build without BLAS
// (ASPO_NO_BLAS: HIP without hipBLAS), every matmul. The decomposition is
// shaders/matmul.comp's (the Vulkan kernel, checked against the CPU on lavapipe): one block
// per BM x BN output tile of one batch matrix, through K in BK-deep slabs staged in shared
// memory; each thread owns a TM x TN micro-tile whose rows and columns are strided by the
// thread grid (row ty + i*BM/TM, column tx + j*BN/TN), so a warp reads neighbouring shared
// words and writes neighbouring output columns. The next slab is loaded into registers
// while the current one is multiplied. With accumulate, the thread that stores an output
// element first reads its old value into the f32 sum, so a half o is rounded once, and
// every element is read and written by one thread of one launch.
//
// Verified: compiles -Wall clean for sm_80, sm_89 and sm_90 (CUDA 13, no spills: 128
// registers for the large tile, 66 for the small); this file's source, built as host C++
// (one std::thread per CUDA thread, a barrier for __syncthreads, ASan and UBSan on),
// matched a double-precision reference for every dtype triple and layout (row-, column-major,
// sliced, general strides, strided output, broadcast and folded batches, K = 0, both tile
// sizes, partial tiles) with nothing written outside the output. Accumulate's epilogue
// (no new spills on sm_90, ptxas -v) matched the CPU on the simt backend (the matmul_into
// op cases under ASPO_CUDA_GEMM=own). Not verified: it has never
// run on a GPU (this machine has none), and its speed is unmeasured. On a GPU with cuBLAS,
// ASPO_CUDA_GEMM=own tests/ops/test_ops --backend cuda puts every matmul case through it.
#include <initializer_list>

#include "cuda_common.cuh"
#include "cuda_gemm.h"

namespace {

// An element of dtype DT as f32; the dtype is a template parameter so each operand's load
// is one straight-line instruction sequence, not a switch per element.
template <int DT>
__device__ __forceinline__ float load_f32(const char *p, int64_t off)
{
    if (DT == DT_F32) return ((const float *)p)[off];
    uint16_t h = ((const uint16_t *)p)[off];
    return DT == DT_BF16 ? cu_bf16_to_f32(h) : cu_f16_to_f32(h);
}

// o's old value for accumulate; o's dtype is a runtime argument, read once per element.
__device__ __forceinline__ float load_any_f32(const char *p, int dt, int64_t off)
{
    if (dt == DT_F32) return load_f32<DT_F32>(p, off);
    return dt == DT_BF16 ? load_f32<DT_BF16>(p, off) : load_f32<DT_F16>(p, off);
}

__device__ __forceinline__ void store_f32(char *p, int dt, int64_t off, float x)
{
    if (dt == DT_F32) ((float *)p)[off] = x;
    else if (dt == DT_BF16) ((uint16_t *)p)[off] = cu_f32_to_bf16(x);
    else ((uint16_t *)p)[off] = cu_f32_to_f16(x);
}

// Kernel arguments (passed by value). Strides in elements.
struct gemm_args {
    const char *a, *b;
    char *o;
    int32_t o_dt;
    bool accumulate;         // o += a @ b: the old o added in the epilogue
    bool a_k_fast, b_n_fast; // load order of the slabs: along each operand's unit stride
    int64_t M, N, K;
    int64_t a_rs, a_cs, b_rs, b_cs, o_rs, o_cs;
    int64_t a_bs0, a_bs1, b_bs0, b_bs1, o_bs0, o_bs1;
    int64_t nb1;     // batch extent of dim 1: batch index z = b0 * nb1 + b1
    int64_t z0;      // batch index of blockIdx.z == 0 in this launch
    int64_t tiles_n; // column tiles: blockIdx.x = tile_row * tiles_n + tile_col
};

// o tile (BM,BN) of batch z = a (BM,K) @ b (K,BN), THREADS = (BM/TM)*(BN/TN) threads.
// Two blocks per SM at least (at most 128 registers a thread): with one, nothing would run
// while a block waits at its barriers.
template <int BM, int BN, int BK, int TM, int TN, int A_DT, int B_DT>
__global__ void __launch_bounds__((BM / TM) * (BN / TN), 2) gemm_kernel(gemm_args g)
{
    constexpr int THREADS = (BM / TM) * (BN / TN);
    constexpr int A_LOADS = BM * BK / THREADS, B_LOADS = BK * BN / THREADS;
    static_assert(BM % TM == 0 && BN % TN == 0, "the thread grid tiles the output tile");
    static_assert(BM * BK % THREADS == 0 && BK * BN % THREADS == 0,
                  "every thread stages the same number of slab elements");
    // +1 word per row: K-fastest staging writes down a column of a slab, and an unpadded
    // power-of-two row would put the whole column in one bank.
    CU_SHARED(float, As, [BK][BM + 1]);
    CU_SHARED(float, Bs, [BK][BN + 1]);

    const int tid = (int)threadIdx.x;
    const int tx = tid % (BN / TN), ty = tid / (BN / TN);
    const int64_t row0 = (int64_t)blockIdx.x / g.tiles_n * BM;
    const int64_t col0 = (int64_t)blockIdx.x % g.tiles_n * BN;
    const int64_t z = g.z0 + blockIdx.z, b0 = z / g.nb1, b1 = z % g.nb1;
    const int64_t a_base = b0 * g.a_bs0 + b1 * g.a_bs1, b_base = b0 * g.b_bs0 + b1 * g.b_bs1;
    const int64_t o_base = b0 * g.o_bs0 + b1 * g.o_bs1;

    // Slab element e of a: (m, k) walking k fastest when a's K stride is 1, else m fastest,
    // so neighbouring threads read neighbouring addresses. Likewise b with n and k.
    float ra[A_LOADS], rb[B_LOADS];
    auto load_slab = [&](int64_t k0) {
#pragma unroll
        for (int l = 0; l < A_LOADS; l++) {
            int e = tid + l * THREADS;
            int m = g.a_k_fast ? e / BK : e % BM, k = g.a_k_fast ? e % BK : e / BM;
            int64_t gm = row0 + m, gk = k0 + k;
            ra[l] = gm < g.M && gk < g.K ? load_f32<A_DT>(g.a, a_base + gm * g.a_rs + gk * g.a_cs)
                                         : 0.0f;
        }
#pragma unroll
        for (int l = 0; l < B_LOADS; l++) {
            int e = tid + l * THREADS;
            int n = g.b_n_fast ? e % BN : e / BK, k = g.b_n_fast ? e / BN : e % BK;
            int64_t gk = k0 + k, gn = col0 + n;
            rb[l] = gk < g.K && gn < g.N ? load_f32<B_DT>(g.b, b_base + gk * g.b_rs + gn * g.b_cs)
                                         : 0.0f;
        }
    };
    auto store_slab = [&]() {
#pragma unroll
        for (int l = 0; l < A_LOADS; l++) {
            int e = tid + l * THREADS;
            As[g.a_k_fast ? e % BK : e / BM][g.a_k_fast ? e / BK : e % BM] = ra[l];
        }
#pragma unroll
        for (int l = 0; l < B_LOADS; l++) {
            int e = tid + l * THREADS;
            Bs[g.b_n_fast ? e / BN : e % BK][g.b_n_fast ? e % BN : e / BK] = rb[l];
        }
    };

    float acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; i++)
#pragma unroll
        for (int j = 0; j < TN; j++) acc[i][j] = 0.0f;

    load_slab(0);
    for (int64_t k0 = 0; k0 < g.K; k0 += BK) {
        store_slab();
        __syncthreads();
        if (k0 + BK < g.K) load_slab(k0 + BK); // in flight while this slab is multiplied
#pragma unroll
        for (int k = 0; k < BK; k++) {
            float av[TM], bv[TN];
#pragma unroll
            for (int i = 0; i < TM; i++) av[i] = As[k][ty + i * (BM / TM)];
#pragma unroll
            for (int j = 0; j < TN; j++) bv[j] = Bs[k][tx + j * (BN / TN)];
#pragma unroll
            for (int i = 0; i < TM; i++)
#pragma unroll
                for (int j = 0; j < TN; j++) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
        }
        __syncthreads(); // every thread is done with the slab before the next overwrites it
    }

#pragma unroll
    for (int i = 0; i < TM; i++) {
        int64_t m = row0 + ty + i * (BM / TM);
        if (m >= g.M) break;
#pragma unroll
        for (int j = 0; j < TN; j++) {
            int64_t n = col0 + tx + j * (BN / TN);
            if (n >= g.N) continue;
            int64_t at = o_base + m * g.o_rs + n * g.o_cs;
            float sum = g.accumulate ? load_any_f32(g.o, g.o_dt, at) + acc[i][j] : acc[i][j];
            store_f32(g.o, g.o_dt, at, sum);
        }
    }
}

// Tile configurations: BM x BN output per block through BK-deep slabs, TM x TN per thread,
// 256 threads. 128 x 128 by 8 with 8 x 8 per thread (8.1 KiB of slabs; 64 FMAs per 16
// shared reads) for products with enough such tiles to fill the SMs: at BK = 16 its
// prefetch registers pushed the kernel past the 128 that two blocks per SM allow and it
// spilled. 64 x 64 by 16 with 4 x 4 (8.3 KiB) for small or thin products, where large tiles
// would leave SMs idle and compute mostly padding.
constexpr int LARGE_BM = 128, LARGE_BN = 128, LARGE_BK = 8, LARGE_TM = 8, LARGE_TN = 8;
constexpr int SMALL_BM = 64, SMALL_BN = 64, SMALL_BK = 16, SMALL_TM = 4, SMALL_TN = 4;
constexpr int THREADS = 256;

// Launches one tile configuration, instantiated for a's and b's dtypes.
template <int BM, int BN, int BK, int TM, int TN, int A_DT>
void launch_b(int b_dt, const gemm_args &g, unsigned tiles, unsigned nz)
{
    static_assert((BM / TM) * (BN / TN) == THREADS, "one block size for every configuration");
    dim3 grid(tiles, 1, nz);
    switch (b_dt) {
    case DT_F32:
        CU_LAUNCH(grid, THREADS, 0, gemm_kernel<BM, BN, BK, TM, TN, A_DT, DT_F32>)(g);
        break;
    case DT_BF16:
        CU_LAUNCH(grid, THREADS, 0, gemm_kernel<BM, BN, BK, TM, TN, A_DT, DT_BF16>)(g);
        break;
    default:
        CU_LAUNCH(grid, THREADS, 0, gemm_kernel<BM, BN, BK, TM, TN, A_DT, DT_F16>)(g);
        break;
    }
}

template <int BM, int BN, int BK, int TM, int TN>
void launch(int a_dt, int b_dt, const gemm_args &g, unsigned tiles, unsigned nz)
{
    switch (a_dt) {
    case DT_F32: launch_b<BM, BN, BK, TM, TN, DT_F32>(b_dt, g, tiles, nz); break;
    case DT_BF16: launch_b<BM, BN, BK, TM, TN, DT_BF16>(b_dt, g, tiles, nz); break;
    default: launch_b<BM, BN, BK, TM, TN, DT_F16>(b_dt, g, tiles, nz); break;
    }
}

// Streaming multiprocessors of the instance's device (asked once: cu_state.multiprocessors).
int sm_count()
{
    int &n = cu_state_of_process()->multiprocessors;
    if (!n) {
        int dev = 0;
        if (cudaGetDevice(&dev) != cudaSuccess ||
            cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess ||
            n < 1)
            n = 1;
    }
    return n;
}

constexpr int64_t MAX_GRID_Z = 65535; // batch matrices per launch

} // namespace

extern "C" aspo_status cu_gemm_own(const cu_gemm_problem *p)
{
    const cu_matrix &a = p->a, &b = p->b, &o = p->o;
    int64_t M = o.rows, N = o.cols, K = a.cols, batch = p->batch[0] * p->batch[1];
    for (const cu_matrix *x : {&a, &b, &o})
        if (!dtype_is_float(x->dt))
            return aspo_fail(ASPO_ERR_UNSUPPORTED, "op matmul on backend cuda: %s operand "
                             "(float dtypes only)", dtype_name(x->dt));
    ASPO_ASSERT(a.rows == M && b.rows == K && b.cols == N);
    if (M <= 0 || N <= 0 || batch <= 0) return ASPO_OK;
    if (K == 0 && p->accumulate) return ASPO_OK; // o + 0: nothing to launch

    // Large tiles where the output has them for every SM (H100: 132); else small ones.
    int64_t large_tiles = (M + LARGE_BM - 1) / LARGE_BM * ((N + LARGE_BN - 1) / LARGE_BN);
    bool large = M >= LARGE_BM && N >= LARGE_BN && large_tiles * batch >= sm_count();
    int64_t bm = large ? LARGE_BM : SMALL_BM, bn = large ? LARGE_BN : SMALL_BN;
    int64_t tiles_n = (N + bn - 1) / bn, tiles = (M + bm - 1) / bm * tiles_n;
    if (tiles > INT32_MAX)
        return aspo_fail(ASPO_ERR_UNSUPPORTED, "op matmul on backend cuda: a %lld x %lld output "
                         "has more tiles than a grid holds", (long long)M, (long long)N);

    gemm_args g = {};
    g.a = a.data;
    g.b = b.data;
    g.o = o.data;
    g.o_dt = (int32_t)o.dt;
    g.accumulate = p->accumulate;
    // A size-1 dim's stride is arbitrary, so only a real extent decides the load order.
    g.a_k_fast = a.cs == 1 || K == 1;
    g.b_n_fast = b.cs == 1 || N == 1;
    g.M = M, g.N = N, g.K = K;
    g.a_rs = a.rs, g.a_cs = a.cs, g.b_rs = b.rs, g.b_cs = b.cs, g.o_rs = o.rs, g.o_cs = o.cs;
    g.a_bs0 = a.bs[0], g.a_bs1 = a.bs[1], g.b_bs0 = b.bs[0], g.b_bs1 = b.bs[1];
    g.o_bs0 = o.bs[0], g.o_bs1 = o.bs[1];
    g.nb1 = p->batch[1];
    g.tiles_n = tiles_n;
    for (int64_t z0 = 0; z0 < batch; z0 += MAX_GRID_Z) {
        g.z0 = z0;
        unsigned nz = (unsigned)(batch - z0 < MAX_GRID_Z ? batch - z0 : MAX_GRID_Z);
        unsigned grid_x = (unsigned)tiles;
        if (large)
            launch<LARGE_BM, LARGE_BN, LARGE_BK, LARGE_TM, LARGE_TN>(a.dt, b.dt, g, grid_x, nz);
        else
            launch<SMALL_BM, SMALL_BN, SMALL_BK, SMALL_TM, SMALL_TN>(a.dt, b.dt, g, grid_x, nz);
        aspo_status s = cu_check_launch("matmul (own GEMM)");
        if (s) return s;
    }
    return ASPO_OK;
}
