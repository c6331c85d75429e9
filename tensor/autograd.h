/* Eager autograd: each op runs at once; when an input requires grad a node is pushed on
 * the tape, and tensor_backward walks the tape newest-first calling each op's backward
 * rule. Backward rules run with recording off and add into inputs' grads. */
#ifndef ASPO_AUTOGRAD_H
#define ASPO_AUTOGRAD_H

#include "ops.h"
#include "tensor.h"

typedef struct tape_node {
    op_id op;
    int n_in, n_out;
    tensor *in[OP_MAX_INPUTS];
    tensor *out[OP_MAX_OUTPUTS];
    op_params p;
    void *extra[2]; /* OP_CHECKPOINT: the block function and its context */
    struct tape_node *prev;
} tape_node;

/* dy: gradient of node->out[0] (f32, contiguous). Calls grad_accumulate for inputs. */
typedef aspo_status (*backward_fn)(const tape_node *node, tensor *dy);

enum {
    OP_FLAG_CONTIGUOUS = 1, /* inputs are made contiguous before the kernel runs */
    OP_FLAG_NO_KERNEL = 2,  /* views and composites: backends have no slot to fill */
};

typedef struct op_info {
    const char *name;
    unsigned flags;
    backward_fn backward; /* NULL: not differentiable (backward kernels, optimizer, fill) */
} op_info;

extern const op_info op_table[OP_COUNT];

/* Runs op on the backend of out[0] and records it on the tape when recording is on and an
 * input requires grad. Returns out[0], or NULL (error set) when any input or output is
 * NULL (an earlier failure) or the kernel fails. */
tensor *op_exec(op_id op, tensor **in, int n_in, const op_params *p, tensor **out, int n_out);
/* Runs the kernel only: no contiguity handling, no tape. */
aspo_status op_run_kernel(const op_call *call);
/* Records a node for an op whose forward was done by the caller (views, composites). */
aspo_status op_record(op_id op, tensor **in, int n_in, const op_params *p, tensor *out,
                      void *extra0, void *extra1);
bool op_any_requires_grad(tensor **in, int n_in);

/* Adds g (shape of t) into t's gradient; no-op when t does not require grad. */
aspo_status grad_accumulate(tensor *t, tensor *g);
/* t's gradient when a contribution may be added into it in place (a sum of earlier ones
 * that only t holds: f32, contiguous, t's shape), else NULL: a backward rule can then have
 * the GEMM that makes its contribution add it there (GEMM beta = 1). */
tensor *grad_in_place(tensor *t);
/* loss: a scalar. Seeds d(loss)=1, runs the tape, then drops it. */
aspo_status tensor_backward(tensor *loss);
void tape_clear(void);

typedef tensor *(*checkpoint_fn)(void *ctx, tensor **inputs, int n_inputs);
/* A residual block run with recording off, keeping only its result: fn's output (the shape
 * and dtype of inputs[0]) is copied into a tensor made before the block, and everything
 * else the block made is freed at once, so a stack of blocks needs one block's
 * intermediates at a time. An error when recording is on. */
tensor *tensor_run_scoped(checkpoint_fn fn, void *ctx, tensor **inputs, int n_inputs);
/* Activation checkpointing: runs fn as tensor_run_scoped does (so fn's output has the shape
 * and dtype of inputs[0]), keeps only the inputs and that output, and re-runs fn with
 * recording in backward, freeing the re-run's intermediates once the inputs' gradients are
 * out. fn must be deterministic given inputs (dropout is: the RNG counter is saved and
 * restored) and may add gradients only to its inputs and to parameters. */
tensor *tensor_checkpoint(checkpoint_fn fn, void *ctx, tensor **inputs, int n_inputs);

#endif
