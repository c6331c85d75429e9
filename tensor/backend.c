#include "backend.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>


/* ---- byte counting around alloc/free ---- */

/* Live allocations by address (open addressing, linear probing), so free knows the size. */
typedef struct counted_slot {
    void *ptr; /* NULL: empty */
    size_t bytes;
} counted_slot;

typedef struct backend_counter {
    pthread_mutex_t lock;
    backend_memory m;
    counted_slot *slots;
    size_t cap, n; /* cap a power of two, n <= cap / 2 */
} backend_counter;

static size_t slot_of(const backend_counter *c, const void *p)
{
    uint64_t h = (uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15ull; /* Fibonacci hashing */
    return (size_t)(h >> 17) & (c->cap - 1);
}

static bool table_grow(backend_counter *c)
{
    size_t cap = c->cap ? c->cap * 2 : 256;
    counted_slot *old = c->slots, *slots = calloc(cap, sizeof *slots);
    if (!slots) return false;
    size_t old_cap = c->cap;
    c->slots = slots;
    c->cap = cap;
    for (size_t i = 0; i < old_cap; i++) {
        if (!old[i].ptr) continue;
        size_t j = slot_of(c, old[i].ptr);
        while (slots[j].ptr) j = (j + 1) & (cap - 1);
        slots[j] = old[i];
    }
    free(old);
    return true;
}

/* Removes p; returns its size, or SIZE_MAX when it was not counted. */
static size_t table_take(backend_counter *c, const void *p)
{
    if (!c->cap) return SIZE_MAX;
    size_t i = slot_of(c, p);
    while (c->slots[i].ptr && c->slots[i].ptr != p) i = (i + 1) & (c->cap - 1);
    if (!c->slots[i].ptr) return SIZE_MAX;
    size_t bytes = c->slots[i].bytes;
    /* Backward-shift deletion keeps every probe chain unbroken without tombstones. */
    size_t hole = i;
    for (size_t j = (i + 1) & (c->cap - 1); c->slots[j].ptr; j = (j + 1) & (c->cap - 1)) {
        size_t home = slot_of(c, c->slots[j].ptr);
        bool movable = hole <= j ? (home <= hole || home > j) : (home <= hole && home > j);
        if (movable) {
            c->slots[hole] = c->slots[j];
            hole = j;
        }
    }
    c->slots[hole].ptr = NULL;
    c->n--;
    return bytes;
}

static void *counted_alloc(backend *be, size_t bytes)
{
    void *p = be->uncounted_alloc(be, bytes);
    if (!p) return NULL;
    backend_counter *c = be->counter;
    pthread_mutex_lock(&c->lock);
    /* Out of host memory for the table: the allocation stands, uncounted. */
    if (2 * (c->n + 1) <= c->cap || table_grow(c)) {
        size_t i = slot_of(c, p);
        while (c->slots[i].ptr) i = (i + 1) & (c->cap - 1);
        c->slots[i] = (counted_slot){p, bytes};
        c->n++;
        c->m.live += bytes;
        if (c->m.live > c->m.peak) c->m.peak = c->m.live;
        c->m.allocations++;
    }
    pthread_mutex_unlock(&c->lock);
    return p;
}

static void counted_free(backend *be, void *p)
{
    if (p) {
        backend_counter *c = be->counter;
        pthread_mutex_lock(&c->lock);
        size_t bytes = table_take(c, p);
        if (bytes != SIZE_MAX) c->m.live -= bytes;
        pthread_mutex_unlock(&c->lock);
    }
    be->uncounted_free(be, p);
}

backend *backend_instance_new(const backend *vtable, size_t state_bytes)
{
    size_t head = (sizeof *vtable + 63) & ~(size_t)63; /* the state starts cache-line aligned */
    char *m = calloc(1, head + state_bytes);
    if (!m) {
        aspo_fail(ASPO_ERR_OOM, "--backend %s: no host memory for the backend", vtable->name);
        return NULL;
    }
    backend *be = (backend *)m;
    *be = *vtable;
    be->impl = m + head;
    return be;
}

backend *backend_counted(backend *be)
{
    if (!be || be->counter) return be;
    backend_counter *c = calloc(1, sizeof *c);
    if (!c || pthread_mutex_init(&c->lock, NULL) != 0) {
        free(c);
        return be;
    }
    be->uncounted_alloc = be->alloc;
    be->uncounted_free = be->free;
    be->counter = c;
    be->alloc = counted_alloc;
    be->free = counted_free;
    return be;
}

backend_memory backend_memory_stats(const backend *be)
{
    backend_memory m = {0};
    if (!be || !be->counter) return m;
    pthread_mutex_lock(&be->counter->lock);
    m = be->counter->m;
    pthread_mutex_unlock(&be->counter->lock);
    return m;
}

void backend_memory_reset_peak(backend *be)
{
    if (!be || !be->counter) return;
    pthread_mutex_lock(&be->counter->lock);
    be->counter->m.peak = be->counter->m.live;
    pthread_mutex_unlock(&be->counter->lock);
}
