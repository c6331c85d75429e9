/* Uploads through pinned (page-locked) staging memory, so they never hold the host up.
 *
 * cudaMemcpyAsync from pageable memory may wait for the stream before it stages the bytes,
 * which stalls the host mid-step while the GPU drains (the batch's ids, masks, RoPE tables
 * and the per-token loss gradients are uploaded between kernels). Here the bytes are copied
 * into a pinned ring and the device copy is queued on the stream; the host goes on at
 * once. The ring has two halves: uploads fill one half; when it is full an event marks its
 * last copy and the other half is taken after waiting for that half's event, recorded one
 * half-ring of uploads earlier (long done in a training step). An upload larger than a half
 * (weights at load time) is copied straight from the caller's memory: at load the host has
 * nothing else to do. */
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"

enum { STAGING_HALF = 16 << 20 }; /* bytes per half: a step's uploads are far smaller */

/* The ring, part of the backend instance's state (cu_state.staging). */
struct cu_staging {
    char *ring; /* 2 * STAGING_HALF pinned bytes */
    cudaEvent_t done[2];
    int half;     /* the half being filled */
    size_t used;  /* bytes of it handed out */
    int recorded[2];
};

/* The instance's ring, made on the first staged upload. */
static aspo_status staging_of(struct cu_staging **out)
{
    cu_state *state = cu_state_of_process();
    if (state->staging) {
        *out = state->staging;
        return ASPO_OK;
    }
    struct cu_staging *st = calloc(1, sizeof *st);
    if (!st) return aspo_fail(ASPO_ERR_OOM, "upload staging: no host memory");
    void *p = NULL;
    aspo_status s = cu_check(cudaHostAlloc(&p, 2 * (size_t)STAGING_HALF, cudaHostAllocDefault),
                             "cudaHostAlloc (upload staging)");
    for (int i = 0; i < 2 && !s; i++)
        s = cu_check(cudaEventCreateWithFlags(&st->done[i], cudaEventDisableTiming),
                     "cudaEventCreateWithFlags (upload staging)");
    if (s) {
        free(st);
        return s;
    }
    st->ring = p;
    *out = state->staging = st;
    return ASPO_OK;
}

/* Room for `bytes` in the current half, switching halves when it is full. */
static aspo_status staging_take(struct cu_staging *st, size_t bytes, char **at)
{
    if (st->used + bytes > STAGING_HALF) {
        aspo_status s = cu_check(cudaEventRecord(st->done[st->half], cu_stream()),
                                 "cudaEventRecord (upload staging)");
        if (s) return s;
        st->recorded[st->half] = 1;
        st->half ^= 1;
        st->used = 0;
        if (st->recorded[st->half] &&
            (s = cu_check(cudaEventSynchronize(st->done[st->half]),
                          "cudaEventSynchronize (upload staging)")))
            return s;
    }
    *at = st->ring + (size_t)st->half * STAGING_HALF + st->used;
    st->used += (bytes + 255) & ~(size_t)255; /* each upload starts 256-byte aligned */
    return ASPO_OK;
}

aspo_status cu_upload(void *dst, const void *src, size_t bytes)
{
    if (!bytes) return ASPO_OK;
    if (bytes > STAGING_HALF)
        return cu_check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, cu_stream()),
                        "cudaMemcpyAsync (upload)");
    char *pinned = NULL;
    struct cu_staging *st = NULL;
    aspo_status s = staging_of(&st);
    if (!s) s = staging_take(st, bytes, &pinned);
    if (s) return s;
    memcpy(pinned, src, bytes);
    return cu_check(cudaMemcpyAsync(dst, pinned, bytes, cudaMemcpyHostToDevice, cu_stream()),
                    "cudaMemcpyAsync (staged upload)");
}
