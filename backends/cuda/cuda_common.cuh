// Device-side helpers for the CUDA (and HIP) kernels: loads and stores of every dtype with
// f32 math (bf16 and f16 as 16-bit words, converted with round-to-nearest-even as the CPU
// backend does), 4-D index arithmetic over cu_view, and the launch check.
#ifndef ASPO_CUDA_COMMON_CUH
#define ASPO_CUDA_COMMON_CUH

#include "cuda_internal.h"

#if defined(ASPO_SIMT)
#include "../simt/simt_device.h"
#elif !defined(ASPO_HIP)
#include <cuda_fp16.h>
#endif

// One source for nvcc, hipcc and the CPU execution layer (backends/simt):
//   CU_LAUNCH(grid, block, shared bytes, kernel)(args...)  a launch on cu_stream()
//   CU_SHARED(type, name, [dims]);                          a static __shared__ array
//   CU_DYNAMIC_SHARED(type, name);                          the launch's dynamic shared memory
#ifdef ASPO_SIMT
#define CU_LAUNCH(grid, block, shared, ...) SIMT_LAUNCH(grid, block, shared, cu_stream(), __VA_ARGS__)
#else
#define CU_LAUNCH(grid, block, shared, ...) __VA_ARGS__<<<(grid), (block), (shared), cu_stream()>>>
#define CU_SHARED(type, name, dims) __shared__ type name dims
#define CU_DYNAMIC_SHARED(type, name) extern __shared__ type name[]
#endif

__device__ __forceinline__ float cu_bf16_to_f32(uint16_t h)
{
    return __uint_as_float((uint32_t)h << 16);
}

__device__ __forceinline__ uint16_t cu_f32_to_bf16(float f)
{
    uint32_t u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

__device__ __forceinline__ float cu_f16_to_f32(uint16_t h)
{
    return __half2float(__ushort_as_half(h));
}

__device__ __forceinline__ uint16_t cu_f32_to_f16(float f)
{
    return __half_as_ushort(__float2half_rn(f));
}

__device__ __forceinline__ float cu_load(const cu_view &v, int64_t off)
{
    switch (v.dt) {
    case DT_F32: return ((const float *)v.data)[off];
    case DT_BF16: return cu_bf16_to_f32(((const uint16_t *)v.data)[off]);
    case DT_F16: return cu_f16_to_f32(((const uint16_t *)v.data)[off]);
    default: return (float)((const int32_t *)v.data)[off];
    }
}

__device__ __forceinline__ void cu_store(const cu_view &v, int64_t off, float x)
{
    switch (v.dt) {
    case DT_F32: ((float *)v.data)[off] = x; break;
    case DT_BF16: ((uint16_t *)v.data)[off] = cu_f32_to_bf16(x); break;
    case DT_F16: ((uint16_t *)v.data)[off] = cu_f32_to_f16(x); break;
    default: ((int32_t *)v.data)[off] = (int32_t)x; break;
    }
}

__device__ __forceinline__ int64_t cu_numel(const cu_view &v)
{
    return v.ne[0] * v.ne[1] * v.ne[2] * v.ne[3];
}

// Offset in v of linear element n of a tensor of sizes `ne` (row-major order).
__device__ __forceinline__ int64_t cu_offset_of(const cu_view &v, const int64_t *ne, int64_t n)
{
    int64_t i3 = n % ne[3];
    n /= ne[3];
    int64_t i2 = n % ne[2];
    n /= ne[2];
    int64_t i1 = n % ne[1];
    int64_t i0 = n / ne[1];
    return i0 * v.st[0] + i1 * v.st[1] + i2 * v.st[2] + i3 * v.st[3];
}

// Records value at row as a fault of `kind` (cuda_internal.h): the first row wins, as the
// CPU names the first bad id.
__device__ __forceinline__ void cu_fault(cu_faults *f, int kind, int64_t row, int32_t value,
                                         int64_t limit)
{
    unsigned long long r = row < 0xffffffffll ? (unsigned long long)row : 0xfffffffeull;
    atomicMin(&f->first[kind], (r << 32) | (uint32_t)value);
    atomicExch(&f->limit[kind], (unsigned long long)limit);
}

// ---- block reductions ----

// v of lane (lane ^ o) of the caller's warp, every lane taking part. HIP has no mask (a
// wavefront runs in lockstep; its *_sync names differ between ROCm versions, so they are
// not used); the CPU layer's masks are 64 bits wide, for its 64-lane warps.
__device__ __forceinline__ float cu_shfl_xor(float v, int o)
{
#if defined(ASPO_HIP)
    return __shfl_xor(v, o);
#elif defined(ASPO_SIMT)
    return __shfl_xor_sync(~0ull, v, o);
#else
    return __shfl_xor_sync(0xffffffffu, v, o);
#endif
}

struct CuAdd {
    __device__ float operator()(float a, float b) const { return a + b; }
};
struct CuMax {
    __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

// v combined over the block with op; every thread gets the same result. blockDim.x is a
// multiple of the warp size and every thread calls it (uniform control flow); `shared`
// holds blockDim.x / warpSize floats. The xor butterfly leaves the same bits in every lane
// (op is commutative) and the order over warps is fixed, so the result does not depend on
// timing: no float atomics anywhere.
template <class Op> __device__ float cu_block_reduce(float v, float *shared, Op op)
{
    for (int o = warpSize / 2; o > 0; o >>= 1) v = op(v, cu_shfl_xor(v, o));
    int warps = blockDim.x / warpSize;
    if (threadIdx.x % warpSize == 0) shared[threadIdx.x / warpSize] = v;
    __syncthreads();
    float r = shared[0];
    for (int k = 1; k < warps; k++) r = op(r, shared[k]);
    __syncthreads(); // every thread has read `shared` before a later call writes it
    return r;
}

// Grid-stride loop over [0, n).
#define CU_FOR(i, n) \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
         i += (int64_t)gridDim.x * blockDim.x)

#endif
