/* Compute pipelines, built once per (shader, specialization constants) from the SPIR-V that
 * the build compiled from shaders/NAME.comp and embedded (vk_shaders.h, generated), through
 * one VkPipelineCache. */
#include <stdlib.h>
#include <string.h>

#include "vk_internal.h"
#include "vk_shaders.h"

enum { MAX_SPEC = 8 };

struct vk_cached_pipeline {
    const char *name; /* the blob's name (static storage) */
    uint32_t spec[MAX_SPEC];
    int n_spec;
    VkPipeline pipe;
};

static const vk_shader_blob *find_blob(const char *name)
{
    for (int i = 0; i < vk_shader_count; i++)
        if (!strcmp(vk_shader_blobs[i].name, name)) return &vk_shader_blobs[i];
    return NULL;
}

static aspo_status build(vk_state *vk, const vk_shader_blob *blob, const uint32_t *spec,
                         int n_spec, VkPipeline *out)
{
    VkShaderModuleCreateInfo mi = {.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
                                   .codeSize = blob->size, .pCode = blob->code};
    VkShaderModule mod;
    aspo_status s = vk_check(vkCreateShaderModule(vk->device, &mi, NULL, &mod), blob->name);
    if (s) return s;
    VkSpecializationMapEntry map[MAX_SPEC];
    for (int i = 0; i < n_spec; i++)
        map[i] = (VkSpecializationMapEntry){.constantID = (uint32_t)i,
                                            .offset = (uint32_t)(i * sizeof(uint32_t)),
                                            .size = sizeof(uint32_t)};
    VkSpecializationInfo si = {.mapEntryCount = (uint32_t)n_spec, .pMapEntries = map,
                               .dataSize = sizeof(uint32_t) * (size_t)n_spec, .pData = spec};
    VkComputePipelineCreateInfo pi = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                  .stage = VK_SHADER_STAGE_COMPUTE_BIT, .module = mod, .pName = "main",
                  .pSpecializationInfo = n_spec ? &si : NULL},
        .layout = vk->layout};
    s = vk_check(vkCreateComputePipelines(vk->device, vk->pipeline_cache, 1, &pi, NULL, out),
                 blob->name);
    vkDestroyShaderModule(vk->device, mod, NULL);
    return s;
}

aspo_status vk_pipeline(vk_state *vk, const char *name, const uint32_t *spec, int n_spec,
                        VkPipeline *out)
{
    if (n_spec > MAX_SPEC)
        return aspo_fail(ASPO_ERR_USAGE, "vulkan: shader %s: %d constants (at most %d)", name,
                         n_spec, MAX_SPEC);
    struct vk_cached_pipeline *pipes = vk->pipelines;
    for (int i = 0; i < vk->n_pipelines; i++)
        if (!strcmp(pipes[i].name, name) && pipes[i].n_spec == n_spec &&
            (n_spec == 0 || !memcmp(pipes[i].spec, spec, sizeof(uint32_t) * (size_t)n_spec))) {
            *out = pipes[i].pipe;
            return ASPO_OK;
        }
    const vk_shader_blob *blob = find_blob(name);
    if (!blob)
        return aspo_fail(ASPO_ERR_UNSUPPORTED, "vulkan: no shader named %s in this build", name);
    if (vk->n_pipelines == vk->cap_pipelines) {
        int cap = vk->cap_pipelines ? 2 * vk->cap_pipelines : 64;
        struct vk_cached_pipeline *grown = realloc(pipes, sizeof *grown * (size_t)cap);
        if (!grown) return aspo_fail(ASPO_ERR_OOM, "out of host memory");
        vk->pipelines = grown, vk->cap_pipelines = cap;
    }
    struct vk_cached_pipeline *e = &vk->pipelines[vk->n_pipelines];
    memset(e, 0, sizeof *e);
    e->name = blob->name;
    e->n_spec = n_spec;
    if (n_spec) memcpy(e->spec, spec, sizeof(uint32_t) * (size_t)n_spec);
    aspo_status s = build(vk, blob, spec, n_spec, &e->pipe);
    if (s) return s;
    vk->n_pipelines++;
    *out = e->pipe;
    return ASPO_OK;
}

void vk_pipelines_destroy(vk_state *vk)
{
    for (int i = 0; i < vk->n_pipelines; i++)
        vkDestroyPipeline(vk->device, vk->pipelines[i].pipe, NULL);
    free(vk->pipelines);
    vk->pipelines = NULL;
    vk->n_pipelines = vk->cap_pipelines = 0;
}
