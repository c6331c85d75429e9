/* The CUDA runtime API of simt_runtime.h: the device and its settings, device memory,
 * streams that run their work lazily in order, events, copies with CUDA's pageable/pinned
 * behaviour, and launches checked against a real device's limits. Work runs on the host
 * thread that waits for it (a synchronize, a blocking copy or free), blocks of a kernel over
 * the OpenMP threads (simt_exec.c). */
#define _GNU_SOURCE
#include <inttypes.h>
#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "simt_internal.h"

/* ---- settings ---- */

static simt_settings settings;
static pthread_once_t settings_once = PTHREAD_ONCE_INIT;
static atomic_bool settings_ready;
bool simt_race_active;

static long env_long(const char *name, long fallback)
{
    const char *v = getenv(name);
    return v && *v ? strtol(v, NULL, 10) : fallback;
}

static void read_settings(void)
{
    simt_settings *s = &settings;
    s->lanes = env_long("ASPO_SIMT_WARP", 32) == 64 ? 64 : 32;
    s->amd = s->lanes == 64;
    const char *sched = getenv("ASPO_SIMT_SCHEDULE");
    if (sched && !strncmp(sched, "random:", 7)) {
        s->random_schedule = true;
        s->seed = strtoull(sched + 7, NULL, 10);
    }
    s->racecheck = simt_race_instrumented() && env_long("ASPO_SIMT_RACECHECK", 1) != 0;
    s->memory = (size_t)env_long("ASPO_SIMT_MEMORY", 16384) << 20;
    /* NVIDIA: 48 KiB of static and of non-opted dynamic shared memory, opt-in up to the
     * card's limit; AMD CDNA: 64 KiB per block, and nothing to opt in to. */
    s->shared_static_max = 48 << 10;
    s->shared_block_max = s->amd ? 64 << 10 : 48 << 10;
    s->shared_optin_max = s->amd ? 64 << 10 : (size_t)env_long("ASPO_SIMT_SHARED_OPTIN", 99) << 10;
    simt_race_active = s->racecheck;
    atomic_store(&settings_ready, true);
}

const simt_settings *simt_config(void)
{
    if (!atomic_load_explicit(&settings_ready, memory_order_acquire))
        pthread_once(&settings_once, read_settings);
    return &settings;
}

int simt_warp_lanes(void) { return simt_config()->lanes; }

int simt_race_checking(void) { return simt_config()->racecheck; }

/* ---- errors ---- */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER; /* the tables below */
static cudaError_t pending;                 /* from work a stream ran, not yet reported */
static char pending_message[4096];
static cudaError_t last;                    /* what cudaGetLastError returns */
static cudaError_t message_code;            /* the error message_text explains */
static char message_text[4096];

void simt_fail(cudaError_t code, const char *fmt, ...)
{
    if (pending != cudaSuccess) return; /* the first report is the one to read */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pending_message, sizeof pending_message, fmt, ap);
    va_end(ap);
    pending = code;
}

/* An error now (a bad call), explained by message. */
static cudaError_t error(cudaError_t code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static cudaError_t error(cudaError_t code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message_text, sizeof message_text, fmt, ap);
    va_end(ap);
    message_code = code;
    last = code;
    return code;
}

/* What stream work reported since the last synchronization: returned once, then cleared. */
static cudaError_t take_pending(void)
{
    if (pending == cudaSuccess) return cudaSuccess;
    cudaError_t code = pending;
    pending = cudaSuccess;
    return error(code, "%s", pending_message);
}

static const char *error_name(cudaError_t e)
{
    switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInitializationError: return "cudaErrorInitializationError";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidMemcpyDirection: return "cudaErrorInvalidMemcpyDirection";
    case cudaErrorInvalidDeviceFunction: return "cudaErrorInvalidDeviceFunction";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorLaunchOutOfResources: return "cudaErrorLaunchOutOfResources";
    case cudaErrorAssert: return "cudaErrorAssert";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorNotSupported: return "cudaErrorNotSupported";
    }
    return "cudaErrorUnknown";
}

const char *cudaGetErrorName(cudaError_t e) { return error_name(e); }

const char *cudaGetErrorString(cudaError_t e)
{
    if (e == message_code && message_text[0]) return message_text;
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorNotReady: return "device not ready";
    default: return error_name(e);
    }
}

cudaError_t cudaGetLastError(void)
{
    cudaError_t e = last;
    last = cudaSuccess;
    return e;
}

cudaError_t cudaPeekAtLastError(void) { return last; }

/* ---- device memory ---- */

typedef struct allocation {
    uintptr_t base;
    size_t bytes;
    bool pooled; /* cudaMallocAsync */
} allocation;

static struct {
    allocation *items; /* sorted by base */
    size_t n, cap;
    size_t live, pool_used, pool_used_high, pool_kept, pool_reserved_high;
    uint64_t release_threshold;
    allocation *pinned;
    size_t n_pinned, cap_pinned;
} mem;

static size_t find_index(const allocation *items, size_t n, uintptr_t a)
{
    size_t lo = 0, hi = n; /* the first item with base > a, minus one */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (items[mid].base <= a) lo = mid + 1;
        else hi = mid;
    }
    return lo; /* items[lo - 1] is the candidate */
}

static bool in_table(const allocation *items, size_t n, const void *p, size_t bytes,
                     const void **base, size_t *size)
{
    uintptr_t a = (uintptr_t)p;
    size_t i = find_index(items, n, a);
    if (i == 0) return false;
    const allocation *x = &items[i - 1];
    if (a + bytes > x->base + x->bytes || a + bytes < a) return false;
    if (base) *base = (const void *)x->base;
    if (size) *size = x->bytes;
    return true;
}

/* Called by the race check from kernels on every OS thread: the table only changes while no
 * kernel runs (allocations happen on the host thread between stream work). */
bool simt_find_allocation(const void *p, size_t bytes, const void **base, size_t *size)
{
    return in_table(mem.items, mem.n, p, bytes ? bytes : 1, base, size);
}

int simt_is_device_range(const void *p, size_t bytes) { return simt_find_allocation(p, bytes, NULL, NULL); }

size_t simt_device_bytes_live(void) { return mem.live; }

static bool table_add(allocation **items, size_t *n, size_t *cap, allocation x)
{
    if (*n == *cap) {
        size_t c = *cap ? 2 * *cap : 64;
        allocation *m = realloc(*items, sizeof *m * c);
        if (!m) return false;
        *items = m;
        *cap = c;
    }
    size_t i = find_index(*items, *n, x.base);
    memmove(*items + i + 1, *items + i, sizeof **items * (*n - i));
    (*items)[i] = x;
    (*n)++;
    return true;
}

/* Removes the allocation starting at p; false when there is none. */
static bool table_remove(allocation *items, size_t *n, const void *p, allocation *out)
{
    size_t i = find_index(items, *n, (uintptr_t)p);
    if (i == 0 || items[i - 1].base != (uintptr_t)p) return false;
    *out = items[i - 1];
    memmove(items + i - 1, items + i, sizeof *items * (*n - i));
    (*n)--;
    return true;
}

/* Host memory for a device allocation: a large one on 2 MiB pages where the kernel allows, a
 * fault per 2 MiB instead of per 4 KiB (a 4 GiB tensor takes a million faults otherwise). */
static void *host_memory(size_t bytes)
{
    enum { HUGE = 2 << 20 };
    if (bytes < 4 * (size_t)HUGE) return malloc(bytes);
    void *p = NULL;
    if (posix_memalign(&p, HUGE, bytes)) return NULL;
    madvise(p, bytes, MADV_HUGEPAGE); /* a hint: without it the pages are 4 KiB */
    return p;
}

static cudaError_t allocate(void **ptr, size_t bytes, bool pooled, const char *call)
{
    if (!ptr) return error(cudaErrorInvalidValue, "%s: NULL pointer for the result", call);
    const simt_settings *cfg = simt_config();
    size_t want = bytes ? bytes : 1;
    pthread_mutex_lock(&lock);
    size_t in_use = mem.live + mem.pool_kept;
    if (want > cfg->memory || in_use > cfg->memory - want) {
        pthread_mutex_unlock(&lock);
        return error(cudaErrorMemoryAllocation, "out of memory: %s of %zu bytes with %zu of the "
                     "device's %zu in use (ASPO_SIMT_MEMORY sets its size in MiB)", call, bytes,
                     in_use, cfg->memory);
    }
    void *p = host_memory(want);
    if (p) memset(p, 0xff, want); /* a GPU's new memory holds leftovers, never zeros */
    if (!p || !table_add(&mem.items, &mem.n, &mem.cap,
                         (allocation){(uintptr_t)p, want, pooled})) {
        pthread_mutex_unlock(&lock);
        free(p);
        return error(cudaErrorMemoryAllocation, "%s of %zu bytes: out of host memory", call, bytes);
    }
    mem.live += want;
    if (pooled) {
        mem.pool_used += want;
        if (mem.pool_used > mem.pool_used_high) mem.pool_used_high = mem.pool_used;
        /* the pool hands out kept memory first */
        mem.pool_kept = mem.pool_kept > want ? mem.pool_kept - want : 0;
        if (mem.pool_used + mem.pool_kept > mem.pool_reserved_high)
            mem.pool_reserved_high = mem.pool_used + mem.pool_kept;
    }
    pthread_mutex_unlock(&lock);
    *ptr = p;
    return cudaSuccess;
}

static cudaError_t release(void *p, const char *call)
{
    if (!p) return cudaSuccess;
    allocation x;
    pthread_mutex_lock(&lock);
    bool found = table_remove(mem.items, &mem.n, p, &x);
    if (found) {
        mem.live -= x.bytes;
        if (x.pooled) {
            mem.pool_used -= x.bytes;
            mem.pool_kept += x.bytes; /* until a synchronization returns it (release threshold) */
        }
    }
    pthread_mutex_unlock(&lock);
    if (!found)
        return error(cudaErrorInvalidValue, "%s(%p): not a live device allocation (freed twice, "
                     "or never allocated)", call, p);
    free(p);
    return cudaSuccess;
}

/* At a synchronization the pool returns freed memory above its release threshold. */
static void pool_trim(void)
{
    pthread_mutex_lock(&lock);
    if (mem.pool_kept > mem.release_threshold) mem.pool_kept = (size_t)mem.release_threshold;
    pthread_mutex_unlock(&lock);
}

/* ---- streams ---- */

typedef struct work {
    void (*fn)(void *arg);
    void *arg;
    const char *what;
    struct simt_event *event; /* a record: fn is NULL */
} work;

struct simt_stream {
    work *items;
    size_t head, n, cap; /* queued: items[head .. head + n) */
    unsigned flags;
};

struct simt_event {
    struct simt_stream *stream;
    uint64_t recorded, done; /* record count, and the last record the stream reached */
    double when;             /* seconds, at the stream's reaching it */
};

static struct simt_stream default_stream;

static struct simt_stream *stream_of(cudaStream_t s) { return s ? s : &default_stream; }

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static cudaError_t push(struct simt_stream *s, work w)
{
    if (s->head + s->n == s->cap) {
        if (s->head > 0) { /* slide the queue down before growing it */
            memmove(s->items, s->items + s->head, sizeof *s->items * s->n);
            s->head = 0;
        }
        if (s->n == s->cap) {
            size_t c = s->cap ? 2 * s->cap : 64;
            work *m = realloc(s->items, sizeof *m * c);
            if (!m) return error(cudaErrorMemoryAllocation, "no host memory to queue %s", w.what);
            s->items = m;
            s->cap = c;
        }
    }
    s->items[s->head + s->n++] = w;
    return cudaSuccess;
}

/* Runs s's work in order, up to and including the record of `until` (all when NULL). */
static void run(struct simt_stream *s, const struct simt_event *until, uint64_t record)
{
    while (s->n) {
        work w = s->items[s->head++];
        s->n--;
        if (w.fn) {
            w.fn(w.arg);
            free(w.arg);
            continue;
        }
        w.event->done++;
        w.event->when = seconds();
        if (w.event == until && w.event->done >= record) break;
    }
    if (!s->n) s->head = 0;
}

cudaError_t simt_enqueue(cudaStream_t stream, const char *what, void (*fn)(void *arg),
                         const void *arg, size_t bytes)
{
    void *copy = malloc(bytes ? bytes : 1);
    if (!copy) return error(cudaErrorMemoryAllocation, "no host memory to queue %s", what);
    if (bytes) memcpy(copy, arg, bytes);
    cudaError_t e = push(stream_of(stream), (work){fn, copy, what, NULL});
    if (e) free(copy);
    return e;
}

static unsigned long host_waits;

unsigned long simt_host_waits(void) { return host_waits; }

static cudaError_t synchronize(struct simt_stream *s)
{
    host_waits++;
    run(s, NULL, 0);
    pool_trim();
    return take_pending();
}

/* Every stream the process made runs when the device synchronizes; streams are few, so they
 * are kept in a list here. */
static struct simt_stream **all_streams;
static size_t n_streams;

static bool remember_stream(struct simt_stream *s)
{
    struct simt_stream **m = realloc(all_streams, sizeof *m * (n_streams + 1));
    if (!m) return false;
    (all_streams = m)[n_streams++] = s;
    return true;
}

static void forget_stream(struct simt_stream *s)
{
    for (size_t i = 0; i < n_streams; i++)
        if (all_streams[i] == s) all_streams[i] = all_streams[--n_streams];
}

cudaError_t cudaStreamCreate(cudaStream_t *s) { return cudaStreamCreateWithFlags(s, 0); }

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags)
{
    if (!s) return error(cudaErrorInvalidValue, "cudaStreamCreate: NULL pointer");
    if (!(*s = calloc(1, sizeof **s)) || !remember_stream(*s)) {
        free(*s);
        return error(cudaErrorMemoryAllocation, "cudaStreamCreate");
    }
    (*s)->flags = flags;
    return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t s)
{
    if (!s) return error(cudaErrorInvalidResourceHandle, "cudaStreamDestroy: the default stream");
    cudaError_t e = synchronize(s); /* CUDA finishes the queued work first */
    forget_stream(s);
    free(s->items);
    free(s);
    return e;
}

cudaError_t cudaStreamSynchronize(cudaStream_t s) { return synchronize(stream_of(s)); }

cudaError_t cudaStreamQuery(cudaStream_t s)
{
    return stream_of(s)->n ? cudaErrorNotReady : cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void)
{
    host_waits++;
    run(&default_stream, NULL, 0);
    for (size_t i = 0; i < n_streams; i++) run(all_streams[i], NULL, 0);
    pool_trim();
    return take_pending();
}

/* ---- events ---- */

cudaError_t cudaEventCreate(cudaEvent_t *e) { return cudaEventCreateWithFlags(e, 0); }

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags)
{
    (void)flags;
    if (!e) return error(cudaErrorInvalidValue, "cudaEventCreate: NULL pointer");
    if (!(*e = calloc(1, sizeof **e))) return error(cudaErrorMemoryAllocation, "cudaEventCreate");
    return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t e)
{
    free(e);
    return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s)
{
    if (!e) return error(cudaErrorInvalidResourceHandle, "cudaEventRecord: NULL event");
    e->stream = stream_of(s);
    e->recorded++;
    return push(e->stream, (work){NULL, NULL, "event", e});
}

cudaError_t cudaEventSynchronize(cudaEvent_t e)
{
    if (!e) return error(cudaErrorInvalidResourceHandle, "cudaEventSynchronize: NULL event");
    host_waits++;
    if (e->stream && e->done < e->recorded) run(e->stream, e, e->recorded);
    return take_pending();
}

cudaError_t cudaEventQuery(cudaEvent_t e)
{
    return !e ? cudaErrorInvalidResourceHandle : e->done < e->recorded ? cudaErrorNotReady : cudaSuccess;
}

cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end)
{
    if (!ms || !start || !end) return error(cudaErrorInvalidValue, "cudaEventElapsedTime");
    if (start->done < start->recorded || end->done < end->recorded || !start->recorded)
        return error(cudaErrorNotReady, "cudaEventElapsedTime: an event has not completed");
    *ms = (float)((end->when - start->when) * 1e3);
    return cudaSuccess;
}

/* ---- copies ---- */

static bool pinned(const void *p, size_t bytes)
{
    return in_table(mem.pinned, mem.n_pinned, p, bytes ? bytes : 1, NULL, NULL);
}

typedef struct copy_args {
    void *dst;
    const void *src;
    size_t bytes;
    unsigned char *staged;   /* pageable source: its bytes, taken at the call */
    unsigned char *snapshot; /* pinned source: its bytes at the call, to find a reuse */
    int value;               /* memset */
} copy_args;

static void run_copy(void *arg)
{
    copy_args *c = arg;
    if (c->snapshot && memcmp(c->snapshot, c->src, c->bytes)) {
        size_t at = 0;
        while (((const unsigned char *)c->src)[at] == c->snapshot[at]) at++;
        simt_fail(cudaErrorLaunchFailure, "cudaMemcpyAsync of %zu bytes from pinned host memory "
                  "%p: the host changed byte %zu of the source after queueing the copy and before "
                  "the stream reached it; the copy reads the buffer when it runs, so wait for it "
                  "(an event or a synchronize) before reusing the buffer", c->bytes, c->src, at);
    }
    memmove(c->dst, c->staged ? c->staged : c->src, c->bytes);
    free(c->staged);
    free(c->snapshot);
}

static void run_memset(void *arg)
{
    copy_args *c = arg;
    memset(c->dst, c->value, c->bytes);
}

static void run_free(void *arg)
{
    void *p = *(void **)arg;
    if (release(p, "cudaFreeAsync") != cudaSuccess)
        simt_fail(cudaErrorInvalidValue, "%s", message_text);
}

static bool is_device(const void *p) { return simt_is_device_range(p, 1); }

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, enum cudaMemcpyKind kind,
                            cudaStream_t s)
{
    if (!bytes) return cudaSuccess;
    if (!dst || !src) return error(cudaErrorInvalidValue, "cudaMemcpyAsync: NULL pointer");
    bool to_device = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice ||
                     (kind == cudaMemcpyDefault && is_device(dst));
    bool from_device = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice ||
                       (kind == cudaMemcpyDefault && is_device(src));
    if (kind > cudaMemcpyDefault)
        return error(cudaErrorInvalidMemcpyDirection, "cudaMemcpyAsync: kind %d", (int)kind);
    if (to_device && !simt_is_device_range(dst, bytes))
        return error(cudaErrorInvalidValue, "cudaMemcpyAsync: destination %p (%zu bytes) is not "
                     "inside one device allocation", dst, bytes);
    if (from_device && !simt_is_device_range(src, bytes))
        return error(cudaErrorInvalidValue, "cudaMemcpyAsync: source %p (%zu bytes) is not "
                     "inside one device allocation", src, bytes);
    copy_args c = {.dst = dst, .src = src, .bytes = bytes};
    if (!from_device && !pinned(src, bytes) && !stream_of(s)->n) {
        /* Pageable memory is staged at the call; with nothing queued before it, the copy
         * itself may as well happen now (a 4 GiB upload needs no 4 GiB stage). */
        memcpy(dst, src, bytes);
        return cudaSuccess;
    }
    if (!from_device) {
        /* Pageable memory is staged at the call (the caller may reuse it at once); pinned
         * memory is read when the stream reaches the copy. */
        unsigned char **keep = pinned(src, bytes) ? &c.snapshot : &c.staged;
        if (!(*keep = malloc(bytes))) return error(cudaErrorMemoryAllocation, "cudaMemcpyAsync");
        memcpy(*keep, src, bytes);
    }
    if (!to_device) memset(dst, 0xff, bytes); /* the host must not read it before waiting */
    cudaError_t e = simt_enqueue(s, "cudaMemcpyAsync", run_copy, &c, sizeof c);
    if (e) free(c.staged ? c.staged : c.snapshot);
    return e;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, enum cudaMemcpyKind kind)
{
    /* Ordered after the default stream's work only: a non-blocking stream is not waited for. */
    cudaError_t e = cudaMemcpyAsync(dst, src, bytes, kind, NULL);
    return e ? e : synchronize(&default_stream);
}

cudaError_t cudaMemsetAsync(void *dst, int value, size_t bytes, cudaStream_t s)
{
    if (!bytes) return cudaSuccess;
    if (!simt_is_device_range(dst, bytes))
        return error(cudaErrorInvalidValue, "cudaMemsetAsync: %p (%zu bytes) is not inside one "
                     "device allocation", dst, bytes);
    copy_args c = {.dst = dst, .bytes = bytes, .value = value};
    return simt_enqueue(s, "cudaMemsetAsync", run_memset, &c, sizeof c);
}

cudaError_t cudaMemset(void *dst, int value, size_t bytes)
{
    cudaError_t e = cudaMemsetAsync(dst, value, bytes, NULL);
    return e ? e : synchronize(&default_stream);
}

/* ---- allocation calls ---- */

cudaError_t cudaMalloc(void **ptr, size_t bytes) { return allocate(ptr, bytes, false, "cudaMalloc"); }

cudaError_t cudaFree(void *ptr)
{
    cudaError_t e = cudaDeviceSynchronize(); /* CUDA's cudaFree waits for the device */
    cudaError_t f = release(ptr, "cudaFree");
    return e ? e : f;
}

cudaError_t cudaMallocAsync(void **ptr, size_t bytes, cudaStream_t s)
{
    (void)s;
    return allocate(ptr, bytes, true, "cudaMallocAsync");
}

cudaError_t cudaFreeAsync(void *ptr, cudaStream_t s)
{
    if (!ptr) return cudaSuccess;
    if (!is_device(ptr))
        return error(cudaErrorInvalidValue, "cudaFreeAsync(%p): not device memory", ptr);
    return simt_enqueue(s, "cudaFreeAsync", run_free, &ptr, sizeof ptr);
}

cudaError_t cudaHostAlloc(void **ptr, size_t bytes, unsigned flags)
{
    (void)flags;
    if (!ptr) return error(cudaErrorInvalidValue, "cudaHostAlloc: NULL pointer");
    void *p = malloc(bytes ? bytes : 1);
    pthread_mutex_lock(&lock);
    bool ok = p && table_add(&mem.pinned, &mem.n_pinned, &mem.cap_pinned,
                             (allocation){(uintptr_t)p, bytes ? bytes : 1, false});
    pthread_mutex_unlock(&lock);
    if (!ok) {
        free(p);
        return error(cudaErrorMemoryAllocation, "cudaHostAlloc of %zu bytes", bytes);
    }
    *ptr = p;
    return cudaSuccess;
}

cudaError_t cudaMallocHost(void **ptr, size_t bytes) { return cudaHostAlloc(ptr, bytes, 0); }

cudaError_t cudaFreeHost(void *ptr)
{
    if (!ptr) return cudaSuccess;
    cudaDeviceSynchronize(); /* queued copies may still read it */
    allocation x;
    pthread_mutex_lock(&lock);
    bool found = table_remove(mem.pinned, &mem.n_pinned, ptr, &x);
    pthread_mutex_unlock(&lock);
    if (!found) return error(cudaErrorInvalidValue, "cudaFreeHost(%p): not pinned memory", ptr);
    free(ptr);
    return cudaSuccess;
}

/* ---- the memory pool of cudaMallocAsync ---- */

static struct simt_mem_pool { int unused; } the_pool;

cudaError_t cudaDeviceGetDefaultMemPool(cudaMemPool_t *pool, int device)
{
    if (device != 0) return error(cudaErrorInvalidDevice, "device %d: there is one, 0", device);
    *pool = &the_pool;
    return cudaSuccess;
}

cudaError_t cudaMemPoolSetAttribute(cudaMemPool_t pool, enum cudaMemPoolAttr attr, void *value)
{
    if (pool != &the_pool || attr != cudaMemPoolAttrReleaseThreshold)
        return error(cudaErrorInvalidValue, "cudaMemPoolSetAttribute: attribute %d", (int)attr);
    mem.release_threshold = *(uint64_t *)value;
    return cudaSuccess;
}

cudaError_t cudaMemPoolGetAttribute(cudaMemPool_t pool, enum cudaMemPoolAttr attr, void *value)
{
    if (pool != &the_pool) return error(cudaErrorInvalidValue, "cudaMemPoolGetAttribute: pool");
    uint64_t v;
    switch (attr) {
    case cudaMemPoolAttrReleaseThreshold: v = mem.release_threshold; break;
    case cudaMemPoolAttrReservedMemCurrent: v = mem.pool_used + mem.pool_kept; break;
    case cudaMemPoolAttrReservedMemHigh: v = mem.pool_reserved_high; break;
    case cudaMemPoolAttrUsedMemCurrent: v = mem.pool_used; break;
    case cudaMemPoolAttrUsedMemHigh: v = mem.pool_used_high; break;
    default: return error(cudaErrorInvalidValue, "cudaMemPoolGetAttribute: %d", (int)attr);
    }
    *(uint64_t *)value = v;
    return cudaSuccess;
}

/* ---- the device ---- */

cudaError_t cudaGetDeviceCount(int *count)
{
    *count = 1;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int device)
{
    return device == 0 ? cudaSuccess : error(cudaErrorInvalidDevice, "device %d: there is one, 0", device);
}

cudaError_t cudaGetDevice(int *device)
{
    *device = 0;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *p, int device)
{
    if (device != 0) return error(cudaErrorInvalidDevice, "device %d: there is one, 0", device);
    const simt_settings *cfg = simt_config();
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "aspo simt: CUDA kernels on the CPU, %d-lane warps%s%s",
             cfg->lanes, cfg->amd ? " (AMD CDNA limits)" : "",
             cfg->racecheck ? ", race check" : "");
    p->totalGlobalMem = cfg->memory;
    p->sharedMemPerBlock = cfg->shared_block_max;
    p->sharedMemPerBlockOptin = cfg->shared_optin_max;
    /* NVIDIA cards have 1 KiB more per SM than one block may opt in to (sm_89: 100/99 KiB,
     * A100 164/163, H100 228/227); an AMD CU's LDS is the 64 KiB a block may have. */
    p->sharedMemPerMultiprocessor = cfg->amd ? cfg->shared_block_max : cfg->shared_optin_max + 1024;
    p->warpSize = cfg->lanes;
    p->maxThreadsPerBlock = 1024;
    p->maxThreadsDim[0] = p->maxThreadsDim[1] = 1024;
    p->maxThreadsDim[2] = 64;
    p->maxGridSize[0] = 0x7fffffff;
    p->maxGridSize[1] = p->maxGridSize[2] = 65535;
    p->multiProcessorCount = omp_get_max_threads();
    p->major = cfg->amd ? 9 : 8; /* gfx90a / sm_89, the profiles' cards */
    p->minor = cfg->amd ? 0 : 9;
    return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int *value, enum cudaDeviceAttr attr, int device)
{
    struct cudaDeviceProp p;
    cudaError_t e = cudaGetDeviceProperties(&p, device);
    if (e) return e;
    switch (attr) {
    case cudaDevAttrMaxThreadsPerBlock: *value = p.maxThreadsPerBlock; break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *value = (int)p.sharedMemPerBlock; break;
    case cudaDevAttrWarpSize: *value = p.warpSize; break;
    case cudaDevAttrMultiProcessorCount: *value = p.multiProcessorCount; break;
    case cudaDevAttrMaxSharedMemoryPerMultiprocessor: *value = (int)p.sharedMemPerMultiprocessor; break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin:
        *value = simt_config()->amd ? 0 : (int)p.sharedMemPerBlockOptin; /* ROCm reports 0 */
        break;
    default: return error(cudaErrorInvalidValue, "cudaDeviceGetAttribute: %d", (int)attr);
    }
    return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes)
{
    const simt_settings *cfg = simt_config();
    size_t used = mem.live + mem.pool_kept;
    *total_bytes = cfg->memory;
    *free_bytes = used < cfg->memory ? cfg->memory - used : 0;
    return cudaSuccess;
}

/* ---- kernels ---- */

static struct {
    const void *func;
    size_t bytes;
} optin[256];
static int n_optin;

size_t simt_func_shared_optin(const void *func)
{
    for (int i = 0; i < n_optin; i++)
        if (optin[i].func == func) return optin[i].bytes;
    return 0;
}

cudaError_t cudaFuncSetAttribute(const void *func, enum cudaFuncAttribute attr, int value)
{
    const simt_settings *cfg = simt_config();
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0)
        return error(cudaErrorInvalidValue, "cudaFuncSetAttribute: attribute %d = %d", (int)attr, value);
    if ((size_t)value > cfg->shared_optin_max)
        return error(cudaErrorInvalidValue, "cudaFuncSetAttribute: %d bytes of dynamic shared "
                     "memory, over the device's %zu", value, cfg->shared_optin_max);
    for (int i = 0; i < n_optin; i++)
        if (optin[i].func == func) {
            optin[i].bytes = (size_t)value;
            return cudaSuccess;
        }
    if (n_optin == (int)(sizeof optin / sizeof optin[0]))
        return error(cudaErrorNotSupported, "cudaFuncSetAttribute: over %d kernels", n_optin);
    optin[n_optin].func = func;
    optin[n_optin++].bytes = (size_t)value;
    return cudaSuccess;
}

static const char *launched[64]; /* the last kernels launched, by count modulo 64 */
static unsigned long launches;

const char *simt_launch_name(int back)
{
    if (back < 0 || back >= 64 || (unsigned long)back >= launches) return NULL;
    return launched[(launches - 1 - (unsigned long)back) % 64];
}

static void run_launch(void *arg)
{
    simt_launch_desc *d = arg;
    simt_run_launch(d);
    d->closure_free(d->closure);
}

cudaError_t simt_launch(const simt_launch_desc *d, cudaStream_t s)
{
    const simt_settings *cfg = simt_config();
    simt_dim3 g = d->grid, b = d->block;
    uint64_t threads = (uint64_t)b.x * b.y * b.z;
    size_t limit = simt_func_shared_optin(d->func);
    size_t dynamic_max = cfg->amd ? cfg->shared_block_max : limit ? limit : cfg->shared_block_max;
    cudaError_t e = cudaSuccess;
    if (!g.x || !g.y || !g.z || !threads)
        e = error(cudaErrorInvalidConfiguration, "launch of %s: grid (%u,%u,%u), block (%u,%u,%u): "
                  "no dimension may be 0", d->kernel, g.x, g.y, g.z, b.x, b.y, b.z);
    else if (threads > 1024 || b.x > 1024 || b.y > 1024 || b.z > 64)
        e = error(cudaErrorInvalidConfiguration, "launch of %s: a block of (%u,%u,%u) = %" PRIu64
                  " threads; the device takes at most 1024, and (1024,1024,64) per dimension",
                  d->kernel, b.x, b.y, b.z, threads);
    else if (g.x > 0x7fffffffu || g.y > 65535 || g.z > 65535)
        e = error(cudaErrorInvalidConfiguration, "launch of %s: grid (%u,%u,%u); y and z may be "
                  "at most 65535, x 2^31 - 1", d->kernel, g.x, g.y, g.z);
    else if (d->dynamic_shared > dynamic_max)
        e = error(cudaErrorInvalidValue, "launch of %s: %zu bytes of dynamic shared memory, over "
                  "the %zu a block may have%s", d->kernel, d->dynamic_shared, dynamic_max,
                  cfg->amd ? " on AMD GPUs" : limit ? " (its cudaFuncSetAttribute opt-in)"
                  : " without cudaFuncSetAttribute(MaxDynamicSharedMemorySize)");
    if (e) {
        d->closure_free(d->closure);
        return e;
    }
    e = simt_enqueue(s, d->kernel, run_launch, d, sizeof *d);
    if (e) d->closure_free(d->closure);
    else launched[launches++ % 64] = d->kernel; /* names live as long as the program */
    return e;
}
