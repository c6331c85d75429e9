/* The backends this program knows, and the ones this build has: their names, capabilities
 * and constructors, one table line each (backends/registry.c). The layers above choose a
 * backend by name here once and ask its capabilities (enum backend_caps in tensor/backend.h),
 * never its name. */
#ifndef ASPO_BACKEND_REGISTRY_H
#define ASPO_BACKEND_REGISTRY_H

#include <stdbool.h>

#include "../tensor/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The backend called `name`, its device opened, allocations counted (backend_memory_stats).
 * NULL with ASPO_ERR_USAGE when this program does not know the name or this build lacks it
 * (the message lists what it has and how to build the other), ASPO_ERR_NO_DEVICE when the
 * build has it but the machine has no device for it. "plan" (counts bytes, computes
 * nothing) is always there. */
backend *backend_get(const char *name);
/* The CPU backend: always there. */
backend *backend_cpu(void);
/* Comma-separated names of the compute backends built into this binary. */
const char *backend_list(void);
/* The capabilities of a backend this program knows, built into this binary or not (a
 * memory plan for a CUDA run made on a laptop); false for an unknown name. */
bool backend_caps_of(const char *name, unsigned *caps);
/* "cpu, vulkan, cuda, hip or simt": every compute backend this program knows. */
const char *backend_known(void);

#ifdef __cplusplus
}
#endif

#endif
