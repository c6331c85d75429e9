/* PLACEHOLDER */
#include "op_backward.h"
#include "tensor_ops.h"
tensor *tensor_attention(tensor *q, tensor *k, tensor *v, tensor *key_mask, bool causal, float scale) { (void)q; (void)k; (void)v; (void)key_mask; (void)causal; (void)scale; aspo_fail(ASPO_ERR_UNSUPPORTED, "not implemented"); return NULL; }
aspo_status backward_attention(const tape_node *n, tensor *dy) { (void)n; (void)dy; return ASPO_ERR_UNSUPPORTED; }
