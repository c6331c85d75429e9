/* PLACEHOLDER: replaced by the real implementation. */
#include "cpu_internal.h"
CPU_KERNEL(cpu_adamw) { return aspo_fail(ASPO_ERR_UNSUPPORTED, "op %s not implemented on cpu", "optim"); }
