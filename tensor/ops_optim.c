/* PLACEHOLDER */
#include "op_backward.h"
#include "tensor_ops.h"
aspo_status tensor_adamw_update(tensor *param, tensor *grad, tensor *m, tensor *v, const adamw_hparams *h) { (void)param; (void)grad; (void)m; (void)v; (void)h; return ASPO_ERR_UNSUPPORTED; }
