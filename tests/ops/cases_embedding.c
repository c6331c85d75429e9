/* Embedding: f32 table with gradient (repeated ids exercise the scatter-add), a sliced
 * f32 table, a frozen bf16 table, and an out-of-range id as a usage error. */
#include <stdio.h>
#include <string.h>

#include "op_cases.h"

/* table (V,C), ids (...) -> (...,C) */
static void ref_embedding(const ref_args *a, double *out)
{
    int64_t C = IN(a, 0).shape[1];
    for (int64_t n = 0; n < a->numel[1]; n++)
        for (int64_t j = 0; j < C; j++) out[n * C + j] = a->in[0][(int64_t)a->in[1][n] * C + j];
}

/* Before the real lookup, an id equal to V must be refused as a usage error that names
 * its position and value: by the op itself (CPU, Vulkan) or by the next synchronization
 * (the CUDA kernels check on the device: ids[2] row-major); returns NULL (failing the
 * case) when it is not. */
static tensor *run_embedding(tensor **in, const op_case *c)
{
    if (c->ip[0]) {
        int32_t bad[4] = {0, 1, (int32_t)in[0]->shape[0], 2};
        char value[32];
        snprintf(value, sizeof value, "= %d is outside", bad[2]);
        tensor *ids = tensor_from_host(DT_I32, DIMS(2, 2), bad);
        tensor *y = tensor_embedding(in[0], ids);
        float row[4 * 64];
        bool refused = (!y || (tensor_numel(y) <= 4 * 64 && tensor_to_host_f32(y, row))) &&
                       aspo_error_status() == ASPO_ERR_USAGE &&
                       (strstr(aspo_error_message(), "ids[1,0]") ||
                        strstr(aspo_error_message(), "ids[2] (row-major)")) &&
                       strstr(aspo_error_message(), value);
        if (!refused) {
            aspo_fail_replace(ASPO_ERR_USAGE, "embedding accepted id %d (message: %s)", bad[2],
                              aspo_error_message());
            return NULL;
        }
        aspo_error_clear();
    }
    return tensor_embedding(in[0], in[1]);
}

#define EMB(name, check_error, tol, ...)                                                  \
    {name, 2, {__VA_ARGS__}, {check_error}, {0}, run_embedding, ref_embedding, tol, 0}

const op_case cases_embedding[] = {
    /* 15 ids over 7 rows: most rows are hit more than once. */
    EMB("embedding_f32", 1, 0, {DT_F32, 2, {7, 6}, LAYOUT_CONTIGUOUS, true, -1, 1},
        {DT_I32, 2, {3, 5}, LAYOUT_CONTIGUOUS, false, 0, 7}),
    EMB("embedding_sliced_table", 0, 0, {DT_F32, 2, {9, 21}, LAYOUT_SLICED, true, -1, 1},
        {DT_I32, 3, {2, 2, 3}, LAYOUT_CONTIGUOUS, false, 0, 9}),
    /* bf16 values are exact in f32, so the gather is exact: the default bound holds. */
    EMB("embedding_bf16", 0, 0, {DT_BF16, 2, {13, 8}, LAYOUT_CONTIGUOUS, false, -1, 1},
        {DT_I32, 1, {11}, LAYOUT_CONTIGUOUS, false, 0, 13}),
    {0},
};
