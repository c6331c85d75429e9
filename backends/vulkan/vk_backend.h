/* The Vulkan compute backend (`--backend vulkan`). */
#ifndef ASPO_VK_BACKEND_H
#define ASPO_VK_BACKEND_H

#include "../../tensor/backend.h"

/* The backend, its device created on first use: NULL with an error that lists the devices
 * found (and what they lack) when none is usable. */
backend *vulkan_backend(void);

#endif
