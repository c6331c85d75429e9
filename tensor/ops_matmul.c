/* Batched matmul with broadcast leading dims. Transposed operands arrive as views; the
 * kernel reads either row- or column-major matrices, so no copy is made for them. */
#include <string.h>

#include "op_backward.h"
#include "tensor_ops.h"

/* A matrix the kernel can hand to BLAS: unit stride along rows or along columns. */
static bool blas_layout(const tensor *t)
{
    return t->stride[t->ndim - 1] == 1 || t->stride[t->ndim - 2] == 1;
}

/* a @ b with an output of dtype out_dt (NULL, error set, when they do not fit); with
 * `into`, added to into's values in its memory instead (tensor_matmul_into). */
static tensor *matmul_to(tensor *a, tensor *b, int out_dt, tensor *into)
{
    if (!a || !b) return NULL;
    char x[96], y[96];
    if (a->ndim < 2 || b->ndim < 2 || a->shape[a->ndim - 1] != b->shape[b->ndim - 2] ||
        !dtype_is_float(a->dt) || !dtype_is_float(b->dt)) {
        aspo_fail(ASPO_ERR_SHAPE, "matmul: %s @ %s do not fit (need (...,M,K) @ (...,K,N))",
                  tensor_describe(a, x, sizeof x), tensor_describe(b, y, sizeof y));
        return NULL;
    }
    int ndim = a->ndim > b->ndim ? a->ndim : b->ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    for (int d = 0; d < ndim - 2; d++) {
        int da = d - (ndim - a->ndim), db = d - (ndim - b->ndim);
        int64_t sa = da >= 0 ? a->shape[da] : 1, sb = db >= 0 ? b->shape[db] : 1;
        if (sa != sb && sa != 1 && sb != 1) {
            aspo_fail(ASPO_ERR_SHAPE, "matmul: batch dims of %s and %s do not broadcast",
                      tensor_describe(a, x, sizeof x), tensor_describe(b, y, sizeof y));
            return NULL;
        }
        shape[d] = sa == 1 ? sb : sa;
    }
    shape[ndim - 2] = a->shape[a->ndim - 2];
    shape[ndim - 1] = b->shape[b->ndim - 1];
    if (!blas_layout(a)) a = tensor_contiguous(a);
    if (!blas_layout(b)) b = tensor_contiguous(b);
    dtype dt = out_dt >= 0 ? (dtype)out_dt : (a->dt == DT_F32 || b->dt == DT_F32) ? DT_F32 : a->dt;
    if (!into) {
        tensor *out = tensor_empty(dt, ndim, shape);
        tensor *in[2] = {a, b};
        return op_exec(OP_MATMUL, in, 2, NULL, &out, 1);
    }
    if (into->ndim != ndim || memcmp(into->shape, shape, sizeof(int64_t) * (size_t)ndim) ||
        into->dt != dt || !tensor_is_contiguous(into)) {
        char z[96];
        aspo_fail(ASPO_ERR_SHAPE, "matmul into: %s += %s @ %s needs a contiguous %s of the "
                  "product's shape", tensor_describe(into, z, sizeof z),
                  tensor_describe(a, x, sizeof x), tensor_describe(b, y, sizeof y),
                  dtype_name(dt));
        return NULL;
    }
    tensor *out = tensor_alias(into); /* the sum's header over into's memory */
    tensor *in[3] = {a, b, into};
    op_params p = {.i = {1}};
    return op_exec(OP_MATMUL, in, 3, &p, &out, 1);
}

static tensor *matmul_as(tensor *a, tensor *b, int out_dt)
{
    return matmul_to(a, b, out_dt, NULL);
}

tensor *tensor_matmul_into(tensor *c, tensor *a, tensor *b)
{
    return c ? matmul_to(a, b, -1, c) : NULL;
}

tensor *tensor_matmul(tensor *a, tensor *b)
{
    return matmul_as(a, b, -1); /* f32 when either operand is, else their dtype */
}

/* (...,M,K) -> (rows,K) when the batch dims can fold into rows; else t itself. */
static tensor *fold_rows(tensor *t)
{
    if (t->ndim <= 2) return t;
    return tensor_reshape(t, DIMS(-1, t->shape[t->ndim - 1]));
}

aspo_status backward_matmul(const tape_node *n, tensor *dy)
{
    tensor *a = n->in[0], *b = n->in[1];
    /* c + a @ b: c's gradient is dy, as an add's. */
    aspo_status s = n->n_in > 2 ? grad_accumulate(n->in[2], dy) : ASPO_OK;
    if (s) return s;
    /* A product that ran in half precision (autocast's) takes its gradient in that dtype,
     * as PyTorch's would be, so the backward products are half-precision GEMMs too; they
     * accumulate into f32 outputs. */
    if (a->dt == b->dt && a->dt != DT_F32 && dy->dt != a->dt) dy = tensor_cast(dy, a->dt);
    if (a->requires_grad) {
        /* A sum of earlier contributions that only a holds (an input read by several
         * products: q, k, v and their adapters) takes this one from the GEMM itself. */
        tensor *sum = a->ndim == dy->ndim && !memcmp(a->shape, dy->shape,
                                                     sizeof(int64_t) * (size_t)(a->ndim - 1))
                          ? grad_in_place(a)
                          : NULL;
        if (sum) {
            if (!matmul_to(dy, tensor_transpose(b, -1, -2), DT_F32, sum)) /* (...,M,K) += */
                s = aspo_error_status();
        } else {
            tensor *da = matmul_as(dy, tensor_transpose(b, -1, -2), DT_F32); /* (...,M,K) */
            s = grad_accumulate(a, tensor_sum_to(da, a->ndim, a->shape));
        }
    }
    if (!s && b->requires_grad) {
        tensor *db;
        if (b->ndim == 2) /* a weight shared by every row: one GEMM over all rows */
            db = matmul_as(tensor_transpose(fold_rows(a), 0, 1), fold_rows(dy), DT_F32);
        else
            db = tensor_sum_to(matmul_as(tensor_transpose(a, -1, -2), dy, DT_F32), b->ndim,
                               b->shape);
        s = grad_accumulate(b, db);
    }
    return s;
}
