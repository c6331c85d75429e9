/* Embedding gather and its scatter-add backward. Inputs are contiguous (op table flag).
 * Backward gives each thread whole columns and walks tokens in order, so repeated ids add
 * up in the same order whatever the thread count. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cpu_internal.h"

/* Ids outside [0,V) are the user's mistake: name the first one by position and value. */
static aspo_status check_ids(const tensor *ids, int64_t V)
{
    const int32_t *id = (const int32_t *)ids->data;
    int64_t N = tensor_numel(ids);
    for (int64_t n = 0; n < N; n++) {
        if (id[n] >= 0 && id[n] < V) continue;
        char pos[96] = "";
        int len = 0;
        for (int d = 0; d < ids->ndim; d++) {
            int64_t inner = 1;
            for (int e = d + 1; e < ids->ndim; e++) inner *= ids->shape[e];
            len += snprintf(pos + len, sizeof pos - (size_t)len, d ? ",%" PRId64 : "%" PRId64,
                            n / inner % ids->shape[d]);
        }
        return aspo_fail(ASPO_ERR_USAGE,
                         "embedding: ids[%s] = %" PRId32 " is outside the table's rows [0, %" PRId64
                         "); check the tokenizer's vocabulary against the model's",
                         pos, id[n], V);
    }
    return ASPO_OK;
}

CPU_KERNEL(cpu_embedding)
{
    const tensor *table = c->in[0], *ids = c->in[1];
    int64_t V = table->shape[0], C = table->shape[1], N = tensor_numel(ids);
    aspo_status s = check_ids(ids, V);
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
    aspo_status s = check_ids(ids, V);
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
