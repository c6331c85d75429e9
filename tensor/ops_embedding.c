/* PLACEHOLDER */
#include "op_backward.h"
#include "tensor_ops.h"
tensor *tensor_embedding(tensor *table, tensor *ids) { (void)table; (void)ids; aspo_fail(ASPO_ERR_UNSUPPORTED, "not implemented"); return NULL; }
aspo_status backward_embedding(const tape_node *n, tensor *dy) { (void)n; (void)dy; return ASPO_ERR_UNSUPPORTED; }
