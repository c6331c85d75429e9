#include "backend.h"

#include <string.h>

#include "../backends/cpu/cpu_backend.h"
#ifdef ASPO_HAVE_VULKAN
#include "../backends/vulkan/vk_backend.h"
#endif

backend *backend_cpu(void) { return cpu_backend(); }

const char *backend_list(void)
{
#ifdef ASPO_HAVE_VULKAN
    return "cpu,vulkan";
#else
    return "cpu";
#endif
}

backend *backend_get(const char *name)
{
    if (strcmp(name, "cpu") == 0) return cpu_backend();
#ifdef ASPO_HAVE_VULKAN
    if (strcmp(name, "vulkan") == 0) return vulkan_backend(); /* NULL + error: no device */
#endif
    aspo_fail(ASPO_ERR_USAGE, "unknown backend '%s'; this build has: %s", name, backend_list());
    return NULL;
}
