/* Compute pipelines, built once per (shader, specialization constants) from the SPIR-V that
 * the build compiled from shaders/NAME.comp and embedded (vk_shaders.h, generated), through
 * one VkPipelineCache. */
#include <stdlib.h>
#include <string.h>

#include "vk_internal.h"
#include "vk_shaders.h"

enum { MAX_SPEC = 8 };

typedef struct cached {
    const char *name; /* the blob's name (static storage) */
    uint32_t spec[MAX_SPEC];
    int n_spec;
    VkPipeline pipe;
} cached;

static cached *pipes;
static int n_pipes, cap_pipes;

static const vk_shader_blob *find_blob(const char *name)
{
    for (int i = 0; i < vk_shader_count; i++)
        if (!strcmp(vk_shader_blobs[i].name, name)) return &vk_shader_blobs[i];
    return NULL;
}

static aspo_status build(const vk_shader_blob *blob, const uint32_t *spec, int n_spec,
                         VkPipeline *out)
{
    vk_context *c = vk_ctx();
    VkShaderModuleCreateInfo mi = {.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
                                   .codeSize = blob->size, .pCode = blob->code};
    VkShaderModule mod;
    aspo_status s = vk_check(vkCreateShaderModule(c->device, &mi, NULL, &mod), blob->name);
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
        .layout = c->layout};
    s = vk_check(vkCreateComputePipelines(c->device, c->pipeline_cache, 1, &pi, NULL, out),
                 blob->name);
    vkDestroyShaderModule(c->device, mod, NULL);
    return s;
}

aspo_status vk_pipeline(const char *name, const uint32_t *spec, int n_spec, VkPipeline *out)
{
    if (n_spec > MAX_SPEC)
        return aspo_fail(ASPO_ERR_USAGE, "vulkan: shader %s: %d constants (at most %d)", name,
                         n_spec, MAX_SPEC);
    for (int i = 0; i < n_pipes; i++)
        if (!strcmp(pipes[i].name, name) && pipes[i].n_spec == n_spec &&
            (n_spec == 0 || !memcmp(pipes[i].spec, spec, sizeof(uint32_t) * (size_t)n_spec))) {
            *out = pipes[i].pipe;
            return ASPO_OK;
        }
    const vk_shader_blob *blob = find_blob(name);
    if (!blob)
        return aspo_fail(ASPO_ERR_UNSUPPORTED, "vulkan: no shader named %s in this build", name);
    if (n_pipes == cap_pipes) {
        int cap = cap_pipes ? 2 * cap_pipes : 64;
        cached *grown = realloc(pipes, sizeof *grown * (size_t)cap);
        if (!grown) return aspo_fail(ASPO_ERR_OOM, "out of host memory");
        pipes = grown, cap_pipes = cap;
    }
    cached *e = &pipes[n_pipes];
    memset(e, 0, sizeof *e);
    e->name = blob->name;
    e->n_spec = n_spec;
    if (n_spec) memcpy(e->spec, spec, sizeof(uint32_t) * (size_t)n_spec);
    aspo_status s = build(blob, spec, n_spec, &e->pipe);
    if (s) return s;
    n_pipes++;
    *out = e->pipe;
    return ASPO_OK;
}

void vk_pipelines_destroy(void)
{
    vk_context *c = vk_ctx();
    for (int i = 0; i < n_pipes; i++) vkDestroyPipeline(c->device, pipes[i].pipe, NULL);
    free(pipes);
    pipes = NULL;
    n_pipes = cap_pipes = 0;
}
