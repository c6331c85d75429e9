/* A tensor is a view: dtype, shape and strides (in elements) over memory of one backend.
 * Tensors made during a step live in the step arena (see runtime.h); parameters live in a
 * param_store (params.h). Shapes are written beside code as (B,T,C). */
#ifndef ASPO_TENSOR_H
#define ASPO_TENSOR_H

#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "dtype.h"
#include "error.h"

#ifdef __cplusplus
extern "C" { /* the CUDA/HIP kernels include this header too */
#endif

enum { TENSOR_MAX_DIMS = 4 };

struct tape_node;

typedef struct tensor {
    dtype dt;
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    int64_t stride[TENSOR_MAX_DIMS]; /* elements; 0 for a broadcast (expanded) dim */
    char *data;                      /* backend address of element [0,0,0,0] */
    backend *be;
    bool requires_grad;
    bool is_param;         /* grad is a persistent buffer, accumulated in place */
    struct tensor *grad;   /* f32, contiguous, same shape; NULL until backward reaches it */
    struct tape_node *node; /* the op that made it; NULL for leaves */
    const char *name;
    /* Backward bookkeeping (autograd.c): a gradient buffer a checkpointed block made for its
     * input, and how many tensors' grad it is; one such buffer is passed down a stack of
     * blocks instead of a new one per block. */
    bool is_grad_buffer;
    int grad_aliases;
    /* A sum of gradient contributions grad_accumulate made for one tensor: while no other
     * tensor's grad is it (grad_aliases 0), later contributions go into it in place. */
    bool is_grad_sum;
} tensor;

int64_t tensor_numel(const tensor *t);
size_t tensor_nbytes(const tensor *t); /* of a contiguous tensor of this shape */
bool tensor_is_contiguous(const tensor *t);
bool tensor_same_shape(const tensor *a, const tensor *b);
/* Normalises a negative dim (-1 = last); -1 when out of range. */
int tensor_dim(const tensor *t, int dim);
/* "(2,3,4) f32" into buf, for messages. */
const char *tensor_describe(const tensor *t, char *buf, size_t size);
/* t as 4-D for kernels: sizes ne (leading dims padded with 1) and element strides st; with
 * `like`, t broadcast to like's shape (stride 0 where t has size 1 or lacks the dim). Every
 * backend's kernel view (cpu_view, vk_view, cu_view) is made from this. */
void tensor_view4(const tensor *t, const tensor *like, int64_t ne[4], int64_t st[4]);
/* Fills contiguous strides for t's shape. */
void tensor_set_contiguous_strides(tensor *t);

/* A new contiguous tensor in the step arena of the current runtime (uninitialised).
 * NULL with an error set on out-of-memory or a bad shape. */
tensor *tensor_empty(dtype dt, int ndim, const int64_t *shape);
tensor *tensor_zeros(dtype dt, int ndim, const int64_t *shape);
tensor *tensor_empty_like(const tensor *t, dtype dt);
/* A tensor header that shares t's memory (no autograd link); for views and kernels. */
tensor *tensor_alias(const tensor *t);

/* Host <-> backend. from_host copies `host` (contiguous, dtype dt) into a new tensor;
 * to_host writes t's elements in row-major order into host (t may be strided). */
tensor *tensor_from_host(dtype dt, int ndim, const int64_t *shape, const void *host);
aspo_status tensor_to_host(const tensor *t, void *host);
/* Element values as f32 on the host: t's elements converted, for tests and metrics.
 * `out` must hold tensor_numel(t) floats. */
aspo_status tensor_to_host_f32(const tensor *t, float *out);
/* Reads a scalar (numel 1) as double; NAN with an error on failure. */
double tensor_item(const tensor *t);

/* DIMS(2,3,4) expands to the (ndim, shape) argument pair: tensor_empty(DT_F32, DIMS(2,3,4)). */
#define DIMS(...)                                                                          \
    (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (const int64_t[]){__VA_ARGS__}

#ifdef __cplusplus
}
#endif

#endif
