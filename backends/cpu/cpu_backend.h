/* The CPU backend: the reference every other backend is compared with. */
#ifndef ASPO_CPU_BACKEND_H
#define ASPO_CPU_BACKEND_H

#include "../../tensor/backend.h"

backend *cpu_backend(void);

#endif
