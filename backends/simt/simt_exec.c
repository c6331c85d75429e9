/* Runs kernels: the blocks of a grid spread over the OpenMP threads; within a block every
 * CUDA thread is a fiber, run warp by warp until it reaches a barrier, a warp function or
 * its end. Barriers and warp functions complete when every thread they name has arrived,
 * and anything else is reported as a GPU would hang or misbehave on it: a barrier some
 * threads never reach (they exited or wait at another one), a warp function whose mask
 * leaves out its caller or names a lane that exited, lanes at different warp functions.
 * The calls kernels make (threadIdx, __syncthreads, __shfl_*_sync, shared memory,
 * atomics; simt_device.h) are here, outside the race check's instrumentation. */
#define _GNU_SOURCE
#include <inttypes.h>
#include <omp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "simt_internal.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define SIMT_STACK_BYTES (512 << 10) /* ASan's redzones make frames several times larger */
#else
#define ASAN_POISON_MEMORY_REGION(p, n) ((void)(p), (void)(n))
#define ASAN_UNPOISON_MEMORY_REGION(p, n) ((void)(p), (void)(n))
#define SIMT_STACK_BYTES (64 << 10)
#endif

/* The same numbers as simt_device.h's enums (C cannot include that C++ header). */
enum { W_SHFL_IDX, W_SHFL_UP, W_SHFL_DOWN, W_SHFL_XOR, W_BALLOT, W_ANY, W_ALL, W_SYNC };
enum { VOTE_NONE, VOTE_COUNT, VOTE_AND, VOTE_OR };
enum {
    A_ADD_INT, A_ADD_F32, A_ADD_F64, A_SUB, A_MIN_S, A_MAX_S, A_MIN_U, A_MAX_U, A_EXCH, A_CAS,
    A_AND, A_OR, A_XOR, A_INC, A_DEC,
};

__thread simt_block *simt_tls_block;   /* this OS thread's block context while it runs one */
__thread simt_thread *simt_tls_thread; /* the CUDA thread running now, NULL in the scheduler */
#define tls_block simt_tls_block
#define tls_thread simt_tls_thread

/* ---- the launch's outcome, shared by the OS threads running its blocks ---- */

static struct {
    pthread_mutex_t lock;
    atomic_int stop; /* a block failed: the others are skipped */
    cudaError_t code;
    char message[2048];
    long more; /* reports after the first */
} outcome = {.lock = PTHREAD_MUTEX_INITIALIZER};

void simt_launch_report(cudaError_t code, const char *message, bool fatal)
{
    pthread_mutex_lock(&outcome.lock);
    if (outcome.code == cudaSuccess) {
        outcome.code = code;
        snprintf(outcome.message, sizeof outcome.message, "%s", message);
    } else {
        outcome.more++;
    }
    pthread_mutex_unlock(&outcome.lock);
    if (fatal) atomic_store(&outcome.stop, 1);
}

const char *simt_where(const simt_block *b, char *buf, size_t size)
{
    snprintf(buf, size, "kernel %s, block (%u,%u,%u) of (%u,%u,%u)", b->launch->kernel, b->idx.x,
             b->idx.y, b->idx.z, b->launch->grid.x, b->launch->grid.y, b->launch->grid.z);
    return buf;
}

const char *simt_base_name(const char *path)
{
    const char *slash = path ? strrchr(path, '/') : NULL;
    return slash ? slash + 1 : path ? path : "";
}

const char *simt_thread_name(const simt_thread *t, char *buf, size_t size)
{
    snprintf(buf, size, "(%u,%u,%u)", t->idx.x, t->idx.y, t->idx.z);
    return buf;
}

void simt_block_fail(simt_block *b, cudaError_t code, const char *fmt, ...)
{
    char where[512], what[1400], msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(msg, sizeof msg, "%s: %s", simt_where(b, where, sizeof where), what);
    simt_launch_report(code, msg, true);
    b->failed = true;
}

_Noreturn void simt_thread_abort(cudaError_t code, const char *fmt, ...)
{
    simt_block *b = tls_block;
    simt_thread *t = tls_thread;
    char where[512], who[64], what[1400], msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(msg, sizeof msg, "%s, thread %s: %s", simt_where(b, where, sizeof where),
             simt_thread_name(t, who, sizeof who), what);
    simt_launch_report(code, msg, true);
    b->failed = true;
    simt_fiber_switch(&t->fiber, &b->scheduler, true);
    abort(); /* a failed block's fibers are never resumed */
}

/* The CUDA thread calling into the layer; calling from host code is a bug of the caller. */
static simt_thread *caller(const char *what)
{
    if (!tls_thread) {
        fprintf(stderr, "simt: %s called outside a kernel\n", what);
        abort();
    }
    return tls_thread;
}

/* ---- what kernels read ---- */

simt_dim3 simt_thread_idx(void) { return caller("threadIdx")->idx; }
simt_dim3 simt_block_idx(void) { return (caller("blockIdx"), tls_block->idx); }
simt_dim3 simt_block_dim(void) { return (caller("blockDim"), tls_block->launch->block); }
simt_dim3 simt_grid_dim(void) { return (caller("gridDim"), tls_block->launch->grid); }

void simt_device_trap(const char *what, const char *file, int line)
{
    caller(what);
    simt_thread_abort(cudaErrorAssert, "%s at %s:%d", what, file, line);
}

/* ---- scheduling ---- */

/* The next lane of t's warp that is ready to run, after t in lane order; NULL when there is
 * none, or under the random schedule (where the scheduler picks the order). */
static simt_thread *next_ready(simt_block *b, const simt_thread *t)
{
    if (simt_config()->random_schedule) return NULL;
    int lo = t->warp * b->lanes, hi = lo + b->lanes < b->n ? lo + b->lanes : b->n;
    for (int k = 1; k < hi - lo; k++) {
        simt_thread *u = &b->threads[lo + (t->lane + k) % (hi - lo)];
        if (u->state == T_READY) return u;
    }
    return NULL;
}

/* t stops (it waits, or has exited): the next ready lane of its warp runs at once, without
 * a round trip through the scheduler (half the switches of a warp function); the scheduler
 * when there is none. */
static void switch_away(simt_block *b, simt_thread *t, bool exiting)
{
    simt_thread *u = next_ready(b, t);
    if (u) {
        tls_thread = u;
        simt_fiber_switch(&t->fiber, &u->fiber, exiting);
    } else {
        simt_fiber_switch(&t->fiber, &b->scheduler, exiting);
    }
}

static void thread_entry(void *arg)
{
    simt_thread *t = arg;
    simt_block *b = tls_block;
    simt_fiber_started(&b->scheduler);
    b->launch->thunk(b->launch->closure);
    t->state = T_EXITED;
    b->live--;
    switch_away(b, t, true);
    abort(); /* an exited fiber is never resumed */
}

static void resume(simt_block *b, simt_thread *t)
{
    tls_thread = t;
    simt_fiber_switch(&b->scheduler, &t->fiber, false);
    tls_thread = NULL;
}

static void wait_here(simt_block *b, simt_thread *t) { switch_away(b, t, false); }

static uint64_t next_random(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* order[0..n) = 0..n-1, shuffled under the random schedule. */
static void make_order(simt_block *b, int *order, int n)
{
    for (int i = 0; i < n; i++) order[i] = i;
    if (!simt_config()->random_schedule) return;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(next_random(&b->rng) % (uint64_t)(i + 1)), x = order[i];
        order[i] = order[j];
        order[j] = x;
    }
}

/* "threads 0-31, 64-95 (96 of 256)": the linear indices where keep(t) holds. */
static void describe_threads(const simt_block *b, bool (*keep)(const simt_thread *, const void *),
                             const void *arg, char *buf, size_t size)
{
    size_t len = 0;
    int count = 0, runs = 0;
    buf[0] = 0;
    for (int i = 0; i < b->n; i++) {
        if (!keep(&b->threads[i], arg)) continue;
        int j = i;
        while (j + 1 < b->n && keep(&b->threads[j + 1], arg)) j++;
        count += j - i + 1;
        if (runs++ < 6 && len < size) {
            const char *sep = runs > 1 ? ", " : "";
            len += j > i ? (size_t)snprintf(buf + len, size - len, "%s%d-%d", sep, i, j)
                         : (size_t)snprintf(buf + len, size - len, "%s%d", sep, i);
        }
        i = j;
    }
    if (len < size)
        snprintf(buf + len, size - len, "%s (%d of %d, by linear index)", runs > 6 ? ", ..." : "",
                 count, b->n);
}

static bool in_state(const simt_thread *t, const void *state) { return t->state == *(const int *)state; }

static bool at_site(const simt_thread *t, const void *site)
{
    const simt_site *s = site;
    return t->state == T_BARRIER && t->site.line == s->line && !strcmp(t->site.file, s->file);
}

/* Every live thread waits at a block barrier: it completes when they all wait at the same one
 * and none has exited; anything else is the divergent barrier a GPU would hang on. */
static void release_barrier(simt_block *b)
{
    static const int waiting = T_BARRIER, exited = T_EXITED;
    char a[256], c[256];
    const simt_thread *first = NULL;
    for (int i = 0; i < b->n && !first; i++)
        if (b->threads[i].state == T_BARRIER) first = &b->threads[i];
    if (b->live < b->n) {
        describe_threads(b, in_state, &waiting, a, sizeof a);
        describe_threads(b, in_state, &exited, c, sizeof c);
        simt_block_fail(b, cudaErrorLaunchFailure, "divergent barrier: threads %s wait at %s (%s:%d), "
                   "but threads %s have exited without reaching it", a, first->site.what,
                   first->site.file, first->site.line, c);
        return;
    }
    for (int i = 0; i < b->n; i++) {
        const simt_thread *t = &b->threads[i];
        if (at_site(t, &first->site) && t->vote_op == first->vote_op) continue;
        describe_threads(b, at_site, &first->site, a, sizeof a);
        simt_block_fail(b, cudaErrorLaunchFailure, "divergent barrier: threads %s wait at %s "
                   "(%s:%d), thread %d at %s (%s:%d): every thread of a block must reach the same "
                   "__syncthreads", a, first->site.what, first->site.file, first->site.line,
                   t->linear, t->site.what, t->site.file, t->site.line);
        return;
    }
    int count = 0;
    for (int i = 0; i < b->n; i++) count += b->threads[i].vote_pred != 0;
    int result = first->vote_op == VOTE_COUNT ? count
               : first->vote_op == VOTE_AND   ? count == b->n
               : first->vote_op == VOTE_OR    ? count > 0
                                              : 0;
    for (int i = 0; i < b->n; i++) {
        b->threads[i].vote_result = result;
        b->threads[i].state = T_READY;
    }
    b->last_barrier = first->site;
    simt_race_block_start(b);
}

/* A warp whose lanes cannot go on: some wait at a warp function for a lane that is at a
 * block barrier (the barrier waits for them in turn). */
static void warp_stuck(simt_block *b, int lo, int hi)
{
    for (int i = lo; i < hi; i++) {
        const simt_thread *t = &b->threads[i];
        if (t->state != T_WARP) continue;
        for (int k = lo; k < hi; k++) {
            const simt_thread *u = &b->threads[k];
            if (!(t->warp_mask >> (k - lo) & 1) || u->state == T_WARP) continue;
            if (u->state == T_EXITED) {
                simt_block_fail(b, cudaErrorLaunchFailure, "thread %d waits at %s (%s:%d) for lane %d "
                           "(thread %d) of its mask, which has exited", t->linear, t->site.what,
                           t->site.file, t->site.line, k - lo, u->linear);
                return;
            }
            simt_block_fail(b, cudaErrorLaunchFailure, "thread %d waits at %s (%s:%d) for lane %d "
                       "(thread %d), which waits at %s (%s:%d): a warp function every lane of "
                       "its mask must reach", t->linear, t->site.what, t->site.file,
                       t->site.line, k - lo, u->linear, u->site.what, u->site.file, u->site.line);
            return;
        }
    }
}

static void run_block(simt_block *b)
{
    const simt_launch_desc *d = b->launch;
    const simt_settings *cfg = simt_config();
    unsigned bx = d->block.x, by = d->block.y;
    b->lanes = cfg->lanes;
    b->warps = (b->n + b->lanes - 1) / b->lanes;
    b->failed = false;
    b->rng = (cfg->seed ^ 0x9E3779B97F4A7C15ull) * (1 + b->idx.x + 65536ull * (b->idx.y + 65536ull * b->idx.z)) | 1;
    for (int i = 0; i < b->n; i++) {
        simt_thread *t = &b->threads[i];
        t->idx = (simt_dim3){(unsigned)i % bx, (unsigned)i / bx % by, (unsigned)i / (bx * by)};
        t->linear = i;
        t->warp = i / b->lanes;
        t->lane = i % b->lanes;
        t->state = T_READY;
        t->vote_op = VOTE_NONE;
        if (!simt_fiber_prepare(&t->fiber, SIMT_STACK_BYTES, thread_entry, t)) {
            simt_block_fail(b, cudaErrorMemoryAllocation, "no memory for the stack of thread %d", i);
            return;
        }
    }
    /* Dynamic shared memory starts as 0xff bytes (NaN), as undefined as on a GPU, and
     * unwritten for the initialisation check (one bit per 2 bytes); each __shared__
     * variable is made so when it is placed (simt_shared_static). */
    ASAN_UNPOISON_MEMORY_REGION(b->shared, b->shared_capacity);
    memset(b->shared, 0xff, b->dynamic);
    memset(b->shared_written, 0, b->dynamic / 16 + 1);
    /* Under ASan only the dynamic area is addressable until a __shared__ variable is placed:
     * an access past either faults. */
    ASAN_POISON_MEMORY_REGION(b->shared, b->shared_capacity);
    ASAN_UNPOISON_MEMORY_REGION(b->shared, b->dynamic);
    b->static_top = b->dynamic + SIMT_SHARED_REDZONE;
    b->n_vars = 0;
    b->live = b->n;
    memset(b->warp_epoch, 0, sizeof b->warp_epoch);
    memset(b->warp_arrived, 0, sizeof b->warp_arrived);
    b->alloc_lo = b->alloc_hi = 0;
    b->last_barrier = (simt_site){"the kernel's start", "", 0};
    simt_race_block_start(b);

    int warp_order[64], lane_order[64];
    while (b->live > 0) {
        make_order(b, warp_order, b->warps);
        for (int wi = 0; wi < b->warps; wi++) {
            int w = warp_order[wi], lo = w * b->lanes;
            int hi = lo + b->lanes < b->n ? lo + b->lanes : b->n;
            bool ran;
            do { /* the warp's lanes until each waits at a barrier or has exited */
                ran = false;
                make_order(b, lane_order, hi - lo);
                for (int li = 0; li < hi - lo; li++) {
                    simt_thread *t = &b->threads[lo + lane_order[li]];
                    if (t->state != T_READY) continue;
                    resume(b, t); /* it, and the lanes it hands over to, run */
                    ran = true;
                    if (b->failed) return;
                }
            } while (ran);
            warp_stuck(b, lo, hi);
            if (b->failed) return;
        }
        if (b->live > 0) release_barrier(b);
        if (b->failed) return;
    }
}

/* This OS thread's block context, with room for `threads` CUDA threads. */
static simt_block *block_context(int threads)
{
    static __thread simt_block *b;
    if (!b && !(b = calloc(1, sizeof *b))) return NULL;
    if (!b->shared) {
        const simt_settings *cfg = simt_config();
        size_t dynamic_max = cfg->shared_optin_max > cfg->shared_block_max ? cfg->shared_optin_max
                                                                           : cfg->shared_block_max;
        b->shared_capacity = dynamic_max + SIMT_SHARED_REDZONE + cfg->shared_static_max + 64;
        b->shared = aligned_alloc(64, (b->shared_capacity + 63) & ~(size_t)63);
        b->shared_written = calloc(b->shared_capacity / 16 + 1, 1);
        if (!b->shared || !b->shared_written) return NULL;
    }
    if (threads > b->capacity) {
        simt_thread *t = realloc(b->threads, sizeof *t * (size_t)threads);
        if (!t) return NULL;
        memset(t + b->capacity, 0, sizeof *t * (size_t)(threads - b->capacity));
        b->threads = t;
        b->capacity = threads;
    }
    return b;
}

void simt_run_launch(const simt_launch_desc *d)
{
    atomic_store(&outcome.stop, 0);
    outcome.code = cudaSuccess;
    outcome.more = 0;
    int64_t gx = d->grid.x, gy = d->grid.y, blocks = gx * gy * d->grid.z;
    int n = (int)(d->block.x * d->block.y * d->block.z);
#pragma omp parallel
    {
        simt_block *b = block_context(n);
        if (!b) {
            simt_launch_report(cudaErrorMemoryAllocation, "simt: no host memory for a block's "
                               "threads and shared memory", true);
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t i = 0; i < blocks; i++) {
            if (!b || atomic_load(&outcome.stop)) continue;
            b->launch = d;
            b->n = n;
            b->dynamic = d->dynamic_shared;
            b->closure_lo = d->closure;
            b->closure_hi = (const char *)d->closure + d->closure_size;
            b->idx = (simt_dim3){(unsigned)(i % gx), (unsigned)(i / gx % gy), (unsigned)(i / (gx * gy))};
            tls_block = b;
            run_block(b);
            tls_block = NULL;
        }
    }
    if (outcome.code != cudaSuccess) {
        if (outcome.more)
            simt_fail(outcome.code, "%s (and %ld more reports in this launch)", outcome.message,
                      outcome.more);
        else
            simt_fail(outcome.code, "%s", outcome.message);
    }
}

/* ---- barriers ---- */

static int barrier(int op, int predicate, const char *file, int line)
{
    simt_thread *t = caller("__syncthreads");
    static const char *names[] = {"__syncthreads", "__syncthreads_count", "__syncthreads_and",
                                  "__syncthreads_or"};
    t->site = (simt_site){names[op], simt_base_name(file), line};
    t->vote_op = op;
    t->vote_pred = predicate;
    t->state = T_BARRIER;
    wait_here(tls_block, t);
    return t->vote_result;
}

void simt_syncthreads(const char *file, int line) { barrier(VOTE_NONE, 0, file, line); }

int simt_syncthreads_vote(int op, int predicate, const char *file, int line)
{
    return barrier(op, predicate, file, line);
}

/* ---- warp functions ---- */

/* The lane whose value lane `lane` receives (CUDA's rules for each shuffle and width). */
static int source_lane(int op, int lane, int arg, int width)
{
    int segment = lane & ~(width - 1), within = lane & (width - 1);
    switch (op) {
    case W_SHFL_IDX: return segment + (arg & (width - 1));
    case W_SHFL_UP: return within >= arg ? lane - arg : lane;
    case W_SHFL_DOWN: return within + arg < width ? lane + arg : lane;
    default: { /* xor: a later group gives the lane its own value */
        int src = lane ^ arg;
        return src >= segment + width ? lane : src;
    }
    }
}

static void finish_warp_call(simt_block *b, int first, uint64_t mask, int op)
{
    uint64_t ballot = 0;
    int n = 0;
    for (int i = 0; i < b->lanes; i++)
        if (mask >> i & 1) {
            int p;
            memcpy(&p, b->threads[first + i].warp_value, sizeof p);
            if (op >= W_BALLOT && op <= W_ALL && p) ballot |= 1ull << i;
            n++;
        }
    for (int i = 0; i < b->lanes; i++) {
        if (!(mask >> i & 1)) continue;
        simt_thread *t = &b->threads[first + i];
        uint64_t r = 0;
        switch (op) {
        case W_BALLOT: r = ballot; break;
        case W_ANY: r = ballot != 0; break;
        case W_ALL: r = (uint64_t)__builtin_popcountll(ballot) == (uint64_t)n; break;
        case W_SYNC: break;
        default: {
            int src = source_lane(op, i, t->warp_arg, t->warp_width);
            if (src >= b->lanes || !(mask >> src & 1))
                simt_thread_abort(cudaErrorLaunchFailure, "%s (%s:%d) in lane %d reads lane %d, "
                                  "which is not in the mask 0x%" PRIx64, t->site.what, t->site.file,
                                  t->site.line, i, src, mask);
            memcpy(t->warp_result, b->threads[first + src].warp_value, 8);
            t->state = T_READY;
            continue;
        }
        }
        memcpy(t->warp_result, &r, sizeof r);
        t->state = T_READY;
    }
    if (op == W_SYNC) b->warp_epoch[first / b->lanes]++; /* memory ordered within the warp */
}

void simt_warp_call(int op, uint64_t mask, const void *value, int bytes, int arg, int width,
                    void *result, const char *what, const char *file, int line)
{
    simt_thread *t = caller(what);
    file = simt_base_name(file);
    simt_block *b = tls_block;
    int lanes = b->lanes, first = t->warp * lanes;
    int exist = b->n - first < lanes ? b->n - first : lanes;
    uint64_t all = lanes == 64 ? ~0ull : (1ull << lanes) - 1;
    if (!(mask >> t->lane & 1))
        simt_thread_abort(cudaErrorLaunchFailure, "%s (%s:%d) with mask 0x%" PRIx64 " in lane %d, "
                          "which the mask leaves out (warps of %d lanes here; a 32-bit full mask "
                          "names only lanes 0-31)", what, file, line, mask, t->lane, lanes);
    mask &= all; /* bits past the warp's lanes name nothing (a full 64-bit mask is every lane) */
    if (exist < lanes && (mask >> exist))
        simt_thread_abort(cudaErrorLaunchFailure, "%s (%s:%d): mask 0x%" PRIx64 " names lanes past "
                          "the block's last thread (its last warp has %d lanes)", what, file,
                          line, mask, exist);
    if (op <= W_SHFL_XOR && (width < 1 || width > lanes || (width & (width - 1))))
        simt_thread_abort(cudaErrorLaunchFailure, "%s (%s:%d): width %d is not a power of two up "
                          "to the warp's %d lanes", what, file, line, width, lanes);
    t->warp_op = op;
    t->warp_mask = mask;
    t->warp_arg = arg;
    t->warp_width = width;
    t->warp_size_bytes = bytes;
    memset(t->warp_value, 0, sizeof t->warp_value);
    if (bytes) memcpy(t->warp_value, value, (size_t)bytes);
    t->site = (simt_site){what, file, line};
    t->state = T_WARP;
    int w = t->warp;
    if (b->warp_arrived[w] == 0) { /* the first lane of a warp function: every lane it names */
        for (int i = 0; i < exist; i++) {
            const simt_thread *u = &b->threads[first + i];
            if ((mask >> i & 1) && u->state == T_EXITED)
                simt_thread_abort(cudaErrorLaunchFailure, "%s (%s:%d): lane %d (thread %d) of the "
                                  "mask has exited", what, file, line, i, u->linear);
        }
        b->warp_group_mask[w] = mask;
        b->warp_group_op[w] = op;
        b->warp_group_bytes[w] = bytes;
    } else if (b->warp_group_mask[w] != mask || b->warp_group_op[w] != op ||
               b->warp_group_bytes[w] != bytes) {
        /* One warp function per warp at a time: lanes that meet another one (or the same
         * with another mask) are diverged lanes a GPU would not bring together. */
        const simt_thread *u = NULL;
        for (int i = 0; i < exist && !u; i++)
            if (b->threads[first + i].state == T_WARP && i != t->lane) u = &b->threads[first + i];
        simt_thread_abort(cudaErrorLaunchFailure, "lanes of one warp at different warp "
                          "functions: lane %d at %s (%s:%d, mask 0x%" PRIx64 "), lane %d at "
                          "%s (%s:%d, mask 0x%" PRIx64 ")", t->lane, what, file, line, mask,
                          u->lane, u->site.what, u->site.file, u->site.line, u->warp_mask);
    }
    if (++b->warp_arrived[w] == __builtin_popcountll(mask)) {
        b->warp_arrived[w] = 0;
        finish_warp_call(b, first, mask, op);
    }
    wait_here(b, t);
    if (result) memcpy(result, t->warp_result, op <= W_SHFL_XOR ? (size_t)bytes : 8);
}

/* ---- shared memory ---- */

void *simt_shared_dynamic(void)
{
    caller("extern __shared__");
    return tls_block->shared;
}

void *simt_shared_static(const void *tag, size_t bytes, size_t align, const char *name)
{
    caller("__shared__");
    simt_block *b = tls_block;
    for (int i = 0; i < b->n_vars; i++)
        if (b->vars[i].tag == tag) return b->shared + b->vars[i].offset;
    const simt_settings *cfg = simt_config();
    if (align < 16) align = 16;
    size_t base = b->dynamic + SIMT_SHARED_REDZONE, at = (b->static_top + align - 1) & ~(align - 1);
    size_t static_bytes = at + bytes - base;
    bool opted = simt_func_shared_optin(b->launch->func) > 0;
    size_t block_max = opted && !cfg->amd ? cfg->shared_optin_max : cfg->shared_block_max;
    if (static_bytes > cfg->shared_static_max)
        simt_thread_abort(cudaErrorLaunchOutOfResources, "static shared memory reaches %zu bytes "
                          "with __shared__ %s (%zu bytes): over the %zu a block may declare",
                          static_bytes, name, bytes, cfg->shared_static_max);
    if (b->dynamic + static_bytes > block_max)
        simt_thread_abort(cudaErrorLaunchOutOfResources, "%zu bytes of dynamic and %zu of static "
                          "shared memory (with __shared__ %s): over the %zu a block may use%s",
                          b->dynamic, static_bytes, name, block_max,
                          opted || cfg->amd ? "" : " without the opt-in attribute");
    if (b->n_vars == SIMT_MAX_SHARED_VARS || at + bytes > b->shared_capacity)
        simt_thread_abort(cudaErrorNotSupported, "more than %d __shared__ variables",
                          SIMT_MAX_SHARED_VARS);
    b->vars[b->n_vars++] = (simt_shared_var){tag, at, bytes};
    b->static_top = at + bytes;
    ASAN_UNPOISON_MEMORY_REGION(b->shared + at, bytes);
    /* A new variable is undefined (0xff bytes) and unwritten, whatever an earlier kernel on
     * this block left there. at is 16-aligned, so its bytes of written-bits (one bit per 2
     * bytes) are its own. */
    memset(b->shared + at, 0xff, bytes);
    if (bytes) memset(b->shared_written + at / 16, 0, (at + bytes - 1) / 16 - at / 16 + 1);
    return b->shared + at;
}

/* ---- atomics ---- */

/* CAS loop for the operations without a fetch builtin; bits are the word's bytes. */
static uint64_t apply_atomic(int op, uint64_t old, uint64_t v, int bytes)
{
    int64_t so = bytes == 4 ? (int32_t)old : (int64_t)old, sv = bytes == 4 ? (int32_t)v : (int64_t)v;
    switch (op) {
    case A_ADD_F32: {
        float a, b;
        uint32_t o = (uint32_t)old, w = (uint32_t)v, r;
        memcpy(&a, &o, 4);
        memcpy(&b, &w, 4);
        a += b;
        memcpy(&r, &a, 4);
        return r;
    }
    case A_ADD_F64: {
        double a, b;
        memcpy(&a, &old, 8);
        memcpy(&b, &v, 8);
        a += b;
        memcpy(&old, &a, 8);
        return old;
    }
    case A_ADD_INT: return old + v;
    case A_SUB: return old - v;
    case A_MIN_S: return (uint64_t)(so < sv ? so : sv);
    case A_MAX_S: return (uint64_t)(so > sv ? so : sv);
    case A_MIN_U: return old < v ? old : v;
    case A_MAX_U: return old > v ? old : v;
    case A_EXCH: return v;
    case A_AND: return old & v;
    case A_OR: return old | v;
    case A_XOR: return old ^ v;
    case A_INC: return old >= v ? 0 : old + 1; /* CUDA: ((old >= val) ? 0 : (old+1)) */
    default: return (old == 0 || old > v) ? v : old - 1; /* A_DEC */
    }
}

uint64_t simt_atomic_rmw(void *address, int bytes, int op, uint64_t operand, uint64_t compare)
{
    caller("atomic");
    simt_race_atomic(address, (size_t)bytes, __builtin_return_address(0));
    if (bytes == 4) {
        uint32_t *p = address, old = __atomic_load_n(p, __ATOMIC_RELAXED);
        if (op == A_CAS) {
            uint32_t expected = (uint32_t)compare;
            __atomic_compare_exchange_n(p, &expected, (uint32_t)operand, false, __ATOMIC_SEQ_CST,
                                        __ATOMIC_SEQ_CST);
            return expected;
        }
        while (!__atomic_compare_exchange_n(p, &old, (uint32_t)apply_atomic(op, old, operand, 4),
                                            true, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) {
        }
        return old;
    }
    uint64_t *p = address, old = __atomic_load_n(p, __ATOMIC_RELAXED);
    if (op == A_CAS) {
        uint64_t expected = compare;
        __atomic_compare_exchange_n(p, &expected, operand, false, __ATOMIC_SEQ_CST,
                                    __ATOMIC_SEQ_CST);
        return expected;
    }
    while (!__atomic_compare_exchange_n(p, &old, apply_atomic(op, old, operand, 8), true,
                                        __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) {
    }
    return old;
}
