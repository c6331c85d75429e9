/* Parameters of a model: declared first (name, dtype, shape), then placed in one
 * allocation per model and device; trainable ones get f32 gradients in a second single
 * allocation, accumulated in place across micro-batches until param_store_zero_grad. */
#ifndef ASPO_PARAMS_H
#define ASPO_PARAMS_H

#include "tensor.h"

typedef struct param_store {
    backend *be;
    char *block, *grad_block; /* backend memory; NULL until allocated */
    size_t bytes, grad_bytes;
    int n, cap;
    tensor **items; /* persistent headers, in declaration order */
    tensor **grads; /* grads[i] for trainable items, else NULL */
} param_store;

void param_store_init(param_store *ps, backend *be);
/* Declares a parameter; its data pointer is set by param_store_allocate. */
tensor *param_declare(param_store *ps, const char *name, dtype dt, int ndim,
                      const int64_t *shape, bool trainable);
/* Places every declared parameter (zero-filled) and the gradients of trainable ones. */
aspo_status param_store_allocate(param_store *ps);
tensor *param_find(const param_store *ps, const char *name);
aspo_status param_store_zero_grad(param_store *ps);
/* Multiplies every gradient by factor in place (clipping, unscaling a loss scale). */
aspo_status param_store_scale_grads(param_store *ps, float factor);
int64_t param_store_count(const param_store *ps, bool trainable_only);
void param_store_free(param_store *ps);

#endif
