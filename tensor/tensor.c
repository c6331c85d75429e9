#include "tensor.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autograd.h"
#include "runtime.h"
#include "tensor_ops.h"

int64_t tensor_numel(const tensor *t)
{
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
    return n;
}

size_t tensor_nbytes(const tensor *t) { return (size_t)tensor_numel(t) * dtype_size(t->dt); }

void tensor_set_contiguous_strides(tensor *t)
{
    int64_t s = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        t->stride[d] = s;
        s *= t->shape[d];
    }
}

bool tensor_is_contiguous(const tensor *t)
{
    int64_t s = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->shape[d] != 1 && t->stride[d] != s) return false;
        s *= t->shape[d];
    }
    return true;
}

bool tensor_same_shape(const tensor *a, const tensor *b)
{
    if (a->ndim != b->ndim) return false;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d]) return false;
    return true;
}

int tensor_dim(const tensor *t, int dim)
{
    if (dim < 0) dim += t->ndim;
    return dim >= 0 && dim < t->ndim ? dim : -1;
}

void tensor_view4(const tensor *t, const tensor *like, int64_t ne[4], int64_t st[4])
{
    const tensor *shape_of = like ? like : t;
    for (int d = 0; d < 4; d++) {
        int dt_ = d - (4 - t->ndim), ds = d - (4 - shape_of->ndim);
        int64_t size = dt_ >= 0 ? t->shape[dt_] : 1;
        ne[d] = ds >= 0 ? shape_of->shape[ds] : 1;
        st[d] = (dt_ >= 0 && size == ne[d]) ? t->stride[dt_] : 0;
    }
}

const char *tensor_describe(const tensor *t, char *buf, size_t size)
{
    int n = snprintf(buf, size, "%s(", t->name ? t->name : "");
    for (int d = 0; d < t->ndim && n > 0 && (size_t)n < size; d++)
        n += snprintf(buf + n, size - n, d ? ",%lld" : "%lld", (long long)t->shape[d]);
    if (n > 0 && (size_t)n < size) snprintf(buf + n, size - n, ") %s", dtype_name(t->dt));
    return buf;
}

static tensor *new_header(void)
{
    tensor *t = arena_alloc(&runtime_current()->host, sizeof *t);
    if (t) memset(t, 0, sizeof *t);
    return t;
}

tensor *tensor_alias(const tensor *src)
{
    tensor *t = new_header();
    if (!t) return NULL;
    *t = *src;
    t->requires_grad = false;
    t->is_param = false;
    t->grad = NULL;
    t->node = NULL;
    t->is_grad_buffer = false;
    t->grad_aliases = 0;
    t->is_grad_sum = false;
    return t;
}

tensor *tensor_empty(dtype dt, int ndim, const int64_t *shape)
{
    if (ndim < 0 || ndim > TENSOR_MAX_DIMS) {
        aspo_fail(ASPO_ERR_SHAPE, "tensors have at most %d dims, asked for %d", TENSOR_MAX_DIMS,
                  ndim);
        return NULL;
    }
    int64_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0 || (shape[d] && numel > INT64_MAX / 8 / shape[d])) {
            aspo_fail(ASPO_ERR_SHAPE, "bad tensor dimension %lld at dim %d",
                      (long long)shape[d], d);
            return NULL;
        }
        numel *= shape[d];
    }
    runtime *rt = runtime_current();
    tensor *t = new_header();
    if (!t) return NULL;
    t->dt = dt;
    t->ndim = ndim;
    if (ndim) memcpy(t->shape, shape, sizeof(int64_t) * ndim);
    tensor_set_contiguous_strides(t);
    t->be = rt->be;
    t->data = arena_alloc(&rt->data, (size_t)numel * dtype_size(dt));
    return t->data ? t : NULL;
}

tensor *tensor_empty_like(const tensor *t, dtype dt) { return tensor_empty(dt, t->ndim, t->shape); }

tensor *tensor_zeros(dtype dt, int ndim, const int64_t *shape)
{
    tensor *t = tensor_empty(dt, ndim, shape);
    if (!t) return NULL;
    op_call fill = {.op = OP_FILL, .n_out = 1, .out = {t}};
    return op_run_kernel(&fill) ? NULL : t;
}

tensor *tensor_from_host(dtype dt, int ndim, const int64_t *shape, const void *host)
{
    tensor *t = tensor_empty(dt, ndim, shape);
    if (!t) return NULL;
    return t->be->upload(t->be, t->data, host, tensor_nbytes(t)) ? NULL : t;
}

aspo_status tensor_to_host(const tensor *t, void *host)
{
    const tensor *src = t;
    if (!tensor_is_contiguous(t)) {
        bool prev = autograd_set_enabled(false);
        src = tensor_contiguous(tensor_alias(t));
        autograd_set_enabled(prev);
        if (!src) return aspo_error_status();
    }
    aspo_status s = src->be->synchronize(src->be);
    if (s) return s;
    return src->be->download(src->be, host, src->data, tensor_nbytes(src));
}

aspo_status tensor_to_host_f32(const tensor *t, float *out)
{
    if (t->dt == DT_F32) return tensor_to_host(t, out);
    int64_t n = tensor_numel(t);
    /* Download in the tensor's dtype into the tail of `out`, then widen front to back. */
    size_t es = dtype_size(t->dt);
    char *tail = (char *)out + (size_t)n * (sizeof(float) - es);
    aspo_status s = tensor_to_host(t, tail);
    if (s) return s;
    for (int64_t i = 0; i < n; i++) {
        float v = dtype_load(tail + i * es, t->dt, 0);
        out[i] = v;
    }
    return ASPO_OK;
}

double tensor_item(const tensor *t)
{
    if (!t) return NAN;
    if (tensor_numel(t) != 1) {
        aspo_fail(ASPO_ERR_SHAPE, "item: tensor has %lld elements, not 1",
                  (long long)tensor_numel(t));
        return NAN;
    }
    float v;
    return tensor_to_host_f32(t, &v) ? NAN : v;
}
