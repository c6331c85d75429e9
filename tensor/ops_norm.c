/* Normalisation over the last dim: RMSNorm (as Hugging Face LlamaRMSNorm), LayerNorm (as
 * torch.nn.LayerNorm, biased variance) and L2 normalisation (as F.normalize(p=2, dim=-1)),
 * with their backward rules. Row statistics (rstd, mean, inv_norm) are f32 tensors of x's
 * shape without the last dim, saved as extra outputs for the backward kernels.
 *
 * Backward kernels take only the gradients that are wanted: p.i[0] is a mask (bit 0 dx,
 * bit 1 dweight, bit 2 dbias) and the outputs are the wanted ones in that order, so a
 * frozen weight costs no reduction over rows and a frozen input no (R,C) buffer. */
#include <math.h>

#include "op_backward.h"
#include "tensor_ops.h"


/* Checks x (...,C) and eps; fills the shape of the per-row statistics. Returns C or -1. */
static int64_t check_rows(const char *op, const tensor *x, float eps, int *rows_ndim,
                          int64_t *rows_shape)
{
    char buf[96];
    if (x->ndim < 1 || !dtype_is_float(x->dt)) {
        aspo_fail(ASPO_ERR_SHAPE, "%s: x %s must be a float tensor of shape (...,C)", op,
                  tensor_describe(x, buf, sizeof buf));
        return -1;
    }
    int64_t C = x->shape[x->ndim - 1];
    if (C < 1) {
        aspo_fail(ASPO_ERR_SHAPE, "%s: x %s has an empty last dim; nothing to normalise over",
                  op, tensor_describe(x, buf, sizeof buf));
        return -1;
    }
    if (!(eps >= 0.0f) || isinf(eps)) {
        aspo_fail(ASPO_ERR_USAGE, "%s: eps %g must be finite and >= 0", op, (double)eps);
        return -1;
    }
    *rows_ndim = x->ndim - 1;
    for (int d = 0; d < x->ndim - 1; d++) rows_shape[d] = x->shape[d];
    return C;
}

/* A per-channel parameter (weight or bias) must be a float vector of length C. */
static bool check_channel_param(const char *op, const char *what, const tensor *p,
                                const tensor *x, int64_t C)
{
    if (p->ndim == 1 && p->shape[0] == C && dtype_is_float(p->dt)) return true;
    char a[96], b[96];
    aspo_fail(ASPO_ERR_SHAPE, "%s: %s %s does not fit x %s (need a float vector of length %lld)",
              op, what, tensor_describe(p, a, sizeof a), tensor_describe(x, b, sizeof b),
              (long long)C);
    return false;
}

/* Status for a failed step that may not have set a message itself. */
static aspo_status failed(void)
{
    return aspo_error_status() ? aspo_error_status() : ASPO_ERR_USAGE;
}

/* ---- RMSNorm ---- */

tensor *tensor_rmsnorm(tensor *x, tensor *weight, float eps)
{
    if (!x || !weight) return NULL;
    int rows_ndim;
    int64_t rows_shape[TENSOR_MAX_DIMS];
    int64_t C = check_rows("rmsnorm", x, eps, &rows_ndim, rows_shape);
    if (C < 0 || !check_channel_param("rmsnorm", "weight", weight, x, C)) return NULL;
    tensor *out[2] = {
        tensor_empty_like(x, x->dt),                   /* y (...,C) in x's dtype */
        tensor_empty(DT_F32, rows_ndim, rows_shape),   /* rstd (...) */
    };
    tensor *in[2] = {x, weight};
    op_params p = {.f = {eps}};
    return op_exec(OP_RMSNORM, in, 2, &p, out, 2);
}

aspo_status backward_rmsnorm(const tape_node *n, tensor *dy)
{
    tensor *x = n->in[0], *weight = n->in[1], *rstd = n->out[1];
    tensor *out[2], *dx = NULL, *dweight = NULL;
    int n_out = 0;
    int64_t want = 0;
    if (x->requires_grad) {
        out[n_out++] = dx = tensor_empty_like(x, DT_F32); /* (...,C) */
        want |= WANT_DX;
    }
    if (weight->requires_grad) {
        out[n_out++] = dweight = tensor_empty_like(weight, DT_F32); /* (C) */
        want |= WANT_DWEIGHT;
    }
    if (!n_out) return ASPO_OK;
    tensor *in[4] = {x, weight, rstd, dy};
    op_params p = {.i = {want}};
    if (!op_exec(OP_RMSNORM_BACKWARD, in, 4, &p, out, n_out)) return failed();
    aspo_status s = ASPO_OK;
    if (dx) s = grad_accumulate(x, dx);
    if (!s && dweight) s = grad_accumulate(weight, dweight);
    return s;
}

/* ---- LayerNorm ---- */

tensor *tensor_layernorm(tensor *x, tensor *weight, tensor *bias, float eps)
{
    if (!x || !weight || !bias) return NULL;
    int rows_ndim;
    int64_t rows_shape[TENSOR_MAX_DIMS];
    int64_t C = check_rows("layernorm", x, eps, &rows_ndim, rows_shape);
    if (C < 0 || !check_channel_param("layernorm", "weight", weight, x, C) ||
        !check_channel_param("layernorm", "bias", bias, x, C))
        return NULL;
    tensor *out[3] = {
        tensor_empty_like(x, x->dt),                   /* y (...,C) */
        tensor_empty(DT_F32, rows_ndim, rows_shape),   /* mean (...) */
        tensor_empty(DT_F32, rows_ndim, rows_shape),   /* rstd (...) */
    };
    tensor *in[3] = {x, weight, bias};
    op_params p = {.f = {eps}};
    return op_exec(OP_LAYERNORM, in, 3, &p, out, 3);
}

aspo_status backward_layernorm(const tape_node *n, tensor *dy)
{
    tensor *x = n->in[0], *weight = n->in[1], *bias = n->in[2];
    tensor *out[3], *dx = NULL, *dweight = NULL, *dbias = NULL;
    int n_out = 0;
    int64_t want = 0;
    if (x->requires_grad) {
        out[n_out++] = dx = tensor_empty_like(x, DT_F32); /* (...,C) */
        want |= WANT_DX;
    }
    if (weight->requires_grad) {
        out[n_out++] = dweight = tensor_empty_like(weight, DT_F32); /* (C) */
        want |= WANT_DWEIGHT;
    }
    if (bias->requires_grad) {
        out[n_out++] = dbias = tensor_empty_like(bias, DT_F32); /* (C) */
        want |= WANT_DBIAS;
    }
    if (!n_out) return ASPO_OK;
    tensor *in[5] = {x, weight, n->out[1], n->out[2], dy}; /* x, weight, mean, rstd, dy */
    op_params p = {.i = {want}};
    if (!op_exec(OP_LAYERNORM_BACKWARD, in, 5, &p, out, n_out)) return failed();
    aspo_status s = ASPO_OK;
    if (dx) s = grad_accumulate(x, dx);
    if (!s && dweight) s = grad_accumulate(weight, dweight);
    if (!s && dbias) s = grad_accumulate(bias, dbias);
    return s;
}

/* ---- L2 normalisation ---- */

/* inv_norm holds 1/max(||x||, eps) per row, negated where the norm did not exceed eps:
 * there the denominator is the constant eps and backward must not project. */
tensor *tensor_l2_normalize(tensor *x, float eps)
{
    if (!x) return NULL;
    int rows_ndim;
    int64_t rows_shape[TENSOR_MAX_DIMS];
    if (check_rows("l2_normalize", x, eps, &rows_ndim, rows_shape) < 0) return NULL;
    tensor *out[2] = {
        tensor_empty_like(x, x->dt),                   /* y (...,C) */
        tensor_empty(DT_F32, rows_ndim, rows_shape),   /* signed inv_norm (...) */
    };
    op_params p = {.f = {eps}};
    return op_exec(OP_L2NORM, &x, 1, &p, out, 2);
}

aspo_status backward_l2norm(const tape_node *n, tensor *dy)
{
    tensor *dx = tensor_empty_like(n->in[0], DT_F32);
    tensor *in[3] = {n->out[0], n->out[1], dy}; /* y, inv_norm, dy */
    op_params p = {.i = {WANT_DX}};
    if (!op_exec(OP_L2NORM_BACKWARD, in, 3, &p, &dx, 1)) return failed();
    return grad_accumulate(n->in[0], dx);
}
