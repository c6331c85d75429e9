/* The operations models are written in. Each returns a new tensor in the step arena (or
 * a view), records itself on the tape when an input requires grad, and returns NULL with
 * an error set on failure; a NULL input returns NULL, so chains need one check at the end.
 * Dims may be negative (-1 = last). */
#ifndef ASPO_TENSOR_OPS_H
#define ASPO_TENSOR_OPS_H

#include "tensor.h"

/* ---- views and copies (tensor/ops_view.c) ---- */
tensor *tensor_reshape(tensor *x, int ndim, const int64_t *shape); /* one dim may be -1 */
tensor *tensor_permute(tensor *x, const int *perm);
tensor *tensor_transpose(tensor *x, int dim0, int dim1);
tensor *tensor_slice(tensor *x, int dim, int64_t start, int64_t length);
/* Broadcasts size-1 dims (and new leading dims) to `shape` with stride 0. */
tensor *tensor_expand(tensor *x, int ndim, const int64_t *shape);
tensor *tensor_contiguous(tensor *x);           /* x itself when already contiguous */
tensor *tensor_cast(tensor *x, dtype dt);       /* contiguous copy in dtype dt */
tensor *tensor_concat(tensor **xs, int n, int dim);
/* A view that shares x's memory but is cut from the tape. */
tensor *tensor_detach(tensor *x);
tensor *tensor_fill(tensor *x, float value); /* in place, not recorded; returns x */

/* ---- elementwise (tensor/ops_elementwise.c); binary ops broadcast numpy-style ---- */
tensor *tensor_add(tensor *a, tensor *b);
/* a + b written over a's memory, returned as a new tensor; a's values are gone. For a first
 * operand nothing reads again (the add's backward reads neither): saves the sum's memory. */
tensor *tensor_add_into(tensor *a, tensor *b);
tensor *tensor_sub(tensor *a, tensor *b);
tensor *tensor_mul(tensor *a, tensor *b);
tensor *tensor_div(tensor *a, tensor *b);
tensor *tensor_scale(tensor *x, float s);
tensor *tensor_unary(tensor *x, unary_kind kind);
tensor *tensor_exp(tensor *x);
tensor *tensor_log(tensor *x);
tensor *tensor_silu(tensor *x);
tensor *tensor_gelu(tensor *x);      /* erf form */
tensor *tensor_gelu_tanh(tensor *x); /* tanh approximation */
tensor *tensor_quick_gelu(tensor *x); /* x * sigmoid(1.702 x) */
/* mask broadcasts to x; where mask != 0 the result is value. */
tensor *tensor_masked_fill(tensor *x, tensor *mask, float value);
/* Inverted dropout with the runtime's counter-based RNG; x itself when p == 0. */
tensor *tensor_dropout(tensor *x, float p);

/* ---- reductions (tensor/ops_reduce.c) ---- */
/* dims_mask: bit d set = reduce dim d. */
tensor *tensor_sum_dims(tensor *x, unsigned dims_mask, bool keepdim);
tensor *tensor_mean_dims(tensor *x, unsigned dims_mask, bool keepdim);
tensor *tensor_sum(tensor *x, int dim, bool keepdim);
tensor *tensor_mean(tensor *x, int dim, bool keepdim);
tensor *tensor_sum_all(tensor *x); /* scalar (0-d) */
/* Sums x down to `shape` (the inverse of broadcasting): used by backward rules. */
tensor *tensor_sum_to(tensor *x, int ndim, const int64_t *shape);
/* Sum of squares as an f32 scalar; not recorded (for gradient norms). */
tensor *tensor_sumsq(tensor *x);

/* ---- matmul (tensor/ops_matmul.c) ---- */
/* a (...,M,K) @ b (...,K,N) -> (...,M,N), leading dims broadcast. Pass a transposed
 * operand as a view (tensor_transpose(w,-1,-2)): no copy is made for it. b may be bf16 or
 * f16 (frozen weights) with f32 a; the result is f32. */
tensor *tensor_matmul(tensor *a, tensor *b);
/* c += a @ b in place (GEMM beta = 1), recorded: returns c's new value (over c's memory, as
 * tensor_add_into), whose gradient reaches c, a and b. c: contiguous, of the product's shape
 * and dtype (f32 when a or b is, else theirs). For a sum nothing reads c before (a LoRA
 * branch into its base output, a gradient contribution into the running gradient). */
tensor *tensor_matmul_into(tensor *c, tensor *a, tensor *b);

/* ---- softmax family (tensor/ops_softmax.c) ---- */
tensor *tensor_softmax(tensor *x);     /* over the last dim */
tensor *tensor_log_softmax(tensor *x); /* over the last dim */
/* logits (N,V), targets (N) i32 -> log p(target) (N); no (N,V) log-softmax is stored.
 * Rows whose target equals ignore_index give 0 and no gradient. */
tensor *tensor_gather_logprobs(tensor *logits, tensor *targets, int ignore_index);
/* Mean over non-ignored rows of -log p(target); 0 when every row is ignored. */
tensor *tensor_cross_entropy(tensor *logits, tensor *targets, int ignore_index);

/* ---- normalisation over the last dim (tensor/ops_norm.c) ---- */
tensor *tensor_rmsnorm(tensor *x, tensor *weight, float eps);
tensor *tensor_layernorm(tensor *x, tensor *weight, tensor *bias, float eps);
tensor *tensor_l2_normalize(tensor *x, float eps); /* x / max(||x||, eps) */

/* ---- model pieces (tensor/ops_embedding.c, ops_rope.c, ops_attention.c) ---- */
tensor *tensor_embedding(tensor *table, tensor *ids); /* (V,C), (...) i32 -> (...,C) */
/* x (B,H,T,D), cos/sin (B or 1,T,D): x*cos + rotate_half(x)*sin (Hugging Face). */
tensor *tensor_rope(tensor *x, tensor *cos, tensor *sin);
/* Tables for positions (B,T) i32 on the host: cos/sin (B,T,D) with inv_freq
 * theta^(-2i/D), positions divided by linear_scale (1 = no scaling). */
aspo_status tensor_rope_tables(const int32_t *positions, int64_t B, int64_t T, int64_t D,
                               double theta, double linear_scale, tensor **cos,
                               tensor **sin);
/* q (B,H,Tq,D), k/v (B,Hkv,Tk,D) with H % Hkv == 0; key_mask NULL or (B,Tk) nonzero =
 * attend; causal aligns the last query with the last key. Returns (B,H,Tq,D).
 * key_mask may instead be a segment layout (B,2,T) i32 of packed sequences (self-attention,
 * Tq = Tk = T; causal is implied): row 0 the segment of each token (-1 for padding), row 1
 * the segment it sees besides its own (its own for a prompt; the prompt's for an answer
 * packed after it). Query i sees key j when j <= i, segment[i] >= 0, segment[j] >= 0 and
 * segment[j] is segment[i] or base[i]: a preference pair packed as [prompt, chosen, rejected] gives
 * each answer the prompt and itself, never the other answer. */
tensor *tensor_attention(tensor *q, tensor *k, tensor *v, tensor *key_mask, bool causal,
                         float scale);

/* ---- optimizer step (tensor/ops_optim.c): in place, not recorded ---- */
typedef struct adamw_hparams {
    float lr, beta1, beta2, eps, weight_decay;
    int64_t step; /* 1-based, for bias correction */
} adamw_hparams;
aspo_status tensor_adamw_update(tensor *param, tensor *grad, tensor *m, tensor *v,
                                const adamw_hparams *h);

#endif
