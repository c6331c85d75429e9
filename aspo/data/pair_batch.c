#include "aspo/data/pair_batch.h"

#include <stdlib.h>
#include <string.h>

#include "tensor/runtime.h"
#include "tensor/tensor_ops.h"

/* Image placeholders in a sequence's prompt. */
static int64_t count_placeholders(const pair_sequence *s, const pair_batch_images *img)
{
    int64_t c = 0;
    for (int64_t t = 0; t < s->n_prompt; t++) c += s->ids[t] == img->token;
    return c;
}

static const pair_sequence *row_sequence(const tokenized_pair *const *pairs, int n, int r)
{
    return r < n ? &pairs[r]->chosen : &pairs[r - n]->rejected;
}

/* Length of row r's sequence once its image placeholder is expanded. */
static int64_t expanded_length(const pair_sequence *s, const pair_batch_images *img)
{
    if (!img) return s->n;
    int64_t n = s->n;
    for (int64_t t = 0; t < s->n_prompt; t++) n += s->ids[t] == img->token ? img->positions - 1 : 0;
    return n;
}

aspo_status pair_batch_build(const tokenized_pair *const *pairs, int n, int32_t pad_id,
                             const pair_batch_images *img, pair_batch *b)
{
    memset(b, 0, sizeof *b);
    b->n_pairs = n;
    int rows = 2 * n;
    for (int r = 0; r < rows; r++) {
        const pair_sequence *s = row_sequence(pairs, n, r);
        int64_t len = expanded_length(s, img);
        if (len > b->T) b->T = len;
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
    if (img) {
        b->feature_row = malloc(cells * sizeof *b->feature_row);
        b->image_slot = malloc((size_t)(n ? n : 1) * sizeof *b->image_slot);
    }
    if (!b->ids || !b->mask || !b->targets || !b->first || !b->count ||
        (img && (!b->feature_row || !b->image_slot))) {
        pair_batch_free(b);
        return aspo_fail(ASPO_ERR_OOM, "no host memory for a batch of %d x %lld tokens", rows,
                         (long long)b->T);
    }
    for (int i = 0; img && i < n; i++) {
        const pair_sequence *s = &pairs[i]->chosen;
        b->image_slot[i] = count_placeholders(s, img) ? b->n_images++ : -1;
    }
    for (int r = 0; r < rows; r++) {
        const pair_sequence *s = row_sequence(pairs, n, r);
        int32_t *ids = b->ids + (size_t)r * b->T, *tg = b->targets + (size_t)r * b->T;
        int32_t *fr = img ? b->feature_row + (size_t)r * b->T : NULL;
        float *mask = b->mask + (size_t)r * b->T;
        int slot = img ? b->image_slot[r % n] : -1;
        int64_t shift = 0; /* positions added by the expansion so far */
        for (int64_t t = 0; t < s->n; t++) {
            bool image = img && t < s->n_prompt && s->ids[t] == img->token;
            int64_t at = t + shift, copies = image ? img->positions : 1;
            for (int64_t j = 0; j < copies; j++) {
                ids[at + j] = image ? pad_id : s->ids[t];
                mask[at + j] = 1.0f;
                if (fr) fr[at + j] = image ? (int32_t)(slot * img->positions + j) : -1;
            }
            shift += copies - 1;
        }
        int64_t len = s->n + shift, first = s->n_prompt + shift - 1;
        for (int64_t t = len; t < b->T; t++) {
            ids[t] = pad_id;
            if (fr) fr[t] = -1;
        }
        /* Position t predicts t+1: response targets only (prompt and images never). */
        for (int64_t t = 0; t < b->T; t++)
            tg[t] = t >= first && t + 1 < len ? ids[t + 1] : IGNORE_TARGET;
        b->first[r] = first;
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
    free(b->feature_row);
    free(b->image_slot);
    pair_batch_unpack(b);
    memset(b, 0, sizeof *b);
}

int64_t pair_batch_tokens(const pair_batch *b)
{
    int64_t n = 0, cells = 2 * (int64_t)b->n_pairs * b->T;
    for (int64_t i = 0; i < cells; i++) n += b->mask[i] != 0.0f;
    return n;
}

tensor *pair_batch_scored_hidden(const pair_batch *b, tensor *hidden)
{
    if (!hidden) return NULL;
    int64_t cells = 2 * (int64_t)b->n_pairs * b->T, C = hidden->shape[hidden->ndim - 1], N = 0;
    int32_t *rows = arena_alloc(&runtime_current()->host, sizeof(int32_t) * (size_t)cells);
    if (!rows) return NULL;
    /* Packed: where the cell is computed (a shared prefix's last position scores both
     * answers' first tokens). */
    for (int64_t i = 0; i < cells; i++)
        if (b->targets[i] != IGNORE_TARGET) rows[N++] = b->packed.rows ? b->packed.at[i] : (int32_t)i;
    /* A gather: its backward adds each row's gradient back at its position, zero elsewhere
     * (summed where two cells read one position). */
    return tensor_embedding(tensor_reshape(hidden, DIMS(-1, C)),
                            tensor_from_host(DT_I32, DIMS(N), rows)); /* (N,C) */
}

/* values (N) of the scored positions, in order, spread to (2P,T) with 0 elsewhere: a gather
 * from [values; 0] by from (2P*T) i32 (a scored position's index among them, else N), so
 * that the gradient of each cell reaches its value. */
static tensor *spread(const pair_batch *b, tensor *values, tensor *from)
{
    if (!values) return NULL;
    int64_t N = values->shape[0];
    float zero = 0.0f;
    tensor *table = tensor_concat((tensor *[]){tensor_reshape(values, DIMS(N, 1)),
                                               tensor_from_host(DT_F32, DIMS(1, 1), &zero)},
                                  2, 0);                                          /* (N+1,1) */
    tensor *out = tensor_embedding(table, from);
    return out ? tensor_reshape(out, DIMS(2 * (int64_t)b->n_pairs, b->T)) : NULL; /* (2P,T) */
}

tensor *pair_batch_logprobs(const pair_batch *b, tensor *logits, tensor **logit_sums)
{
    if (!logits) return NULL;
    int64_t cells = 2 * (int64_t)b->n_pairs * b->T, N = 0;
    arena *host = &runtime_current()->host;
    int32_t *targets = arena_alloc(host, sizeof(int32_t) * (size_t)cells);
    int32_t *from = arena_alloc(host, sizeof(int32_t) * (size_t)cells);
    if (!targets || !from) return NULL;
    for (int64_t i = 0; i < cells; i++)
        if (b->targets[i] != IGNORE_TARGET) targets[N++] = b->targets[i];
    for (int64_t i = 0, k = 0; i < cells; i++)
        from[i] = (int32_t)(b->targets[i] != IGNORE_TARGET ? k++ : N);
    if (logits->ndim != 2 || logits->shape[0] != N) {
        char buf[96];
        aspo_fail(ASPO_ERR_SHAPE, "pair batch: logits %s, want (%lld,V): the scored positions'",
                  tensor_describe(logits, buf, sizeof buf), (long long)N);
        return NULL;
    }
    tensor *spread_from = tensor_from_host(DT_I32, DIMS(cells), from);
    if (logit_sums) {
        bool prev = autograd_set_enabled(false);
        *logit_sums = spread(b, tensor_sum(logits, -1, false), spread_from); /* (2P,T) */
        autograd_set_enabled(prev);
        if (!*logit_sums) return NULL;
    }
    tensor *lp = tensor_gather_logprobs(logits, tensor_from_host(DT_I32, DIMS(N), targets),
                                        IGNORE_TARGET);                          /* (N) */
    return lp ? spread(b, lp, spread_from) : NULL;                               /* (2P,T) */
}
