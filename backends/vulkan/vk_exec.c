/* The command stream: dispatches and copies are recorded into one command buffer, with a
 * barrier after each so the next sees its writes, and submitted only at sync points (a
 * download, a free of memory in use, a full ring, synchronize). Kernel parameters and
 * uploaded bytes go through host-visible rings that live until that submission is done. */
#include <string.h>

#include "vk_internal.h"

aspo_status vk_begin(void)
{
    vk_context *c = vk_ctx();
    if (c->recording) return ASPO_OK;
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                   .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
    aspo_status s = vk_check(vkBeginCommandBuffer(c->cmd, &bi), "beginning a command buffer");
    if (!s) c->recording = true;
    return s;
}

aspo_status vk_flush(void)
{
    vk_context *c = vk_ctx();
    aspo_status s = ASPO_OK;
    if (c->recording) {
        c->recording = false;
        VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1,
                           .pCommandBuffers = &c->cmd};
        if (!(s = vk_check(vkEndCommandBuffer(c->cmd), "ending a command buffer")) &&
            !(s = vk_check(vkQueueSubmit(c->queue, 1, &si, c->fence), "submitting work")))
            s = vk_check(vkWaitForFences(c->device, 1, &c->fence, VK_TRUE, UINT64_MAX),
                         "waiting for the device");
        vkResetFences(c->device, 1, &c->fence);
        vkResetCommandBuffer(c->cmd, 0);
    }
    c->in_flight_work = false;
    c->params_used = c->staging_used = 0;
    if (!s && c->validation_messages)
        s = aspo_fail(ASPO_ERR_UNSUPPORTED, "vulkan: the validation layer reported %d "
                      "message(s) (printed above)", c->validation_messages);
    return s;
}

/* Every earlier dispatch or copy is visible to every later one. */
static void barrier(void)
{
    vk_context *c = vk_ctx();
    VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                          .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
                          .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT |
                                           VK_ACCESS_TRANSFER_READ_BIT |
                                           VK_ACCESS_TRANSFER_WRITE_BIT};
    VkPipelineStageFlags st = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;
    vkCmdPipelineBarrier(c->cmd, st, st, 0, 1, &mb, 0, NULL, 0, NULL);
}

/* Room for `bytes` in a ring (flushing when it is full); the offset into it. */
static aspo_status ring_take(vk_block *ring, VkDeviceSize *used, VkDeviceSize bytes,
                             VkDeviceSize align, VkDeviceSize *off)
{
    VkDeviceSize at = (*used + align - 1) / align * align;
    if (at + bytes > ring->size) {
        aspo_status s = vk_flush();
        if (s) return s;
        at = 0;
    }
    *off = at;
    *used = at + bytes;
    return ASPO_OK;
}

static aspo_status find_range(const void *ptr, size_t bytes, vk_block **b, VkDeviceSize *off,
                              const char *what)
{
    *b = vk_find((uint64_t)(uintptr_t)ptr, off);
    if (!*b || *off + bytes > (*b)->size)
        return aspo_fail(ASPO_ERR_USAGE, "vulkan: %s of %zu bytes at %p: not device memory of "
                         "this backend", what, bytes, ptr);
    return ASPO_OK;
}

aspo_status vk_upload(void *dst, const void *src, size_t bytes)
{
    vk_context *c = vk_ctx();
    vk_block *b;
    VkDeviceSize off;
    aspo_status s = find_range(dst, bytes, &b, &off, "upload");
    /* In ring-sized pieces: the host bytes are copied now, the device copy is recorded. */
    for (size_t done = 0; !s && done < bytes;) {
        size_t n = bytes - done;
        if (n > c->staging.size) n = (size_t)c->staging.size;
        VkDeviceSize at;
        if ((s = ring_take(&c->staging, &c->staging_used, n, 16, &at)) || (s = vk_begin())) break;
        memcpy((char *)c->staging.mapped + at, (const char *)src + done, n);
        VkBufferCopy region = {.srcOffset = at, .dstOffset = off + done, .size = n};
        vkCmdCopyBuffer(c->cmd, c->staging.buffer, b->buffer, 1, &region);
        barrier();
        c->in_flight_work = true;
        done += n;
    }
    return s;
}

aspo_status vk_download(void *dst, const void *src, size_t bytes)
{
    vk_context *c = vk_ctx();
    vk_block *b;
    VkDeviceSize off;
    aspo_status s = find_range(src, bytes, &b, &off, "download");
    if (!s) s = vk_flush(); /* earlier work first; the staging ring is free after it */
    for (size_t done = 0; !s && done < bytes;) {
        size_t n = bytes - done;
        if (n > c->staging.size) n = (size_t)c->staging.size;
        if ((s = vk_begin())) break;
        VkBufferCopy region = {.srcOffset = off + done, .dstOffset = 0, .size = n};
        vkCmdCopyBuffer(c->cmd, b->buffer, c->staging.buffer, 1, &region);
        c->in_flight_work = true;
        if ((s = vk_flush())) break;
        memcpy((char *)dst + done, c->staging.mapped, n);
        done += n;
    }
    return s;
}

void vk_groups_1d(int64_t n, uint32_t per_group, uint32_t *gx, uint32_t *gy)
{
    uint64_t groups = (uint64_t)((n + per_group - 1) / per_group);
    if (groups == 0) groups = 1;
    uint32_t max_x = vk_ctx()->props.limits.maxComputeWorkGroupCount[0];
    if (max_x > 65535) max_x = 65535; /* keep x small so y stays exact for shaders */
    *gx = groups < max_x ? (uint32_t)groups : max_x;
    *gy = (uint32_t)((groups + *gx - 1) / *gx);
}

aspo_status vk_dispatch(const char *name, const uint32_t *spec, int n_spec, const void *params,
                        size_t size, uint32_t gx, uint32_t gy, uint32_t gz)
{
    vk_context *c = vk_ctx();
    const uint32_t *lim = c->props.limits.maxComputeWorkGroupCount;
    if (gx > lim[0] || gy > lim[1] || gz > lim[2])
        return aspo_fail(ASPO_ERR_UNSUPPORTED, "vulkan: shader %s: %u x %u x %u workgroups "
                         "exceed the device's %u x %u x %u", name, gx, gy, gz, lim[0], lim[1],
                         lim[2]);
    VkPipeline pipe;
    VkDeviceSize at;
    aspo_status s = vk_pipeline(name, spec, n_spec, &pipe);
    if (!s) s = ring_take(&c->params, &c->params_used, size, 16, &at);
    if (!s) s = vk_begin();
    if (s) return s;
    memcpy((char *)c->params.mapped + at, params, size);
    uint64_t addr = c->params.addr + at;
    vkCmdBindPipeline(c->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, pipe);
    vkCmdPushConstants(c->cmd, c->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof addr, &addr);
    vkCmdDispatch(c->cmd, gx, gy, gz);
    barrier();
    c->in_flight_work = true;
    return ASPO_OK;
}
