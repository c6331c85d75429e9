/* A bump allocator over backend buffers. Everything a training step creates (activations,
 * tape nodes, gradients of non-parameters) comes from arenas that are reset after the
 * optimizer step, so steady-state steps make no heap allocations. The arena grows by
 * chunks during the first steps; on reset the chunks are merged into one of the step's
 * peak. Within a step it is a stack: arena_release frees everything allocated after a
 * mark (a decoder layer's intermediates once its output is copied out). */
#ifndef ASPO_ARENA_H
#define ASPO_ARENA_H

#include <stdbool.h>
#include <stddef.h>

#include "backend.h"

typedef struct arena_chunk {
    char *base;
    size_t size, used;
} arena_chunk;

enum { ARENA_MAX_CHUNKS = 1024, ARENA_GUARD = 256, ARENA_MAX_GUARDED = 4096 };

typedef struct arena {
    const char *name;  /* "activations", "tape": used in messages */
    backend *be;       /* NULL: host memory from malloc */
    size_t limit;      /* 0: no limit other than the device's */
    size_t used, peak; /* bytes handed out now, and the most ever */
    size_t step_peak;  /* the most handed out since the last reset: the merged chunk's size */
    size_t chunk_default;
    int n_chunks;      /* allocations bump through the last chunk; earlier ones are full */
    arena_chunk *chunks; /* (ARENA_MAX_CHUNKS), allocated with the first chunk */
    long heap_allocations; /* chunk allocations ever made: a test watches this stay flat */
    /* Tests turn guards on: each allocation is followed by ARENA_GUARD sentinel bytes that
     * arena_check_guards verifies, catching kernels that write past their output. */
    bool guards;
    int n_guarded;
    char *guarded[ARENA_MAX_GUARDED];
} arena;

void arena_init(arena *a, const char *name, backend *be, size_t limit);
/* 64-byte aligned. NULL with an ASPO_ERR_OOM message naming the request and what is left. */
void *arena_alloc(arena *a, size_t bytes);
void arena_reset(arena *a);

/* Where the arena stands now; arena_release(a, m) frees everything allocated after it.
 * Chunks made since the mark go back to the device. */
typedef struct arena_mark {
    int n_chunks;
    size_t chunk_used, used;
    int n_guarded;
} arena_mark;
arena_mark arena_mark_now(const arena *a);
void arena_release(arena *a, arena_mark m);
/* ASPO_OK, or an error naming the first allocation whose guard bytes were overwritten. */
aspo_status arena_check_guards(arena *a);
void arena_free(arena *a);

#endif
