// Embedding lookup and its scatter-add backward; the semantics of backends/cpu/
// cpu_embedding.c, the decomposition of backends/vulkan/vk_ops_embedding.c and
// shaders/embedding.comp. Inputs are contiguous (op table flag); the table may be any
// float dtype, the output and dtable are f32.
//
// The forward checks ids on the device: a bad one is the user's mistake, reported by the
// next synchronization with its position (cuda_internal.h's faults), never read out of
// bounds, and the op does not wait for the host. The backward reads the ids back to the
// host: it groups token positions by id (a stable counting sort, so each dtable row adds
// its tokens in the CPU's order) and uploads that, so one thread owns each dtable element:
// no atomics, the CPU's sums bit for bit. (It runs only when the embedding table trains,
// never under LoRA.)
//
// Verified: compiles -Wall -Wextra clean with nvcc (CUDA 13) for sm_80, sm_89 and sm_90.
// Both kernels ran, outside the repo, under the HIP-CPU runtime (the HIP API emulated on
// the CPU): the forward equal to the table rows (f32, bf16, f16 tables, ids of 1-3 dims,
// none), the backward equal bit for bit to the CPU's sums with repeated ids, and a bad id
// refused by both with op_check_ids' message.
// Not verified: never run on a GPU (none on the build machine); scripts/gpu-check.sh runs
// tests/ops/test_ops --backend cuda against the CPU for cu_embedding and
// cu_embedding_backward (forward and backward cases, NMSE).
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "../../tensor/op_checks.h"
#include "cuda_common.cuh"

namespace {

constexpr int THREADS = 256; // one thread per output element: any multiple of the warp size

// A contiguous tensor as a (rows, cols) view: ne {1,1,rows,cols}.
cu_view rows_view(const tensor *t, int64_t rows, int64_t cols)
{
    cu_view v = cu_view_of(t, NULL);
    v.ne[0] = v.ne[1] = 1;
    v.ne[2] = rows;
    v.ne[3] = cols;
    v.st[0] = v.st[1] = 0;
    v.st[2] = cols;
    v.st[3] = 1;
    return v;
}

// out (N,C) f32 = table[ids[n], :] (table (V,C) of any float dtype), one thread per output
// element: consecutive threads read consecutive columns of one table row. An id outside
// [0,V) reads nothing: its row is zeros and it is a fault, reported by the next
// synchronization (cuda_internal.h).
__global__ void embedding_kernel(cu_view table, const int32_t *ids, float *out, int64_t N,
                                 int64_t C, int64_t V, cu_faults *faults)
{
    CU_FOR(e, N * C)
    {
        int64_t n = e / C, j = e % C, id = ids[n];
        bool ok = id >= 0 && id < V;
        if (!ok && j == 0) cu_fault(faults, CU_FAULT_EMBEDDING, n, (int32_t)id, V);
        out[e] = ok ? cu_load(table, id * table.st[2] + j * table.st[3]) : 0.0f;
    }
}

// dtable (V,C) f32, overwritten: row v sums dy (N,C) over the tokens whose id is v, walking
// csr = start (V+1) then token positions (N) grouped by id in token order. One thread per
// dtable element, so the additions run in the CPU's order (0 + dy[n1] + dy[n2] + ...).
__global__ void embedding_backward_kernel(cu_view dy, const int32_t *csr, float *dtable,
                                          int64_t V, int64_t C)
{
    const int32_t *tokens = csr + V + 1;
    CU_FOR(e, V * C)
    {
        int64_t v = e / C, j = e % C;
        float s = 0.0f;
        for (int32_t t = csr[v]; t < csr[v + 1]; t++)
            s += cu_load(dy, (int64_t)tokens[t] * dy.st[2] + j * dy.st[3]);
        dtable[e] = s;
    }
}

// ids' N elements (i32) copied to host memory the caller frees, checked against [0,V).
// Returns with the stream idle.
aspo_status host_ids(const char *op, const tensor *ids, int64_t V, int32_t **out)
{
    int64_t N = tensor_numel(ids);
    int32_t *id = (int32_t *)malloc(sizeof(int32_t) * (size_t)(N ? N : 1));
    if (!id)
        return aspo_fail(ASPO_ERR_OOM, "%s on backend cuda: no host memory for %" PRId64 " ids",
                         op, N);
    aspo_status s = N ? cu_check(cudaMemcpyAsync(id, ids->data, sizeof(int32_t) * (size_t)N,
                                                 cudaMemcpyDeviceToHost, cu_stream()),
                                 "cudaMemcpyAsync (embedding ids)")
                      : ASPO_OK;
    // Also when N == 0: the backward's host buffer is reused only after this wait.
    if (!s) s = cu_check(cudaStreamSynchronize(cu_stream()), "cudaStreamSynchronize");
    if (!s) s = op_check_ids(ids, id, V);
    if (s) {
        free(id);
        return s;
    }
    *out = id;
    return ASPO_OK;
}

} // namespace

extern "C" {

// in: table (V,C), ids (...) i32; out: (...,C) f32.
CU_KERNEL(cu_embedding)
{
    const tensor *table = c->in[0], *ids = c->in[1];
    int64_t V = table->shape[0], C = table->shape[1], N = tensor_numel(ids);
    if (N * C == 0) return ASPO_OK;
    CU_LAUNCH(cu_blocks(N * C, THREADS), THREADS, 0, embedding_kernel)(
        rows_view(table, V, C), (const int32_t *)ids->data, (float *)c->out[0]->data, N, C, V,
        cu_fault_slots());
    return cu_check_launch("embedding");
}

// in: ids (...) i32, dy (...,C); out: dtable (V,C) f32, overwritten.
CU_KERNEL(cu_embedding_backward)
{
    const tensor *ids = c->in[0], *dy = c->in[1];
    tensor *dtable = c->out[0];
    int64_t V = dtable->shape[0], C = dtable->shape[1], N = tensor_numel(ids);
    if (N > INT32_MAX - 1 || V > INT32_MAX - 1)
        return aspo_fail(ASPO_ERR_UNSUPPORTED, "embedding backward on backend cuda: %" PRId64
                         " tokens over %" PRId64 " rows exceed the 32-bit token positions",
                         N, V);
    int32_t *id = NULL;
    aspo_status s = host_ids("embedding backward", ids, V, &id);
    if (s || V * C == 0) {
        if (!s) free(id);
        return s;
    }
    // csr = start (V+1), then token positions (N) grouped by id, in token order. The host
    // copy is kept (cu_state.csr): its upload is asynchronous, and host_ids waited for the
    // stream (so for the previous call's upload) before it is written again.
    cu_state *st = cu_state_of_process();
    size_t bytes = sizeof(int32_t) * (size_t)(V + 1 + N);
    if (bytes > st->csr_bytes) {
        free(st->csr);
        st->csr_bytes = 0;
        if (!(st->csr = (int32_t *)malloc(bytes))) {
            free(id);
            return aspo_fail(ASPO_ERR_OOM, "embedding backward on backend cuda: no host memory "
                             "for %" PRId64 " token positions", N);
        }
        st->csr_bytes = bytes;
    }
    int32_t *csr = st->csr, *start = csr, *tokens = csr + V + 1;
    memset(start, 0, sizeof(int32_t) * (size_t)(V + 1));
    for (int64_t n = 0; n < N; n++) start[id[n] + 1]++;
    for (int64_t v = 0; v < V; v++) start[v + 1] += start[v];
    for (int64_t n = 0; n < N; n++) tokens[start[id[n]]++] = (int32_t)n;
    for (int64_t v = V; v > 0; v--) start[v] = start[v - 1]; // the fill moved each start
    start[0] = 0;
    free(id);
    int32_t *csr_device = (int32_t *)cu_scratch(bytes); // stream-ordered
    if (!csr_device)
        return aspo_fail(ASPO_ERR_OOM, "embedding backward on backend cuda: no device memory "
                         "for %zu bytes of token positions", bytes);
    s = cu_check(cudaMemcpyAsync(csr_device, csr, bytes, cudaMemcpyHostToDevice, cu_stream()),
                 "cudaMemcpyAsync (embedding token positions)");
    if (s) return s;
    CU_LAUNCH(cu_blocks(V * C, THREADS), THREADS, 0, embedding_backward_kernel)(
        rows_view(dy, N, C), csr_device, (float *)dtable->data, V, C);
    return cu_check_launch("embedding backward");
}

} // extern "C"
