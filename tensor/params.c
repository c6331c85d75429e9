#include "params.h"

#include <stdlib.h>
#include <string.h>

#include "autograd.h"

void param_store_init(param_store *ps, backend *be)
{
    memset(ps, 0, sizeof *ps);
    ps->be = be;
}

tensor *param_declare(param_store *ps, const char *name, dtype dt, int ndim,
                      const int64_t *shape, bool trainable)
{
    if (ps->block) {
        aspo_fail(ASPO_ERR_USAGE, "parameter %s declared after the store was allocated", name);
        return NULL;
    }
    if (ndim > TENSOR_MAX_DIMS) {
        aspo_fail(ASPO_ERR_SHAPE, "parameter %s has %d dims, at most %d", name, ndim,
                  TENSOR_MAX_DIMS);
        return NULL;
    }
    if (ps->n == ps->cap) {
        int cap = ps->cap ? ps->cap * 2 : 64;
        tensor **items = realloc(ps->items, sizeof *items * cap);
        if (!items) goto oom;
        ps->items = items;
        ps->cap = cap;
    }
    tensor *t = calloc(1, sizeof *t);
    char *copy = strdup(name);
    if (!t || !copy) {
        free(t);
        free(copy);
        goto oom;
    }
    t->dt = dt;
    t->ndim = ndim;
    memcpy(t->shape, shape, sizeof(int64_t) * ndim);
    tensor_set_contiguous_strides(t);
    t->be = ps->be;
    t->name = copy;
    t->requires_grad = trainable;
    t->is_param = true;
    ps->items[ps->n++] = t;
    return t;
oom:
    aspo_fail(ASPO_ERR_OOM, "no host memory to declare parameter %s", name);
    return NULL;
}

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

aspo_status param_store_allocate(param_store *ps)
{
    size_t bytes = 0, grad_bytes = 0;
    for (int i = 0; i < ps->n; i++) {
        bytes += align64(tensor_nbytes(ps->items[i]));
        if (ps->items[i]->requires_grad)
            grad_bytes += align64((size_t)tensor_numel(ps->items[i]) * sizeof(float));
    }
    ps->grads = calloc(ps->n > 0 ? (size_t)ps->n : 1, sizeof *ps->grads);
    ps->block = ps->be->alloc(ps->be, bytes ? bytes : 64);
    ps->grad_block = grad_bytes ? ps->be->alloc(ps->be, grad_bytes) : NULL;
    if (!ps->grads || !ps->block || (grad_bytes && !ps->grad_block))
        return aspo_fail(ASPO_ERR_OOM,
                         "backend %s: could not allocate %zu bytes of parameters and %zu of "
                         "gradients",
                         ps->be->name, bytes, grad_bytes);
    ps->bytes = bytes;
    ps->grad_bytes = grad_bytes;
    size_t at = 0, grad_at = 0;
    for (int i = 0; i < ps->n; i++) {
        tensor *t = ps->items[i];
        t->data = ps->block + at;
        at += align64(tensor_nbytes(t));
        if (t->requires_grad) {
            tensor *g = calloc(1, sizeof *g);
            if (!g) return aspo_fail(ASPO_ERR_OOM, "no host memory for gradient headers");
            *g = *t;
            g->dt = DT_F32;
            g->requires_grad = g->is_param = false;
            g->name = NULL;
            g->data = ps->grad_block + grad_at;
            grad_at += align64((size_t)tensor_numel(t) * sizeof(float));
            ps->grads[i] = g;
            t->grad = g;
        }
    }
    /* Zero-fill through the backend so device memory starts defined. */
    char *zeros = calloc(1, 1 << 20);
    if (!zeros) return aspo_fail(ASPO_ERR_OOM, "no host memory to clear parameters");
    aspo_status s = ASPO_OK;
    for (size_t off = 0; off < bytes && !s; off += 1 << 20)
        s = ps->be->upload(ps->be, ps->block + off, zeros,
                           bytes - off < (1 << 20) ? bytes - off : (1 << 20));
    free(zeros);
    return s ? s : param_store_zero_grad(ps);
}

tensor *param_find(const param_store *ps, const char *name)
{
    for (int i = 0; i < ps->n; i++)
        if (strcmp(ps->items[i]->name, name) == 0) return ps->items[i];
    return NULL;
}

aspo_status param_store_zero_grad(param_store *ps)
{
    for (int i = 0; i < ps->n; i++) {
        if (!ps->grads || !ps->grads[i]) continue;
        op_call fill = {.op = OP_FILL, .n_out = 1, .out = {ps->grads[i]}};
        aspo_status s = ps->be->kernels[OP_FILL](&fill);
        if (s) return s;
    }
    return ASPO_OK;
}

aspo_status param_store_scale_grads(param_store *ps, float factor)
{
    for (int i = 0; i < ps->n; i++) {
        if (!ps->grads || !ps->grads[i]) continue;
        op_call scale = {.op = OP_SCALE, .n_in = 1, .n_out = 1, .in = {ps->grads[i]},
                         .out = {ps->grads[i]}, .p.f = {factor}};
        aspo_status s = op_run_kernel(&scale);
        if (s) return s;
    }
    return ASPO_OK;
}

int64_t param_store_count(const param_store *ps, bool trainable_only)
{
    int64_t n = 0;
    for (int i = 0; i < ps->n; i++)
        if (!trainable_only || ps->items[i]->requires_grad) n += tensor_numel(ps->items[i]);
    return n;
}

void param_store_free(param_store *ps)
{
    for (int i = 0; i < ps->n; i++) {
        free((char *)ps->items[i]->name);
        free(ps->items[i]);
        if (ps->grads) free(ps->grads[i]);
    }
    free(ps->items);
    free(ps->grads);
    if (ps->block) ps->be->free(ps->be, ps->block);
    if (ps->grad_block) ps->be->free(ps->be, ps->grad_block);
    memset(ps, 0, sizeof *ps);
}
