/* PLACEHOLDER */
#include "op_backward.h"
#include "tensor_ops.h"
tensor *tensor_rope(tensor *x, tensor *cos, tensor *sin) { (void)x; (void)cos; (void)sin; aspo_fail(ASPO_ERR_UNSUPPORTED, "not implemented"); return NULL; }
aspo_status backward_rope(const tape_node *n, tensor *dy) { (void)n; (void)dy; return ASPO_ERR_UNSUPPORTED; }
aspo_status tensor_rope_tables(const int32_t *positions, int64_t B, int64_t T, int64_t D, double theta, double linear_scale, tensor **cos, tensor **sin) { (void)positions; (void)B; (void)T; (void)D; (void)theta; (void)linear_scale; (void)cos; (void)sin; return ASPO_ERR_UNSUPPORTED; }
