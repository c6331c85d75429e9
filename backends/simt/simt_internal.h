/* Shared by the layer's own files (not by kernels): fibers, the block being run on this OS
 * thread and its CUDA threads, the device allocations, settings, and the race check's
 * entry points. */
#ifndef ASPO_SIMT_INTERNAL_H
#define ASPO_SIMT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "simt_runtime.h"

/* ---- fibers (simt_fiber.c) ---- */

typedef struct simt_fiber {
    void *sp;          /* saved stack pointer while switched out */
    char *stack;       /* NULL for an OS thread's own stack */
    size_t stack_size;
    void *asan_fake_stack;
    const void *asan_bottom; /* the stack ASan is told about when switching to this fiber */
    size_t asan_size;
    void *ucontext;    /* the portable fallback's context (non-x86_64) */
} simt_fiber;

/* A fiber that will run entry(arg) on its own stack (allocated once, reused). */
bool simt_fiber_prepare(simt_fiber *f, size_t stack_size, void (*entry)(void *), void *arg);
void simt_fiber_release(simt_fiber *f);
/* Saves the running context in `from` and continues `to`. `exiting`: from never runs again
 * (its ASan fake stack is dropped). */
void simt_fiber_switch(simt_fiber *from, simt_fiber *to, bool exiting);
/* First thing a fiber's entry calls (ASan's bookkeeping of the switch that started it). */
void simt_fiber_started(simt_fiber *scheduler);

/* ---- CUDA threads and blocks (simt_exec.c) ---- */

enum simt_thread_state { T_READY, T_BARRIER, T_WARP, T_EXITED };

typedef struct simt_site {
    const char *what, *file;
    int line;
} simt_site;

typedef struct simt_thread {
    simt_fiber fiber;
    simt_dim3 idx;
    int linear, warp, lane;
    int state;
    simt_site site; /* where it waits */
    /* a block barrier with a vote (__syncthreads_count/and/or) */
    int vote_op, vote_pred, vote_result;
    /* a warp function: op, mask, the value given, the lane argument and the result */
    int warp_op;
    uint64_t warp_mask;
    unsigned char warp_value[8], warp_result[8];
    int warp_size_bytes, warp_arg, warp_width;
} simt_thread;

typedef struct simt_shared_var {
    const void *tag;
    size_t offset, bytes;
} simt_shared_var;

enum { SIMT_MAX_SHARED_VARS = 32, SIMT_SHARED_REDZONE = 64 };

typedef struct simt_race_table simt_race_table;

/* One OS thread's block context, reused for every block it runs. */
typedef struct simt_block {
    const simt_launch_desc *launch;
    simt_dim3 idx;
    int n, lanes, warps;
    simt_thread *threads;
    int capacity;
    simt_fiber scheduler;
    int live;
    /* shared memory: dynamic at [0, dynamic), then a redzone, then the static variables */
    unsigned char *shared;
    size_t shared_capacity, dynamic, static_top;
    simt_shared_var vars[SIMT_MAX_SHARED_VARS];
    int n_vars;
    uint8_t *shared_written; /* initcheck: one bit per 2 bytes of shared memory */
    /* ordering for the race check: block barriers and per-warp __syncwarp */
    uint32_t epoch;
    uint32_t warp_epoch[32];
    /* the warp function each warp's lanes are gathering at: its mask, op and arrivals */
    uint64_t warp_group_mask[32];
    int warp_group_op[32], warp_group_bytes[32], warp_arrived[32];
    /* the race check's last device allocation hit (allocations change only between launches) */
    uintptr_t alloc_lo, alloc_hi;
    simt_site last_barrier;
    uint64_t rng; /* the random schedule */
    bool failed;
    simt_race_table *race;
    const void *closure_lo, *closure_hi;
} simt_block;

/* The block and the CUDA thread running now on this OS thread (NULL outside kernels). */
extern __thread simt_block *simt_tls_block;
extern __thread simt_thread *simt_tls_thread;
static inline simt_block *simt_current_block(void) { return simt_tls_block; }
static inline simt_thread *simt_current_thread(void) { return simt_tls_thread; }
/* The block stops: a report naming the kernel, block and thread, then the next
 * synchronization returns it. Called from a CUDA thread; does not return to it. */
_Noreturn void simt_thread_abort(cudaError_t code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* A report of the running launch (the first is kept; later ones are counted); fatal: the
 * launch's remaining blocks are skipped. */
void simt_launch_report(cudaError_t code, const char *message, bool fatal);
/* A report about block b ("kernel K, block (x,y,z): " and the message), and the block stops
 * (its threads are not resumed; the launch's other blocks are skipped). */
void simt_block_fail(simt_block *b, cudaError_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* "kernel K, block (x,y,z)" for messages. */
const char *simt_where(const simt_block *b, char *buf, size_t size);
/* The file name of a path, for messages. */
const char *simt_base_name(const char *path);
/* "(x,y,z)" */
const char *simt_thread_name(const simt_thread *t, char *buf, size_t size);

/* Runs one launch to its end (every block, over the OpenMP threads). */
void simt_run_launch(const simt_launch_desc *d);

/* ---- settings and device memory (simt_stream.c) ---- */

typedef struct simt_settings {
    int lanes;             /* 32 or 64 */
    bool amd;              /* the 64-lane profile: AMD CDNA limits */
    bool random_schedule;
    uint64_t seed;
    bool racecheck;        /* the instrumented build, not turned off */
    size_t memory;         /* device bytes */
    size_t shared_static_max, shared_block_max, shared_optin_max;
} simt_settings;

const simt_settings *simt_config(void);
/* The race check runs (simt_config()->racecheck), read on every instrumented access. */
extern bool simt_race_active;
/* The device allocation holding [p, p + bytes), or false. */
bool simt_find_allocation(const void *p, size_t bytes, const void **base, size_t *size);
/* The opt-in dynamic shared memory of a kernel (cudaFuncSetAttribute), 0 when none. */
size_t simt_func_shared_optin(const void *func);

/* ---- the race check (simt_race.c) ---- */

/* Whether this build's kernels are instrumented (compiled with -fsanitize=thread). */
bool simt_race_instrumented(void);
/* A new barrier interval of the block, also at its start: every earlier access is ordered
 * before every later one. */
void simt_race_block_start(simt_block *b);
void simt_race_free(simt_race_table *t);
/* An atomic access by the current thread (atomics are not plain accesses). */
void simt_race_atomic(const void *addr, size_t bytes, const void *pc);

#endif
