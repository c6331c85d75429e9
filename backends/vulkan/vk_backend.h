/* The Vulkan compute backend (`--backend vulkan`). */
#ifndef ASPO_VK_BACKEND_H
#define ASPO_VK_BACKEND_H

#include "../../tensor/backend.h"

/* The backend, its device opened on the first call: NULL with an error that lists the
 * devices found (and what they lack), ASPO_ERR_NO_DEVICE when this machine has no driver or
 * no device aspo can use. */
backend *vulkan_backend(void);

#endif
