#include "backend.h"

#include <string.h>

#include "../backends/cpu/cpu_backend.h"
#ifdef ASPO_HAVE_VULKAN
#include "../backends/vulkan/vk_backend.h"
#endif
#ifdef ASPO_HAVE_CUDA
#include "../backends/cuda/cuda_backend.h"
#endif

backend *backend_cpu(void) { return cpu_backend(); }

const char *backend_list(void)
{
    return "cpu"
#ifdef ASPO_HAVE_VULKAN
           ",vulkan"
#endif
#ifdef ASPO_HAVE_CUDA
           ",cuda"
#endif
        ;
}

backend *backend_get(const char *name)
{
    if (strcmp(name, "cpu") == 0) return cpu_backend();
#ifdef ASPO_HAVE_VULKAN
    if (strcmp(name, "vulkan") == 0) return vulkan_backend(); /* NULL + error: no device */
#endif
#ifdef ASPO_HAVE_CUDA
    if (strcmp(name, "cuda") == 0) return cuda_backend(); /* NULL + error: no GPU */
#endif
    aspo_fail(ASPO_ERR_USAGE, "unknown backend '%s'; this build has: %s", name, backend_list());
    return NULL;
}
