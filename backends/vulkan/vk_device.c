/* The Vulkan instance and device: which device (ASPO_VULKAN_DEVICE or --device), the
 * features aspo needs, one compute queue, the command pool, the pipeline layout shared by
 * every shader, and the optional Khronos validation layer (ASPO_VULKAN_VALIDATION=1), whose
 * messages are printed and turn the next sync into an error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vk_internal.h"

vk_state *vk_state_of(const backend *be) { return be->impl; }

static const char *result_name(VkResult r)
{
    switch (r) {
    case VK_ERROR_OUT_OF_HOST_MEMORY: return "out of host memory";
    case VK_ERROR_OUT_OF_DEVICE_MEMORY: return "out of device memory";
    case VK_ERROR_INITIALIZATION_FAILED: return "initialization failed";
    case VK_ERROR_DEVICE_LOST: return "device lost";
    case VK_ERROR_LAYER_NOT_PRESENT: return "layer not present";
    case VK_ERROR_EXTENSION_NOT_PRESENT: return "extension not present";
    case VK_ERROR_FEATURE_NOT_PRESENT: return "feature not present";
    case VK_ERROR_INCOMPATIBLE_DRIVER: return "incompatible driver (no Vulkan 1.2 ICD?)";
    case VK_ERROR_TOO_MANY_OBJECTS: return "too many objects";
    default: return "error";
    }
}

static aspo_status fail_result(aspo_status s, VkResult r, const char *what)
{
    return aspo_fail(s, "vulkan: %s: %s (VkResult %d)", what, result_name(r), (int)r);
}

aspo_status vk_check(VkResult r, const char *what)
{
    if (r == VK_SUCCESS) return ASPO_OK;
    if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY)
        return fail_result(ASPO_ERR_OOM, r, what);
    /* Only instance creation returns it: the loader found no driver (ICD) for Vulkan 1.2. */
    if (r == VK_ERROR_INCOMPATIBLE_DRIVER) return fail_result(ASPO_ERR_NO_DEVICE, r, what);
    return fail_result(ASPO_ERR_UNSUPPORTED, r, what);
}

static VKAPI_ATTR VkBool32 VKAPI_CALL on_message(VkDebugUtilsMessageSeverityFlagBitsEXT sev,
                                                 VkDebugUtilsMessageTypeFlagsEXT type,
                                                 const VkDebugUtilsMessengerCallbackDataEXT *d,
                                                 void *user)
{
    (void)type;
    if (sev < VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT) return VK_FALSE;
    ((vk_state *)user)->validation_messages++;
    fprintf(stderr, "aspo: vulkan validation: %s\n", d->pMessage);
    return VK_FALSE;
}

static bool validation_wanted(void)
{
    const char *v = getenv("ASPO_VULKAN_VALIDATION");
    return v && *v && strcmp(v, "0");
}

static aspo_status create_instance(vk_state *vk)
{
    VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
                             .pApplicationName = "aspo", .apiVersion = VK_API_VERSION_1_2};
    const char *layers[] = {"VK_LAYER_KHRONOS_validation"};
    const char *exts[] = {VK_EXT_DEBUG_UTILS_EXTENSION_NAME};
    bool validate = validation_wanted();
    VkInstanceCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
                               .pApplicationInfo = &app,
                               .enabledLayerCount = validate ? 1 : 0,
                               .ppEnabledLayerNames = layers,
                               .enabledExtensionCount = validate ? 1 : 0,
                               .ppEnabledExtensionNames = exts};
    VkResult r = vkCreateInstance(&ci, NULL, &vk->instance);
    if (r != VK_SUCCESS)
        return vk_check(r, validate ? "creating the instance with VK_LAYER_KHRONOS_validation "
                                      "(ASPO_VULKAN_VALIDATION=1; Debian: vulkan-validationlayers)"
                                    : "creating the instance (Debian: libvulkan1 and a driver "
                                      "such as mesa-vulkan-drivers)");
    if (!validate) return ASPO_OK;
    PFN_vkCreateDebugUtilsMessengerEXT create =
        (PFN_vkCreateDebugUtilsMessengerEXT)vkGetInstanceProcAddr(vk->instance,
                                                                  "vkCreateDebugUtilsMessengerEXT");
    VkDebugUtilsMessengerCreateInfoEXT mi = {
        .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
        .messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT |
                           VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT,
        .messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT |
                       VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                       VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT,
        .pfnUserCallback = on_message, .pUserData = vk};
    if (!create) return aspo_fail(ASPO_ERR_UNSUPPORTED, "vulkan: no debug utils messenger");
    return vk_check(create(vk->instance, &mi, NULL, &vk->messenger), "creating the messenger");
}

/* What aspo needs of a device; "" when it has it all, else the first missing piece. */
static const char *missing_feature(VkPhysicalDevice p, uint32_t *family)
{
    VkPhysicalDeviceProperties props;
    vkGetPhysicalDeviceProperties(p, &props);
    if (props.apiVersion < VK_API_VERSION_1_2) return "Vulkan 1.2";
    VkPhysicalDeviceVulkan12Features f12 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
    VkPhysicalDeviceVulkan11Features f11 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES,
                                            .pNext = &f12};
    VkPhysicalDeviceFeatures2 f = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &f11};
    vkGetPhysicalDeviceFeatures2(p, &f);
    if (!f12.bufferDeviceAddress) return "bufferDeviceAddress";
    if (!f11.storageBuffer16BitAccess) return "storageBuffer16BitAccess";
    if (!f.features.shaderInt64) return "shaderInt64";
    if (!f.features.shaderInt16) return "shaderInt16";
    uint32_t n = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(p, &n, NULL);
    VkQueueFamilyProperties q[32];
    if (n > 32) n = 32;
    vkGetPhysicalDeviceQueueFamilyProperties(p, &n, q);
    for (uint32_t i = 0; i < n; i++)
        if (q[i].queueFlags & VK_QUEUE_COMPUTE_BIT) {
            *family = i;
            return "";
        }
    return "a compute queue";
}

/* "0: llvmpipe (...) [ok]; 1: ... [lacks X]" into buf. */
static void list_devices(VkPhysicalDevice *devs, uint32_t n, char *buf, size_t size)
{
    buf[0] = 0;
    for (uint32_t i = 0; i < n; i++) {
        VkPhysicalDeviceProperties p;
        vkGetPhysicalDeviceProperties(devs[i], &p);
        uint32_t fam;
        const char *miss = missing_feature(devs[i], &fam);
        size_t len = strlen(buf);
        snprintf(buf + len, size - len, "%s%u: %s [%s%s]", i ? "; " : "", i, p.deviceName,
                 *miss ? "lacks " : "usable", miss);
    }
}

static int wanted_device(void)
{
    const char *v = getenv("ASPO_VULKAN_DEVICE");
    if (!v || !*v) v = getenv("ASPO_DEVICE"); /* --device */
    return v && *v ? atoi(v) : -1;
}

static aspo_status pick_device(vk_state *vk)
{
    uint32_t n = 0;
    VkResult r = vkEnumeratePhysicalDevices(vk->instance, &n, NULL);
    /* A driver is there but cannot reach its device (e.g. an ICD without its GPU). */
    if (r == VK_ERROR_INITIALIZATION_FAILED)
        return fail_result(ASPO_ERR_NO_DEVICE, r, "listing devices");
    if (r != VK_SUCCESS) return vk_check(r, "listing devices");
    if (n == 0)
        return aspo_fail(ASPO_ERR_NO_DEVICE, "vulkan: no Vulkan device found (install a driver, "
                         "e.g. Debian's mesa-vulkan-drivers for lavapipe on the CPU)");
    VkPhysicalDevice devs[16];
    if (n > 16) n = 16;
    vkEnumeratePhysicalDevices(vk->instance, &n, devs);
    char list[2048];
    list_devices(devs, n, list, sizeof list);
    int want = wanted_device();
    if (want >= (int)n)
        return aspo_fail(ASPO_ERR_USAGE, "vulkan: device %d asked for (--device / "
                         "ASPO_VULKAN_DEVICE / ASPO_DEVICE) but there are %u: %s", want, n, list);
    for (uint32_t i = 0; i < n; i++) {
        if (want >= 0 && (int)i != want) continue;
        uint32_t fam;
        if (*missing_feature(devs[i], &fam)) continue;
        vk->phys = devs[i];
        vk->queue_family = fam;
        vkGetPhysicalDeviceProperties(vk->phys, &vk->props);
        snprintf(vk->device_name, sizeof vk->device_name, "%s", vk->props.deviceName);
        return ASPO_OK;
    }
    /* None usable: this machine has no device for aspo. The one the user picked lacking a
     * feature is not that: another device may serve. */
    return aspo_fail(want >= 0 ? ASPO_ERR_UNSUPPORTED : ASPO_ERR_NO_DEVICE,
                     "vulkan: %s what aspo needs (Vulkan 1.2 with "
                     "bufferDeviceAddress, storageBuffer16BitAccess, shaderInt16, shaderInt64 "
                     "and a compute queue); devices found: %s",
                     want >= 0 ? "the device asked for lacks" : "no device has", list);
}

static aspo_status create_device(vk_state *vk)
{
    float prio = 1.0f;
    VkDeviceQueueCreateInfo qi = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
                                  .queueFamilyIndex = vk->queue_family, .queueCount = 1,
                                  .pQueuePriorities = &prio};
    VkPhysicalDeviceVulkan12Features f12 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES,
                                            .bufferDeviceAddress = VK_TRUE};
    VkPhysicalDeviceVulkan11Features f11 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES,
                                            .pNext = &f12, .storageBuffer16BitAccess = VK_TRUE};
    VkPhysicalDeviceFeatures2 f = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2,
                                   .pNext = &f11,
                                   .features = {.shaderInt64 = VK_TRUE, .shaderInt16 = VK_TRUE}};
    VkDeviceCreateInfo di = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO, .pNext = &f,
                             .queueCreateInfoCount = 1, .pQueueCreateInfos = &qi};
    aspo_status s =
        vk_check(vkCreateDevice(vk->phys, &di, NULL, &vk->device), "creating the device");
    if (s) return s;
    vkGetDeviceQueue(vk->device, vk->queue_family, 0, &vk->queue);

    /* Memory types: device-local for tensors, host-visible coherent for the rings. */
    VkPhysicalDeviceMemoryProperties mp;
    vkGetPhysicalDeviceMemoryProperties(vk->phys, &mp);
    vk->device_memory_type = vk->host_memory_type = UINT32_MAX;
    for (uint32_t i = 0; i < mp.memoryTypeCount; i++) {
        VkMemoryPropertyFlags fl = mp.memoryTypes[i].propertyFlags;
        if ((fl & VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT) && vk->device_memory_type == UINT32_MAX)
            vk->device_memory_type = i;
        VkMemoryPropertyFlags host = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT |
                                     VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
        if ((fl & host) == host && vk->host_memory_type == UINT32_MAX) vk->host_memory_type = i;
    }
    if (vk->device_memory_type == UINT32_MAX) vk->device_memory_type = vk->host_memory_type;
    if (vk->host_memory_type == UINT32_MAX)
        return aspo_fail(ASPO_ERR_UNSUPPORTED, "vulkan: %s has no host-visible coherent memory",
                         vk->device_name);

    VkCommandPoolCreateInfo pi = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                  .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
                                  .queueFamilyIndex = vk->queue_family};
    if ((s = vk_check(vkCreateCommandPool(vk->device, &pi, NULL, &vk->pool), "command pool")))
        return s;
    VkCommandBufferAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                      .commandPool = vk->pool,
                                      .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                      .commandBufferCount = 1};
    VkFenceCreateInfo fi = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    VkPushConstantRange pc = {.stageFlags = VK_SHADER_STAGE_COMPUTE_BIT, .size = 8};
    VkPipelineLayoutCreateInfo li = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
                                     .pushConstantRangeCount = 1, .pPushConstantRanges = &pc};
    VkPipelineCacheCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO};
    if ((s = vk_check(vkAllocateCommandBuffers(vk->device, &ai, &vk->cmd), "command buffer")) ||
        (s = vk_check(vkCreateFence(vk->device, &fi, NULL, &vk->fence), "fence")) ||
        (s = vk_check(vkCreatePipelineLayout(vk->device, &li, NULL, &vk->layout),
                      "pipeline layout")) ||
        (s = vk_check(vkCreatePipelineCache(vk->device, &ci, NULL, &vk->pipeline_cache),
                      "pipeline cache")))
        return s;
    /* The rings: kernel parameters and staging for host copies. */
    if ((s = vk_block_create(vk, 4u << 20, true, &vk->params)) ||
        (s = vk_block_create(vk, 64u << 20, true, &vk->staging)))
        return s;
    return ASPO_OK;
}

static bool has_subgroup_arithmetic(VkPhysicalDevice phys)
{
    VkPhysicalDeviceSubgroupProperties sp = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
    VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2,
                                      .pNext = &sp};
    vkGetPhysicalDeviceProperties2(phys, &p2);
    return (sp.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) &&
           (sp.supportedOperations & VK_SUBGROUP_FEATURE_ARITHMETIC_BIT);
}

aspo_status vk_init(vk_state *vk)
{
    aspo_status s = create_instance(vk);
    if (!s) s = pick_device(vk);
    if (!s) s = create_device(vk);
    if (s) return aspo_fail_prefix(s, "--backend vulkan: ");
    vk->subgroup_arithmetic = has_subgroup_arithmetic(vk->phys);
    return ASPO_OK;
}

void vk_release(vk_state *vk)
{
    vk_pipelines_destroy(vk);
    if (vk->device) {
        vk_block_destroy(vk, &vk->params);
        vk_block_destroy(vk, &vk->staging);
        if (vk->pipeline_cache) vkDestroyPipelineCache(vk->device, vk->pipeline_cache, NULL);
        if (vk->layout) vkDestroyPipelineLayout(vk->device, vk->layout, NULL);
        if (vk->fence) vkDestroyFence(vk->device, vk->fence, NULL);
        if (vk->pool) vkDestroyCommandPool(vk->device, vk->pool, NULL); /* and vk->cmd */
        vkDestroyDevice(vk->device, NULL);
    }
    if (vk->messenger) {
        PFN_vkDestroyDebugUtilsMessengerEXT destroy =
            (PFN_vkDestroyDebugUtilsMessengerEXT)vkGetInstanceProcAddr(
                vk->instance, "vkDestroyDebugUtilsMessengerEXT");
        if (destroy) destroy(vk->instance, vk->messenger, NULL);
    }
    if (vk->instance) vkDestroyInstance(vk->instance, NULL);
}
