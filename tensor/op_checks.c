#include "op_checks.h"

#include <inttypes.h>
#include <stdio.h>

aspo_status op_check_ids(const tensor *ids, const int32_t *id, int64_t V)
{
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

aspo_status op_check_targets(const char *op, const int32_t *ids, int64_t N, int64_t V,
                             int64_t ignore_index)
{
    for (int64_t n = 0; n < N; n++)
        if (ids[n] != ignore_index && (ids[n] < 0 || ids[n] >= V))
            return aspo_fail(ASPO_ERR_USAGE,
                             "%s: target %d at row %lld of %lld is outside the vocabulary "
                             "[0, %lld) and is not the ignore index %lld",
                             op, (int)ids[n], (long long)n, (long long)N, (long long)V,
                             (long long)ignore_index);
    return ASPO_OK;
}

aspo_status op_check_kind(const op_call *c, const char *what, int count)
{
    if (c->p.i[0] >= 0 && c->p.i[0] < count) return ASPO_OK;
    return aspo_fail(ASPO_ERR_UNSUPPORTED, "%s kind %lld unknown on backend %s", what,
                     (long long)c->p.i[0], c->out[0]->be->name);
}
