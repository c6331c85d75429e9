/* The command stream: dispatches and copies are recorded into one command buffer, with a
 * barrier after each so the next sees its writes, and submitted only at sync points (a
 * download, a free of memory in use, a full ring, synchronize). Kernel parameters and
 * uploaded bytes go through host-visible rings that live until that submission is done. */
#include <string.h>

#include "vk_internal.h"

aspo_status vk_begin(vk_state *vk)
{
    if (vk->recording) return ASPO_OK;
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                   .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
    aspo_status s = vk_check(vkBeginCommandBuffer(vk->cmd, &bi), "beginning a command buffer");
    if (!s) vk->recording = true;
    return s;
}

aspo_status vk_flush(vk_state *vk)
{
    aspo_status s = ASPO_OK;
    if (vk->recording) {
        vk->recording = false;
        VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1,
                           .pCommandBuffers = &vk->cmd};
        if (!(s = vk_check(vkEndCommandBuffer(vk->cmd), "ending a command buffer")) &&
            !(s = vk_check(vkQueueSubmit(vk->queue, 1, &si, vk->fence), "submitting work")))
            s = vk_check(vkWaitForFences(vk->device, 1, &vk->fence, VK_TRUE, UINT64_MAX),
                         "waiting for the device");
        vkResetFences(vk->device, 1, &vk->fence);
        vkResetCommandBuffer(vk->cmd, 0);
    }
    vk->in_flight_work = false;
    vk->params_used = vk->staging_used = 0;
    if (!s && vk->validation_messages)
        s = aspo_fail(ASPO_ERR_UNSUPPORTED, "vulkan: the validation layer reported %d "
                      "message(s) (printed above)", vk->validation_messages);
    return s;
}

/* Every earlier dispatch or copy is visible to every later one. */
static void barrier(vk_state *vk)
{
    VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                          .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
                          .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT |
                                           VK_ACCESS_TRANSFER_READ_BIT |
                                           VK_ACCESS_TRANSFER_WRITE_BIT};
    VkPipelineStageFlags st = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;
    vkCmdPipelineBarrier(vk->cmd, st, st, 0, 1, &mb, 0, NULL, 0, NULL);
}

/* Room for `bytes` in a ring (flushing when it is full); the offset into it. */
static aspo_status ring_take(vk_state *vk, vk_block *ring, VkDeviceSize *used,
                             VkDeviceSize bytes, VkDeviceSize align, VkDeviceSize *off)
{
    VkDeviceSize at = (*used + align - 1) / align * align;
    if (at + bytes > ring->size) {
        aspo_status s = vk_flush(vk);
        if (s) return s;
        at = 0;
    }
    *off = at;
    *used = at + bytes;
    return ASPO_OK;
}

static aspo_status find_range(vk_state *vk, const void *ptr, size_t bytes, vk_block **b,
                              VkDeviceSize *off, const char *what)
{
    *b = vk_find(vk, (uint64_t)(uintptr_t)ptr, off);
    if (!*b || *off + bytes > (*b)->size)
        return aspo_fail(ASPO_ERR_USAGE, "vulkan: %s of %zu bytes at %p: not device memory of "
                         "this backend", what, bytes, ptr);
    return ASPO_OK;
}

aspo_status vk_upload(vk_state *vk, void *dst, const void *src, size_t bytes)
{
    vk_block *b;
    VkDeviceSize off;
    aspo_status s = find_range(vk, dst, bytes, &b, &off, "upload");
    /* In ring-sized pieces: the host bytes are copied now, the device copy is recorded. */
    for (size_t done = 0; !s && done < bytes;) {
        size_t n = bytes - done;
        if (n > vk->staging.size) n = (size_t)vk->staging.size;
        VkDeviceSize at;
        if ((s = ring_take(vk, &vk->staging, &vk->staging_used, n, 16, &at)) || (s = vk_begin(vk)))
            break;
        memcpy((char *)vk->staging.mapped + at, (const char *)src + done, n);
        VkBufferCopy region = {.srcOffset = at, .dstOffset = off + done, .size = n};
        vkCmdCopyBuffer(vk->cmd, vk->staging.buffer, b->buffer, 1, &region);
        barrier(vk);
        vk->in_flight_work = true;
        done += n;
    }
    return s;
}

aspo_status vk_download(vk_state *vk, void *dst, const void *src, size_t bytes)
{
    vk_block *b;
    VkDeviceSize off;
    aspo_status s = find_range(vk, src, bytes, &b, &off, "download");
    if (!s) s = vk_flush(vk); /* earlier work first; the staging ring is free after it */
    for (size_t done = 0; !s && done < bytes;) {
        size_t n = bytes - done;
        if (n > vk->staging.size) n = (size_t)vk->staging.size;
        if ((s = vk_begin(vk))) break;
        VkBufferCopy region = {.srcOffset = off + done, .dstOffset = 0, .size = n};
        vkCmdCopyBuffer(vk->cmd, b->buffer, vk->staging.buffer, 1, &region);
        vk->in_flight_work = true;
        if ((s = vk_flush(vk))) break;
        memcpy((char *)dst + done, vk->staging.mapped, n);
        done += n;
    }
    return s;
}

void vk_groups_1d(const vk_state *vk, int64_t n, uint32_t per_group, uint32_t *gx, uint32_t *gy)
{
    uint64_t groups = (uint64_t)((n + per_group - 1) / per_group);
    if (groups == 0) groups = 1;
    uint32_t max_x = vk->props.limits.maxComputeWorkGroupCount[0];
    if (max_x > 65535) max_x = 65535; /* keep x small so y stays exact for shaders */
    *gx = groups < max_x ? (uint32_t)groups : max_x;
    *gy = (uint32_t)((groups + *gx - 1) / *gx);
}

aspo_status vk_dispatch(vk_state *vk, const char *name, const uint32_t *spec, int n_spec,
                        const void *params, size_t size, uint32_t gx, uint32_t gy, uint32_t gz)
{
    const uint32_t *lim = vk->props.limits.maxComputeWorkGroupCount;
    if (gx > lim[0] || gy > lim[1] || gz > lim[2])
        return aspo_fail(ASPO_ERR_UNSUPPORTED, "vulkan: shader %s: %u x %u x %u workgroups "
                         "exceed the device's %u x %u x %u", name, gx, gy, gz, lim[0], lim[1],
                         lim[2]);
    VkPipeline pipe;
    VkDeviceSize at;
    aspo_status s = vk_pipeline(vk, name, spec, n_spec, &pipe);
    if (!s) s = ring_take(vk, &vk->params, &vk->params_used, size, 16, &at);
    if (!s) s = vk_begin(vk);
    if (s) return s;
    memcpy((char *)vk->params.mapped + at, params, size);
    uint64_t addr = vk->params.addr + at;
    vkCmdBindPipeline(vk->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, pipe);
    vkCmdPushConstants(vk->cmd, vk->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof addr, &addr);
    vkCmdDispatch(vk->cmd, gx, gy, gz);
    barrier(vk);
    vk->in_flight_work = true;
    return ASPO_OK;
}
