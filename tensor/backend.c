#include "backend.h"

#include <string.h>

#include "../backends/cpu/cpu_backend.h"

backend *backend_cpu(void) { return cpu_backend(); }

const char *backend_list(void) { return "cpu"; }

backend *backend_get(const char *name)
{
    if (strcmp(name, "cpu") == 0) return cpu_backend();
    aspo_fail(ASPO_ERR_USAGE, "unknown backend '%s'; this build has: %s", name, backend_list());
    return NULL;
}
