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

typedef struct backend {
    const char *name;
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
    void *impl;
    /* Set by backend_get and backend_cpu: alloc and free above then count bytes (see
     * backend_memory below) around the backend's own functions, kept here. */
    void *(*uncounted_alloc)(struct backend *be, size_t bytes);
    void (*uncounted_free)(struct backend *be, void *ptr);
    struct backend_counter *counter;
} backend;

/* "cpu" (always), "vulkan", "cuda", "hip" when compiled in. Unknown or not built: NULL
 * with an error that lists what this binary has. "plan" (backends/plan: counts bytes,
 * holds no data, computes nothing) is always there but is not a compute backend, so
 * backend_list leaves it out. */
backend *backend_get(const char *name);
/* Comma-separated names of the backends compiled into this binary. */
const char *backend_list(void);

backend *backend_cpu(void);

/* Device memory through the vtable: everything alloc handed out (parameters, gradients,
 * optimizer state, arena chunks) and free took back, in the bytes asked for. A backend's
 * own scratch memory outside alloc (cpu_scratch, Vulkan's and CUDA's scratch) is not in it.
 * Copies of a counted backend struct count into the same totals. */
typedef struct backend_memory {
    size_t live;      /* allocated now */
    size_t peak;      /* the most live at once since the last backend_memory_reset_peak */
    long allocations; /* alloc calls that succeeded, ever */
} backend_memory;

/* All zeros for a backend that does not count (one not from backend_get/backend_cpu). */
backend_memory backend_memory_stats(const backend *be);
/* Starts a new peak at the bytes live now (e.g. at the start of a run). */
void backend_memory_reset_peak(backend *be);

#ifdef __cplusplus
}
#endif

#endif
