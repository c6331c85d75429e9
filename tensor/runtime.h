/* The runtime: which backend ops run on, the step arenas, and whether the tape records.
 * One runtime per process (ops are eager and read it implicitly, so model code has no
 * context argument); kernels parallelise inside, callers do not share it across threads. */
#ifndef ASPO_RUNTIME_H
#define ASPO_RUNTIME_H

#include <stdbool.h>
#include <stdint.h>

#include "arena.h"
#include "backend.h"

typedef struct runtime {
    backend *be;
    arena data;  /* tensor elements, on the backend */
    arena host;  /* tensor headers and tape nodes, in host memory */
    bool grad_enabled;
    struct tape_node *tape; /* newest node; nodes link to the previous one */
    long tape_length;
    uint64_t rng_seed, rng_counter; /* dropout masks: Philox keyed by seed, counter-based */
} runtime;

/* data_limit: bytes the step arena may hold on the device (0 = until the device is full). */
aspo_status runtime_init(backend *be, size_t data_limit);
void runtime_shutdown(void);
runtime *runtime_current(void);
backend *runtime_backend(void);
/* Ends a step: drops the tape and every step tensor (non-parameter gradients included). */
void runtime_step_reset(void);
/* A point in the step arenas. runtime_release(m) frees every step tensor (header and
 * data) made after m: for scopes whose results were copied into tensors made before m and
 * that left nothing on the tape (tensor_run_scoped, tensor_checkpoint). */
typedef struct step_mark {
    arena_mark data, host;
    struct tape_node *tape;
} step_mark;
step_mark runtime_mark(void);
void runtime_release(step_mark m);
/* Peak bytes of the step arenas since init. */
size_t runtime_peak_data_bytes(void);
size_t runtime_peak_host_bytes(void);
/* Chunk allocations made by both arenas so far (flat in steady state). */
long runtime_heap_allocations(void);

/* Dropout draws counters from here; checkpointing and resume save and restore them. */
void runtime_set_seed(uint64_t seed);
/* Reserves n random counters and returns the first. */
uint64_t runtime_rng_take(uint64_t n);

/* Returns the previous setting, for `bool prev = autograd_set_enabled(false); ...
 * autograd_set_enabled(prev);` no-grad scopes. */
bool autograd_set_enabled(bool enabled);
bool autograd_enabled(void);

#endif
