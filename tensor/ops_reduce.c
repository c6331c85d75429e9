/* Sums and means over dims, sum-to-shape (the adjoint of broadcasting) and sum of squares. */
#include "op_backward.h"
#include "runtime.h"
#include "tensor_ops.h"

tensor *tensor_sum_dims(tensor *x, unsigned dims_mask, bool keepdim)
{
    if (!x) return NULL;
    int64_t kept[TENSOR_MAX_DIMS], squeezed[TENSOR_MAX_DIMS];
    int n_squeezed = 0;
    for (int d = 0; d < x->ndim; d++) {
        bool reduce = dims_mask & (1u << d);
        kept[d] = reduce ? 1 : x->shape[d];
        if (!reduce) squeezed[n_squeezed++] = x->shape[d];
    }
    if (dims_mask >> x->ndim) {
        aspo_fail(ASPO_ERR_SHAPE, "sum: dims mask 0x%x names dims beyond %d", dims_mask,
                  x->ndim);
        return NULL;
    }
    tensor *out = tensor_empty(DT_F32, x->ndim, kept);
    tensor *sum = op_exec(OP_SUM, &x, 1, NULL, &out, 1);
    return keepdim ? sum : tensor_reshape(sum, n_squeezed, squeezed);
}

aspo_status backward_sum(const tape_node *n, tensor *dy)
{
    tensor *x = n->in[0];
    return grad_accumulate(x, tensor_contiguous(tensor_expand(dy, x->ndim, x->shape)));
}

tensor *tensor_mean_dims(tensor *x, unsigned dims_mask, bool keepdim)
{
    if (!x) return NULL;
    int64_t count = 1;
    for (int d = 0; d < x->ndim; d++)
        if (dims_mask & (1u << d)) count *= x->shape[d];
    return tensor_scale(tensor_sum_dims(x, dims_mask, keepdim), count ? 1.0f / count : 0.0f);
}

static unsigned dim_bit(tensor *x, int dim)
{
    int d = tensor_dim(x, dim);
    if (d < 0) {
        aspo_fail(ASPO_ERR_SHAPE, "reduction dim %d out of range for %d dims", dim, x->ndim);
        return 0;
    }
    return 1u << d;
}

tensor *tensor_sum(tensor *x, int dim, bool keepdim)
{
    if (!x) return NULL;
    unsigned bit = dim_bit(x, dim);
    return bit ? tensor_sum_dims(x, bit, keepdim) : NULL;
}

tensor *tensor_mean(tensor *x, int dim, bool keepdim)
{
    if (!x) return NULL;
    unsigned bit = dim_bit(x, dim);
    return bit ? tensor_mean_dims(x, bit, keepdim) : NULL;
}

tensor *tensor_sum_all(tensor *x)
{
    if (!x) return NULL;
    return tensor_sum_dims(x, (1u << x->ndim) - 1, false);
}

tensor *tensor_sum_to(tensor *x, int ndim, const int64_t *shape)
{
    if (!x) return NULL;
    int lead = x->ndim - ndim;
    unsigned mask = 0;
    for (int d = 0; d < x->ndim; d++)
        if (d < lead || (shape[d - lead] == 1 && x->shape[d] != 1)) mask |= 1u << d;
    if (!mask) return x;
    /* keepdim then reshape drops the leading dims broadcasting added. */
    return tensor_reshape(tensor_sum_dims(x, mask, true), ndim, shape);
}

tensor *tensor_sumsq(tensor *x)
{
    if (!x) return NULL;
    tensor *out = tensor_empty(DT_F32, 0, NULL);
    if (!out) return NULL;
    bool prev = autograd_set_enabled(false);
    tensor *r = op_exec(OP_SUMSQ, &x, 1, NULL, &out, 1);
    autograd_set_enabled(prev);
    return r;
}
