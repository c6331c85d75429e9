/* One row per op: its name (used in every error about it), flags and backward rule. */
#include "op_backward.h"

#define C OP_FLAG_CONTIGUOUS
#define NK OP_FLAG_NO_KERNEL

const op_info op_table[OP_COUNT] = {
    [OP_COPY] = {"copy", 0, backward_copy},
    [OP_FILL] = {"fill", 0, NULL},
    [OP_VIEW] = {"view", NK, backward_view},
    [OP_CONCAT] = {"concat", NK, backward_concat},
    [OP_CHECKPOINT] = {"checkpoint", NK, backward_checkpoint},
    [OP_BINARY] = {"binary", 0, backward_binary},
    [OP_SCALE] = {"scale", 0, backward_scale},
    [OP_UNARY] = {"unary", 0, backward_unary},
    [OP_UNARY_BACKWARD] = {"unary_backward", 0, NULL},
    [OP_MASKED_FILL] = {"masked_fill", 0, backward_masked_fill},
    [OP_DROPOUT] = {"dropout", 0, backward_dropout},
    [OP_SUM] = {"sum", 0, backward_sum},
    [OP_SUMSQ] = {"sumsq", C, NULL},
    [OP_MATMUL] = {"matmul", 0, backward_matmul},
    [OP_SOFTMAX] = {"softmax", C, backward_softmax},
    [OP_SOFTMAX_BACKWARD] = {"softmax_backward", C, NULL},
    [OP_RMSNORM] = {"rmsnorm", C, backward_rmsnorm},
    [OP_RMSNORM_BACKWARD] = {"rmsnorm_backward", C, NULL},
    [OP_LAYERNORM] = {"layernorm", C, backward_layernorm},
    [OP_LAYERNORM_BACKWARD] = {"layernorm_backward", C, NULL},
    [OP_L2NORM] = {"l2norm", C, backward_l2norm},
    [OP_L2NORM_BACKWARD] = {"l2norm_backward", C, NULL},
    [OP_GATHER_LOGPROBS] = {"gather_logprobs", C, backward_gather_logprobs},
    [OP_GATHER_LOGPROBS_BACKWARD] = {"gather_logprobs_backward", C, NULL},
    [OP_EMBEDDING] = {"embedding", C, backward_embedding},
    [OP_EMBEDDING_BACKWARD] = {"embedding_backward", C, NULL},
    [OP_ROPE] = {"rope", 0, backward_rope},
    [OP_ATTENTION] = {"attention", C, backward_attention},
    [OP_ATTENTION_BACKWARD] = {"attention_backward", C, NULL},
    [OP_ADAMW] = {"adamw", 0, NULL},
};
