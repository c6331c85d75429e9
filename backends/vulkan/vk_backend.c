/* The Vulkan backend's vtable: memory through vk_memory.c, copies and sync through
 * vk_exec.c, one kernel per op (vk_ops_*.c). */
#include "vk_backend.h"

#include <stdio.h>
#include <stdlib.h>

#include "vk_internal.h"

vk_view vk_view_of(const tensor *t, const tensor *like)
{
    vk_view v = {.addr = (uint64_t)(uintptr_t)t->data, .dt = (int32_t)t->dt};
    int64_t ne[4], st[4];
    tensor_view4(t, like, ne, st);
    for (int d = 0; d < 4; d++) v.ne[d] = (int32_t)ne[d], v.st[d] = (int32_t)st[d];
    return v;
}

static aspo_status device_info(backend *be, char *name, size_t name_size, size_t *total,
                               size_t *free_bytes)
{
    const vk_state *vk = vk_state_of(be);
    VkPhysicalDeviceMemoryProperties mp;
    vkGetPhysicalDeviceMemoryProperties(vk->phys, &mp);
    uint32_t heap = mp.memoryTypes[vk->device_memory_type].heapIndex;
    snprintf(name, name_size, "%s (Vulkan)", vk->device_name);
    *total = (size_t)mp.memoryHeaps[heap].size;
    *free_bytes = *total; /* VK_EXT_memory_budget would say more; not required */
    return ASPO_OK;
}

static void *be_alloc(backend *be, size_t bytes) { return vk_alloc(vk_state_of(be), bytes); }

static void be_free(backend *be, void *p) { vk_free(vk_state_of(be), p); }

static aspo_status be_upload(backend *be, void *dst, const void *src, size_t bytes)
{
    return bytes ? vk_upload(vk_state_of(be), dst, src, bytes) : ASPO_OK;
}

static aspo_status be_download(backend *be, void *dst, const void *src, size_t bytes)
{
    return bytes ? vk_download(vk_state_of(be), dst, src, bytes) : ASPO_OK;
}

static aspo_status be_synchronize(backend *be) { return vk_flush(vk_state_of(be)); }

static const backend VULKAN_VTABLE = {
    .name = "vulkan",
    .device_info = device_info,
    .alloc = be_alloc,
    .free = be_free,
    .upload = be_upload,
    .download = be_download,
    .synchronize = be_synchronize,
    .kernels = {
        [OP_COPY] = vk_copy,
        [OP_FILL] = vk_fill,
        [OP_BINARY] = vk_binary,
        [OP_SCALE] = vk_scale,
        [OP_UNARY] = vk_unary,
        [OP_UNARY_BACKWARD] = vk_unary_backward,
        [OP_MASKED_FILL] = vk_masked_fill,
        [OP_EMBEDDING] = vk_embedding,
        [OP_EMBEDDING_BACKWARD] = vk_embedding_backward,
        [OP_GATHER_LOGPROBS] = vk_gather_logprobs,
        [OP_GATHER_LOGPROBS_BACKWARD] = vk_gather_logprobs_backward,
        [OP_ROPE] = vk_rope,
        [OP_ATTENTION] = vk_attention,
        [OP_ATTENTION_BACKWARD] = vk_attention_backward,
        [OP_SUM] = vk_sum,
        [OP_SUMSQ] = vk_sumsq,
        [OP_SOFTMAX] = vk_softmax,
        [OP_SOFTMAX_BACKWARD] = vk_softmax_backward,
        [OP_RMSNORM] = vk_rmsnorm,
        [OP_RMSNORM_BACKWARD] = vk_rmsnorm_backward,
        [OP_LAYERNORM] = vk_layernorm,
        [OP_LAYERNORM_BACKWARD] = vk_layernorm_backward,
        [OP_L2NORM] = vk_l2norm,
        [OP_L2NORM_BACKWARD] = vk_l2norm_backward,
        [OP_MATMUL] = vk_matmul,
        [OP_ADAMW] = vk_adamw,
        [OP_DROPOUT] = vk_dropout,
    },
};

backend *vulkan_backend(void)
{
    static backend *instance; /* one per process: the device is opened once */
    if (instance) return instance;
    backend *made = backend_instance_new(&VULKAN_VTABLE, sizeof(vk_state));
    if (!made) return NULL;
    if (vk_init(made->impl)) { /* the error names what is missing; a later call tries again */
        vk_release(made->impl);
        free(made);
        return NULL;
    }
    return instance = made;
}
