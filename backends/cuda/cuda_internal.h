/* Shared by the CUDA backend's files (C and CUDA C++): tensor views for kernels, the one
 * stream every kernel and copy runs on, the cuBLAS handle, call checking, and the kernel
 * declarations. The same sources build the HIP backend: ASPO_HIP selects
 * backends/hip/hip_compat.h, which maps the cuda* and cublas* names used here to HIP's; and
 * the simt backend: ASPO_SIMT selects backends/simt, which runs them on the CPU. */
#ifndef ASPO_CUDA_INTERNAL_H
#define ASPO_CUDA_INTERNAL_H

#include <stdint.h>

#ifdef ASPO_HIP
#include "../hip/hip_compat.h"
#elif defined(ASPO_SIMT)
#include "../simt/simt_runtime.h" /* the CPU execution layer (backends/simt) */
#else
#include <cuda_runtime.h>
#endif

#include "../../tensor/op_checks.h"
#include "../../tensor/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A tensor as kernels see it: up to 4 dims, leading dims padded with 1, element strides
 * (0 where broadcast), dtype. Passed to kernels by value. Sizes are 64-bit: a dim may pass
 * 2^31 elements (a 4 GiB bf16 vector). */
typedef struct cu_view {
    char *data;
    int32_t dt; /* dtype */
    int64_t ne[4];
    int64_t st[4];
} cu_view;

/* t as a 4-D view; with `like`, broadcast to like's shape (as cpu_view_of). */
cu_view cu_view_of(const tensor *t, const tensor *like);

/* The stream of every kernel launch and copy. */
cudaStream_t cu_stream(void);

/* Checks a CUDA runtime result: an error naming the call (`what`) and CUDA's message.
 * Out-of-memory becomes ASPO_ERR_OOM. */
aspo_status cu_check(cudaError_t r, const char *what);
/* The launch that just happened (cudaGetLastError), named. */
aspo_status cu_check_launch(const char *kernel);

/* Host-to-device copy on the stream that returns without waiting for the GPU (staged in
 * pinned memory, cuda_staging.c): src may be reused as soon as it returns. */
aspo_status cu_upload(void *dst, const void *src, size_t bytes);

/* Device memory for a kernel's intermediate values, kept and grown (stream-ordered: a
 * later kernel on the stream runs after an earlier one finished with it). */
void *cu_scratch(size_t bytes);

/* Bad values in the user's data that kernels meet (a token id outside the vocabulary): each
 * kind keeps the first bad row and its value on the device, and the next synchronization
 * (download, synchronize) reports it as the op's error. No op waits for the host to look at
 * its ids first. */
enum cu_fault_kind { CU_FAULT_EMBEDDING, CU_FAULT_TARGETS, CU_FAULT_TARGETS_BACKWARD, CU_FAULT_KINDS };
typedef struct cu_faults {
    unsigned long long first[CU_FAULT_KINDS]; /* (row << 32) | (uint32)value; ~0: none */
    unsigned long long limit[CU_FAULT_KINDS]; /* the vocabulary or table size */
} cu_faults;

/* The device's fault slots (NULL before the backend is initialised). */
cu_faults *cu_fault_slots(void);

/* The backend instance's state (its `impl`): everything the backend and its kernels keep
 * between calls. One instance per process (one device: multi-GPU runs are one process per
 * device). */
typedef struct cu_state {
    cudaStream_t stream;    /* every kernel launch and copy; the host waits only at
                               downloads and synchronize */
    cu_faults *faults;      /* device: what kernels found wrong in the user's data */
    cu_faults *faults_host; /* pinned: their copy at each synchronization */
    void *scratch;          /* cu_scratch's buffer */
    size_t scratch_bytes;
    struct cu_staging *staging; /* cuda_staging.c's pinned upload ring, made on first use */
    void *blas;             /* the cuBLAS handle (cuda_matmul.cu), made on first use */
    int32_t *csr;           /* the embedding backward's host token positions */
    size_t csr_bytes;
    int multiprocessors;    /* 0 until asked */
    size_t pool_reserved_peak;
} cu_state;

/* The instance's state (NULL before the backend is opened). */
cu_state *cu_state_of_process(void);

/* Blocks of `threads` covering n items as a 1-D grid under the device limit. */
unsigned cu_blocks(int64_t n, unsigned threads);

#define CU_KERNEL(name) aspo_status name(const op_call *c)

CU_KERNEL(cu_copy);
CU_KERNEL(cu_fill);
CU_KERNEL(cu_binary);
CU_KERNEL(cu_scale);
CU_KERNEL(cu_unary);
CU_KERNEL(cu_unary_backward);
CU_KERNEL(cu_masked_fill);
CU_KERNEL(cu_dropout);
CU_KERNEL(cu_sum);
CU_KERNEL(cu_sumsq);
CU_KERNEL(cu_matmul);
CU_KERNEL(cu_softmax);
CU_KERNEL(cu_softmax_backward);
CU_KERNEL(cu_rmsnorm);
CU_KERNEL(cu_rmsnorm_backward);
CU_KERNEL(cu_layernorm);
CU_KERNEL(cu_layernorm_backward);
CU_KERNEL(cu_l2norm);
CU_KERNEL(cu_l2norm_backward);
CU_KERNEL(cu_gather_logprobs);
CU_KERNEL(cu_gather_logprobs_backward);
CU_KERNEL(cu_embedding);
CU_KERNEL(cu_embedding_backward);
CU_KERNEL(cu_rope);
CU_KERNEL(cu_attention);
CU_KERNEL(cu_attention_backward);
CU_KERNEL(cu_adamw);

#ifdef __cplusplus
}
#endif

#endif
