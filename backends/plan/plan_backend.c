/* The plan backend: fake addresses, no-op kernels, and a small upload shadow. */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS, MAP_NORESERVE */
#include "plan_backend.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "../../tensor/tensor.h"

/* Under 1 MiB: the token ids of up to 256k positions, but not the 1 MiB blocks that
 * param_store_allocate clears a store with (copying 50 GB of zeros would make a plan of a
 * 7B model slow). A ring of slots whose buffers are reused, so the host memory held stays
 * bounded whatever a run uploads. */
enum { PLAN_ALIGN = 256, SHADOW_SLOTS = 64, SHADOW_MAX_ENTRY = (1 << 20) - 1 };

typedef struct shadow {
    const char *addr; /* NULL: empty slot */
    size_t bytes;
    char *copy;
    size_t capacity;
} shadow;

/* The backend instance's state, behind backend.impl. */
typedef struct plan_state {
    /* A PROT_NONE reservation costs no memory, only address space: 16 TiB holds the plan
     * of any model a GPU could train; smaller ones are tried when the process has less room
     * (sanitizers take part of it). Bumped, never reused except when everything is freed. */
    char *reserved;
    size_t reserved_bytes, top;
    long live_allocations;
    /* copies of small uploads, a ring: next_slot is the oldest */
    shadow shadows[SHADOW_SLOTS];
    int next_slot;
} plan_state;

static plan_state *plan_state_of(const backend *be) { return be->impl; }

/* ---- addresses ---- */

static bool reserve(plan_state *plan)
{
    if (plan->reserved) return true;
    for (size_t size = (size_t)1 << 44; size >= ((size_t)1 << 30); size /= 2) {
        void *p = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p != MAP_FAILED) {
            plan->reserved = p;
            plan->reserved_bytes = size;
            return true;
        }
    }
    return false;
}

static void *plan_alloc(backend *be, size_t bytes)
{
    plan_state *plan = plan_state_of(be);
    size_t need = (bytes + PLAN_ALIGN - 1) & ~(size_t)(PLAN_ALIGN - 1);
    if (!need) need = PLAN_ALIGN;
    if (!reserve(plan) || need > plan->reserved_bytes - plan->top) return NULL; /* "device full" */
    void *p = plan->reserved + plan->top;
    plan->top += need;
    plan->live_allocations++;
    return p;
}

static void plan_free(backend *be, void *p)
{
    plan_state *plan = plan_state_of(be);
    if (p && --plan->live_allocations == 0) plan->top = 0;
}

static aspo_status plan_device_info(backend *be, char *name, size_t name_size, size_t *total,
                                    size_t *free_bytes)
{
    plan_state *plan = plan_state_of(be);
    snprintf(name, name_size, "plan (counts bytes, allocates none)");
    reserve(plan);
    *total = plan->reserved_bytes;
    *free_bytes = plan->reserved_bytes - plan->top;
    return ASPO_OK;
}

/* ---- copies: small uploads are kept so the host can read them back ---- */

static void shadow_drop(shadow *s)
{
    s->addr = NULL;
    s->bytes = 0;
}

static aspo_status plan_upload(backend *be, void *dst, const void *src, size_t bytes)
{
    plan_state *plan = plan_state_of(be);
    shadow *shadows = plan->shadows;
    const char *lo = dst, *hi = lo + bytes;
    for (int i = 0; i < SHADOW_SLOTS; i++) /* overwritten: the old copy is stale */
        if (shadows[i].addr && shadows[i].addr < hi && lo < shadows[i].addr + shadows[i].bytes)
            shadow_drop(&shadows[i]);
    if (!bytes || bytes > SHADOW_MAX_ENTRY) return ASPO_OK;
    shadow *s = &shadows[plan->next_slot];
    plan->next_slot = (plan->next_slot + 1) % SHADOW_SLOTS;
    shadow_drop(s);
    if (bytes > s->capacity) {
        free(s->copy);
        s->capacity = (s->copy = malloc(bytes)) ? bytes : 0;
    }
    if (s->copy) { /* without host memory the bytes read back as the filler */
        memcpy(s->copy, src, bytes);
        s->addr = lo;
        s->bytes = bytes;
    }
    return ASPO_OK;
}

static aspo_status plan_download(backend *be, void *dst, const void *src, size_t bytes)
{
    const plan_state *plan = plan_state_of(be);
    const char *lo = src;
    for (int k = 1; k <= SHADOW_SLOTS; k++) { /* newest first */
        const shadow *s = &plan->shadows[(plan->next_slot - k + SHADOW_SLOTS) % SHADOW_SLOTS];
        if (s->addr && s->addr <= lo && lo + bytes <= s->addr + s->bytes) {
            memcpy(dst, s->copy + (lo - s->addr), bytes);
            return ASPO_OK;
        }
    }
    /* Not zero: host checks of norms (a CLIP embedding of length 0 is an error) must pass.
     * The bytes 00 3C repeated read as 1.0 in f16 and about 2^-7 in bf16 and f32. */
    unsigned char *out = dst;
    for (size_t i = 0; i < bytes; i++) out[i] = i & 1 ? 0x3C : 0x00;
    return ASPO_OK;
}

static aspo_status plan_synchronize(backend *be)
{
    (void)be;
    return ASPO_OK;
}

/* Every op "runs": its output was allocated by the op layer, which is all a plan needs. Its
 * bytes are the kernel's now, not an earlier upload's (the step arena hands the same
 * addresses out again): shadows they overlap are dropped, so reading them gives the finite
 * filler above, not stale host data (a packed layout's -1 reads as a NaN norm). */
static aspo_status plan_kernel(const op_call *call)
{
    for (int i = 0; i < call->n_out; i++) {
        const tensor *t = call->out[i];
        if (!t || !t->data) continue;
        plan_state *plan = plan_state_of(t->be);
        const char *lo = t->data, *hi = lo + tensor_nbytes(t);
        for (int k = 0; k < SHADOW_SLOTS; k++) {
            shadow *s = &plan->shadows[k];
            if (s->addr && s->addr < hi && lo < s->addr + s->bytes) s->addr = NULL;
        }
    }
    return ASPO_OK;
}

static const backend PLAN_VTABLE = {
    .name = "plan",
    .device_info = plan_device_info,
    .alloc = plan_alloc,
    .free = plan_free,
    .upload = plan_upload,
    .download = plan_download,
    .synchronize = plan_synchronize,
};

backend *plan_backend(void)
{
    static backend *instance; /* one per process, as the other backends */
    if (instance) return instance;
    if (!(instance = backend_instance_new(&PLAN_VTABLE, sizeof(plan_state)))) return NULL;
    for (int op = 0; op < OP_COUNT; op++) instance->kernels[op] = plan_kernel;
    return instance;
}
