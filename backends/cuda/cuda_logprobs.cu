// Log-probabilities of target tokens (OP_GATHER_LOGPROBS) and their backward, over
// contiguous (N,V) logits of any float dtype; the semantics of cpu_gather_logprobs in
// backends/cpu/cpu_softmax.c, the decomposition of the Vulkan shader gather_logprobs.comp.
//   forward:  one block per row; the vocabulary is read once, in chunks of blockDim.x
//             logits: each thread keeps an online (max, sum exp) over its strided share,
//             the block merges them (warp shuffles, then shared memory across warps):
//             lse = max + log(sum), logp = logit[target] - lse. No (N,V) buffer.
//   backward: one block per row: dlogits = dlogp * (onehot(target) - exp(logit - lse)),
//             from the saved lse; 0 on ignored rows.
// Targets are the user's data: a target outside [0,V) (and not the ignore index) is never
// read out of bounds; it is a fault the kernel records on the device, reported by the next
// synchronization with its row (cuda_internal.h), so no op waits for the host.
//
// Verified: compiles -Wall clean with nvcc (CUDA 13) for sm_80, sm_89 and sm_90; runs on
// the CPU execution layer (backends/simt) against the CPU in ops_simt32/ops_simt64.
// Not verified on a GPU: scripts/gpu-check.sh runs tests/ops/test_ops --backend cuda.
#include <math.h>

#include "cuda_common.cuh"

namespace {

// Threads per row: 8 warps (4 HIP waves) stream a 32000-wide vocabulary row in 125 chunks;
// a multiple of 64 so every warp is full on both.
constexpr int THREADS = 256;
constexpr int MAX_WARPS = 32; // 1024 threads (the CUDA limit) over warps of >= 32 lanes



// logits (N,V) any float dtype; targets (N) i32; logp, lse (N) f32. Ignored rows give
// logp = 0 and lse = 0 and are not read.
__global__ void gather_logprobs_kernel(cu_view logits, const int32_t *targets, float *logp,
                                       float *lse, int64_t N, int64_t V, int64_t ignore_index,
                                       cu_faults *faults)
{
    CU_SHARED(float, shared, [MAX_WARPS]);
    for (int64_t n = blockIdx.x; n < N; n += gridDim.x) { // uniform per block
        int32_t id = targets[n];
        if ((int64_t)id == ignore_index) {
            if (threadIdx.x == 0) logp[n] = lse[n] = 0.0f;
            continue; // the whole block: no barrier is left waiting
        }
        int64_t off = n * V;
        float m = -INFINITY, s = 0.0f; // s = sum of exp(x - m) over this thread's share
        for (int64_t v = threadIdx.x; v < V; v += blockDim.x) {
            float x = cu_load(logits, off + v);
            if (x > m) {
                s = s * expf(m - x) + 1.0f; // m = -inf at first: exp(-inf) = 0
                m = x;
            } else if (x != -INFINITY) { // -inf adds 0, and exp(-inf - -inf) would be NaN
                s += expf(x - m);        // a NaN lands here and makes the row NaN, as on the CPU
            }
        }
        float row_max = cu_block_reduce(m, shared, CuMax());
        float row_sum = cu_block_reduce(m == -INFINITY ? 0.0f : s * expf(m - row_max), shared, CuAdd());
        if (threadIdx.x == 0) {
            float l = row_max + logf(row_sum); // a row of -inf: -inf
            bool ok = id >= 0 && id < V; // else a fault, reported by the next synchronization
            if (!ok) cu_fault(faults, CU_FAULT_TARGETS, n, id, V);
            logp[n] = ok ? cu_load(logits, off + id) - l : NAN;
            lse[n] = l;
        }
    }
}

// logits (N,V); targets (N) i32; lse (N) f32; dlogp (N); dlogits (N,V) f32.
__global__ void gather_logprobs_backward_kernel(cu_view logits, const int32_t *targets,
                                                const float *lse, cu_view dlogp, float *dlogits,
                                                int64_t N, int64_t V, int64_t ignore_index,
                                                cu_faults *faults)
{
    for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
        float *row = dlogits + n * V;
        int32_t id = targets[n];
        if ((int64_t)id == ignore_index) {
            for (int64_t v = threadIdx.x; v < V; v += blockDim.x) row[v] = 0.0f;
            continue;
        }
        float g = cu_load(dlogp, n), l = lse[n];
        int64_t off = n * V;
        if (threadIdx.x == 0 && (id < 0 || id >= V))
            cu_fault(faults, CU_FAULT_TARGETS_BACKWARD, n, id, V); // no v equals it below
        for (int64_t v = threadIdx.x; v < V; v += blockDim.x) {
            float d = -g * expf(cu_load(logits, off + v) - l);
            row[v] = v == id ? d + g : d; // the CPU adds g to the target after the row
        }
    }
}

} // namespace

extern "C" {

// in: logits (N,V), targets (N) i32; i[0]: ignore index; out: logp (N) f32, lse (N) f32.
CU_KERNEL(cu_gather_logprobs)
{
    const tensor *logits = c->in[0], *targets = c->in[1];
    int64_t ignore_index = c->p.i[0];
    // N from targets: (N,0) logits have no rows but N targets (all must be ignored).
    int64_t N = tensor_numel(targets), V = logits->ndim ? logits->shape[logits->ndim - 1] : 1;
    if (N == 0) return ASPO_OK;
    CU_LAUNCH(cu_blocks(N, 1), THREADS, 0, gather_logprobs_kernel)(
        cu_view_of(logits, NULL), (const int32_t *)targets->data, (float *)c->out[0]->data,
        (float *)c->out[1]->data, N, V, ignore_index, cu_fault_slots());
    return cu_check_launch("gather_logprobs");
}

// in: logits (N,V), targets (N), lse (N), dlogp (N); i[0]: ignore index; out: dlogits
// (N,V) f32.
CU_KERNEL(cu_gather_logprobs_backward)
{
    const tensor *logits = c->in[0], *targets = c->in[1];
    int64_t ignore_index = c->p.i[0];
    int64_t N = tensor_numel(targets), V = logits->ndim ? logits->shape[logits->ndim - 1] : 1;
    if (V == 0 || N == 0) return ASPO_OK;
    CU_LAUNCH(cu_blocks(N, 1), THREADS, 0, gather_logprobs_backward_kernel)(
        cu_view_of(logits, NULL), (const int32_t *)targets->data, (const float *)c->in[2]->data,
        cu_view_of(c->in[3], NULL), (float *)c->out[0]->data, N, V, ignore_index,
        cu_fault_slots());
    return cu_check_launch("gather_logprobs backward");
}

} // extern "C"
