/* The part of cuBLAS that backends/cuda/cuda_matmul.cu calls, executed on the CPU for the
 * simt backend: a handle bound to a stream, and cublasGemmStridedBatchedEx with f32
 * compute. Names, numbers and the prototype are cuBLAS's (cublas_api.h, library_types.h of
 * CUDA 13), so the .cu source compiles unchanged; the CUDA toolkit is not needed.
 *
 * As on a GPU, a GEMM is queued on the handle's stream and runs when the host waits;
 * argument errors are the returned status, a bad address is the next synchronization's
 * error (cudaErrorIllegalAddress, naming the operand and batch). Pointer mode is host:
 * alpha and beta are read by the call. C (cuda_staging.c) and C++ (the .cu files). */
#ifndef ASPO_SIMT_CUBLAS_H
#define ASPO_SIMT_CUBLAS_H

#include "simt_runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    CUBLAS_STATUS_SUCCESS = 0,
    CUBLAS_STATUS_NOT_INITIALIZED = 1,
    CUBLAS_STATUS_ALLOC_FAILED = 3,
    CUBLAS_STATUS_INVALID_VALUE = 7,
    CUBLAS_STATUS_ARCH_MISMATCH = 8,
    CUBLAS_STATUS_MAPPING_ERROR = 11,
    CUBLAS_STATUS_EXECUTION_FAILED = 13,
    CUBLAS_STATUS_INTERNAL_ERROR = 14,
    CUBLAS_STATUS_NOT_SUPPORTED = 15,
    CUBLAS_STATUS_LICENSE_ERROR = 16,
} cublasStatus_t;

typedef enum {
    CUBLAS_OP_N = 0,
    CUBLAS_OP_T = 1,
    CUBLAS_OP_C = 2, /* conjugate transpose: a transpose for real types */
} cublasOperation_t;

/* Only the 32F ones are computed; the others exist so that a call naming them is refused
 * (CUBLAS_STATUS_NOT_SUPPORTED) rather than failing to compile. */
typedef enum {
    CUBLAS_COMPUTE_16F = 64,
    CUBLAS_COMPUTE_32F = 68,
    CUBLAS_COMPUTE_32F_FAST_16BF = 75,
    CUBLAS_COMPUTE_32F_FAST_TF32 = 77,
} cublasComputeType_t;

typedef enum cudaDataType_t {
    CUDA_R_32F = 0,
    CUDA_R_16F = 2,
    CUDA_R_16BF = 14,
} cudaDataType;

typedef enum {
    CUBLAS_GEMM_DEFAULT = -1,
} cublasGemmAlgo_t;

typedef struct cublasContext *cublasHandle_t;

cublasStatus_t cublasCreate(cublasHandle_t *handle);
cublasStatus_t cublasDestroy(cublasHandle_t handle);
cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream);
const char *cublasGetStatusString(cublasStatus_t status);

/* For i in [0, batchCount): C_i = alpha op(A_i) op(B_i) + beta C_i, column-major, with
 * op(A_i) (m,k), op(B_i) (k,n), C_i (m,n) and X_i = X + i * strideX elements of X's type.
 * alpha, beta: host pointers to float (compute 32F). beta == 0 does not read C. */
cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t handle, cublasOperation_t transa,
                                          cublasOperation_t transb, int m, int n, int k,
                                          const void *alpha, const void *A, cudaDataType Atype,
                                          int lda, long long int strideA, const void *B,
                                          cudaDataType Btype, int ldb, long long int strideB,
                                          const void *beta, void *C, cudaDataType Ctype,
                                          int ldc, long long int strideC, int batchCount,
                                          cublasComputeType_t computeType,
                                          cublasGemmAlgo_t algo);

#ifdef __cplusplus
}
#endif

#endif
