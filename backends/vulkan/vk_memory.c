/* Device memory: large VkBuffers (with device addresses) carved into tensors by first fit,
 * so a step's allocations do not each cost a vkAllocateMemory. A tensor's pointer is its
 * device address; vk_find maps an address back to its buffer for copies. */
#include <stdlib.h>
#include <string.h>

#include "vk_internal.h"

enum { BLOCK_BYTES = 256u << 20, ALIGN = 256 };

aspo_status vk_block_create(VkDeviceSize size, bool host_visible, vk_block *b)
{
    vk_context *c = vk_ctx();
    memset(b, 0, sizeof *b);
    b->size = size;
    VkBufferCreateInfo bi = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .size = size,
                             .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT |
                                      VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                                      VK_BUFFER_USAGE_TRANSFER_DST_BIT |
                                      VK_BUFFER_USAGE_SHADER_DEVICE_ADDRESS_BIT,
                             .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
    aspo_status s = vk_check(vkCreateBuffer(c->device, &bi, NULL, &b->buffer), "creating a buffer");
    if (s) return s;
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(c->device, b->buffer, &req);
    VkMemoryAllocateFlagsInfo flags = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_FLAGS_INFO,
                                       .flags = VK_MEMORY_ALLOCATE_DEVICE_ADDRESS_BIT};
    VkMemoryAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO, .pNext = &flags,
                               .allocationSize = req.size,
                               .memoryTypeIndex = host_visible ? c->host_memory_type
                                                               : c->device_memory_type};
    VkResult r = vkAllocateMemory(c->device, &ai, NULL, &b->memory);
    if (r != VK_SUCCESS) {
        vkDestroyBuffer(c->device, b->buffer, NULL);
        b->buffer = VK_NULL_HANDLE;
        return vk_check(r, "allocating device memory");
    }
    if ((s = vk_check(vkBindBufferMemory(c->device, b->buffer, b->memory, 0), "binding memory")) ||
        (host_visible &&
         (s = vk_check(vkMapMemory(c->device, b->memory, 0, size, 0, &b->mapped), "mapping")))) {
        vk_block_destroy(b);
        return s;
    }
    VkBufferDeviceAddressInfo di = {.sType = VK_STRUCTURE_TYPE_BUFFER_DEVICE_ADDRESS_INFO,
                                    .buffer = b->buffer};
    b->addr = vkGetBufferDeviceAddress(c->device, &di);
    return ASPO_OK;
}

void vk_block_destroy(vk_block *b)
{
    vk_context *c = vk_ctx();
    if (b->buffer) vkDestroyBuffer(c->device, b->buffer, NULL);
    if (b->memory) vkFreeMemory(c->device, b->memory, NULL);
    free(b->free);
    memset(b, 0, sizeof *b);
}

vk_block *vk_find(uint64_t addr, VkDeviceSize *offset)
{
    vk_context *c = vk_ctx();
    int lo = 0, hi = c->n_blocks - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        vk_block *b = c->blocks[mid];
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

static bool add_block(vk_block *b)
{
    vk_context *c = vk_ctx();
    if (c->n_blocks == c->cap_blocks) {
        int cap = c->cap_blocks ? 2 * c->cap_blocks : 16;
        vk_block **grown = realloc(c->blocks, sizeof *grown * (size_t)cap);
        if (!grown) return false;
        c->blocks = grown, c->cap_blocks = cap;
    }
    int at = c->n_blocks;
    while (at > 0 && c->blocks[at - 1]->addr > b->addr) at--;
    memmove(c->blocks + at + 1, c->blocks + at, sizeof *c->blocks * (size_t)(c->n_blocks - at));
    c->blocks[at] = b;
    c->n_blocks++;
    return true;
}

/* One size record in front of nothing: the size of each allocation is kept in a small
 * side table keyed by address (the free needs it). */
typedef struct live { uint64_t addr; VkDeviceSize size; } live;
static live *lives;
static int n_lives, cap_lives;

static bool remember(uint64_t addr, VkDeviceSize size)
{
    if (n_lives == cap_lives) {
        int cap = cap_lives ? 2 * cap_lives : 256;
        live *grown = realloc(lives, sizeof *grown * (size_t)cap);
        if (!grown) return false;
        lives = grown, cap_lives = cap;
    }
    lives[n_lives++] = (live){addr, size};
    return true;
}

void *vk_alloc(size_t bytes)
{
    if (vk_init()) return NULL;
    vk_context *c = vk_ctx();
    VkDeviceSize size = ((VkDeviceSize)bytes + ALIGN - 1) / ALIGN * ALIGN;
    if (!size) size = ALIGN;
    VkDeviceSize off;
    for (int i = 0; i < c->n_blocks; i++)
        if (take(c->blocks[i], size, &off)) {
            uint64_t addr = c->blocks[i]->addr + off;
            return remember(addr, size) ? (void *)(uintptr_t)addr : NULL;
        }
    /* A new block: the standard size, or the request's when larger (one tensor lives in one
     * buffer, so it cannot exceed the device's maxMemoryAllocationSize). */
    vk_block *b = calloc(1, sizeof *b);
    VkDeviceSize bsize = size > BLOCK_BYTES ? size : BLOCK_BYTES;
    if (!b || vk_block_create(bsize, false, b)) {
        free(b);
        return NULL; /* the caller reports the out-of-memory with the request's size */
    }
    b->free = malloc(sizeof *b->free * 16);
    b->cap_free = 16;
    b->free[0] = (struct vk_range){0, bsize};
    b->n_free = 1;
    if (!add_block(b) || !take(b, size, &off)) return NULL;
    uint64_t addr = b->addr + off;
    return remember(addr, size) ? (void *)(uintptr_t)addr : NULL;
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

void vk_free(void *ptr)
{
    if (!ptr) return;
    vk_context *c = vk_ctx();
    /* Recorded work may still read or write this memory: finish it first. */
    if (c->in_flight_work && vk_flush()) return;
    uint64_t addr = (uint64_t)(uintptr_t)ptr;
    for (int i = n_lives - 1; i >= 0; i--) {
        if (lives[i].addr != addr) continue;
        VkDeviceSize off;
        vk_block *b = vk_find(addr, &off);
        if (b) give_back(b, off, lives[i].size);
        lives[i] = lives[--n_lives];
        return;
    }
}

void *vk_scratch(size_t bytes)
{
    static void *buf;
    static size_t size;
    if (bytes > size) {
        vk_free(buf);
        buf = vk_alloc(bytes);
        size = buf ? bytes : 0;
        if (!buf)
            aspo_fail(ASPO_ERR_OOM, "vulkan: no device memory for %zu bytes of intermediate "
                      "values", bytes);
    }
    return buf;
}
