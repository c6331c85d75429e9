/* Device memory: large VkBuffers (with device addresses) carved into tensors by first fit,
 * so a step's allocations do not each cost a vkAllocateMemory. A tensor's pointer is its
 * device address; vk_find maps an address back to its buffer for copies. */
#include <stdlib.h>
#include <string.h>

#include "vk_internal.h"

enum { BLOCK_BYTES = 256u << 20, ALIGN = 256 };

aspo_status vk_block_create(vk_state *vk, VkDeviceSize size, bool host_visible, vk_block *b)
{
    memset(b, 0, sizeof *b);
    b->size = size;
    VkBufferCreateInfo bi = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .size = size,
                             .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT |
                                      VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                                      VK_BUFFER_USAGE_TRANSFER_DST_BIT |
                                      VK_BUFFER_USAGE_SHADER_DEVICE_ADDRESS_BIT,
                             .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
    aspo_status s =
        vk_check(vkCreateBuffer(vk->device, &bi, NULL, &b->buffer), "creating a buffer");
    if (s) return s;
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(vk->device, b->buffer, &req);
    VkMemoryAllocateFlagsInfo flags = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_FLAGS_INFO,
                                       .flags = VK_MEMORY_ALLOCATE_DEVICE_ADDRESS_BIT};
    VkMemoryAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO, .pNext = &flags,
                               .allocationSize = req.size,
                               .memoryTypeIndex = host_visible ? vk->host_memory_type
                                                               : vk->device_memory_type};
    VkResult r = vkAllocateMemory(vk->device, &ai, NULL, &b->memory);
    if (r != VK_SUCCESS) {
        vkDestroyBuffer(vk->device, b->buffer, NULL);
        b->buffer = VK_NULL_HANDLE;
        return vk_check(r, "allocating device memory");
    }
    if ((s = vk_check(vkBindBufferMemory(vk->device, b->buffer, b->memory, 0), "binding memory")) ||
        (host_visible &&
         (s = vk_check(vkMapMemory(vk->device, b->memory, 0, size, 0, &b->mapped), "mapping")))) {
        vk_block_destroy(vk, b);
        return s;
    }
    VkBufferDeviceAddressInfo di = {.sType = VK_STRUCTURE_TYPE_BUFFER_DEVICE_ADDRESS_INFO,
                                    .buffer = b->buffer};
    b->addr = vkGetBufferDeviceAddress(vk->device, &di);
    return ASPO_OK;
}

void vk_block_destroy(vk_state *vk, vk_block *b)
{
    if (b->buffer) vkDestroyBuffer(vk->device, b->buffer, NULL);
    if (b->memory) vkFreeMemory(vk->device, b->memory, NULL);
    free(b->free);
    memset(b, 0, sizeof *b);
}

vk_block *vk_find(vk_state *vk, uint64_t addr, VkDeviceSize *offset)
{
    int lo = 0, hi = vk->n_blocks - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        vk_block *b = vk->blocks[mid];
        if (addr < b->addr) hi = mid - 1;
        else if (addr >= b->addr + b->size) lo = mid + 1;
        else {
            *offset = addr - b->addr;
            return b;
        }
    }
    return NULL;
}

/* First fit in b's free list; false when nothing fits. */
static bool take(vk_block *b, VkDeviceSize size, VkDeviceSize *off)
{
    for (int i = 0; i < b->n_free; i++) {
        struct vk_range *r = &b->free[i];
        if (r->size < size) continue;
        *off = r->off;
        r->off += size;
        r->size -= size;
        if (r->size == 0) {
            memmove(r, r + 1, sizeof *r * (size_t)(b->n_free - i - 1));
            b->n_free--;
        }
        return true;
    }
    return false;
}

static bool add_block(vk_state *vk, vk_block *b)
{
    if (vk->n_blocks == vk->cap_blocks) {
        int cap = vk->cap_blocks ? 2 * vk->cap_blocks : 16;
        vk_block **grown = realloc(vk->blocks, sizeof *grown * (size_t)cap);
        if (!grown) return false;
        vk->blocks = grown, vk->cap_blocks = cap;
    }
    int at = vk->n_blocks;
    while (at > 0 && vk->blocks[at - 1]->addr > b->addr) at--;
    memmove(vk->blocks + at + 1, vk->blocks + at, sizeof *vk->blocks * (size_t)(vk->n_blocks - at));
    vk->blocks[at] = b;
    vk->n_blocks++;
    return true;
}

/* One size record in front of nothing: the size of each allocation is kept in a small
 * side table keyed by address (the free needs it). */
struct vk_live { uint64_t addr; VkDeviceSize size; };

static bool remember(vk_state *vk, uint64_t addr, VkDeviceSize size)
{
    if (vk->n_lives == vk->cap_lives) {
        int cap = vk->cap_lives ? 2 * vk->cap_lives : 256;
        struct vk_live *grown = realloc(vk->lives, sizeof *grown * (size_t)cap);
        if (!grown) return false;
        vk->lives = grown, vk->cap_lives = cap;
    }
    vk->lives[vk->n_lives++] = (struct vk_live){addr, size};
    return true;
}

void *vk_alloc(vk_state *vk, size_t bytes)
{
    VkDeviceSize size = ((VkDeviceSize)bytes + ALIGN - 1) / ALIGN * ALIGN;
    if (!size) size = ALIGN;
    VkDeviceSize off;
    for (int i = 0; i < vk->n_blocks; i++)
        if (take(vk->blocks[i], size, &off)) {
            uint64_t addr = vk->blocks[i]->addr + off;
            return remember(vk, addr, size) ? (void *)(uintptr_t)addr : NULL;
        }
    /* A new block: the standard size, or the request's when larger (one tensor lives in one
     * buffer, so it cannot exceed the device's maxMemoryAllocationSize). */
    vk_block *b = calloc(1, sizeof *b);
    VkDeviceSize bsize = size > BLOCK_BYTES ? size : BLOCK_BYTES;
    if (!b || vk_block_create(vk, bsize, false, b)) {
        free(b);
        return NULL; /* the caller reports the out-of-memory with the request's size */
    }
    b->free = malloc(sizeof *b->free * 16);
    b->cap_free = 16;
    b->free[0] = (struct vk_range){0, bsize};
    b->n_free = 1;
    if (!add_block(vk, b) || !take(b, size, &off)) return NULL;
    uint64_t addr = b->addr + off;
    return remember(vk, addr, size) ? (void *)(uintptr_t)addr : NULL;
}

/* Puts [off, off+size) back into b's free list, merging neighbours. */
static void give_back(vk_block *b, VkDeviceSize off, VkDeviceSize size)
{
    int at = 0;
    while (at < b->n_free && b->free[at].off < off) at++;
    if (b->n_free == b->cap_free) {
        int cap = 2 * b->cap_free;
        struct vk_range *grown = realloc(b->free, sizeof *grown * (size_t)cap);
        if (!grown) return; /* the range leaks; memory stays correct */
        b->free = grown, b->cap_free = cap;
    }
    memmove(b->free + at + 1, b->free + at, sizeof *b->free * (size_t)(b->n_free - at));
    b->free[at] = (struct vk_range){off, size};
    b->n_free++;
    if (at + 1 < b->n_free && b->free[at].off + b->free[at].size == b->free[at + 1].off) {
        b->free[at].size += b->free[at + 1].size;
        memmove(b->free + at + 1, b->free + at + 2, sizeof *b->free * (size_t)(b->n_free - at - 2));
        b->n_free--;
    }
    if (at > 0 && b->free[at - 1].off + b->free[at - 1].size == b->free[at].off) {
        b->free[at - 1].size += b->free[at].size;
        memmove(b->free + at, b->free + at + 1, sizeof *b->free * (size_t)(b->n_free - at - 1));
        b->n_free--;
    }
}

void vk_free(vk_state *vk, void *ptr)
{
    if (!ptr) return;
    /* Recorded work may still read or write this memory: finish it first. */
    if (vk->in_flight_work && vk_flush(vk)) return;
    uint64_t addr = (uint64_t)(uintptr_t)ptr;
    for (int i = vk->n_lives - 1; i >= 0; i--) {
        if (vk->lives[i].addr != addr) continue;
        VkDeviceSize off;
        vk_block *b = vk_find(vk, addr, &off);
        if (b) give_back(b, off, vk->lives[i].size);
        vk->lives[i] = vk->lives[--vk->n_lives];
        return;
    }
}

void *vk_scratch(vk_state *vk, size_t bytes)
{
    if (bytes > vk->scratch_bytes) {
        vk_free(vk, vk->scratch);
        vk->scratch = vk_alloc(vk, bytes);
        vk->scratch_bytes = vk->scratch ? bytes : 0;
        if (!vk->scratch)
            aspo_fail(ASPO_ERR_OOM, "vulkan: no device memory for %zu bytes of intermediate "
                      "values", bytes);
    }
    return vk->scratch;
}
