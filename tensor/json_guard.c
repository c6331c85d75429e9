/* jansson's allocator: a counter of failures and a reserve (see json_guard.h). */
#include "json_guard.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>

/* Address space only (PROT_NONE, never touched): it costs no memory, and giving it back
 * lets a retried request fit under RLIMIT_AS. 64 MiB is more than any one buffer jansson
 * grows while reading aspo's inputs (the largest, a tokenizer.json, is read whole within
 * 64 MiB). */
#define RESERVE_BYTES ((size_t)64 << 20)

static atomic_uint_least64_t failures;
static pthread_once_t installed = PTHREAD_ONCE_INIT;
static pthread_mutex_t reserve_lock = PTHREAD_MUTEX_INITIALIZER;
static void *reserve; /* NULL: given back (or never had) */

static void arm_reserve(void)
{
    pthread_mutex_lock(&reserve_lock);
    if (!reserve) {
        void *p = mmap(NULL, RESERVE_BYTES, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                       -1, 0);
        reserve = p == MAP_FAILED ? NULL : p;
    }
    pthread_mutex_unlock(&reserve_lock);
}

static void *guarded_malloc(size_t n)
{
    void *p = malloc(n);
    if (p) return p;
    atomic_fetch_add(&failures, 1);
    pthread_mutex_lock(&reserve_lock);
    if (reserve) {
        munmap(reserve, RESERVE_BYTES);
        reserve = NULL;
    }
    pthread_mutex_unlock(&reserve_lock);
    return malloc(n); /* still NULL when the reserve was not enough */
}

/* The same free as jansson's default: callers free json_dumps' text with free(). */
static void plain_free(void *p) { free(p); }

static void install(void) { json_set_alloc_funcs(guarded_malloc, plain_free); }

/* Before main: no JSON is read with jansson's own allocator. */
__attribute__((constructor)) static void install_at_start(void) { json_guard_mark(); }

uint64_t json_guard_mark(void)
{
    pthread_once(&installed, install);
    arm_reserve();
    return atomic_load(&failures);
}

aspo_status json_guard_check(uint64_t mark, const char *what)
{
    if (atomic_load(&failures) == mark) return ASPO_OK;
    return aspo_fail(ASPO_ERR_OOM, "%s: out of memory while reading or writing its JSON",
                     what ? what : "JSON");
}
