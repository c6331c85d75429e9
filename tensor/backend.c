#include "backend.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../backends/cpu/cpu_backend.h"
#include "../backends/plan/plan_backend.h"
#ifdef ASPO_HAVE_VULKAN
#include "../backends/vulkan/vk_backend.h"
#endif
#if defined(ASPO_HAVE_CUDA) || defined(ASPO_HAVE_HIP) || defined(ASPO_HAVE_SIMT)
#include "../backends/cuda/cuda_backend.h" /* also the hip backend, built from its sources */
#endif

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

/* Wraps be's alloc/free once; be is returned as it was when there is no memory to count. */
static backend *counted(backend *be)
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

/* ---- the backends of this build ---- */

backend *backend_cpu(void) { return counted(cpu_backend()); }

const char *backend_list(void)
{
    return "cpu"
#ifdef ASPO_HAVE_VULKAN
           ",vulkan"
#endif
#ifdef ASPO_HAVE_CUDA
           ",cuda"
#endif
#ifdef ASPO_HAVE_HIP
           ",hip"
#endif
#ifdef ASPO_HAVE_SIMT
           ",simt"
#endif
        ;
}

backend *backend_get(const char *name)
{
    if (strcmp(name, "cpu") == 0) return counted(cpu_backend());
    if (strcmp(name, "plan") == 0) return counted(plan_backend()); /* not a compute backend */
#ifdef ASPO_HAVE_VULKAN
    if (strcmp(name, "vulkan") == 0) return counted(vulkan_backend()); /* NULL + error: no device */
#endif
#ifdef ASPO_HAVE_CUDA
    if (strcmp(name, "cuda") == 0) return counted(cuda_backend()); /* NULL + error: no GPU */
#endif
#ifdef ASPO_HAVE_HIP
    if (strcmp(name, "hip") == 0) return counted(cuda_backend()); /* NULL + error: no GPU */
#endif
#ifdef ASPO_HAVE_SIMT
    if (strcmp(name, "simt") == 0) return counted(cuda_backend()); /* the CUDA kernels on the CPU */
#endif
    aspo_fail(ASPO_ERR_USAGE, "unknown backend '%s'; this build has: %s", name, backend_list());
    return NULL;
}
