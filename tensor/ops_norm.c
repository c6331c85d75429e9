/* PLACEHOLDER */
#include "op_backward.h"
#include "tensor_ops.h"
tensor *tensor_rmsnorm(tensor *x, tensor *weight, float eps) { (void)x; (void)weight; (void)eps; aspo_fail(ASPO_ERR_UNSUPPORTED, "not implemented"); return NULL; }
tensor *tensor_layernorm(tensor *x, tensor *weight, tensor *bias, float eps) { (void)x; (void)weight; (void)bias; (void)eps; aspo_fail(ASPO_ERR_UNSUPPORTED, "not implemented"); return NULL; }
tensor *tensor_l2_normalize(tensor *x, float eps) { (void)x; (void)eps; aspo_fail(ASPO_ERR_UNSUPPORTED, "not implemented"); return NULL; }
aspo_status backward_rmsnorm(const tape_node *n, tensor *dy) { (void)n; (void)dy; return ASPO_ERR_UNSUPPORTED; }
aspo_status backward_layernorm(const tape_node *n, tensor *dy) { (void)n; (void)dy; return ASPO_ERR_UNSUPPORTED; }
aspo_status backward_l2norm(const tape_node *n, tensor *dy) { (void)n; (void)dy; return ASPO_ERR_UNSUPPORTED; }
