/* The CUDA backend (`--backend cuda`); built from the same sources, the HIP backend
 * (`--backend hip`). */
#ifndef ASPO_CUDA_BACKEND_H
#define ASPO_CUDA_BACKEND_H

#include "../../tensor/backend.h"

/* The backend, its device set up on first use: NULL with an error when there is no GPU or
 * the device asked for does not exist (the message lists the devices). */
backend *cuda_backend(void);

#endif
