/* The op table: every operation the tensor layer can run, one id each. Each id has one
 * row in tensor/op_table.c (name, flags, backward rule) and one kernel slot per backend.
 * User-facing op functions are declared in tensor/tensor_ops.h. */
#ifndef ASPO_OPS_H
#define ASPO_OPS_H

#include <stdint.h>

#include "op_kinds.h"

typedef enum op_id {
    /* data movement */
    OP_COPY = 0,         /* in: src; out: dst of the same shape, any strides and dtypes */
    OP_FILL,             /* out: filled with f[0] */
    OP_VIEW,             /* reshape/permute/slice/expand: no kernel, backward maps grads back */
    OP_CONCAT,           /* composite over OP_COPY: no kernel of its own */
    OP_CHECKPOINT,       /* a block re-run in backward from its saved inputs: no kernel */
    /* elementwise */
    OP_BINARY,           /* in: a, b (broadcast); i[0]: binary_kind */
    OP_SCALE,            /* in: x; out = x * f[0] */
    OP_UNARY,            /* in: x; i[0]: unary_kind */
    OP_UNARY_BACKWARD,   /* in: x, y, dy; i[0]: unary_kind; out: dx */
    OP_MASKED_FILL,      /* in: x, mask (broadcast to x; nonzero = fill); out = mask ? f[0] : x */
    OP_DROPOUT,          /* in: x; f[0]: p; i[0]: seed; i[1]: counter base; out = x*keep/(1-p) */
    /* reductions */
    OP_SUM,              /* in: x; out: shape of x with 1 at the reduced dims */
    OP_SUMSQ,            /* in: x; out: scalar f32 sum of squares (for gradient norms) */
    /* linear algebra */
    OP_MATMUL,           /* in: a (...,M,K), b (...,K,N), each row- or column-major per matrix
                            [, c]; i[0] = 1: accumulate (tensor_matmul_into): out is c's
                            memory (contiguous, the product's shape and dtype) and gets
                            c + a @ b, the sum in f32 rounded once for a half out (GEMM
                            beta = 1) */
    /* normalisation and softmax over the last dim */
    OP_SOFTMAX,          /* in: x; i[0]: 1 for log-softmax */
    OP_SOFTMAX_BACKWARD, /* in: y, dy; i[0]: 1 for log-softmax; out: dx */
    OP_RMSNORM,          /* in: x (R,C), g (C); f[0]: eps; out: y, rstd (R) */
    OP_RMSNORM_BACKWARD, /* in: x, g, rstd, dy; i[0]: norm_grads mask; out: the wanted
                            subset of dx, dg in that order */
    OP_LAYERNORM,        /* in: x (R,C), g (C), b (C); f[0]: eps; out: y, mean (R), rstd (R) */
    OP_LAYERNORM_BACKWARD, /* in: x, g, mean, rstd, dy; i[0]: norm_grads mask; out: the
                              wanted subset of dx, dg, db in that order */
    OP_L2NORM,           /* in: x (R,C); f[0]: eps; out: y, inv_norm (R), negative where
                            the norm was clamped to eps */
    OP_L2NORM_BACKWARD,  /* in: y, inv_norm, dy; out: dx */
    /* language-model pieces */
    OP_GATHER_LOGPROBS,  /* in: logits (N,V), targets (N) i32; i[0]: ignore index;
                            out: logp (N), lse (N) */
    OP_GATHER_LOGPROBS_BACKWARD, /* in: logits, targets, lse, dlogp; i[0]: ignore; out: dlogits */
    OP_EMBEDDING,        /* in: table (V,C), ids (...) i32; out: (...,C) */
    OP_EMBEDDING_BACKWARD, /* in: ids, dy (...,C); out: dtable (V,C) f32, overwritten */
    OP_ROPE,             /* in: x (B,H,T,D), cos (B|1,T,D), sin (B|1,T,D); i[0]: 1 = transpose */
    OP_ATTENTION,        /* in: q (B,H,Tq,D), k, v (B,Hkv,Tk,D) [, key_mask (B,Tk)];
                            i[0]: causal; i[1]: 1 = the mask input is a segment layout
                            (B,2,T) i32 (tensor_attention); f[0]: scale;
                            out: o (B,H,Tq,D), lse (B,H,Tq) */
    OP_ATTENTION_BACKWARD, /* in: q, k, v, o, lse, do [, key_mask or layout]; params as the
                              forward's; out: dq, dk, dv */
    /* optimizer */
    OP_ADAMW,            /* in: param, grad, m, v (updated in place); f: lr, beta1, beta2, eps,
                            weight_decay, bias_correction1, bias_correction2 */
    OP_COUNT
} op_id;

/* The kinds below are numbered in op_kinds.h, which the shaders read too. */

/* Which gradients a norm backward kernel writes (bit mask in i[0]). */
enum norm_grads {
    WANT_DX = ASPO_WANT_DX, WANT_DWEIGHT = ASPO_WANT_DWEIGHT, WANT_DBIAS = ASPO_WANT_DBIAS
};

typedef enum binary_kind {
    BINARY_ADD = ASPO_BINARY_ADD, BINARY_SUB = ASPO_BINARY_SUB,
    BINARY_MUL = ASPO_BINARY_MUL, BINARY_DIV = ASPO_BINARY_DIV
} binary_kind;
/* Outside the enum, so that switches over binary_kind need no case for it. */
enum { BINARY_COUNT = ASPO_BINARY_COUNT };

typedef enum unary_kind {
    UNARY_EXP = ASPO_UNARY_EXP, UNARY_LOG = ASPO_UNARY_LOG, UNARY_SILU = ASPO_UNARY_SILU,
    UNARY_GELU_ERF = ASPO_UNARY_GELU_ERF, UNARY_GELU_TANH = ASPO_UNARY_GELU_TANH,
    UNARY_QUICK_GELU = ASPO_UNARY_QUICK_GELU, UNARY_SQRT = ASPO_UNARY_SQRT,
    UNARY_RSQRT = ASPO_UNARY_RSQRT, UNARY_NEG = ASPO_UNARY_NEG,
    UNARY_SQUARE = ASPO_UNARY_SQUARE, UNARY_COUNT = ASPO_UNARY_COUNT
} unary_kind;

enum { OP_MAX_INPUTS = 8, OP_MAX_OUTPUTS = 3, OP_MAX_PARAMS = 8 };

typedef struct op_params {
    int64_t i[OP_MAX_PARAMS];
    float f[OP_MAX_PARAMS];
} op_params;

struct tensor;

/* What a kernel receives: inputs, preallocated outputs and scalar parameters. */
typedef struct op_call {
    op_id op;
    int n_in, n_out;
    const struct tensor *in[OP_MAX_INPUTS];
    struct tensor *out[OP_MAX_OUTPUTS];
    op_params p;
} op_call;

#endif
