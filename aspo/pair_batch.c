#include "aspo/pair_batch.h"

#include <stdlib.h>
#include <string.h>

#include "tensor/runtime.h"
#include "tensor/tensor_ops.h"

static const pair_sequence *row_sequence(const tokenized_pair *const *pairs, int n, int r)
{
    return r < n ? &pairs[r]->chosen : &pairs[r - n]->rejected;
}

aspo_status pair_batch_build(const tokenized_pair *const *pairs, int n, int32_t pad_id,
                             pair_batch *b)
{
    memset(b, 0, sizeof *b);
    b->n_pairs = n;
    int rows = 2 * n;
    for (int r = 0; r < rows; r++) {
        const pair_sequence *s = row_sequence(pairs, n, r);
        if (s->n > b->T) b->T = s->n;
        if (s->n_prompt < 1)
            return aspo_fail(ASPO_ERR_USAGE,
                             "a %s sequence has no prompt token before its response, so its "
                             "first token cannot be scored; keep BOS (add_bos) or raise "
                             "max_length", r < n ? "chosen" : "rejected");
    }
    size_t cells = (size_t)rows * (size_t)b->T;
    b->ids = malloc(cells * sizeof *b->ids);
    b->mask = calloc(cells, sizeof *b->mask);
    b->targets = malloc(cells * sizeof *b->targets);
    b->first = malloc((size_t)rows * sizeof *b->first);
    b->count = malloc((size_t)rows * sizeof *b->count);
    if (!b->ids || !b->mask || !b->targets || !b->first || !b->count) {
        pair_batch_free(b);
        return aspo_fail(ASPO_ERR_OOM, "no host memory for a batch of %d x %lld tokens", rows,
                         (long long)b->T);
    }
    for (int r = 0; r < rows; r++) {
        const pair_sequence *s = row_sequence(pairs, n, r);
        int32_t *ids = b->ids + (size_t)r * b->T, *tg = b->targets + (size_t)r * b->T;
        float *mask = b->mask + (size_t)r * b->T;
        for (int64_t t = 0; t < b->T; t++) {
            ids[t] = t < s->n ? s->ids[t] : pad_id;
            mask[t] = t < s->n ? 1.0f : 0.0f;
            bool scores_response = t + 1 < s->n && t + 1 >= s->n_prompt;
            tg[t] = scores_response ? s->ids[t + 1] : IGNORE_TARGET;
        }
        b->first[r] = s->n_prompt - 1;
        b->count[r] = s->n - s->n_prompt;
    }
    return ASPO_OK;
}

void pair_batch_free(pair_batch *b)
{
    free(b->ids);
    free(b->mask);
    free(b->targets);
    free(b->first);
    free(b->count);
    memset(b, 0, sizeof *b);
}

int64_t pair_batch_tokens(const pair_batch *b)
{
    int64_t n = 0, cells = 2 * (int64_t)b->n_pairs * b->T;
    for (int64_t i = 0; i < cells; i++) n += b->mask[i] != 0.0f;
    return n;
}

tensor *pair_batch_logprobs(llama_model *m, const pair_batch *b, tensor **logit_sums)
{
    int64_t rows = 2 * (int64_t)b->n_pairs;
    tensor *ids = tensor_from_host(DT_I32, DIMS(rows, b->T), b->ids);
    tensor *mask = tensor_from_host(DT_F32, DIMS(rows, b->T), b->mask);
    tensor *targets = tensor_from_host(DT_I32, DIMS(rows, b->T), b->targets);
    tensor *logits = llama_forward(m, ids, mask, NULL); /* (2P,T,V) */
    if (logit_sums) {
        bool prev = autograd_set_enabled(false);
        *logit_sums = tensor_sum(logits, -1, false); /* (2P,T) */
        autograd_set_enabled(prev);
        if (!*logit_sums) return NULL;
    }
    return tensor_gather_logprobs(logits, targets, IGNORE_TARGET); /* (2P,T) */
}
