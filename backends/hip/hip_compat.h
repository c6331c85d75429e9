/* The CUDA names that backends/cuda uses, mapped to HIP's, so the same sources build the HIP
 * backend (`--backend hip`). cuda_internal.h includes this instead of <cuda_runtime.h> when
 * ASPO_HIP is defined. It is read as C (cuda_backend.c, built by cc) and as HIP C++ (the .cu
 * files, built by hipcc; __HIPCC__).
 *
 * Macros the build defines (backends/hip/hip.cmake):
 *   ASPO_HIP       every source of the backend, C and .cu: selects this header, names the
 *                  backend "hip" (cuda_backend.c) and ASPO_HIP_DEVICE.
 *   ASPO_HIP_BLAS  ROCm has hipBLAS: this header maps the cublas* names of cuda_matmul.cu
 *                  to hipblas* and the build links hipBLAS.
 *   ASPO_NO_BLAS   no hipBLAS (Debian's ROCm): cuda_matmul.cu compiles no BLAS calls and
 *                  every matmul runs on the project's own GEMM (cuda_gemm.cu).
 *   Exactly one of ASPO_HIP_BLAS and ASPO_NO_BLAS is defined in a HIP build.
 *   ASPO_HAVE_HIP  (every file) the build has the hip backend: tensor/backend.c lists it.
 *
 * Warp size, for kernel code (it must run with warps of 32 and of 64 lanes):
 *   - warpSize is the lane count: 32 on NVIDIA and AMD RDNA (wave32), 64 on AMD CDNA
 *     (gfx90a = MI200, gfx942 = MI300). Lane and warp arithmetic uses warpSize, never 32;
 *     shuffle loops run `for (o = warpSize / 2; o > 0; o >>= 1)`.
 *   - Arrays with one entry per warp of a block are sized for the narrowest warp: 1024
 *     threads / 32 = 32 entries (MAX_WARPS = 32 in the kernels), enough for 64 too.
 *   - Block sizes are multiples of 64, so every warp is full on both.
 *   - Warp exchanges go through cuda_common.cuh's wrappers (cu_shfl_xor): every lane of
 *     the warp takes part (HIP has no mask: a wavefront runs in lockstep), and no *_sync
 *     name is used directly, since ROCm versions disagree on them (64-bit masks in 6.2+).
 *   - Shared memory: at most 64 KiB per block on AMD (48 KiB is safe everywhere).
 *
 * cuBLAS names mapped under ASPO_HIP_BLAS (those cuda_matmul.cu lists; no cuBLASLt):
 * hipBLAS 2 and later (ROCm 6+) take hipDataType and hipblasComputeType_t (HIPBLAS_V2),
 * earlier ones hipblasDatatype_t for both. TF32 is not offered: CUBLAS_COMPUTE_32F_FAST_TF32
 * is plain f32 here (ASPO_CUDA_TF32 has no effect). */
#ifndef ASPO_HIP_COMPAT_H
#define ASPO_HIP_COMPAT_H

#if !defined(__HIP_PLATFORM_AMD__) && !defined(__HIP_PLATFORM_NVIDIA__)
#define __HIP_PLATFORM_AMD__ 1
#endif

#ifdef __HIPCC__
#include <hip/hip_fp16.h>
#include <hip/hip_runtime.h>
#else
#include <hip/hip_runtime_api.h>
#endif

/* ---- runtime ---- */

#define cudaError_t hipError_t
#define cudaSuccess hipSuccess
#define cudaErrorMemoryAllocation hipErrorOutOfMemory
#define cudaGetErrorString hipGetErrorString
#define cudaGetErrorName hipGetErrorName
#define cudaGetLastError hipGetLastError
#define cudaPeekAtLastError hipPeekAtLastError

#define cudaDeviceProp hipDeviceProp_t
#define cudaGetDeviceCount hipGetDeviceCount
#define cudaGetDevice hipGetDevice
#define cudaSetDevice hipSetDevice
#define cudaGetDeviceProperties hipGetDeviceProperties
#define cudaDeviceGetAttribute hipDeviceGetAttribute
#define cudaDevAttrMultiProcessorCount hipDeviceAttributeMultiprocessorCount
#define cudaDevAttrMaxThreadsPerBlock hipDeviceAttributeMaxThreadsPerBlock
#define cudaDevAttrMaxSharedMemoryPerBlock hipDeviceAttributeMaxSharedMemoryPerBlock
#define cudaDevAttrMaxSharedMemoryPerBlockOptin hipDeviceAttributeSharedMemPerBlockOptin
#define cudaDevAttrMaxSharedMemoryPerMultiprocessor hipDeviceAttributeMaxSharedMemoryPerMultiprocessor
#define cudaDevAttrWarpSize hipDeviceAttributeWarpSize
#define cudaDeviceSynchronize hipDeviceSynchronize
#define cudaMemGetInfo hipMemGetInfo

#define cudaStream_t hipStream_t
#define cudaStreamNonBlocking hipStreamNonBlocking
#define cudaStreamCreate hipStreamCreate
#define cudaStreamCreateWithFlags hipStreamCreateWithFlags
#define cudaStreamDestroy hipStreamDestroy
#define cudaStreamSynchronize hipStreamSynchronize

#define cudaEvent_t hipEvent_t
#define cudaEventCreate hipEventCreate
#define cudaEventDestroy hipEventDestroy
#define cudaEventRecord hipEventRecord
#define cudaEventSynchronize hipEventSynchronize
#define cudaEventCreateWithFlags hipEventCreateWithFlags
#define cudaEventDisableTiming hipEventDisableTiming
#define cudaHostAlloc hipHostMalloc
#define cudaHostAllocDefault hipHostMallocDefault
#define cudaFreeHost hipHostFree
#define cudaEventElapsedTime hipEventElapsedTime

#define cudaMalloc hipMalloc
#define cudaFree hipFree
#define cudaMallocAsync hipMallocAsync
#define cudaFreeAsync hipFreeAsync
#define cudaMemcpy hipMemcpy
#define cudaMemcpyAsync hipMemcpyAsync
#define cudaMemset hipMemset
#define cudaMemsetAsync hipMemsetAsync
#define cudaMemcpyHostToDevice hipMemcpyHostToDevice
#define cudaMemcpyDeviceToHost hipMemcpyDeviceToHost
#define cudaMemcpyDeviceToDevice hipMemcpyDeviceToDevice
#define cudaMemcpyDefault hipMemcpyDefault

#define cudaMemPool_t hipMemPool_t
#define cudaDeviceGetDefaultMemPool hipDeviceGetDefaultMemPool
#define cudaMemPoolSetAttribute hipMemPoolSetAttribute
#define cudaMemPoolGetAttribute hipMemPoolGetAttribute
#define cudaMemPoolAttrReleaseThreshold hipMemPoolAttrReleaseThreshold
#define cudaMemPoolAttrReservedMemHigh hipMemPoolAttrReservedMemHigh

#define cudaFuncSetAttribute hipFuncSetAttribute
#define cudaFuncAttributeMaxDynamicSharedMemorySize hipFuncAttributeMaxDynamicSharedMemorySize

/* ---- device code ---- */

/* No warp function is renamed here: the kernels call cu_shfl_xor (cuda_common.cuh), which
 * is HIP's __shfl_xor on this platform. ROCm 6.2+ declares its own __shfl*_sync (64-bit
 * masks) in <hip/hip_runtime.h> and <hip/hip_bf16.h>, and a function-like macro of the same
 * name would rewrite those declarations into a compile error. The kernels keep bf16 and
 * f16 as 16-bit words (cu_load/cu_store), so no bf16 type is needed either. */

/* ---- BLAS ---- */

#ifdef ASPO_HIP_BLAS
#define HIPBLAS_V2 /* hipDataType and hipblasComputeType_t where hipBLAS has them (2+) */
#if __has_include(<hipblas/hipblas.h>)
#include <hipblas/hipblas.h>
#else
#include <hipblas.h>
#endif

#define cublasHandle_t hipblasHandle_t
#define cublasStatus_t hipblasStatus_t
#define cublasOperation_t hipblasOperation_t
#define cublasCreate hipblasCreate
#define cublasDestroy hipblasDestroy
#define cublasSetStream hipblasSetStream
#define cublasGemmStridedBatchedEx hipblasGemmStridedBatchedEx
#define cublasGetStatusString hipblasStatusToString
#define CUBLAS_STATUS_SUCCESS HIPBLAS_STATUS_SUCCESS
#define CUBLAS_STATUS_ALLOC_FAILED HIPBLAS_STATUS_ALLOC_FAILED
#define CUBLAS_OP_N HIPBLAS_OP_N
#define CUBLAS_OP_T HIPBLAS_OP_T
#define CUBLAS_GEMM_DEFAULT HIPBLAS_GEMM_DEFAULT

#if hipblasVersionMajor >= 2
#define cudaDataType hipDataType
#define CUDA_R_32F HIP_R_32F
#define CUDA_R_16F HIP_R_16F
#define CUDA_R_16BF HIP_R_16BF
#define cublasComputeType_t hipblasComputeType_t
#define CUBLAS_COMPUTE_32F HIPBLAS_COMPUTE_32F
#define CUBLAS_COMPUTE_32F_FAST_TF32 HIPBLAS_COMPUTE_32F
#else
#define cudaDataType hipblasDatatype_t
#define CUDA_R_32F HIPBLAS_R_32F
#define CUDA_R_16F HIPBLAS_R_16F
#define CUDA_R_16BF HIPBLAS_R_16B
#define cublasComputeType_t hipblasDatatype_t
#define CUBLAS_COMPUTE_32F HIPBLAS_R_32F
#define CUBLAS_COMPUTE_32F_FAST_TF32 HIPBLAS_R_32F
#endif
#elif !defined(ASPO_NO_BLAS)
#error "a HIP build defines ASPO_HIP_BLAS (hipBLAS found) or ASPO_NO_BLAS (backends/hip/hip.cmake)"
#endif

#endif
