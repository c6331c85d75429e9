/* A backend is a small vtable: memory, copies, synchronisation and one kernel slot per op.
 * An empty slot is an error naming the op and the backend, never a silent fallback. */
#ifndef ASPO_BACKEND_H
#define ASPO_BACKEND_H

#include <stddef.h>

#include "error.h"
#include "ops.h"

#ifdef __cplusplus
extern "C" { /* the CUDA/HIP kernels include this header too */
#endif

typedef aspo_status (*kernel_fn)(const op_call *call);

/* What a backend is, for the layers above (they ask these, never its name). */
enum backend_caps {
    BACKEND_COMPUTE = 1,          /* runs ops; the plan backend only counts bytes */
    BACKEND_HALF_ACTIVATIONS = 2, /* a GPU: activations default to the frozen weights' half
                                     dtype, as PyTorch's autocast on CUDA */
};

/* A backend instance keeps its state (device handles, streams, caches) behind `impl`; a
 * kernel reaches its instance through its tensors (call->out[0]->be). */
typedef struct backend {
    const char *name;
    unsigned caps; /* enum backend_caps, set by the registry (backends/registry.c) */
    /* Device name and memory; used for reports and out-of-memory messages. */
    aspo_status (*device_info)(struct backend *be, char *name, size_t name_size,
                               size_t *total_bytes, size_t *free_bytes);
    void *(*alloc)(struct backend *be, size_t bytes); /* NULL when the device is full */
    void (*free)(struct backend *be, void *ptr);
    aspo_status (*upload)(struct backend *be, void *dst, const void *src, size_t bytes);
    aspo_status (*download)(struct backend *be, void *dst, const void *src, size_t bytes);
    aspo_status (*synchronize)(struct backend *be);
    /* The most device memory the backend's allocator has held, allocations and freed memory
     * it keeps for reuse together (CUDA's memory pool); NULL when that is the live peak. */
    size_t (*reserved_peak)(struct backend *be);
    kernel_fn kernels[OP_COUNT];
    long calls[OP_COUNT]; /* kernel calls per op so far (the op suite checks every op ran) */
    void *impl;
    /* Set by backend_counted: alloc and free above then count bytes (see backend_memory
     * below) around the backend's own functions, kept here. */
    void *(*uncounted_alloc)(struct backend *be, size_t bytes);
    void (*uncounted_free)(struct backend *be, void *ptr);
    struct backend_counter *counter;
} backend;

/* Device memory through the vtable: everything alloc handed out (parameters, gradients,
 * optimizer state, arena chunks) and free took back, in the bytes asked for. A backend's
 * own scratch memory outside alloc (cpu_scratch, Vulkan's and CUDA's scratch) is not in it.
 * Copies of a counted backend struct count into the same totals. */
typedef struct backend_memory {
    size_t live;      /* allocated now */
    size_t peak;      /* the most live at once since the last backend_memory_reset_peak */
    long allocations; /* alloc calls that succeeded, ever */
} backend_memory;

/* A backend instance: a copy of `vtable` with `state_bytes` of zeroed state behind its impl,
 * allocated together; NULL with an out-of-memory error naming the backend. free() releases
 * both. */
backend *backend_instance_new(const backend *vtable, size_t state_bytes);
/* be with its alloc and free counting bytes (once; be is returned as it was when there is no
 * host memory for the counter). The registry (backends/registry.c) counts every backend it
 * hands out. */
backend *backend_counted(backend *be);
/* All zeros for a backend that does not count (one not from backend_get/backend_cpu). */
backend_memory backend_memory_stats(const backend *be);
/* Starts a new peak at the bytes live now (e.g. at the start of a run). */
void backend_memory_reset_peak(backend *be);

#ifdef __cplusplus
}
#endif

#endif
