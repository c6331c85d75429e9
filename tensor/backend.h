/* A backend is a small vtable: memory, copies, synchronisation and one kernel slot per op.
 * An empty slot is an error naming the op and the backend, never a silent fallback. */
#ifndef ASPO_BACKEND_H
#define ASPO_BACKEND_H

#include <stddef.h>

#include "error.h"
#include "ops.h"

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
    kernel_fn kernels[OP_COUNT];
    void *impl;
} backend;

/* "cpu" (always), "vulkan", "cuda", "hip" when compiled in. Unknown or not built: NULL
 * with an error that lists what this binary has. */
backend *backend_get(const char *name);
/* Comma-separated names of the backends compiled into this binary. */
const char *backend_list(void);

backend *backend_cpu(void);

#endif
