/* PLACEHOLDER: replaced by the real implementation. */
#include "cpu_internal.h"
CPU_KERNEL(cpu_softmax) { return aspo_fail(ASPO_ERR_UNSUPPORTED, "op %s not implemented on cpu", "softmax"); }
CPU_KERNEL(cpu_softmax_backward) { return aspo_fail(ASPO_ERR_UNSUPPORTED, "op %s not implemented on cpu", "softmax"); }
CPU_KERNEL(cpu_gather_logprobs) { return aspo_fail(ASPO_ERR_UNSUPPORTED, "op %s not implemented on cpu", "softmax"); }
CPU_KERNEL(cpu_gather_logprobs_backward) { return aspo_fail(ASPO_ERR_UNSUPPORTED, "op %s not implemented on cpu", "softmax"); }
