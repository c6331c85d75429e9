// The device side of CUDA C++ for the host C++ compiler: what backends/cuda's kernels (and
// the layer's test kernels) use, executed by the layer (simt_exec.c) with every CUDA thread
// a fiber. cuda_common.cuh includes this header in a simt build (ASPO_SIMT).
//
// Keywords: __global__, __device__, __host__ vanish; a kernel is a plain function that
// every thread of every block runs. Kernels reach threadIdx, blockIdx, blockDim, gridDim,
// warpSize, shared memory, barriers, warp functions and atomics through calls into the
// layer, never through memory the race check would see. Launches are written
// CU_LAUNCH(grid, block, shared bytes, kernel)(args...) in the sources (cuda_common.cuh),
// which here becomes simt::launcher<kernel>; static shared variables are
// CU_SHARED(type, name, [dims]) and dynamic shared memory CU_DYNAMIC_SHARED(type, name).
// Warp functions take CUDA's masks as 64-bit values: with 64-lane warps a 32-bit full mask
// leaves lanes 32-63 out, and the layer reports the lane that calls with a mask that does
// not name it.
#ifndef ASPO_SIMT_DEVICE_H
#define ASPO_SIMT_DEVICE_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "simt_runtime.h"

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __restrict__ __restrict

struct uint3 {
    unsigned x, y, z;
};

struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
    operator simt_dim3() const { return {x, y, z}; }
};

// ---- the calls into the layer (simt_exec.c; C linkage, not instrumented) ----

extern "C" {
simt_dim3 simt_thread_idx(void);
simt_dim3 simt_block_idx(void);
simt_dim3 simt_block_dim(void);
simt_dim3 simt_grid_dim(void);
int simt_warp_lanes(void);
void simt_syncthreads(const char *file, int line);
int simt_syncthreads_vote(int op, int predicate, const char *file, int line);
void *simt_shared_static(const void *tag, size_t bytes, size_t align, const char *name);
void *simt_shared_dynamic(void);
// A warp function of the calling lane: op (SIMT_WARP_*), mask, its value (bytes), the lane
// argument (source lane, delta or xor mask) and width; the result is written to `result`.
void simt_warp_call(int op, uint64_t mask, const void *value, int bytes, int arg, int width,
                    void *result, const char *what, const char *file, int line);
uint64_t simt_atomic_rmw(void *address, int bytes, int op, uint64_t operand, uint64_t compare);
void simt_device_trap(const char *what, const char *file, int line);
}

enum {
    SIMT_WARP_SHFL_IDX, SIMT_WARP_SHFL_UP, SIMT_WARP_SHFL_DOWN, SIMT_WARP_SHFL_XOR,
    SIMT_WARP_BALLOT, SIMT_WARP_ANY, SIMT_WARP_ALL, SIMT_WARP_SYNC,
};
enum { SIMT_VOTE_NONE, SIMT_VOTE_COUNT, SIMT_VOTE_AND, SIMT_VOTE_OR };
enum {
    SIMT_ATOMIC_ADD_INT, SIMT_ATOMIC_ADD_F32, SIMT_ATOMIC_ADD_F64, SIMT_ATOMIC_SUB,
    SIMT_ATOMIC_MIN_S, SIMT_ATOMIC_MAX_S, SIMT_ATOMIC_MIN_U, SIMT_ATOMIC_MAX_U,
    SIMT_ATOMIC_EXCH, SIMT_ATOMIC_CAS, SIMT_ATOMIC_AND, SIMT_ATOMIC_OR, SIMT_ATOMIC_XOR,
    SIMT_ATOMIC_INC, SIMT_ATOMIC_DEC,
};

namespace simt {
inline uint3 as_uint3(simt_dim3 d) { return {d.x, d.y, d.z}; }
} // namespace simt

#define threadIdx (::simt::as_uint3(simt_thread_idx()))
#define blockIdx (::simt::as_uint3(simt_block_idx()))
#define blockDim (::simt::as_uint3(simt_block_dim()))
#define gridDim (::simt::as_uint3(simt_grid_dim()))
#define warpSize (simt_warp_lanes())

// ---- barriers ----

inline void __syncthreads(const char *file = __builtin_FILE(), int line = __builtin_LINE())
{
    simt_syncthreads(file, line);
}
inline int __syncthreads_count(int p, const char *file = __builtin_FILE(),
                               int line = __builtin_LINE())
{
    return simt_syncthreads_vote(SIMT_VOTE_COUNT, p, file, line);
}
inline int __syncthreads_and(int p, const char *file = __builtin_FILE(),
                             int line = __builtin_LINE())
{
    return simt_syncthreads_vote(SIMT_VOTE_AND, p, file, line);
}
inline int __syncthreads_or(int p, const char *file = __builtin_FILE(),
                            int line = __builtin_LINE())
{
    return simt_syncthreads_vote(SIMT_VOTE_OR, p, file, line);
}
inline void __syncwarp(unsigned long long mask = ~0ull, const char *file = __builtin_FILE(),
                       int line = __builtin_LINE())
{
    simt_warp_call(SIMT_WARP_SYNC, mask, NULL, 0, 0, 0, NULL, "__syncwarp", file, line);
}
// Memory fences order a thread's own accesses; the layer runs one thread at a time.
inline void __threadfence() {}
inline void __threadfence_block() {}

// ---- warp functions ----

namespace simt {
template <class T> inline T warp_exchange(int op, unsigned long long mask, T v, int arg, int width,
                                          const char *what, const char *file, int line)
{
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value,
                  "warp functions exchange values of up to 8 bytes");
    T r;
    simt_warp_call(op, mask, &v, (int)sizeof(T), arg, width, &r, what, file, line);
    return r;
}
} // namespace simt

template <class T>
inline T __shfl_sync(unsigned long long mask, T v, int src, int width = warpSize,
                     const char *file = __builtin_FILE(), int line = __builtin_LINE())
{
    return simt::warp_exchange(SIMT_WARP_SHFL_IDX, mask, v, src, width, "__shfl_sync", file, line);
}
template <class T>
inline T __shfl_up_sync(unsigned long long mask, T v, unsigned delta, int width = warpSize,
                        const char *file = __builtin_FILE(), int line = __builtin_LINE())
{
    return simt::warp_exchange(SIMT_WARP_SHFL_UP, mask, v, (int)delta, width, "__shfl_up_sync",
                               file, line);
}
template <class T>
inline T __shfl_down_sync(unsigned long long mask, T v, unsigned delta, int width = warpSize,
                          const char *file = __builtin_FILE(), int line = __builtin_LINE())
{
    return simt::warp_exchange(SIMT_WARP_SHFL_DOWN, mask, v, (int)delta, width,
                               "__shfl_down_sync", file, line);
}
template <class T>
inline T __shfl_xor_sync(unsigned long long mask, T v, int lane_mask, int width = warpSize,
                         const char *file = __builtin_FILE(), int line = __builtin_LINE())
{
    return simt::warp_exchange(SIMT_WARP_SHFL_XOR, mask, v, lane_mask, width, "__shfl_xor_sync",
                               file, line);
}
// 64 bits wide: a 64-lane warp's ballot needs them (CUDA's returns 32).
inline unsigned long long __ballot_sync(unsigned long long mask, int p,
                                        const char *file = __builtin_FILE(),
                                        int line = __builtin_LINE())
{
    unsigned long long r;
    simt_warp_call(SIMT_WARP_BALLOT, mask, &p, (int)sizeof p, 0, 0, &r, "__ballot_sync", file, line);
    return r;
}
inline int __any_sync(unsigned long long mask, int p, const char *file = __builtin_FILE(),
                      int line = __builtin_LINE())
{
    unsigned long long r;
    simt_warp_call(SIMT_WARP_ANY, mask, &p, (int)sizeof p, 0, 0, &r, "__any_sync", file, line);
    return (int)r;
}
inline int __all_sync(unsigned long long mask, int p, const char *file = __builtin_FILE(),
                      int line = __builtin_LINE())
{
    unsigned long long r;
    simt_warp_call(SIMT_WARP_ALL, mask, &p, (int)sizeof p, 0, 0, &r, "__all_sync", file, line);
    return (int)r;
}

// ---- shared memory ----

#define CU_SHARED(type, name, dims)                                                            \
    static const char name##_simt_tag = 0;                                                     \
    type(&name) dims = *static_cast<type(*) dims>(                                             \
        simt_shared_static(&name##_simt_tag, sizeof(type dims), alignof(type), #name))
#define CU_DYNAMIC_SHARED(type, name) type *name = static_cast<type *>(simt_shared_dynamic())

// ---- atomics (on the addresses' real memory: blocks run in parallel) ----

namespace simt {
template <class T> inline uint64_t bits(T v)
{
    uint64_t b = 0;
    memcpy(&b, &v, sizeof v);
    return b;
}
template <class T> inline T from_bits(uint64_t b)
{
    T v;
    memcpy(&v, &b, sizeof v);
    return v;
}
template <class T> inline T atomic(T *p, int op, T v, T cmp = T())
{
    static_assert(sizeof(T) == 4 || sizeof(T) == 8, "atomics on 4- and 8-byte words");
    return from_bits<T>(simt_atomic_rmw(p, (int)sizeof(T), op, bits(v), bits(cmp)));
}
template <class T> constexpr int min_op() { return std::is_signed<T>::value ? SIMT_ATOMIC_MIN_S : SIMT_ATOMIC_MIN_U; }
template <class T> constexpr int max_op() { return std::is_signed<T>::value ? SIMT_ATOMIC_MAX_S : SIMT_ATOMIC_MAX_U; }
} // namespace simt

inline int atomicAdd(int *p, int v) { return simt::atomic(p, SIMT_ATOMIC_ADD_INT, v); }
inline unsigned atomicAdd(unsigned *p, unsigned v) { return simt::atomic(p, SIMT_ATOMIC_ADD_INT, v); }
inline unsigned long long atomicAdd(unsigned long long *p, unsigned long long v)
{
    return simt::atomic(p, SIMT_ATOMIC_ADD_INT, v);
}
inline float atomicAdd(float *p, float v) { return simt::atomic(p, SIMT_ATOMIC_ADD_F32, v); }
inline double atomicAdd(double *p, double v) { return simt::atomic(p, SIMT_ATOMIC_ADD_F64, v); }
inline int atomicSub(int *p, int v) { return simt::atomic(p, SIMT_ATOMIC_SUB, v); }
inline unsigned atomicSub(unsigned *p, unsigned v) { return simt::atomic(p, SIMT_ATOMIC_SUB, v); }
template <class T> inline T atomicMin(T *p, T v) { return simt::atomic(p, simt::min_op<T>(), v); }
template <class T> inline T atomicMax(T *p, T v) { return simt::atomic(p, simt::max_op<T>(), v); }
template <class T> inline T atomicExch(T *p, T v) { return simt::atomic(p, SIMT_ATOMIC_EXCH, v); }
template <class T> inline T atomicCAS(T *p, T compare, T v)
{
    return simt::atomic(p, SIMT_ATOMIC_CAS, v, compare);
}
template <class T> inline T atomicAnd(T *p, T v) { return simt::atomic(p, SIMT_ATOMIC_AND, v); }
template <class T> inline T atomicOr(T *p, T v) { return simt::atomic(p, SIMT_ATOMIC_OR, v); }
template <class T> inline T atomicXor(T *p, T v) { return simt::atomic(p, SIMT_ATOMIC_XOR, v); }
inline unsigned atomicInc(unsigned *p, unsigned v) { return simt::atomic(p, SIMT_ATOMIC_INC, v); }
inline unsigned atomicDec(unsigned *p, unsigned v) { return simt::atomic(p, SIMT_ATOMIC_DEC, v); }

// ---- loads, bit tricks and arithmetic intrinsics ----

template <class T> inline T __ldg(const T *p) { return *p; }

inline float __uint_as_float(unsigned u) { return simt::from_bits<float>(u); }
inline unsigned __float_as_uint(float f) { return (unsigned)simt::bits(f); }
inline float __int_as_float(int i) { return simt::from_bits<float>((unsigned)i); }
inline int __float_as_int(float f) { return (int)simt::bits(f); }
inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((uint64_t)a * b) >> 32); }
inline int __mulhi(int a, int b) { return (int)(((int64_t)a * b) >> 32); }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(unsigned x) { return x ? __builtin_clz(x) : 32; }
inline int __ffs(unsigned x) { return __builtin_ffs((int)x); }
inline int __ffsll(unsigned long long x) { return __builtin_ffsll((long long)x); }

// Round-to-nearest operations as separate IEEE operations: the simt build compiles with
// -ffp-contract=off, so nothing fuses them (nvcc would, without the _rn).
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fsqrt_rn(float a) { return sqrtf(a); }
inline float __frcp_rn(float a) { return 1.0f / a; }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline float rsqrtf(float a) { return 1.0f / sqrtf(a); }
// The fast intrinsics as their accurate functions (the GPU's differ by a few ulp).
inline float __expf(float a) { return expf(a); }
inline float __logf(float a) { return logf(a); }
inline float __powf(float a, float b) { return powf(a, b); }
inline float __saturatef(float a) { return a < 0.0f ? 0.0f : a > 1.0f ? 1.0f : a; }

// CUDA's integer min/max overloads, for any mix of integer types.
template <class A, class B, class = std::enable_if_t<std::is_integral<A>::value && std::is_integral<B>::value>>
inline std::common_type_t<A, B> min(A a, B b)
{
    return a < b ? a : b;
}
template <class A, class B, class = std::enable_if_t<std::is_integral<A>::value && std::is_integral<B>::value>>
inline std::common_type_t<A, B> max(A a, B b)
{
    return a > b ? a : b;
}

// ---- half and bfloat16: 16-bit words with the hardware's conversions ----

struct __half {
    unsigned short __x;
};
struct __nv_bfloat16 {
    unsigned short __x;
};

inline float __half2float(__half h)
{
    unsigned sign = (unsigned)(h.__x & 0x8000u) << 16, e = (h.__x >> 10) & 0x1f, m = h.__x & 0x3ff;
    if (e == 0x1f) return __uint_as_float(sign | 0x7f800000u | (m << 13)); // inf, NaN
    if (e == 0) return (sign ? -1.0f : 1.0f) * (float)m * 0x1p-24f;     // zero, subnormal
    return __uint_as_float(sign | ((e + 112) << 23) | (m << 13));
}

// Round to nearest even; overflow to inf; NaN to the canonical 0x7fff (cvt.rn.f16.f32).
inline __half __float2half_rn(float f)
{
    unsigned u = __float_as_uint(f), sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return {0x7fff};
    if (a >= 0x477ff000u) return {(unsigned short)(sign | 0x7c00u)}; // rounds to >= 65520: inf
    if (a < 0x38800000u) { // below 2^-14: a subnormal half, exactly scaled then rounded
        float r = nearbyintf(__uint_as_float(a) * 0x1p24f); // default rounding: to even
        return {(unsigned short)(sign | (unsigned)r)};
    }
    unsigned mant = a + 0x0fffu + ((a >> 13) & 1u); // round the 13 dropped bits to even
    return {(unsigned short)(sign | ((mant - 0x38000000u) >> 13))};
}
inline __half __float2half(float f) { return __float2half_rn(f); }
inline __half __ushort_as_half(unsigned short x) { return {x}; }
inline unsigned short __half_as_ushort(__half h) { return h.__x; }

inline float __bfloat162float(__nv_bfloat16 b) { return __uint_as_float((unsigned)b.__x << 16); }
inline __nv_bfloat16 __float2bfloat16_rn(float f)
{
    unsigned u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return {0x7fff}; // canonical NaN, as cvt.rn.bf16.f32
    u += 0x7fffu + ((u >> 16) & 1u);
    return {(unsigned short)(u >> 16)};
}
inline __nv_bfloat16 __float2bfloat16(float f) { return __float2bfloat16_rn(f); }
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short x) { return {x}; }
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 b) { return b.__x; }

// ---- launches ----

namespace simt {

// The instantiated kernel's name, from the compiler's description of this function:
// "... [with auto F = {anonymous}::gemm_kernel<128, 128, 8, 8, 8, 0, 0>]".
template <auto F> const char *kernel_name()
{
    static const std::string name = [](std::string s) {
        size_t at = s.find("F = ");
        s = at == std::string::npos ? s : s.substr(at + 4);
        if (!s.empty() && s.back() == ']') s.pop_back();
        for (size_t p; (p = s.find("{anonymous}::")) != std::string::npos;) s.erase(p, 13);
        return s;
    }(__PRETTY_FUNCTION__);
    return name.c_str();
}

// kernel<<<grid, block, shared, stream>>>(args...): the arguments are converted to the
// kernel's parameter types at the call (as for any call: NULL becomes a null pointer) and
// copied once, as CUDA copies them to parameter memory; every thread then calls the kernel
// with its own copies.
template <auto F, class Fn = std::remove_pointer_t<decltype(F)>> struct launcher;
template <auto F, class... P> struct launcher<F, void(P...)> {
    dim3 grid, block;
    size_t shared;
    cudaStream_t stream;
    void operator()(P... args) const
    {
        using Args = std::tuple<std::decay_t<P>...>;
        Args *closure = new Args(args...);
        simt_launch_desc d = {};
        d.kernel = kernel_name<F>();
        d.func = reinterpret_cast<const void *>(F);
        d.grid = grid;
        d.block = block;
        d.dynamic_shared = shared;
        d.thunk = [](void *c) { std::apply(F, *static_cast<Args *>(c)); };
        d.closure = closure;
        d.closure_size = sizeof(Args);
        d.closure_free = [](void *c) { delete static_cast<Args *>(c); };
        simt_launch(&d, stream);
    }
};

} // namespace simt

#define SIMT_LAUNCH(grid, block, shared, stream, ...)                                          \
    (::simt::launcher<__VA_ARGS__>{dim3(grid), dim3(block), (size_t)(shared), (stream)})

#endif
