/* PLACEHOLDER: replaced by the real implementation. */
#include "cpu_internal.h"
CPU_KERNEL(cpu_rmsnorm) { return aspo_fail(ASPO_ERR_UNSUPPORTED, "op %s not implemented on cpu", "norm"); }
CPU_KERNEL(cpu_rmsnorm_backward) { return aspo_fail(ASPO_ERR_UNSUPPORTED, "op %s not implemented on cpu", "norm"); }
CPU_KERNEL(cpu_layernorm) { return aspo_fail(ASPO_ERR_UNSUPPORTED, "op %s not implemented on cpu", "norm"); }
CPU_KERNEL(cpu_layernorm_backward) { return aspo_fail(ASPO_ERR_UNSUPPORTED, "op %s not implemented on cpu", "norm"); }
CPU_KERNEL(cpu_l2norm) { return aspo_fail(ASPO_ERR_UNSUPPORTED, "op %s not implemented on cpu", "norm"); }
CPU_KERNEL(cpu_l2norm_backward) { return aspo_fail(ASPO_ERR_UNSUPPORTED, "op %s not implemented on cpu", "norm"); }
