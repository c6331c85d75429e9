/* The race check, and with it an address check and shared-memory initialisation check, as
 * compute-sanitizer's racecheck, memcheck and initcheck do on a GPU.
 *
 * The kernels' objects are compiled with -fsanitize=thread but linked without ThreadSanitizer's
 * runtime: the compiler's instrumentation calls __tsan_read4(addr), __tsan_write2(addr), ...
 * before every memory access, and this file is the runtime that answers them. Outside a
 * kernel (host code in the .cu files) the calls return at once. Inside, an access is
 *   - on the thread's own stack: nothing to check;
 *   - in the block's shared memory: it must fall in the dynamic area or a __shared__
 *     variable, and a read must find every byte written earlier in the block (one bit per
 *     2 bytes);
 *   - in the launch's copy of the kernel arguments: reading is fine, writing is not;
 *   - inside a live device allocation (cudaMalloc and friends);
 *   - anything else is an invalid address (a host pointer, or past every allocation).
 * Shared and device accesses then meet the race check: per 2-byte unit, the last writer
 * and up to two readers since the block's last barrier. Two threads touching one unit
 * between barriers, at least one writing and not both atomically, are a race, unless both
 * are lanes of one warp separated by __syncwarp. The table starts empty at every barrier,
 * since a barrier orders everything before it; only one block's threads are compared
 * (blocks run in parallel on OS threads, and their interleaving is the GPU's to choose).
 * Reports are fatal for the launch and name the kernel, block, both threads, the memory,
 * and both places in the source (addr2line on the instrumented objects' line tables). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "simt_internal.h"

/* The accesses to one 2-byte unit since the block's last barrier. Code addresses are kept as
 * 32-bit offsets from this file's code (the kernels are linked into the same binary). */
typedef struct unit_shadow {
    int16_t writer, reader[2];          /* linear thread indices, -1: none */
    uint16_t writer_epoch, reader_epoch[2]; /* the warp's __syncwarp count at the access */
    uint8_t atomic;                     /* bit 0: the writer's, bits 1-2: the readers' */
    int32_t writer_pc, reader_pc;       /* the first reader's */
} unit_shadow;

enum { LINE_UNITS = 64 }; /* 128 bytes of memory per line */

typedef struct line_shadow {
    unit_shadow u[LINE_UNITS];
} line_shadow;

typedef struct line_slot {
    uintptr_t line; /* address >> 7 */
    uint32_t gen;   /* the barrier interval it belongs to; older ones are empty */
    uint32_t index; /* into pool */
} line_slot;

/* Lines touched in this barrier interval: an open-addressing index into a pool that starts
 * empty at every barrier, and the last line used (accesses mostly walk memory in order). */
struct simt_race_table {
    line_slot *slots;
    size_t cap, used;
    line_shadow *pool;
    size_t pool_cap;
    uint32_t gen;
    uintptr_t last_line;
    line_shadow *last;
};

static bool instrumented; /* set by the instrumented objects' constructors (__tsan_init) */

bool simt_race_instrumented(void) { return instrumented; }

void simt_race_free(simt_race_table *t)
{
    if (t) {
        free(t->slots);
        free(t->pool);
    }
    free(t);
}

void simt_race_block_start(simt_block *b)
{
    if (!simt_race_active) return;
    if (!b->race && !(b->race = calloc(1, sizeof *b->race))) return;
    simt_race_table *t = b->race;
    if (++t->gen == 0) { /* after 2^32 intervals old entries would look current */
        memset(t->slots, 0, sizeof *t->slots * t->cap);
        t->gen = 1;
    }
    t->used = 0;
    t->last = NULL;
}

static size_t slot_of(uintptr_t line, size_t cap)
{
    return (size_t)((line * 0x9E3779B97F4A7C15ull) >> 32) & (cap - 1);
}

static const unit_shadow EMPTY_UNIT = {.writer = -1, .reader = {-1, -1}};

/* The shadow of `line` in this interval, made empty on first use; NULL without memory. */
static line_shadow *line_of(simt_race_table *t, uintptr_t line)
{
    if (t->last && t->last_line == line) return t->last;
    if (2 * (t->used + 1) > t->cap) { /* grow the index: keep this interval's entries */
        size_t cap = t->cap ? 2 * t->cap : 1024;
        line_slot *old = t->slots, *s = calloc(cap, sizeof *s);
        if (!s) return NULL;
        for (size_t i = 0; i < t->cap; i++) {
            if (old[i].gen != t->gen) continue;
            size_t j = slot_of(old[i].line, cap);
            while (s[j].gen == t->gen) j = (j + 1) & (cap - 1);
            s[j] = old[i];
        }
        free(old);
        t->slots = s;
        t->cap = cap;
    }
    if (t->used == t->pool_cap) {
        size_t cap = t->pool_cap ? 2 * t->pool_cap : 256;
        line_shadow *p = realloc(t->pool, sizeof *p * cap);
        if (!p) return NULL;
        t->pool = p;
        t->pool_cap = cap;
        t->last = NULL; /* it pointed into the old pool */
    }
    size_t i = slot_of(line, t->cap);
    for (;; i = (i + 1) & (t->cap - 1)) {
        line_slot *e = &t->slots[i];
        if (e->gen != t->gen) { /* linear probing; entries of older intervals count as empty */
            *e = (line_slot){line, t->gen, (uint32_t)t->used++};
            line_shadow *l = &t->pool[e->index];
            for (int k = 0; k < LINE_UNITS; k++) l->u[k] = EMPTY_UNIT;
            break;
        }
        if (e->line == line) break;
    }
    t->last_line = line;
    return t->last = &t->pool[t->slots[i].index];
}

static int32_t pc_offset(const void *pc)
{
    intptr_t d = (intptr_t)pc - (intptr_t)(void *)simt_race_block_start;
    return d > INT32_MIN && d <= INT32_MAX ? (int32_t)d : 0;
}

static const void *pc_at(int32_t offset)
{
    return offset ? (const void *)((intptr_t)(void *)simt_race_block_start + offset) : NULL;
}

/* ---- reports ---- */

/* "file:line" of a code address, from the line tables (-g1) of the instrumented objects; the
 * address itself when that fails. Runs addr2line: only on the way to an error. */
static void place_of(const void *pc, char *buf, size_t size)
{
    Dl_info info;
    struct link_map *module = NULL;
    snprintf(buf, size, "%p", pc);
    if (!pc || !dladdr1(pc, &info, (void **)&module, RTLD_DL_LINKMAP) || !module) return;
    /* The module's load bias (0 for a non-PIE executable); -1: the call's own line, not the
     * instruction after it. */
    uintptr_t offset = (uintptr_t)pc - (uintptr_t)module->l_addr - 1;
    const char *file = info.dli_fname && *info.dli_fname ? info.dli_fname : "/proc/self/exe";
    char cmd[1024], loc[512] = "";
    snprintf(cmd, sizeof cmd, "addr2line -e '%s' 0x%" PRIxPTR " 2>/dev/null", file, offset);
    FILE *p = popen(cmd, "r");
    if (!p) return;
    if (fgets(loc, sizeof loc, p) && loc[0] != '?') {
        loc[strcspn(loc, "\n ")] = 0;
        snprintf(buf, size, "%s", simt_base_name(loc));
    }
    pclose(p);
}

static const char *memory_name(const simt_block *b, uintptr_t a, char *buf, size_t size)
{
    uintptr_t s = (uintptr_t)b->shared;
    if (a >= s && a < s + b->shared_capacity) {
        for (int i = 0; i < b->n_vars; i++)
            if (a - s >= b->vars[i].offset && a - s < b->vars[i].offset + b->vars[i].bytes) {
                snprintf(buf, size, "shared memory (a __shared__ variable, byte %zu of %zu)",
                         (size_t)(a - s - b->vars[i].offset), b->vars[i].bytes);
                return buf;
            }
        snprintf(buf, size, "dynamic shared memory (byte %zu of %zu)", (size_t)(a - s),
                 b->dynamic);
        return buf;
    }
    const void *base;
    size_t bytes;
    if (simt_find_allocation((const void *)a, 1, &base, &bytes))
        snprintf(buf, size, "global memory %p (byte %zu of an allocation of %zu)", (void *)a,
                 (size_t)(a - (uintptr_t)base), bytes);
    else
        snprintf(buf, size, "address %p", (void *)a);
    return buf;
}

#define report(b, ...) simt_block_fail(b, cudaErrorLaunchFailure, __VA_ARGS__)

static void race(simt_block *b, const simt_thread *t, bool write, bool atomic, const void *pc,
                 int other, bool other_wrote, const void *other_pc, uintptr_t a)
{
    char mem[256], here[600], there[600], who[64], whom[64];
    place_of(pc, here, sizeof here);
    if (other_pc) place_of(other_pc, there, sizeof there);
    else snprintf(there, sizeof there, "(its place not kept)");
    report(b, "race on %s: thread %s %s it at %s, and thread %s %s it at %s, with no barrier "
           "between them (since %s at %s:%d)", memory_name(b, a, mem, sizeof mem),
           simt_thread_name(t, who, sizeof who), atomic ? "atomically updates" : write ? "writes" : "reads",
           here, simt_thread_name(&b->threads[other], whom, sizeof whom),
           other_wrote ? "wrote" : "read", there, b->last_barrier.what, b->last_barrier.file,
           b->last_barrier.line);
}

/* ---- the checks ---- */

/* Whether the earlier access by `other` at warp epoch `epoch` is ordered before t's now:
 * the same thread, or a lane of t's warp with a __syncwarp since (16-bit counts). */
static bool ordered(const simt_block *b, const simt_thread *t, int other, uint16_t epoch,
                    uint16_t now)
{
    return other == t->linear || (b->threads[other].warp == t->warp && epoch != now);
}

static void record(simt_block *b, const simt_thread *t, uintptr_t unit, bool write, bool atomic,
                   const void *pc)
{
    line_shadow *l = line_of(b->race, unit / LINE_UNITS);
    if (!l) return;
    unit_shadow *e = &l->u[unit % LINE_UNITS];
    uint16_t now = (uint16_t)b->warp_epoch[t->warp];
    if (e->writer >= 0 && !ordered(b, t, e->writer, e->writer_epoch, now) &&
        !(atomic && (e->atomic & 1))) {
        race(b, t, write, atomic, pc, e->writer, true, pc_at(e->writer_pc), unit << 1);
        return;
    }
    for (int k = 0; write && k < 2; k++)
        if (e->reader[k] >= 0 && !ordered(b, t, e->reader[k], e->reader_epoch[k], now) &&
            !(atomic && (e->atomic >> (1 + k) & 1))) {
            race(b, t, write, atomic, pc, e->reader[k], false, k ? NULL : pc_at(e->reader_pc),
                 unit << 1);
            return;
        }
    if (write) {
        e->writer = (int16_t)t->linear;
        e->writer_epoch = now;
        e->atomic = (uint8_t)((e->atomic & ~1u) | atomic);
        e->writer_pc = pc_offset(pc);
        return;
    }
    for (int k = 0; k < 2; k++) /* two readers: enough to see a later writer differ from one */
        if (e->reader[k] < 0 || e->reader[k] == t->linear) {
            e->reader[k] = (int16_t)t->linear;
            e->reader_epoch[k] = now;
            e->atomic = (uint8_t)((e->atomic & ~(2u << k)) | (unsigned)atomic << (1 + k));
            if (k == 0) e->reader_pc = pc_offset(pc);
            return;
        }
}

/* Whether [off, off + size) of shared memory is the dynamic area or inside one variable. */
static bool shared_in_bounds(const simt_block *b, size_t off, size_t size)
{
    if (off + size <= b->dynamic) return true;
    for (int i = 0; i < b->n_vars; i++)
        if (off >= b->vars[i].offset && off + size <= b->vars[i].offset + b->vars[i].bytes)
            return true;
    return false;
}

/* The reports of check(), out of its way: each has its own buffers. */
static __attribute__((noinline, cold)) void bad_shared(simt_block *b, const simt_thread *t,
                                                        size_t off, size_t size, bool write,
                                                        const void *pc)
{
    char who[64], where[600];
    place_of(pc, where, sizeof where);
    report(b, "thread %s %s %zu bytes of shared memory at byte %zu, outside the block's %zu bytes "
           "of dynamic shared memory and its __shared__ variables, at %s",
           simt_thread_name(t, who, sizeof who), write ? "writes" : "reads", size, off,
           b->dynamic, where);
}

static __attribute__((noinline, cold)) void unwritten_shared(simt_block *b, const simt_thread *t,
                                                              uintptr_t a, const void *pc)
{
    char who[64], where[600], mem[256];
    place_of(pc, where, sizeof where);
    report(b, "thread %s reads %s at %s, which no thread of the block has written (shared "
           "memory starts undefined)", simt_thread_name(t, who, sizeof who),
           memory_name(b, a, mem, sizeof mem), where);
}

static __attribute__((noinline, cold)) void bad_address(simt_block *b, const simt_thread *t,
                                                         uintptr_t a, size_t size, bool write,
                                                         bool atomic, bool arguments,
                                                         const void *pc)
{
    char who[64], where[600], mem[256];
    place_of(pc, where, sizeof where);
    if (arguments)
        report(b, "thread %s writes the launch's copy of the kernel arguments at %s",
               simt_thread_name(t, who, sizeof who), where);
    else
        report(b, "thread %s %s %zu bytes at %s, which is not device memory (no live cudaMalloc "
               "holds it), nor shared memory: a host pointer, a freed buffer or an index past "
               "the end, at %s", simt_thread_name(t, who, sizeof who),
               atomic ? "updates" : write ? "writes" : "reads", size,
               memory_name(b, a, mem, sizeof mem), where);
}

/* Called by the hooks only while the race check runs (simt_race_active). */
static void check(const void *addr, size_t size, bool write, bool atomic, const void *pc)
{
    simt_thread *t = simt_current_thread();
    if (!t || !size) return;
    simt_block *b = simt_current_block();
    if (b->failed) return;
    uintptr_t a = (uintptr_t)addr, s = (uintptr_t)b->shared;
    uintptr_t stack = (uintptr_t)t->fiber.stack;
    if (a >= stack && a < stack + t->fiber.stack_size) return;
    if (a >= s && a < s + b->shared_capacity) {
        size_t off = a - s;
        if (!shared_in_bounds(b, off, size)) {
            bad_shared(b, t, off, size, write, pc);
            return;
        }
        for (size_t u = off / 2; u <= (off + size - 1) / 2; u++) {
            uint8_t bit = (uint8_t)(1u << (u % 8)), *w = &b->shared_written[u / 8];
            if (write) {
                *w |= bit;
            } else if (!(*w & bit)) {
                unwritten_shared(b, t, a, pc);
                return;
            }
        }
    } else if (a >= (uintptr_t)b->closure_lo && a < (uintptr_t)b->closure_hi) {
        if (write) bad_address(b, t, a, size, write, atomic, true, pc);
        return;
    } else if (!(a >= b->alloc_lo && a + size <= b->alloc_hi)) {
        const void *base;
        size_t bytes;
        if (!simt_find_allocation(addr, size, &base, &bytes)) {
            bad_address(b, t, a, size, write, atomic, false, pc);
            return;
        }
        b->alloc_lo = (uintptr_t)base; /* the next access is likely in the same allocation */
        b->alloc_hi = (uintptr_t)base + bytes;
    }
    if (!b->race) return; /* no memory for the table: only the address checks run */
    for (uintptr_t u = a >> 1; u <= (a + size - 1) >> 1 && !b->failed; u++)
        record(b, t, u, write, atomic, pc);
}

void simt_race_atomic(const void *addr, size_t bytes, const void *pc)
{
    if (simt_race_active) check(addr, bytes, true, true, pc);
}

/* ---- the instrumentation's entry points ---- */

#define PC __builtin_return_address(0)
/* The hooks run on every access of instrumented code: one test when the check is off. */
#define CHECK_ACCESS(a, n, write, atomic)                                                      \
    do {                                                                                       \
        if (simt_race_active) check(a, n, write, atomic, PC);                                  \
    } while (0)
/* The signatures are gcc's own declarations of these builtins (an ASan build declares them
 * too, and a mismatch is a warning). */
void __tsan_init(void) { instrumented = true; }
void __tsan_func_entry(void *pc) { (void)pc; }
void __tsan_func_exit(void *unused) { (void)unused; }
void __tsan_vptr_update(void *p, void *v) { (void)p, (void)v; }
void __tsan_vptr_read(void *p) { (void)p; }
void __tsan_read_range(void *a, long n) { CHECK_ACCESS(a, (size_t)n, false, false); }
void __tsan_write_range(void *a, long n) { CHECK_ACCESS(a, (size_t)n, true, false); }

#define ACCESS(n)                                                                              \
    void __tsan_read##n(void *a) { CHECK_ACCESS(a, n, false, false); }                         \
    void __tsan_write##n(void *a) { CHECK_ACCESS(a, n, true, false); }                         \
    void __tsan_unaligned_read##n(void *a) { CHECK_ACCESS(a, n, false, false); }               \
    void __tsan_unaligned_write##n(void *a) { CHECK_ACCESS(a, n, true, false); }               \
    void __tsan_volatile_read##n(void *a) { CHECK_ACCESS(a, n, false, false); }                \
    void __tsan_volatile_write##n(void *a) { CHECK_ACCESS(a, n, true, false); }
ACCESS(1)
ACCESS(2)
ACCESS(4)
ACCESS(8)
ACCESS(16)

/* Atomics the compiler emits for __atomic builtins (static-local guards in host code, or a
 * kernel's own atomics): done for real, and noted as atomic accesses. Every memory order is
 * taken as sequentially consistent. */
#define ATOMICS(n, T)                                                                          \
    T __tsan_atomic##n##_load(const volatile void *a, int mo)                                  \
    {                                                                                          \
        (void)mo;                                                                              \
        CHECK_ACCESS((const void *)a, n / 8, false, true);                                     \
        return __atomic_load_n((const volatile T *)a, __ATOMIC_SEQ_CST);                       \
    }                                                                                          \
    void __tsan_atomic##n##_store(volatile void *a, T v, int mo)                               \
    {                                                                                          \
        (void)mo;                                                                              \
        CHECK_ACCESS((const void *)a, n / 8, true, true);                                      \
        __atomic_store_n((volatile T *)a, v, __ATOMIC_SEQ_CST);                                \
    }                                                                                          \
    T __tsan_atomic##n##_exchange(volatile void *a, T v, int mo)                               \
    {                                                                                          \
        (void)mo;                                                                              \
        CHECK_ACCESS((const void *)a, n / 8, true, true);                                      \
        return __atomic_exchange_n((volatile T *)a, v, __ATOMIC_SEQ_CST);                      \
    }                                                                                          \
    RMW(n, T, fetch_add) RMW(n, T, fetch_sub) RMW(n, T, fetch_and) RMW(n, T, fetch_or)        \
    RMW(n, T, fetch_xor) RMW(n, T, fetch_nand)                                                 \
    _Bool __tsan_atomic##n##_compare_exchange_strong(volatile void *a, void *c, T v, int mo,   \
                                                     int fmo)                                  \
    {                                                                                          \
        (void)mo, (void)fmo;                                                                   \
        CHECK_ACCESS((const void *)a, n / 8, true, true);                                      \
        return __atomic_compare_exchange_n((volatile T *)a, (T *)c, v, false,                  \
                                           __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);                \
    }                                                                                          \
    _Bool __tsan_atomic##n##_compare_exchange_weak(volatile void *a, void *c, T v, int mo,     \
                                                   int fmo)                                    \
    {                                                                                          \
        (void)mo, (void)fmo;                                                                   \
        CHECK_ACCESS((const void *)a, n / 8, true, true);                                      \
        return __atomic_compare_exchange_n((volatile T *)a, (T *)c, v, true,                   \
                                           __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);                \
    }                                                                                          \
    T __tsan_atomic##n##_compare_exchange_val(volatile void *a, T c, T v, int mo, int fmo)     \
    {                                                                                          \
        (void)mo, (void)fmo;                                                                   \
        CHECK_ACCESS((const void *)a, n / 8, true, true);                                      \
        __atomic_compare_exchange_n((volatile T *)a, &c, v, false, __ATOMIC_SEQ_CST,           \
                                    __ATOMIC_SEQ_CST);                                         \
        return c;                                                                              \
    }
#define RMW(n, T, op)                                                                          \
    T __tsan_atomic##n##_##op(volatile void *a, T v, int mo)                                   \
    {                                                                                          \
        (void)mo;                                                                              \
        CHECK_ACCESS((const void *)a, n / 8, true, true);                                      \
        return __atomic_##op((volatile T *)a, v, __ATOMIC_SEQ_CST);                            \
    }
ATOMICS(8, unsigned char)
ATOMICS(16, unsigned short)
ATOMICS(32, unsigned int)
ATOMICS(64, unsigned long)

void __tsan_atomic_thread_fence(int mo)
{
    (void)mo;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}
void __tsan_atomic_signal_fence(int mo) { (void)mo; }
