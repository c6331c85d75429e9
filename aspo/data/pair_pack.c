/* Packed rows of a pair batch (pair_batch_pack): each pair's shared prefix once, its two
 * answers after it, pairs end to end. The padded view is left as it is; `at` says where
 * each of its cells is computed, which is all the log-probs need to come back. */
#include <stdlib.h>
#include <string.h>

#include "aspo/data/pair_batch.h"
#include "tensor/tensor_ops.h"

/* Real tokens of padded row r (right padding: the mask's ones come first). */
static int64_t row_length(const pair_batch *b, int r)
{
    const float *mask = b->mask + (size_t)r * (size_t)b->T;
    int64_t n = 0;
    while (n < b->T && mask[n] != 0.0f) n++;
    return n;
}

/* Positions both of pair i's rows hold alike from the start: the same id and the same
 * image feature row (image positions have pad_id as their id). */
static int64_t shared_prefix(const pair_batch *b, int i, int64_t lc, int64_t lr)
{
    size_t c = (size_t)i * (size_t)b->T, r = (size_t)(b->n_pairs + i) * (size_t)b->T;
    int64_t n = 0, most = lc < lr ? lc : lr;
    while (n < most && b->ids[c + n] == b->ids[r + n] &&
           (!b->feature_row || b->feature_row[c + n] == b->feature_row[r + n]))
        n++;
    return n;
}

/* Packed position w of row `row` computes padded cell `cell` as part of segment seg. */
static void put(pair_batch *b, int row, int64_t w, size_t cell, int32_t seg, int32_t base)
{
    int64_t W = b->packed.width;
    size_t at = (size_t)row * (size_t)W + (size_t)w, layout = (size_t)row * 2 * (size_t)W;
    b->packed.at[cell] = (int32_t)at;
    b->packed.ids[at] = b->ids[cell];
    b->packed.layout[layout + (size_t)w] = seg;
    b->packed.layout[layout + (size_t)W + (size_t)w] = base;
    b->packed.positions[at] = (int32_t)(cell % (size_t)b->T); /* the padded row's position */
    if (b->packed.feature_row) b->packed.feature_row[at] = b->feature_row[cell];
}

/* Pair i's unit at offset o of packed row `row`: the shared prefix (segment s), the chosen
 * rest (s+1), the rejected rest (s+2), both rests seeing the prefix. */
static void place_pair(pair_batch *b, int i, int row, int64_t o, int64_t lc, int64_t lr,
                       int64_t shared)
{
    size_t T = (size_t)b->T, c = (size_t)i * T, r = (size_t)(b->n_pairs + i) * T;
    int32_t s = 3 * i;
    for (int64_t t = 0; t < shared; t++) {
        put(b, row, o + t, c + (size_t)t, s, s);
        b->packed.at[r + (size_t)t] = b->packed.at[c + (size_t)t]; /* one place for both */
    }
    for (int64_t t = shared; t < lc; t++) put(b, row, o + t, c + (size_t)t, s + 1, s);
    for (int64_t t = shared; t < lr; t++)
        put(b, row, o + lc + (t - shared), r + (size_t)t, s + 2, s);
}

aspo_status pair_batch_pack(pair_batch *b, int32_t pad_id, int64_t max_tokens)
{
    int P = b->n_pairs;
    /* Per pair: both rows' lengths, the shared prefix, the unit (positions the pair takes),
     * its row and offset there; per row: its length so far. */
    int64_t *len = malloc(sizeof(int64_t) * (size_t)(6 * P + 1)), *shared = len + 2 * P;
    int64_t *unit = len + 3 * P, *at = len + 4 * P, *used = len + 5 * P;
    int *row_of = malloc(sizeof(int) * (size_t)(P ? P : 1));
    if (!len || !row_of) {
        free(len);
        free(row_of);
        return aspo_fail(ASPO_ERR_OOM, "no host memory to pack %d pairs", P);
    }
    int64_t budget = max_tokens, computed = 0, width = 0;
    for (int i = 0; i < P; i++) {
        len[i] = row_length(b, i);
        len[P + i] = row_length(b, P + i);
        shared[i] = shared_prefix(b, i, len[i], len[P + i]);
        unit[i] = len[i] + len[P + i] - shared[i];
        computed += unit[i];
        if (max_tokens == 0 && unit[i] > budget) budget = unit[i]; /* 0: the largest pair's */
    }
    /* Rows: each pair into the first row it fits in (first fit), a new row when none; so
     * rows are no longer than the budget, or than one pair past it. */
    int rows = 0;
    for (int i = 0; i < P; i++) {
        int r = 0;
        while (r < rows && used[r] + unit[i] > budget) r++;
        if (r == rows) used[rows++] = 0;
        row_of[i] = r;
        at[i] = used[r];
        used[r] += unit[i];
        if (used[r] > width) width = used[r];
    }
    size_t cells = (size_t)rows * (size_t)width, padded = 2 * (size_t)P * (size_t)b->T;
    if (cells > INT32_MAX) { /* `at` holds positions as int32 */
        free(len);
        free(row_of);
        return aspo_fail(ASPO_ERR_USAGE, "cannot pack %d pairs into %d rows of %lld positions: "
                         "over 2^31 positions; lower --batch-size", P, rows, (long long)width);
    }
    b->packed.rows = rows;
    b->packed.width = width;
    b->packed.computed = computed;
    b->packed.ids = malloc(sizeof(int32_t) * (cells ? cells : 1));
    b->packed.layout = malloc(sizeof(int32_t) * 2 * (cells ? cells : 1));
    b->packed.positions = malloc(sizeof(int32_t) * (cells ? cells : 1));
    b->packed.at = malloc(sizeof(int32_t) * (padded ? padded : 1));
    if (b->feature_row) b->packed.feature_row = malloc(sizeof(int32_t) * (cells ? cells : 1));
    if (!b->packed.ids || !b->packed.layout || !b->packed.positions || !b->packed.at ||
        (b->feature_row && !b->packed.feature_row)) {
        free(len);
        free(row_of);
        pair_batch_unpack(b);
        return aspo_fail(ASPO_ERR_OOM, "no host memory to pack %d pairs into %d rows of %lld "
                         "positions", P, rows, (long long)width);
    }
    /* Padding everywhere first: a row's end, and padded cells of the padded view. */
    for (size_t k = 0; k < cells; k++) {
        b->packed.ids[k] = pad_id;
        b->packed.positions[k] = 0;
        if (b->packed.feature_row) b->packed.feature_row[k] = -1;
    }
    for (size_t k = 0; k < 2 * cells; k++) b->packed.layout[k] = -1;
    for (size_t k = 0; k < padded; k++) b->packed.at[k] = -1;
    for (int i = 0; i < P; i++) place_pair(b, i, row_of[i], at[i], len[i], len[P + i], shared[i]);
    free(len);
    free(row_of);
    return ASPO_OK;
}

aspo_status pair_batch_make(const tokenized_pair *const *pairs, int n, int32_t pad_id,
                            const pair_batch_images *images, bool pad_rows, int64_t max_tokens,
                            pair_batch *b)
{
    aspo_status s = pair_batch_build(pairs, n, pad_id, images, b);
    if (!s && !pad_rows) s = pair_batch_pack(b, pad_id, max_tokens);
    if (s) pair_batch_free(b);
    return s;
}

int64_t pair_batch_computed(const pair_batch *b)
{
    return b->packed.rows ? b->packed.computed : 2 * (int64_t)b->n_pairs * b->T;
}

void pair_batch_unpack(pair_batch *b)
{
    free(b->packed.ids);
    free(b->packed.layout);
    free(b->packed.positions);
    free(b->packed.feature_row);
    free(b->packed.at);
    memset(&b->packed, 0, sizeof b->packed);
}

pair_batch_input pair_batch_model_input(const pair_batch *b)
{
    if (!b->packed.rows) {
        int64_t rows = 2 * (int64_t)b->n_pairs;
        return (pair_batch_input){
            .ids = tensor_from_host(DT_I32, DIMS(rows, b->T), b->ids),
            .mask = tensor_from_host(DT_F32, DIMS(rows, b->T), b->mask),
            .feature_row = b->feature_row};
    }
    int64_t R = b->packed.rows, W = b->packed.width;
    return (pair_batch_input){
        .ids = tensor_from_host(DT_I32, DIMS(R, W), b->packed.ids),
        .mask = tensor_from_host(DT_I32, DIMS(R, 2, W), b->packed.layout), /* (R,2,W) */
        .positions = b->packed.positions,
        .feature_row = b->packed.feature_row};
}
