/* The SPIR-V of shaders/NAME.comp, compiled by glslc at build time and embedded by
 * shaders/embed.cmake into the generated vk_shaders.c. */
#ifndef ASPO_VK_SHADERS_H
#define ASPO_VK_SHADERS_H

#include <stddef.h>
#include <stdint.h>

typedef struct vk_shader_blob {
    const char *name;     /* file name without .comp */
    const uint32_t *code;
    size_t size;          /* bytes */
} vk_shader_blob;

extern const vk_shader_blob vk_shader_blobs[];
extern const int vk_shader_count;

#endif
