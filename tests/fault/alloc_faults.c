/* Allocation failures in SQLite's manner: a job runs once to count its allocations, then
 * once for every N with the Nth allocation failing. Each of those runs must end in an
 * error (never a crash, never success without the memory) and leave nothing allocated
 * behind. The job is `aspo run` in-process on the tiny LLaMA: tokenizer, data, model with
 * LoRA, one training step, the adapter written.
 *
 * The project's allocations reach the wrappers below through the linker's --wrap (every
 * object of this test binary, the library included), and jansson's through the allocator
 * the library gives it (tensor/json_guard.c); memory that libc allocates for itself
 * (getline's buffer, qsort's) is neither failed nor counted; strdup and strndup are wrapped too.
 *   alloc_faults MODEL_DIR TOKENIZER_DIR DATA OUT_DIR [FIRST [LAST [STRIDE]]]
 * With FIRST..LAST (default: all) and STRIDE (default 1), only those N are run. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aspo/train/trainer.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);
int __real_posix_memalign(void **p, size_t align, size_t n);
void *__real_aligned_alloc(size_t align, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);

/* ---- the wrappers: count, fail the Nth, remember what is live and where it was made ---- */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long counter, fail_at = -1; /* allocations so far; the one to fail (-1: none) */
static int failed;                 /* the planted failure happened */
static void *failed_stack[12];     /* where: the call stack */
static int failed_depth;

typedef struct live_entry {
    void *p;
    const void *site;
} live_entry;
static live_entry *table; /* open addressing by pointer; p NULL = empty, 1 = deleted */
static size_t cap, used, live;

static size_t slot(const void *p) { return (size_t)(((uintptr_t)p >> 4) * 0x9E3779B97F4A7C15ull >> 32); }

static void track(void *p, const void *site)
{
    if (2 * (used + 1) > cap) {
        size_t n = cap ? 2 * cap : 1 << 16;
        live_entry *t = __real_calloc(n, sizeof *t);
        if (!t) abort(); /* the harness itself */
        for (size_t i = 0; i < cap; i++)
            if (table[i].p && table[i].p != (void *)1) {
                size_t j = slot(table[i].p) & (n - 1);
                while (t[j].p) j = (j + 1) & (n - 1);
                t[j] = table[i];
            }
        __real_free(table);
        table = t;
        cap = n;
        used = live;
    }
    size_t i = slot(p) & (cap - 1);
    while (table[i].p && table[i].p != (void *)1) i = (i + 1) & (cap - 1);
    if (!table[i].p) used++;
    table[i] = (live_entry){p, site};
    live++;
}

static void untrack(void *p)
{
    if (!p || !cap) return;
    size_t i = slot(p) & (cap - 1);
    for (; table[i].p; i = (i + 1) & (cap - 1))
        if (table[i].p == p) {
            table[i].p = (void *)1;
            live--;
            return;
        }
}

/* The distinct places (return addresses into the caller of malloc & co.) whose allocation
 * was failed, for the loop's summary. jansson's all come through one, tensor/json_guard.c. */
static const void *sites[16384];
static long n_sites;

static void note_site(const void *site)
{
    for (long i = 0; i < n_sites; i++)
        if (sites[i] == site) return;
    if (n_sites < (long)(sizeof sites / sizeof *sites)) sites[n_sites++] = site;
}

/* Whether this allocation, made at site, is the planted failure (and counts it). */
static bool fail_now(const void *site)
{
    long n = ++counter;
    if (n != fail_at) return false;
    note_site(site);
    failed = 1;
    failed_depth = backtrace(failed_stack, 12);
    errno = ENOMEM;
    return true;
}

#define SITE __builtin_return_address(0)

void *__wrap_malloc(size_t n)
{
    pthread_mutex_lock(&lock);
    void *p = fail_now(SITE) ? NULL : __real_malloc(n);
    if (p) track(p, SITE);
    pthread_mutex_unlock(&lock);
    return p;
}

void *__wrap_calloc(size_t n, size_t size)
{
    pthread_mutex_lock(&lock);
    void *p = fail_now(SITE) ? NULL : __real_calloc(n, size);
    if (p) track(p, SITE);
    pthread_mutex_unlock(&lock);
    return p;
}

void *__wrap_realloc(void *old, size_t n)
{
    pthread_mutex_lock(&lock);
    void *p = fail_now(SITE) ? NULL : __real_realloc(old, n);
    if (p) {
        untrack(old);
        track(p, SITE);
    }
    pthread_mutex_unlock(&lock);
    return p;
}

void __wrap_free(void *p)
{
    pthread_mutex_lock(&lock);
    untrack(p);
    pthread_mutex_unlock(&lock);
    __real_free(p);
}

int __wrap_posix_memalign(void **out, size_t align, size_t n)
{
    pthread_mutex_lock(&lock);
    int r = fail_now(SITE) ? ENOMEM : __real_posix_memalign(out, align, n);
    if (!r) track(*out, SITE);
    pthread_mutex_unlock(&lock);
    return r;
}

void *__wrap_aligned_alloc(size_t align, size_t n)
{
    pthread_mutex_lock(&lock);
    void *p = fail_now(SITE) ? NULL : __real_aligned_alloc(align, n);
    if (p) track(p, SITE);
    pthread_mutex_unlock(&lock);
    return p;
}

/* "function+offset (object+offset)" for addr2line: static functions have no dynamic symbol. */
static void describe(const void *site, char *buf, size_t n)
{
    Dl_info info;
    if (!dladdr(site, &info)) {
        snprintf(buf, n, "%p", site);
        return;
    }
    snprintf(buf, n, "%s+%#lx (%s+%#lx)", info.dli_sname ? info.dli_sname : "?",
             info.dli_saddr ? (unsigned long)((const char *)site - (const char *)info.dli_saddr) : 0ul,
             info.dli_fname, (unsigned long)((const char *)site - (const char *)info.dli_fbase));
}


char *__wrap_strdup(const char *s)
{
    pthread_mutex_lock(&lock);
    char *p = fail_now(SITE) ? NULL : __real_strdup(s);
    if (p) track(p, SITE);
    pthread_mutex_unlock(&lock);
    return p;
}

char *__wrap_strndup(const char *s, size_t n)
{
    pthread_mutex_lock(&lock);
    char *p = fail_now(SITE) ? NULL : __real_strndup(s, n);
    if (p) track(p, SITE);
    pthread_mutex_unlock(&lock);
    return p;
}

/* ---- the job ---- */

static train_config job_config(char **argv)
{
    train_config c = train_defaults();
    c.model = argv[1];
    c.tokenizer = argv[2];
    c.data = argv[3];
    c.out = argv[4];
    c.overwrite = true;
    c.quiet = true;
    c.max_steps = 1;
    c.batch_size = 2;
    c.threads = 1;
    return c;
}

/* The planted failure's call stack (its wrapper frame left out), for addr2line. */
static void print_stack(void)
{
    for (int i = 1; i < failed_depth; i++) {
        char where[512];
        describe(failed_stack[i], where, sizeof where);
        fprintf(stderr, "    %s\n", where);
    }
}

/* Live allocations made since `mark`, by site: "N at site" lines, at most 8. */
static void print_leaks(long n)
{
    int shown = 0;
    for (size_t i = 0; i < cap && shown < 8; i++) {
        if (!table[i].p || table[i].p == (void *)1) continue;
        char where[512];
        describe(table[i].site, where, sizeof where);
        fprintf(stderr, "  leaked at N=%ld: %p from %s\n", n, table[i].p, where);
        shown++;
    }
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: %s MODEL TOKENIZER DATA OUT [FIRST [LAST [STRIDE]]]\n", argv[0]);
        return 2;
    }
    void *warm[1];
    backtrace(warm, 1); /* its first call loads libgcc: not inside a wrapper */
    train_config cfg = job_config(argv);
    /* A first run leaves what a process keeps for its life (backend instances, scratch): the
     * baseline for every later run. The second counts the job's allocations. */
    if (train_run(&cfg, NULL)) {
        fprintf(stderr, "the job fails without a planted failure: %s\n", aspo_error_message());
        return 1;
    }
    size_t baseline = live;
    long before = counter;
    if (train_run(&cfg, NULL) || live != baseline) {
        fprintf(stderr, "a second run: %s; %zu allocations left (baseline %zu)\n",
                aspo_error_message(), live, baseline);
        print_leaks(0);
        return 1;
    }
    long total = counter - before;
    long first = argc > 5 ? atol(argv[5]) : 1, last = argc > 6 ? atol(argv[6]) : total;
    long stride = argc > 7 ? atol(argv[7]) : 1;
    if (last > total) last = total;
    printf("the job makes %ld allocations; failing N = %ld..%ld by %ld\n", total, first, last, stride);
    long runs = 0, bad = 0;
    for (long n = first; n <= last; n += stride) {
        aspo_error_clear();
        pthread_mutex_lock(&lock);
        counter = 0;
        fail_at = n;
        failed = 0;
        pthread_mutex_unlock(&lock);
        aspo_status s = train_run(&cfg, NULL);
        fail_at = -1;
        runs++;
        bool ok = true;
        if (failed && s == ASPO_OK) {
            fprintf(stderr, "N=%ld: the allocation failed and the job still succeeded (the "
                    "last error set: \"%s\"); it was made at\n", n, aspo_error_message());
            print_stack();
            ok = false;
        } else if (s && !*aspo_error_message()) {
            fprintf(stderr, "N=%ld: status %s without a message\n", n, aspo_status_name(s));
            ok = false;
        }
        if (live != baseline) {
            fprintf(stderr, "N=%ld: %zd allocations left behind (%s)\n", n,
                    (ssize_t)live - (ssize_t)baseline, s ? aspo_error_message() : "no error");
            print_leaks(n);
            ok = false;
            baseline = live; /* report each leak once */
        }
        bad += !ok;
    }
    printf("alloc_faults: %ld runs, each with one allocation failing (at %ld distinct call "
           "sites): %ld bad\n", runs, n_sites, bad);
    return bad != 0;
}
