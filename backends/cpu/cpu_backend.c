#include "cpu_backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpu_internal.h"

static aspo_status cpu_device_info(backend *be, char *name, size_t name_size, size_t *total,
                                   size_t *free_bytes)
{
    (void)be;
    snprintf(name, name_size, "CPU (%ld threads)", sysconf(_SC_NPROCESSORS_ONLN));
    long pages = sysconf(_SC_PHYS_PAGES), avail = sysconf(_SC_AVPHYS_PAGES),
         page = sysconf(_SC_PAGESIZE);
    *total = (size_t)pages * (size_t)page;
    *free_bytes = (size_t)avail * (size_t)page;
    return ASPO_OK;
}

static void *cpu_alloc(backend *be, size_t bytes)
{
    (void)be;
    return aligned_alloc(64, (bytes + 63) & ~(size_t)63);
}

static void cpu_free(backend *be, void *p)
{
    (void)be;
    free(p);
}

static aspo_status cpu_memcpy(backend *be, void *dst, const void *src, size_t bytes)
{
    (void)be;
    if (bytes) memcpy(dst, src, bytes);
    return ASPO_OK;
}

static aspo_status cpu_synchronize(backend *be)
{
    (void)be;
    return ASPO_OK;
}

cpu_state *cpu_state_of(const backend *be) { return be->impl; }

void *cpu_scratch(cpu_state *cpu, enum cpu_scratch_slot slot, size_t bytes)
{
    if (bytes > cpu->scratch[slot].bytes) {
        free(cpu->scratch[slot].data);
        cpu->scratch[slot].data = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
        cpu->scratch[slot].bytes = cpu->scratch[slot].data ? bytes : 0;
    }
    return cpu->scratch[slot].data;
}

static const backend CPU_VTABLE = {
    .name = "cpu",
    .device_info = cpu_device_info,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_memcpy,
    .download = cpu_memcpy,
    .synchronize = cpu_synchronize,
    .kernels = {
        [OP_COPY] = cpu_copy,
        [OP_FILL] = cpu_fill,
        [OP_BINARY] = cpu_binary,
        [OP_SCALE] = cpu_scale,
        [OP_UNARY] = cpu_unary,
        [OP_UNARY_BACKWARD] = cpu_unary_backward,
        [OP_MASKED_FILL] = cpu_masked_fill,
        [OP_DROPOUT] = cpu_dropout,
        [OP_SUM] = cpu_sum,
        [OP_SUMSQ] = cpu_sumsq,
        [OP_MATMUL] = cpu_matmul,
        [OP_SOFTMAX] = cpu_softmax,
        [OP_SOFTMAX_BACKWARD] = cpu_softmax_backward,
        [OP_RMSNORM] = cpu_rmsnorm,
        [OP_RMSNORM_BACKWARD] = cpu_rmsnorm_backward,
        [OP_LAYERNORM] = cpu_layernorm,
        [OP_LAYERNORM_BACKWARD] = cpu_layernorm_backward,
        [OP_L2NORM] = cpu_l2norm,
        [OP_L2NORM_BACKWARD] = cpu_l2norm_backward,
        [OP_GATHER_LOGPROBS] = cpu_gather_logprobs,
        [OP_GATHER_LOGPROBS_BACKWARD] = cpu_gather_logprobs_backward,
        [OP_EMBEDDING] = cpu_embedding,
        [OP_EMBEDDING_BACKWARD] = cpu_embedding_backward,
        [OP_ROPE] = cpu_rope,
        [OP_ATTENTION] = cpu_attention,
        [OP_ATTENTION_BACKWARD] = cpu_attention_backward,
        [OP_ADAMW] = cpu_adamw,
    },
};

backend *cpu_backend(void)
{
    static backend *instance; /* one per process: the tests ask for it repeatedly */
    if (!instance) instance = backend_instance_new(&CPU_VTABLE, sizeof(cpu_state));
    return instance;
}
