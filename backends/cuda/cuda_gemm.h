/* The matmul's two paths share one description of the problem: cuda_matmul.cu plans it
 * (folding, cuBLAS or not) and cuda_gemm.cu is the project's own tiled GEMM, used for what
 * cuBLAS cannot take and for every matmul of a build without BLAS (ASPO_NO_BLAS). */
#ifndef ASPO_CUDA_GEMM_H
#define ASPO_CUDA_GEMM_H

#include "cuda_internal.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One operand (or the output) of a batched product: element (b0, b1, r, c) lies at element
 * offset b0*bs[0] + b1*bs[1] + r*rs + c*cs from data. Strides may be anything (0 where
 * broadcast); int64 throughout, since a tensor can pass 2^31 elements. */
typedef struct cu_matrix {
    char *data;
    dtype dt;
    int64_t rows, cols;
    int64_t rs, cs;
    int64_t bs[2];
} cu_matrix;

/* o (nb0,nb1,M,N) = a (nb0,nb1,M,K) @ b (nb0,nb1,K,N), or o += a @ b with accumulate
 * (GEMM beta = 1: o's old value added in f32, one rounding for a half o): o's rows and
 * cols are M and N, a's cols are K. batch[] = {nb0, nb1}. */
typedef struct cu_gemm_problem {
    cu_matrix a, b, o;
    int64_t batch[2];
    bool accumulate;
} cu_gemm_problem;

/* The own GEMM on cu_stream(): any float dtypes and strides, f32 accumulation in a fixed
 * order; K = 0 writes zeros (leaves o as it is with accumulate). */
aspo_status cu_gemm_own(const cu_gemm_problem *p);

#ifdef __cplusplus
}
#endif

#endif
