/* The CUDA backend's behaviour that the op suite does not show, checked on the simt backend
 * (its sources on the CPU; backends/simt) through the tensor layer:
 *   - embedding and the log-prob gather (forward and backward) check their ids on the device:
 *     the ops queue their kernels without waiting for the host, and a bad id is an error of
 *     the next synchronization that names the op and the row;
 *   - the memory pool keeps freed memory (release threshold at its maximum), and the backend
 *     reports what it holds;
 *   - attention at head size 128 takes the tiles that let two blocks share a multiprocessor
 *     (64 x 32, 77 KiB) on a card with H100's 228 KiB, not 64 x 64 (117 KiB, one block).
 * ctest runs it with ASPO_SIMT_SHARED_OPTIN=227 (H100's opt-in limit). */
#include <stdlib.h>
#include <string.h>

#include "backends/simt/simt_runtime.h"
#include "backends/registry.h"
#include "check.h"
#include "tensor/autograd.h"
#include "tensor/runtime.h"
#include "tensor/tensor_ops.h"

static tensor *uniform(int64_t n, float scale)
{
    float *v = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) v[i] = scale * (float)((i * 37 % 101) - 50) / 50.0f;
    tensor *t = tensor_from_host(DT_F32, DIMS(n), v);
    free(v);
    return t;
}

static void check_ids_on_device(void)
{
    enum { V = 50, C = 8, N = 10 };
    int32_t ids[N], targets[N];
    for (int i = 0; i < N; i++) ids[i] = (i * 7) % V, targets[i] = (i * 13) % V;
    tensor *table = tensor_reshape(uniform(V * C, 1.0f), DIMS(V, C));
    tensor *id = tensor_from_host(DT_I32, DIMS(N), ids);
    tensor *logits = tensor_reshape(uniform(N * V, 3.0f), DIMS(N, V));
    logits->requires_grad = true;
    tensor *target = tensor_from_host(DT_I32, DIMS(N), targets);
    unsigned long before = simt_host_waits();
    tensor *x = tensor_embedding(table, id);
    tensor *logp = tensor_gather_logprobs(logits, target, -100);
    tensor *loss = tensor_sum_all(tensor_add(tensor_sum_all(x), tensor_sum_all(logp)));
    aspo_status s = loss ? tensor_backward(loss) : ASPO_ERR_USAGE;
    CHECK(s == ASPO_OK, "ops: %s", aspo_error_message());
    CHECK(simt_host_waits() == before, "embedding and gather_logprobs (forward, backward) waited "
          "for the host %lu times; their ids are checked on the device", simt_host_waits() - before);
    float got = 0;
    CHECK(tensor_to_host_f32(loss, &got) == ASPO_OK, "loss: %s", aspo_error_message());
    runtime_step_reset();

    /* A target past the vocabulary: the op queues, the next synchronization names it. */
    logits = tensor_reshape(uniform(N * V, 3.0f), DIMS(N, V));
    targets[6] = V + 3;
    target = tensor_from_host(DT_I32, DIMS(N), targets);
    logp = tensor_gather_logprobs(logits, target, -100);
    CHECK(logp != NULL, "a bad target fails at the next synchronization, not in the op: %s",
          aspo_error_message());
    float out[N];
    s = logp ? tensor_to_host_f32(logp, out) : ASPO_OK;
    const char *msg = aspo_error_message();
    CHECK(s == ASPO_ERR_USAGE && strstr(msg, "gather_logprobs") && strstr(msg, "target 53") &&
              strstr(msg, "at row 6") && strstr(msg, "[0, 50)"),
          "bad target: status %d: %s", (int)s, msg);
    aspo_error_clear();
    /* Reported once: the device works on. */
    targets[6] = 1;
    target = tensor_from_host(DT_I32, DIMS(N), targets);
    logp = tensor_gather_logprobs(logits, target, -100);
    CHECK(logp && tensor_to_host_f32(logp, out) == ASPO_OK, "after the report: %s",
          aspo_error_message());
    runtime_step_reset();
}

static void check_pool(backend *be)
{
    /* 64 MiB freed and synchronized: kept by the pool, not returned to the device. */
    void *p = be->alloc(be, 64 << 20);
    CHECK(p != NULL, "64 MiB");
    be->free(be, p);
    CHECK(be->synchronize(be) == ASPO_OK, "synchronize: %s", aspo_error_message());
    cudaMemPool_t pool;
    uint64_t reserved = 0, used = 0;
    CHECK(cudaDeviceGetDefaultMemPool(&pool, 0) == cudaSuccess &&
              cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReservedMemCurrent, &reserved) ==
                  cudaSuccess &&
              cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemCurrent, &used) == cudaSuccess &&
              reserved - used >= (64 << 20),
          "the pool keeps freed memory past a synchronization: %llu bytes reserved, %llu used",
          (unsigned long long)reserved, (unsigned long long)used);
    CHECK(be->reserved_peak && be->reserved_peak(be) >= (64 << 20),
          "the backend reports the pool's peak: %zu", be->reserved_peak ? be->reserved_peak(be) : 0);
}

static void check_attention_tiles(void)
{
    enum { B = 1, H = 2, T = 5, D = 128 };
    tensor *q = tensor_reshape(uniform(B * H * T * D, 0.5f), DIMS(B, H, T, D));
    tensor *o = tensor_attention(q, q, q, NULL, true, 0.0884f);
    float host[B * H * T * D];
    CHECK(o && tensor_to_host_f32(o, host) == ASPO_OK, "attention: %s", aspo_error_message());
    const char *want = "attention_forward<128, 64, 32>";
    bool found = false;
    for (int back = 0; back < 8 && simt_launch_name(back); back++)
        found = found || strcmp(simt_launch_name(back), want) == 0;
    CHECK(found, "head size 128 on a 228 KiB multiprocessor launches %s (two blocks fit), "
          "last launches: %s, %s", want, simt_launch_name(0) ? simt_launch_name(0) : "-",
          simt_launch_name(1) ? simt_launch_name(1) : "-");
    runtime_step_reset();
}

int main(void)
{
    backend *be = backend_get("simt");
    CHECK(be != NULL, "backend simt: %s", aspo_error_message());
    if (!be || runtime_init(be, 0)) return check_summary("simt_backend");
    check_ids_on_device();
    check_pool(be);
    check_attention_tiles();
    runtime_shutdown();
    return check_summary("simt_backend");
}
