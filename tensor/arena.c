#include "arena.h"

#include <stdlib.h>
#include <string.h>

enum { ARENA_ALIGN = 64 };

static size_t align_up(size_t n) { return (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1); }

void arena_init(arena *a, const char *name, backend *be, size_t limit)
{
    memset(a, 0, sizeof *a);
    a->name = name;
    a->be = be;
    a->limit = limit;
    a->chunk_default = (size_t)64 << 20;
}

static void *raw_alloc(arena *a, size_t bytes)
{
    if (a->be) return a->be->alloc(a->be, bytes);
    return aligned_alloc(ARENA_ALIGN, align_up(bytes));
}

static void raw_free(arena *a, void *p)
{
    if (!p) return;
    if (a->be) a->be->free(a->be, p);
    else free(p);
}

static size_t capacity(const arena *a)
{
    size_t total = 0;
    for (int i = 0; i < a->n_chunks; i++) total += a->chunks[i].size;
    return total;
}

static void *fail_oom(arena *a, size_t bytes, const char *why)
{
    size_t left = a->limit > a->used ? a->limit - a->used : 0;
    if (a->limit)
        aspo_fail(ASPO_ERR_OOM, "%s arena: request of %zu bytes with %zu of %zu bytes left (%s)",
                  a->name, bytes, left, a->limit, why);
    else
        aspo_fail(ASPO_ERR_OOM, "%s arena: request of %zu bytes with %zu bytes in use (%s)",
                  a->name, bytes, a->used, why);
    return NULL;
}

static const unsigned char GUARD_BYTE = 0xA5;

static void *alloc_bytes(arena *a, size_t bytes);

void *arena_alloc(arena *a, size_t bytes)
{
    if (!a->guards) return alloc_bytes(a, bytes);
    char *p = alloc_bytes(a, align_up(bytes ? bytes : 1) + ARENA_GUARD);
    if (!p) return NULL;
    unsigned char guard[ARENA_GUARD];
    memset(guard, GUARD_BYTE, sizeof guard);
    char *g = p + align_up(bytes ? bytes : 1);
    if (a->be) a->be->upload(a->be, g, guard, sizeof guard);
    else memcpy(g, guard, sizeof guard);
    if (a->n_guarded < ARENA_MAX_GUARDED) a->guarded[a->n_guarded++] = g;
    return p;
}

aspo_status arena_check_guards(arena *a)
{
    unsigned char guard[ARENA_GUARD];
    for (int i = 0; i < a->n_guarded; i++) {
        if (a->be) a->be->download(a->be, guard, a->guarded[i], sizeof guard);
        else memcpy(guard, a->guarded[i], sizeof guard);
        for (int k = 0; k < ARENA_GUARD; k++)
            if (guard[k] != GUARD_BYTE)
                return aspo_fail(ASPO_ERR_USAGE,
                                 "%s arena: allocation %d was overrun (guard byte %d changed)",
                                 a->name, i, k);
    }
    return ASPO_OK;
}

static void note_used(arena *a, size_t need)
{
    a->used += need;
    if (a->used > a->peak) a->peak = a->used;
    if (a->used > a->step_peak) a->step_peak = a->used;
}

static void *alloc_bytes(arena *a, size_t bytes)
{
    size_t need = align_up(bytes ? bytes : 1);
    if (a->limit && a->used + need > a->limit) return fail_oom(a, bytes, "arena limit reached");
    /* Bump through the last chunk; earlier chunks are full (a stack: see arena_release). */
    if (a->n_chunks) {
        arena_chunk *c = &a->chunks[a->n_chunks - 1];
        if (c->size - c->used >= need) {
            void *p = c->base + c->used;
            c->used += need;
            note_used(a, need);
            return p;
        }
    }
    if (!a->chunks && !(a->chunks = calloc(ARENA_MAX_CHUNKS, sizeof *a->chunks)))
        return fail_oom(a, bytes, "no host memory for the chunk table");
    if (a->n_chunks == ARENA_MAX_CHUNKS) return fail_oom(a, bytes, "too many chunks");
    size_t size = need > a->chunk_default ? need : a->chunk_default;
    if (a->limit && size > a->limit - capacity(a) && a->limit > capacity(a))
        size = need > a->limit - capacity(a) ? need : a->limit - capacity(a);
    char *base = raw_alloc(a, size);
    if (!base) return fail_oom(a, bytes, "the device could not provide a new chunk");
    a->heap_allocations++;
    arena_chunk *c = &a->chunks[a->n_chunks++];
    c->base = base;
    c->size = size;
    c->used = need;
    note_used(a, need);
    return base;
}

arena_mark arena_mark_now(const arena *a)
{
    return (arena_mark){.n_chunks = a->n_chunks,
                        .chunk_used = a->n_chunks ? a->chunks[a->n_chunks - 1].used : 0,
                        .used = a->used, .n_guarded = a->n_guarded};
}

void arena_release(arena *a, arena_mark m)
{
    ASPO_ASSERT(m.n_chunks <= a->n_chunks && m.used <= a->used);
    /* Chunks made after the mark go back now: the first steps grow by chunks, and a scope
     * that needed one need not hold it while the next scope asks for a different size. */
    while (a->n_chunks > m.n_chunks) raw_free(a, a->chunks[--a->n_chunks].base);
    if (a->n_chunks) a->chunks[a->n_chunks - 1].used = m.chunk_used;
    a->used = m.used;
    a->n_guarded = m.n_guarded;
}

void arena_reset(arena *a)
{
    /* Several chunks, or one smaller than the step's peak (chunks made and released within
     * the step), mean the arena grew this step: replace them by one chunk of the step's
     * peak, which holds the same sequence of allocations and releases in one buffer. */
    if (a->n_chunks > 1 || (a->n_chunks == 1 && a->chunks[0].size < a->step_peak)) {
        size_t total = align_up(a->step_peak);
        for (int i = 0; i < a->n_chunks; i++) raw_free(a, a->chunks[i].base);
        a->n_chunks = 0;
        char *base = raw_alloc(a, total);
        if (base) {
            a->heap_allocations++;
            a->chunks[0] = (arena_chunk){base, total, 0};
            a->n_chunks = 1;
        }
    }
    for (int i = 0; i < a->n_chunks; i++) a->chunks[i].used = 0;
    a->used = 0;
    a->step_peak = 0;
    a->n_guarded = 0;
}

void arena_free(arena *a)
{
    for (int i = 0; i < a->n_chunks; i++) raw_free(a, a->chunks[i].base);
    free(a->chunks);
    a->chunks = NULL;
    a->n_chunks = 0;
    a->used = 0;
}
