/* Embedding gather and its scatter-add backward. Inputs are contiguous (op table flag).
 * Backward gives each thread whole columns and walks tokens in order, so repeated ids add
 * up in the same order whatever the thread count. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "../../tensor/op_checks.h"
#include "cpu_internal.h"

CPU_KERNEL(cpu_embedding)
{
    const tensor *table = c->in[0], *ids = c->in[1];
    int64_t V = table->shape[0], C = table->shape[1], N = tensor_numel(ids);
    aspo_status s = op_check_ids(ids, (const int32_t *)ids->data, V);
    if (s) return s;
    const int32_t *id = (const int32_t *)ids->data;
    float *out = (float *)c->out[0]->data; /* (N,C) */
#pragma omp parallel for schedule(static) if (N * C > 65536)
    for (int64_t n = 0; n < N; n++) {
        int64_t row = (int64_t)id[n] * C;
        for (int64_t j = 0; j < C; j++) out[n * C + j] = dtype_load(table->data, table->dt, row + j);
    }
    return ASPO_OK;
}

CPU_KERNEL(cpu_embedding_backward)
{
    const tensor *ids = c->in[0], *dy = c->in[1];
    tensor *dtable = c->out[0];
    int64_t V = dtable->shape[0], C = dtable->shape[1], N = tensor_numel(ids);
    aspo_status s = op_check_ids(ids, (const int32_t *)ids->data, V);
    if (s) return s;
    const int32_t *id = (const int32_t *)ids->data;
    const float *g = (const float *)dy->data; /* (N,C) */
    float *dt = (float *)dtable->data;        /* (V,C) */
    memset(dt, 0, sizeof(float) * (size_t)(V * C));
    /* Blocks of columns keep a token's slice of dy in one cache line or two. */
    enum { COLS = 16 };
    int64_t n_blocks = (C + COLS - 1) / COLS;
#pragma omp parallel for schedule(static) if (N * C > 65536)
    for (int64_t blk = 0; blk < n_blocks; blk++) {
        int64_t j0 = blk * COLS, j1 = j0 + COLS < C ? j0 + COLS : C;
        for (int64_t n = 0; n < N; n++) {
            float *row = dt + (int64_t)id[n] * C;
            for (int64_t j = j0; j < j1; j++) row[j] += g[n * C + j];
        }
    }
    return ASPO_OK;
}
