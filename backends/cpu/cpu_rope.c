/* PLACEHOLDER: replaced by the real implementation. */
#include "cpu_internal.h"
CPU_KERNEL(cpu_rope) { return aspo_fail(ASPO_ERR_UNSUPPORTED, "op %s not implemented on cpu", "rope"); }
