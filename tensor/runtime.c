#include "runtime.h"

#include <string.h>

#include "autograd.h"

static runtime rt;
static bool rt_ready;

aspo_status runtime_init(backend *be, size_t data_limit)
{
    if (rt_ready) runtime_shutdown();
    memset(&rt, 0, sizeof rt);
    rt.be = be;
    arena_init(&rt.data, "activations", be, data_limit);
    arena_init(&rt.host, "tape", NULL, 0);
    rt.host.chunk_default = (size_t)4 << 20;
    rt.grad_enabled = true;
    rt_ready = true;
    return ASPO_OK;
}

void runtime_shutdown(void)
{
    if (!rt_ready) return;
    arena_free(&rt.data);
    arena_free(&rt.host);
    rt_ready = false;
}

runtime *runtime_current(void)
{
    ASPO_ASSERT(rt_ready && "runtime_init() must come first");
    return &rt;
}

backend *runtime_backend(void) { return runtime_current()->be; }

void runtime_step_reset(void)
{
    runtime *r = runtime_current();
    tape_clear();
    arena_reset(&r->data);
    arena_reset(&r->host);
}

step_mark runtime_mark(void)
{
    runtime *r = runtime_current();
    return (step_mark){arena_mark_now(&r->data), arena_mark_now(&r->host), r->tape};
}

void runtime_release(step_mark m)
{
    runtime *r = runtime_current();
    /* A node recorded after m would point into the freed memory. */
    ASPO_ASSERT(r->tape == m.tape && "runtime_release with tape nodes made after the mark");
    arena_release(&r->data, m.data);
    arena_release(&r->host, m.host);
}

size_t runtime_peak_data_bytes(void) { return runtime_current()->data.peak; }
size_t runtime_peak_host_bytes(void) { return runtime_current()->host.peak; }

long runtime_heap_allocations(void)
{
    return runtime_current()->data.heap_allocations + runtime_current()->host.heap_allocations;
}

bool autograd_set_enabled(bool enabled)
{
    bool prev = runtime_current()->grad_enabled;
    rt.grad_enabled = enabled;
    return prev;
}

bool autograd_enabled(void) { return runtime_current()->grad_enabled; }

void runtime_set_seed(uint64_t seed)
{
    runtime_current()->rng_seed = seed;
    rt.rng_counter = 0;
}

uint64_t runtime_rng_take(uint64_t n)
{
    uint64_t first = runtime_current()->rng_counter;
    rt.rng_counter += n;
    return first;
}
