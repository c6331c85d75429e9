/* Scaled dot-product attention with grouped-query heads, causal and key-padding masks, or
 * the segment layout of packed sequences.
 * Forward keeps only o and the per-row logsumexp of the scores; backward recomputes the
 * probabilities row by row from q, k and lse, so no (Tq,Tk) matrix outlives a kernel. */
#include "op_backward.h"
#include "tensor_ops.h"

tensor *tensor_attention(tensor *q, tensor *k, tensor *v, tensor *key_mask, bool causal,
                         float scale)
{
    if (!q || !k || !v) return NULL;
    char a[96], b[96], c[96];
    if (q->ndim != 4 || k->ndim != 4 || !tensor_same_shape(k, v) ||
        k->shape[0] != q->shape[0] || k->shape[3] != q->shape[3] || !dtype_is_float(q->dt) ||
        !dtype_is_float(k->dt) || !dtype_is_float(v->dt)) {
        aspo_fail(ASPO_ERR_SHAPE,
                  "attention: q %s, k %s, v %s do not fit (need float q (B,H,Tq,D) and k, v "
                  "(B,Hkv,Tk,D))",
                  tensor_describe(q, a, sizeof a), tensor_describe(k, b, sizeof b),
                  tensor_describe(v, c, sizeof c));
        return NULL;
    }
    int64_t B = q->shape[0], H = q->shape[1], Tq = q->shape[2], Hkv = k->shape[1],
            Tk = k->shape[2];
    if (Hkv == 0 || H % Hkv != 0) {
        aspo_fail(ASPO_ERR_SHAPE,
                  "attention: %lld query heads (q %s) are not a multiple of %lld key/value "
                  "heads (k %s)",
                  (long long)H, tensor_describe(q, a, sizeof a), (long long)Hkv,
                  tensor_describe(k, b, sizeof b));
        return NULL;
    }
    bool segments = key_mask && key_mask->ndim == 3;
    if (segments && (key_mask->shape[0] != B || key_mask->shape[1] != 2 ||
                     key_mask->shape[2] != Tk || key_mask->dt != DT_I32 || Tq != Tk)) {
        aspo_fail(ASPO_ERR_SHAPE,
                  "attention: segment layout %s must be (%lld,2,%lld) i32, for self-attention "
                  "(q %s, k %s)",
                  tensor_describe(key_mask, a, sizeof a), (long long)B, (long long)Tk,
                  tensor_describe(q, b, sizeof b), tensor_describe(k, c, sizeof c));
        return NULL;
    }
    if (key_mask && !segments &&
        (key_mask->ndim != 2 || key_mask->shape[0] != B || key_mask->shape[1] != Tk ||
         (key_mask->dt != DT_F32 && key_mask->dt != DT_I32))) {
        aspo_fail(ASPO_ERR_SHAPE,
                  "attention: key_mask %s must be (%lld,%lld) f32 or i32, or a segment layout "
                  "(%lld,2,%lld) i32",
                  tensor_describe(key_mask, a, sizeof a), (long long)B, (long long)Tk,
                  (long long)B, (long long)Tk);
        return NULL;
    }
    /* Any float dtype in: the kernels widen half-precision q, k, v as they load them and
     * compute in f32 (no f32 copies kept); o comes out in q's dtype, as torch's
     * scaled_dot_product_attention gives it, lse in f32. */
    tensor *in[4] = {q, k, v, key_mask};
    tensor *out[2] = {tensor_empty(q->dt, 4, q->shape),           /* o (B,H,Tq,D) */
                      tensor_empty(DT_F32, DIMS(B, H, Tq))};      /* lse (B,H,Tq) */
    /* A segment layout is causal by definition (j <= i), whatever the caller passed. */
    op_params p = {.i = {causal || segments, segments}, .f = {scale}};
    return op_exec(OP_ATTENTION, in, key_mask ? 4 : 3, &p, out, 2);
}

aspo_status backward_attention(const tape_node *n, tensor *dy)
{
    tensor *q = n->in[0], *k = n->in[1], *v = n->in[2];
    if (!q->requires_grad && !k->requires_grad && !v->requires_grad) return ASPO_OK;
    /* in: q, k, v, o, lse, do [, key_mask]; the kernel overwrites dq, dk and dv. */
    tensor *in[7] = {q, k, v, n->out[0], n->out[1], dy, n->n_in > 3 ? n->in[3] : NULL};
    tensor *out[3] = {tensor_empty(DT_F32, 4, q->shape), tensor_empty(DT_F32, 4, k->shape),
                      tensor_empty(DT_F32, 4, v->shape)}; /* gradients: f32 */
    if (!op_exec(OP_ATTENTION_BACKWARD, in, n->n_in > 3 ? 7 : 6, &n->p, out, 3))
        return aspo_error_status();
    aspo_status s = grad_accumulate(q, out[0]);
    if (!s) s = grad_accumulate(k, out[1]);
    if (!s) s = grad_accumulate(v, out[2]);
    return s;
}
