/* Elementwise ops: broadcasting binary arithmetic, scale, the unary activations, masked
 * fill and dropout, with their backward rules. Kernels compute in f32 whatever the dtype. */
#include <string.h>

#include "op_backward.h"
#include "runtime.h"
#include "tensor_ops.h"

/* numpy broadcasting of two shapes, aligned at the last dim. */
static bool broadcast_shape(const tensor *a, const tensor *b, int *ndim, int64_t *shape)
{
    int n = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int d = 0; d < n; d++) {
        int da = d - (n - a->ndim), db = d - (n - b->ndim);
        int64_t sa = da >= 0 ? a->shape[da] : 1, sb = db >= 0 ? b->shape[db] : 1;
        if (sa != sb && sa != 1 && sb != 1) return false;
        shape[d] = sa == 1 ? sb : sa;
    }
    *ndim = n;
    return true;
}

static tensor *binary(tensor *a, tensor *b, binary_kind kind)
{
    if (!a || !b) return NULL;
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    if (!broadcast_shape(a, b, &ndim, shape)) {
        char x[96], y[96];
        aspo_fail(ASPO_ERR_SHAPE, "binary op: shapes %s and %s do not broadcast",
                  tensor_describe(a, x, sizeof x), tensor_describe(b, y, sizeof y));
        return NULL;
    }
    if (!dtype_is_float(a->dt) || !dtype_is_float(b->dt)) {
        aspo_fail(ASPO_ERR_SHAPE, "binary op: %s and %s operands; float dtypes only",
                  dtype_name(a->dt), dtype_name(b->dt));
        return NULL;
    }
    tensor *out = tensor_empty(a->dt == b->dt ? a->dt : DT_F32, ndim, shape);
    tensor *in[2] = {a, b};
    op_params p = {.i = {kind}};
    return op_exec(OP_BINARY, in, 2, &p, &out, 1);
}

tensor *tensor_add(tensor *a, tensor *b) { return binary(a, b, BINARY_ADD); }

tensor *tensor_add_into(tensor *a, tensor *b)
{
    if (!a || !b) return NULL;
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    char x[96], y[96];
    if (!broadcast_shape(a, b, &ndim, shape) || ndim != a->ndim ||
        memcmp(shape, a->shape, sizeof(int64_t) * (size_t)ndim) || !tensor_is_contiguous(a) ||
        !dtype_is_float(a->dt) || (b->dt != a->dt && a->dt != DT_F32)) {
        aspo_fail(ASPO_ERR_SHAPE, "add into: %s += %s needs a contiguous first operand of the "
                  "sum's shape and dtype", tensor_describe(a, x, sizeof x),
                  tensor_describe(b, y, sizeof y));
        return NULL;
    }
    tensor *out = tensor_alias(a); /* the sum's header over a's memory */
    tensor *in[2] = {a, b};
    op_params p = {.i = {BINARY_ADD}};
    return op_exec(OP_BINARY, in, 2, &p, &out, 1);
}
tensor *tensor_sub(tensor *a, tensor *b) { return binary(a, b, BINARY_SUB); }
tensor *tensor_mul(tensor *a, tensor *b) { return binary(a, b, BINARY_MUL); }
tensor *tensor_div(tensor *a, tensor *b) { return binary(a, b, BINARY_DIV); }

aspo_status backward_binary(const tape_node *n, tensor *dy)
{
    tensor *a = n->in[0], *b = n->in[1];
    tensor *ga = NULL, *gb = NULL;
    switch ((binary_kind)n->p.i[0]) {
    case BINARY_ADD: ga = dy; gb = dy; break;
    case BINARY_SUB: ga = dy; gb = b->requires_grad ? tensor_scale(dy, -1.0f) : NULL; break;
    case BINARY_MUL:
        ga = a->requires_grad ? tensor_mul(dy, b) : NULL;
        gb = b->requires_grad ? tensor_mul(dy, a) : NULL;
        break;
    case BINARY_DIV:
        ga = a->requires_grad ? tensor_div(dy, b) : NULL;
        /* d(a/b)/db = -(a/b)/b = -out/b */
        gb = b->requires_grad ? tensor_scale(tensor_div(tensor_mul(dy, n->out[0]), b), -1.0f)
                              : NULL;
        break;
    }
    aspo_status s = ASPO_OK;
    if (a->requires_grad) s = grad_accumulate(a, tensor_sum_to(ga, a->ndim, a->shape));
    if (!s && b->requires_grad) s = grad_accumulate(b, tensor_sum_to(gb, b->ndim, b->shape));
    return s;
}

tensor *tensor_scale(tensor *x, float s)
{
    if (!x) return NULL;
    tensor *out = tensor_empty_like(x, x->dt);
    op_params p = {.f = {s}};
    return op_exec(OP_SCALE, &x, 1, &p, &out, 1);
}

aspo_status backward_scale(const tape_node *n, tensor *dy)
{
    return grad_accumulate(n->in[0], tensor_scale(dy, n->p.f[0]));
}

tensor *tensor_unary(tensor *x, unary_kind kind)
{
    if (!x) return NULL;
    if (!dtype_is_float(x->dt)) {
        aspo_fail(ASPO_ERR_SHAPE, "unary op on %s: float dtypes only", dtype_name(x->dt));
        return NULL;
    }
    tensor *out = tensor_empty_like(x, x->dt);
    op_params p = {.i = {kind}};
    return op_exec(OP_UNARY, &x, 1, &p, &out, 1);
}

tensor *tensor_exp(tensor *x) { return tensor_unary(x, UNARY_EXP); }
tensor *tensor_log(tensor *x) { return tensor_unary(x, UNARY_LOG); }
tensor *tensor_silu(tensor *x) { return tensor_unary(x, UNARY_SILU); }
tensor *tensor_gelu(tensor *x) { return tensor_unary(x, UNARY_GELU_ERF); }
tensor *tensor_gelu_tanh(tensor *x) { return tensor_unary(x, UNARY_GELU_TANH); }
tensor *tensor_quick_gelu(tensor *x) { return tensor_unary(x, UNARY_QUICK_GELU); }

aspo_status backward_unary(const tape_node *n, tensor *dy)
{
    tensor *dx = tensor_empty_like(n->in[0], DT_F32);
    tensor *in[3] = {n->in[0], n->out[0], dy};
    return grad_accumulate(n->in[0], op_exec(OP_UNARY_BACKWARD, in, 3, &n->p, &dx, 1));
}

tensor *tensor_masked_fill(tensor *x, tensor *mask, float value)
{
    if (!x || !mask) return NULL;
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    if (!broadcast_shape(x, mask, &ndim, shape) || ndim != x->ndim ||
        memcmp(shape, x->shape, sizeof(int64_t) * ndim) != 0) {
        char a[96], b[96];
        aspo_fail(ASPO_ERR_SHAPE, "masked_fill: mask %s does not broadcast to %s",
                  tensor_describe(mask, b, sizeof b), tensor_describe(x, a, sizeof a));
        return NULL;
    }
    tensor *out = tensor_empty_like(x, x->dt);
    tensor *in[2] = {x, mask};
    op_params p = {.f = {value}};
    return op_exec(OP_MASKED_FILL, in, 2, &p, &out, 1);
}

aspo_status backward_masked_fill(const tape_node *n, tensor *dy)
{
    return grad_accumulate(n->in[0], tensor_masked_fill(dy, n->in[1], 0.0f));
}

tensor *tensor_dropout(tensor *x, float p)
{
    if (!x) return NULL;
    if (p == 0.0f) return x;
    if (!(p > 0.0f && p < 1.0f)) {
        aspo_fail(ASPO_ERR_USAGE, "dropout probability %g is outside [0, 1)", (double)p);
        return NULL;
    }
    runtime *rt = runtime_current();
    tensor *out = tensor_empty_like(x, x->dt);
    op_params params = {.i = {(int64_t)rt->rng_seed, (int64_t)runtime_rng_take(
                                                         (uint64_t)tensor_numel(x) / 4 + 1)},
                        .f = {p}};
    return op_exec(OP_DROPOUT, &x, 1, &params, &out, 1);
}

aspo_status backward_dropout(const tape_node *n, tensor *dy)
{
    /* The same (seed, counter) regenerates the mask: nothing was stored in forward. */
    tensor *dx = tensor_empty_like(dy, DT_F32);
    return grad_accumulate(n->in[0], op_exec(OP_DROPOUT, &dy, 1, &n->p, &dx, 1));
}
