/* Views (reshape, permute, slice, expand), copies, casts and concat, with their backward
 * rules. Views share memory with their input; only their tape nodes are new. */
#include <string.h>

#include "op_backward.h"
#include "runtime.h"
#include "tensor_ops.h"

enum view_kind { VIEW_RESHAPE, VIEW_PERMUTE, VIEW_SLICE, VIEW_EXPAND };

static tensor *finish_view(tensor *x, tensor *v, const op_params *p)
{
    if (!v) return NULL;
    v->node = NULL;
    v->requires_grad = false;
    return op_record(OP_VIEW, &x, 1, p, v, NULL, NULL) ? NULL : v;
}

tensor *tensor_reshape(tensor *x, int ndim, const int64_t *shape)
{
    if (!x) return NULL;
    if (ndim < 0 || ndim > TENSOR_MAX_DIMS) {
        aspo_fail(ASPO_ERR_SHAPE, "reshape: %d dims asked, at most %d", ndim, TENSOR_MAX_DIMS);
        return NULL;
    }
    int64_t dims[TENSOR_MAX_DIMS], known = 1;
    int infer = -1;
    for (int d = 0; d < ndim; d++) {
        dims[d] = shape[d];
        if (shape[d] == -1 && infer < 0) infer = d;
        else known *= shape[d];
    }
    if (infer >= 0) dims[infer] = known ? tensor_numel(x) / known : 0;
    int64_t numel = 1;
    for (int d = 0; d < ndim; d++) numel *= dims[d];
    if (numel != tensor_numel(x)) {
        char b[96];
        aspo_fail(ASPO_ERR_SHAPE, "reshape: %s has %lld elements, the new shape %lld",
                  tensor_describe(x, b, sizeof b), (long long)tensor_numel(x), (long long)numel);
        return NULL;
    }
    tensor *src = tensor_contiguous(x);
    if (!src) return NULL;
    tensor *v = tensor_alias(src);
    if (!v) return NULL;
    v->ndim = ndim;
    memcpy(v->shape, dims, sizeof(int64_t) * ndim);
    tensor_set_contiguous_strides(v);
    op_params p = {.i = {VIEW_RESHAPE}};
    return finish_view(src, v, &p);
}

tensor *tensor_permute(tensor *x, const int *perm)
{
    if (!x) return NULL;
    unsigned seen = 0;
    for (int d = 0; d < x->ndim; d++) {
        if (perm[d] < 0 || perm[d] >= x->ndim || (seen & (1u << perm[d]))) {
            aspo_fail(ASPO_ERR_SHAPE, "permute: not a permutation of %d dims", x->ndim);
            return NULL;
        }
        seen |= 1u << perm[d];
    }
    tensor *v = tensor_alias(x);
    if (!v) return NULL;
    op_params p = {.i = {VIEW_PERMUTE}};
    for (int d = 0; d < x->ndim; d++) {
        v->shape[d] = x->shape[perm[d]];
        v->stride[d] = x->stride[perm[d]];
        p.i[1 + d] = perm[d];
    }
    return finish_view(x, v, &p);
}

tensor *tensor_transpose(tensor *x, int dim0, int dim1)
{
    if (!x) return NULL;
    int a = tensor_dim(x, dim0), b = tensor_dim(x, dim1);
    if (a < 0 || b < 0) {
        aspo_fail(ASPO_ERR_SHAPE, "transpose: dims %d,%d out of range for %d dims", dim0, dim1,
                  x->ndim);
        return NULL;
    }
    int perm[TENSOR_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) perm[d] = d;
    perm[a] = b;
    perm[b] = a;
    return tensor_permute(x, perm);
}

tensor *tensor_slice(tensor *x, int dim, int64_t start, int64_t length)
{
    if (!x) return NULL;
    int d = tensor_dim(x, dim);
    if (d < 0 || start < 0 || length < 0 || start + length > x->shape[d]) {
        char b[96];
        aspo_fail(ASPO_ERR_SHAPE, "slice: [%lld, %lld) of dim %d is outside %s",
                  (long long)start, (long long)(start + length), dim,
                  tensor_describe(x, b, sizeof b));
        return NULL;
    }
    tensor *v = tensor_alias(x);
    if (!v) return NULL;
    v->shape[d] = length;
    v->data += start * x->stride[d] * (int64_t)dtype_size(x->dt);
    op_params p = {.i = {VIEW_SLICE, d, start}};
    return finish_view(x, v, &p);
}

tensor *tensor_expand(tensor *x, int ndim, const int64_t *shape)
{
    if (!x) return NULL;
    int lead = ndim - x->ndim;
    if (lead < 0 || ndim > TENSOR_MAX_DIMS) goto bad;
    tensor *v = tensor_alias(x);
    if (!v) return NULL;
    v->ndim = ndim;
    for (int d = 0; d < ndim; d++) {
        int64_t have = d < lead ? 1 : x->shape[d - lead];
        int64_t stride = d < lead ? 0 : x->stride[d - lead];
        if (have != shape[d] && have != 1) goto bad;
        v->shape[d] = shape[d];
        v->stride[d] = have == shape[d] ? stride : 0;
    }
    op_params p = {.i = {VIEW_EXPAND}};
    return finish_view(x, v, &p);
bad:;
    char b[96];
    aspo_fail(ASPO_ERR_SHAPE, "expand: %s cannot broadcast to %d dims",
              tensor_describe(x, b, sizeof b), ndim);
    return NULL;
}

aspo_status backward_view(const tape_node *n, tensor *dy)
{
    tensor *x = n->in[0];
    switch ((enum view_kind)n->p.i[0]) {
    case VIEW_RESHAPE: {
        tensor *g = tensor_alias(dy);
        if (!g) return aspo_error_status();
        g->ndim = x->ndim;
        memcpy(g->shape, x->shape, sizeof g->shape);
        tensor_set_contiguous_strides(g);
        return grad_accumulate(x, g);
    }
    case VIEW_PERMUTE: {
        int inverse[TENSOR_MAX_DIMS];
        for (int d = 0; d < x->ndim; d++) inverse[n->p.i[1 + d]] = d;
        return grad_accumulate(x, tensor_contiguous(tensor_permute(dy, inverse)));
    }
    case VIEW_SLICE: {
        tensor *g = tensor_zeros(DT_F32, x->ndim, x->shape);
        tensor *window = tensor_slice(g, (int)n->p.i[1], n->p.i[2], dy->shape[n->p.i[1]]);
        if (!window) return aspo_error_status();
        op_call copy = {.op = OP_COPY, .n_in = 1, .n_out = 1, .in = {dy}, .out = {window}};
        aspo_status s = op_run_kernel(&copy);
        return s ? s : grad_accumulate(x, g);
    }
    case VIEW_EXPAND: return grad_accumulate(x, tensor_sum_to(dy, x->ndim, x->shape));
    }
    return aspo_fail(ASPO_ERR_USAGE, "internal: unknown view kind");
}

/* ---- copies ---- */

static tensor *copy_as(tensor *x, dtype dt)
{
    tensor *out = tensor_empty_like(x, dt);
    return op_exec(OP_COPY, &x, 1, NULL, &out, 1);
}

tensor *tensor_contiguous(tensor *x)
{
    if (!x) return NULL;
    return tensor_is_contiguous(x) ? x : copy_as(x, x->dt);
}

tensor *tensor_cast(tensor *x, dtype dt)
{
    if (!x) return NULL;
    return copy_as(x, dt);
}

aspo_status backward_copy(const tape_node *n, tensor *dy)
{
    return grad_accumulate(n->in[0], dy);
}

tensor *tensor_detach(tensor *x)
{
    return x ? tensor_alias(x) : NULL;
}

tensor *tensor_fill(tensor *x, float value)
{
    if (!x) return NULL;
    op_call fill = {.op = OP_FILL, .n_out = 1, .out = {x}, .p.f = {value}};
    return op_run_kernel(&fill) ? NULL : x;
}

/* ---- concat: one OP_COPY per input into a window of the output ---- */

tensor *tensor_concat(tensor **xs, int n, int dim)
{
    if (n < 1 || n > OP_MAX_INPUTS) {
        aspo_fail(ASPO_ERR_USAGE, "concat: %d inputs, between 1 and %d supported", n,
                  OP_MAX_INPUTS);
        return NULL;
    }
    for (int i = 0; i < n; i++)
        if (!xs[i]) return NULL;
    int d = tensor_dim(xs[0], dim);
    if (d < 0) {
        aspo_fail(ASPO_ERR_SHAPE, "concat: dim %d out of range", dim);
        return NULL;
    }
    int64_t shape[TENSOR_MAX_DIMS];
    memcpy(shape, xs[0]->shape, sizeof shape);
    shape[d] = 0;
    for (int i = 0; i < n; i++) {
        bool fits = xs[i]->ndim == xs[0]->ndim && xs[i]->dt == xs[0]->dt;
        for (int k = 0; k < xs[0]->ndim && fits; k++)
            fits = k == d || xs[i]->shape[k] == xs[0]->shape[k];
        if (!fits) {
            char a[96], b[96];
            aspo_fail(ASPO_ERR_SHAPE, "concat: %s does not fit %s along dim %d",
                      tensor_describe(xs[i], a, sizeof a), tensor_describe(xs[0], b, sizeof b),
                      d);
            return NULL;
        }
        shape[d] += xs[i]->shape[d];
    }
    tensor *out = tensor_empty(xs[0]->dt, xs[0]->ndim, shape);
    if (!out) return NULL;
    bool prev = autograd_set_enabled(false);
    int64_t at = 0;
    aspo_status s = ASPO_OK;
    for (int i = 0; i < n && !s; i++) {
        tensor *window = tensor_slice(out, d, at, xs[i]->shape[d]);
        op_call copy = {.op = OP_COPY, .n_in = 1, .n_out = 1, .in = {xs[i]}, .out = {window}};
        s = window ? op_run_kernel(&copy) : aspo_error_status();
        at += xs[i]->shape[d];
    }
    autograd_set_enabled(prev);
    if (s) return NULL;
    op_params p = {.i = {d}};
    return op_record(OP_CONCAT, xs, n, &p, out, NULL, NULL) ? NULL : out;
}

aspo_status backward_concat(const tape_node *n, tensor *dy)
{
    int d = (int)n->p.i[0];
    int64_t at = 0;
    for (int i = 0; i < n->n_in; i++) {
        tensor *x = n->in[i];
        if (x->requires_grad) {
            aspo_status s = grad_accumulate(x, tensor_contiguous(tensor_slice(dy, d, at,
                                                                              x->shape[d])));
            if (s) return s;
        }
        at += x->shape[d];
    }
    return ASPO_OK;
}
