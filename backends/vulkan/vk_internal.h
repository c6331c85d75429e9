/* Shared by the Vulkan backend's files: the instance's state (behind backend.impl), device
 * memory addressed by buffer device address (a tensor's `data` is its device address, so
 * views are pointer arithmetic as on the CPU), the command stream (dispatches recorded into
 * one command buffer, submitted at sync points), pipelines built once from the SPIR-V
 * embedded at build time, and the kernel declarations.
 *
 * The kernel ABI: every shader reads one parameter block through a device address passed
 * as its only push constant (shaders/common.glsl). Tensors enter the block as vk_view
 * records (address, dtype, sizes, element strides; 0 stride = broadcast), so shaders
 * address memory directly and no descriptor sets exist: maxStorageBufferRange (128 MiB on
 * lavapipe) limits descriptor bindings only, and none are used. */
#ifndef ASPO_VK_INTERNAL_H
#define ASPO_VK_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <vulkan/vulkan.h>

#include "../../tensor/tensor.h"

typedef struct vk_state vk_state;

/* std430 layout of `View` in shaders/common.glsl: 48 bytes. */
typedef struct vk_view {
    uint64_t addr; /* device address of element [0,0,0,0] */
    int32_t dt;    /* dtype (DT_F32, DT_BF16, DT_F16, DT_I32) */
    int32_t pad_;
    int32_t ne[4]; /* sizes, leading dims padded with 1 */
    int32_t st[4]; /* element strides; 0 where broadcast */
} vk_view;

/* t as a 4-D view; with `like`, broadcast to like's shape (as cpu_view_of). */
vk_view vk_view_of(const tensor *t, const tensor *like);

/* Records one dispatch of the embedded shader `name` (shaders/<name>.comp) with the
 * parameter block params[0..size) and (gx,gy,gz) workgroups. spec: specialization
 * constants 0..n_spec-1 (uint32 each); a pipeline is built once per (shader, constants).
 * Groups beyond the device's limit are an error naming the shader. */
aspo_status vk_dispatch(vk_state *vk, const char *name, const uint32_t *spec, int n_spec,
                        const void *params, size_t size, uint32_t gx, uint32_t gy, uint32_t gz);

/* Workgroups of `per_group` invocations covering n items, as (x,y) under the device's
 * maxComputeWorkGroupCount[0] (shaders rebuild the linear index from gl_WorkGroupID.xy). */
void vk_groups_1d(const vk_state *vk, int64_t n, uint32_t per_group, uint32_t *gx,
                  uint32_t *gy);

/* ---- device, memory, commands (vk_device.c, vk_memory.c, vk_exec.c) ---- */

typedef struct vk_block {
    VkBuffer buffer;
    VkDeviceMemory memory;
    uint64_t addr; /* device address of the buffer's first byte */
    VkDeviceSize size;
    void *mapped;  /* host pointer when host-visible (staging, parameters), else NULL */
    /* free ranges of a sub-allocated block, sorted by offset */
    struct vk_range { VkDeviceSize off, size; } *free;
    int n_free, cap_free;
} vk_block;

/* One backend instance's state: the device, its memory, the command stream, the pipelines
 * and the kernels' buffers kept between calls. */
struct vk_state {
    VkInstance instance;
    VkDebugUtilsMessengerEXT messenger;
    VkPhysicalDevice phys;
    VkPhysicalDeviceProperties props;
    VkDevice device;
    VkQueue queue;
    uint32_t queue_family;
    uint32_t device_memory_type, host_memory_type;
    VkCommandPool pool;
    VkCommandBuffer cmd;
    VkFence fence;
    bool recording;      /* cmd is open and has commands */
    bool in_flight_work; /* dispatches or copies recorded since the last wait */
    VkPipelineLayout layout;
    VkPipelineCache pipeline_cache;
    /* device memory, sorted by addr */
    vk_block **blocks;
    int n_blocks, cap_blocks;
    /* per-submission rings in host-visible memory */
    vk_block params, staging;
    VkDeviceSize params_used, staging_used;
    int validation_messages; /* counted by the debug messenger */
    char device_name[256];
    /* Whether compute shaders may use subgroup arithmetic (subgroupAdd, subgroupMax);
     * shaders get it as a specialization constant and take a shared-memory path otherwise. */
    bool subgroup_arithmetic;
    /* the size of each allocation, by address (vk_memory.c) */
    struct vk_live *lives;
    int n_lives, cap_lives;
    /* pipelines built so far (vk_pipeline.c) */
    struct vk_cached_pipeline *pipelines;
    int n_pipelines, cap_pipelines;
    /* vk_scratch's buffer */
    void *scratch;
    size_t scratch_bytes;
    /* the embedding backward's token positions grouped by id (vk_ops_embedding.c) */
    int32_t *token_positions;
    size_t token_positions_bytes;
};

/* The state of a Vulkan backend instance; a kernel's is vk_state_of(c->out[0]->be). */
vk_state *vk_state_of(const backend *be);
/* Creates the instance, device, queue and rings; errors list the devices found and what is
 * missing, ASPO_ERR_NO_DEVICE when none is usable. */
aspo_status vk_init(vk_state *vk);
/* Destroys what vk_init created, after a failed vk_init. */
void vk_release(vk_state *vk);

aspo_status vk_block_create(vk_state *vk, VkDeviceSize size, bool host_visible, vk_block *b);
void vk_block_destroy(vk_state *vk, vk_block *b);
void *vk_alloc(vk_state *vk, size_t bytes);
void vk_free(vk_state *vk, void *ptr);
/* The block holding device address addr, and addr's offset in it; NULL if none. */
vk_block *vk_find(vk_state *vk, uint64_t addr, VkDeviceSize *offset);

/* Opens the command buffer if needed. */
aspo_status vk_begin(vk_state *vk);
/* Submits what was recorded and waits; resets the rings. */
aspo_status vk_flush(vk_state *vk);
aspo_status vk_upload(vk_state *vk, void *dst, const void *src, size_t bytes);
aspo_status vk_download(vk_state *vk, void *dst, const void *src, size_t bytes);

/* The pipeline of shader `name` with the given constants (vk_pipeline.c). */
aspo_status vk_pipeline(vk_state *vk, const char *name, const uint32_t *spec, int n_spec,
                        VkPipeline *out);
void vk_pipelines_destroy(vk_state *vk);

/* Device memory for a kernel's intermediate values (partial sums), kept between calls and
 * grown on demand. One buffer serves every kernel: each dispatch is followed by a barrier,
 * so a later kernel's writes come after an earlier one's reads, and growing it frees the
 * old buffer only after the work that may use it (vk_free). NULL + error when the device
 * is full. */
void *vk_scratch(vk_state *vk, size_t bytes);

/* An error from a Vulkan call, naming what was being done. */
aspo_status vk_check(VkResult r, const char *what);

/* ---- kernels (vk_ops_*.c) ---- */

#define VK_KERNEL(name) aspo_status name(const op_call *c)

VK_KERNEL(vk_copy);
VK_KERNEL(vk_fill);
VK_KERNEL(vk_binary);
VK_KERNEL(vk_scale);
VK_KERNEL(vk_unary);
VK_KERNEL(vk_unary_backward);
VK_KERNEL(vk_masked_fill);
VK_KERNEL(vk_dropout);
VK_KERNEL(vk_sum);
VK_KERNEL(vk_sumsq);
VK_KERNEL(vk_matmul);
VK_KERNEL(vk_softmax);
VK_KERNEL(vk_softmax_backward);
VK_KERNEL(vk_rmsnorm);
VK_KERNEL(vk_rmsnorm_backward);
VK_KERNEL(vk_layernorm);
VK_KERNEL(vk_layernorm_backward);
VK_KERNEL(vk_l2norm);
VK_KERNEL(vk_l2norm_backward);
VK_KERNEL(vk_gather_logprobs);
VK_KERNEL(vk_gather_logprobs_backward);
VK_KERNEL(vk_embedding);
VK_KERNEL(vk_embedding_backward);
VK_KERNEL(vk_rope);
VK_KERNEL(vk_attention);
VK_KERNEL(vk_attention_backward);
VK_KERNEL(vk_adamw);

#endif
