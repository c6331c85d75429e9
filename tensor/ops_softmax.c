/* PLACEHOLDER */
#include "op_backward.h"
#include "tensor_ops.h"
tensor *tensor_softmax(tensor *x) { (void)x; aspo_fail(ASPO_ERR_UNSUPPORTED, "not implemented"); return NULL; }
tensor *tensor_log_softmax(tensor *x) { (void)x; aspo_fail(ASPO_ERR_UNSUPPORTED, "not implemented"); return NULL; }
tensor *tensor_gather_logprobs(tensor *logits, tensor *targets, int ignore_index) { (void)logits; (void)targets; (void)ignore_index; aspo_fail(ASPO_ERR_UNSUPPORTED, "not implemented"); return NULL; }
tensor *tensor_cross_entropy(tensor *logits, tensor *targets, int ignore_index) { (void)logits; (void)targets; (void)ignore_index; aspo_fail(ASPO_ERR_UNSUPPORTED, "not implemented"); return NULL; }
aspo_status backward_softmax(const tape_node *n, tensor *dy) { (void)n; (void)dy; return ASPO_ERR_UNSUPPORTED; }
aspo_status backward_gather_logprobs(const tape_node *n, tensor *dy) { (void)n; (void)dy; return ASPO_ERR_UNSUPPORTED; }
