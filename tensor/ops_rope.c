/* Rotary position embedding, Hugging Face convention: the two halves of each head vector
 * form the (real, imaginary) pairs, out = x*cos + rotate_half(x)*sin with
 * rotate_half(x) = cat(-x[..., D/2:], x[..., :D/2]). Backward is the same kernel applied
 * as the transpose of that rotation. cos/sin are constants (no gradient). */
#include <math.h>

#include "op_backward.h"
#include "runtime.h"
#include "tensor_ops.h"

tensor *tensor_rope(tensor *x, tensor *cos, tensor *sin)
{
    if (!x || !cos || !sin) return NULL;
    char a[96], b[96], c[96];
    if (x->ndim != 4 || !dtype_is_float(x->dt) || x->shape[3] % 2 != 0) {
        aspo_fail(ASPO_ERR_SHAPE, "rope: x %s must be (B,H,T,D) float with an even D",
                  tensor_describe(x, a, sizeof a));
        return NULL;
    }
    int64_t B = x->shape[0], T = x->shape[2], D = x->shape[3];
    if (cos->ndim != 3 || !tensor_same_shape(cos, sin) || !dtype_is_float(cos->dt) ||
        !dtype_is_float(sin->dt) || (cos->shape[0] != B && cos->shape[0] != 1) ||
        cos->shape[1] != T || cos->shape[2] != D) {
        aspo_fail(ASPO_ERR_SHAPE,
                  "rope: cos %s and sin %s must both be (B or 1,T,D) = (%lld or 1,%lld,%lld) "
                  "float for x %s",
                  tensor_describe(cos, b, sizeof b), tensor_describe(sin, c, sizeof c),
                  (long long)B, (long long)T, (long long)D, tensor_describe(x, a, sizeof a));
        return NULL;
    }
    /* x may be any view (e.g. (B,T,H,D) permuted to (B,H,T,D)): the kernel reads strides
     * and writes a contiguous result. */
    tensor *out = tensor_empty(x->dt, 4, x->shape); /* (B,H,T,D) */
    tensor *in[3] = {x, cos, sin};
    op_params p = {.i = {0}};
    return op_exec(OP_ROPE, in, 3, &p, &out, 1);
}

aspo_status backward_rope(const tape_node *n, tensor *dy)
{
    tensor *x = n->in[0];
    if (!x->requires_grad) return ASPO_OK;
    /* dx1 = dy1*c1 + dy2*s2, dx2 = dy2*c2 - dy1*s1: the rotation transposed. */
    tensor *dx = tensor_empty(DT_F32, 4, x->shape); /* (B,H,T,D) */
    tensor *in[3] = {dy, n->in[1], n->in[2]};
    op_params p = {.i = {1}};
    return grad_accumulate(x, op_exec(OP_ROPE, in, 3, &p, &dx, 1));
}

/* Float32 steps mirror transformers' default rotary embedding:
 *   inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2).float() / dim))   (float32)
 *   freqs = position.float() (/ scaling factor) * inv_freq               (float32)
 * pow and cos/sin are evaluated in double and rounded once to float, i.e. correctly
 * rounded float results (torch's float kernels are within an ulp of those). */
aspo_status tensor_rope_tables(const int32_t *positions, int64_t B, int64_t T, int64_t D,
                               double theta, double linear_scale, tensor **cos_out,
                               tensor **sin_out)
{
    *cos_out = *sin_out = NULL;
    if (!positions || B <= 0 || T <= 0 || D <= 0 || D % 2 != 0)
        return aspo_fail(ASPO_ERR_USAGE,
                         "rope tables: need positions for B=%lld, T=%lld > 0 and an even head "
                         "size D > 0, got D=%lld",
                         (long long)B, (long long)T, (long long)D);
    if (!(theta > 0) || !(linear_scale > 0))
        return aspo_fail(ASPO_ERR_USAGE,
                         "rope tables: theta (%g) and the linear scaling factor (%g) must be > 0",
                         theta, linear_scale);
    int64_t half = D / 2, n = B * T * D;
    /* Host scratch from the step's host arena: no heap allocation per step. */
    arena *host = &runtime_current()->host;
    float *inv_freq = arena_alloc(host, sizeof(float) * (size_t)half);
    float *c = arena_alloc(host, sizeof(float) * (size_t)n);
    float *s = arena_alloc(host, sizeof(float) * (size_t)n);
    if (!inv_freq || !c || !s) return aspo_error_status();
    float base = (float)theta, scale = (float)linear_scale;
    for (int64_t i = 0; i < half; i++) {
        float e = (float)(2 * i) / (float)D;
        inv_freq[i] = 1.0f / (float)pow((double)base, (double)e);
    }
    for (int64_t bt = 0; bt < B * T; bt++) {
        float t = (float)positions[bt] / scale;
        for (int64_t i = 0; i < half; i++) {
            float f = t * inv_freq[i];
            /* emb = cat(freqs, freqs): both halves use the same angle. */
            c[bt * D + i] = c[bt * D + half + i] = (float)cos((double)f);
            s[bt * D + i] = s[bt * D + half + i] = (float)sin((double)f);
        }
    }
    *cos_out = tensor_from_host(DT_F32, DIMS(B, T, D), c); /* (B,T,D) */
    *sin_out = tensor_from_host(DT_F32, DIMS(B, T, D), s);
    if (!*cos_out || !*sin_out) {
        *cos_out = *sin_out = NULL;
        return aspo_error_status();
    }
    return ASPO_OK;
}
