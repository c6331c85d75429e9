/* Table-driven op tests. A case names its inputs (dtype, shape, layout, value range,
 * whether to check their gradient), how to run the op, and a plain double-precision
 * reference. The runner checks the forward against the reference, the backward against
 * central differences of the reference, guard bytes around every output, and every
 * non-CPU backend against the CPU backend by NMSE. */
#ifndef ASPO_OP_CASES_H
#define ASPO_OP_CASES_H

#include "tensor/tensor.h"
#include "tensor/tensor_ops.h"

enum { CASE_MAX_INPUTS = 6 };

typedef enum case_layout {
    LAYOUT_CONTIGUOUS,
    LAYOUT_TRANSPOSED, /* a view with the last two dims swapped in memory */
    LAYOUT_SLICED,     /* a view into a wider buffer: row stride > row length */
} case_layout;

typedef struct case_input {
    dtype dt;
    int ndim;
    int64_t shape[4];
    case_layout layout;
    bool grad;        /* check d(loss)/d(input) */
    double lo, hi;    /* uniform values; i32 inputs take integers in [lo, hi) */
} case_input;

typedef struct op_case op_case;

/* Shapes of the inputs as the reference sees them (row-major, contiguous). */
typedef struct ref_args {
    const op_case *c;
    const double *in[CASE_MAX_INPUTS];
    int64_t numel[CASE_MAX_INPUTS];
    int out_ndim;
    const int64_t *out_shape;
} ref_args;

struct op_case {
    const char *name;
    int n_inputs;
    case_input in[CASE_MAX_INPUTS];
    int64_t ip[4]; /* case parameters passed to run and reference */
    double fp[4];
    tensor *(*run)(tensor **in, const op_case *c);
    /* out has numel of the op's output; returns false when the case cannot be referenced. */
    void (*reference)(const ref_args *a, double *out);
    double forward_tol; /* NMSE bound against the reference; 0 = 1e-10 (f32 math) */
    double grad_tol;    /* NMSE bound against finite differences; 0 = 1e-6 */
};

/* Each family file exports a table ending with a case whose name is NULL. */
extern const op_case cases_elementwise[];
extern const op_case cases_view[];
extern const op_case cases_reduce[];
extern const op_case cases_matmul[];
extern const op_case cases_softmax[];
extern const op_case cases_norm[];
extern const op_case cases_embedding[];
extern const op_case cases_rope[];
extern const op_case cases_attention[];
extern const op_case cases_optim[];

/* Row-major index helpers for references. */
static inline int64_t ref_numel(int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) n *= shape[d];
    return n;
}



/* Flat index into an input of shape (ndim, shape) broadcast to the output's shape, for
 * the output element at flat index o. */
static inline int64_t ref_broadcast_index(int64_t o, int out_ndim, const int64_t *out_shape,
                                          int ndim, const int64_t *shape)
{
    int64_t idx = 0, stride = 1;
    for (int d = out_ndim - 1, k = ndim - 1; d >= 0; d--, k--) {
        int64_t i = o % out_shape[d];
        o /= out_shape[d];
        if (k < 0) continue;
        if (shape[k] != 1) idx += i * stride;
        stride *= shape[k];
    }
    return idx;
}

#define IN(a, i) ((a)->c->in[i])
#endif
