/* Backward rules, one per differentiable op, referenced by the op table. Each receives the
 * node and d(loss)/d(out[0]) and calls grad_accumulate for the inputs that require grad. */
#ifndef ASPO_OP_BACKWARD_H
#define ASPO_OP_BACKWARD_H

#include "autograd.h"

aspo_status backward_copy(const tape_node *n, tensor *dy);
aspo_status backward_view(const tape_node *n, tensor *dy);
aspo_status backward_concat(const tape_node *n, tensor *dy);
aspo_status backward_checkpoint(const tape_node *n, tensor *dy);
aspo_status backward_binary(const tape_node *n, tensor *dy);
aspo_status backward_scale(const tape_node *n, tensor *dy);
aspo_status backward_unary(const tape_node *n, tensor *dy);
aspo_status backward_masked_fill(const tape_node *n, tensor *dy);
aspo_status backward_dropout(const tape_node *n, tensor *dy);
aspo_status backward_sum(const tape_node *n, tensor *dy);
aspo_status backward_matmul(const tape_node *n, tensor *dy);
aspo_status backward_softmax(const tape_node *n, tensor *dy);
aspo_status backward_rmsnorm(const tape_node *n, tensor *dy);
aspo_status backward_layernorm(const tape_node *n, tensor *dy);
aspo_status backward_l2norm(const tape_node *n, tensor *dy);
aspo_status backward_gather_logprobs(const tape_node *n, tensor *dy);
aspo_status backward_embedding(const tape_node *n, tensor *dy);
aspo_status backward_rope(const tape_node *n, tensor *dy);
aspo_status backward_attention(const tape_node *n, tensor *dy);

#endif
