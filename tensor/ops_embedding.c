/* Embedding lookup: rows of a table gathered by token ids, and its backward (a
 * scatter-add of the output gradient into a fresh table-shaped gradient). */
#include "op_backward.h"
#include "tensor_ops.h"

/* The output is f32 whatever the table's dtype: activations are f32 (a bf16/f16 table is
 * frozen storage, widened row by row), and backward always yields an f32 dtable. */
tensor *tensor_embedding(tensor *table, tensor *ids)
{
    if (!table || !ids) return NULL;
    char a[96], b[96];
    if (table->ndim != 2 || !dtype_is_float(table->dt)) {
        aspo_fail(ASPO_ERR_SHAPE, "embedding: table %s must be (V,C) with a float dtype",
                  tensor_describe(table, a, sizeof a));
        return NULL;
    }
    if (ids->dt != DT_I32 || ids->ndim > TENSOR_MAX_DIMS - 1) {
        aspo_fail(ASPO_ERR_SHAPE, "embedding: ids %s must be i32 with at most %d dims",
                  tensor_describe(ids, b, sizeof b), TENSOR_MAX_DIMS - 1);
        return NULL;
    }
    int64_t shape[TENSOR_MAX_DIMS];
    for (int d = 0; d < ids->ndim; d++) shape[d] = ids->shape[d];
    shape[ids->ndim] = table->shape[1];
    tensor *out = tensor_empty(DT_F32, ids->ndim + 1, shape); /* (...,C) */
    tensor *in[2] = {table, ids};
    return op_exec(OP_EMBEDDING, in, 2, NULL, &out, 1);
}

aspo_status backward_embedding(const tape_node *n, tensor *dy)
{
    tensor *table = n->in[0], *ids = n->in[1];
    if (!table->requires_grad) return ASPO_OK;
    /* The kernel zeroes dtable then adds each token's row of dy into its id's row. */
    tensor *dtable = tensor_empty(DT_F32, table->ndim, table->shape); /* (V,C) */
    tensor *in[2] = {ids, dy};
    return grad_accumulate(table, op_exec(OP_EMBEDDING_BACKWARD, in, 2, NULL, &dtable, 1));
}
