/* Text embeddings and image features merged into one input sequence. */
#include "models/image_merge.h"

#include "tensor/runtime.h"
#include "tensor/tensor_ops.h"

/* Checks ids, features and feature_row; fills gather (B,T): b*T+t for a text position,
 * B*T + row for an image one, and text_ids (ids with image positions set to 0). */
static aspo_status merge_indices(const llama_model *lm, const char *who, int32_t image_token,
                                 tensor *ids, int64_t M, const int32_t *feature_row,
                                 int32_t *text_ids, int32_t *gather)
{
    int64_t B = ids->shape[0], T = ids->shape[1], V = lm->cfg.vocab_size;
    aspo_status s = tensor_to_host(ids, text_ids);
    for (int64_t i = 0; !s && i < B * T; i++) {
        int32_t row = feature_row ? feature_row[i] : -1;
        if (row >= 0 && M == 0)
            return aspo_fail(ASPO_ERR_USAGE, "%s: feature_row[%lld][%lld] = %d but no image "
                             "features were given", who, (long long)(i / T), (long long)(i % T),
                             row);
        if (row < -1 || row >= M)
            return aspo_fail(ASPO_ERR_USAGE, "%s: feature_row[%lld][%lld] = %d; the features "
                             "have rows 0..%lld (-1 = a text position)", who, (long long)(i / T),
                             (long long)(i % T), row, (long long)M - 1);
        if (row >= 0) {
            text_ids[i] = 0; /* embedded, then replaced */
            gather[i] = (int32_t)(B * T + row);
        } else if (text_ids[i] == image_token) {
            /* An image placeholder left as text: its image is missing from the batch. */
            return aspo_fail(ASPO_ERR_USAGE, "%s: ids[%lld][%lld] is the image token %d but "
                             "feature_row gives it no image feature", who, (long long)(i / T),
                             (long long)(i % T), text_ids[i]);
        } else if (text_ids[i] < 0 || text_ids[i] >= V) {
            return aspo_fail(ASPO_ERR_USAGE, "%s: ids[%lld][%lld] = %d is outside the "
                             "vocabulary (%lld)", who, (long long)(i / T), (long long)(i % T),
                             text_ids[i], (long long)V);
        } else {
            gather[i] = (int32_t)i;
        }
    }
    return s;
}

tensor *image_merge_embeddings(llama_model *lm, const char *who, int32_t image_token,
                               tensor *ids, tensor *features, const int32_t *feature_row)
{
    if (!ids) return NULL;
    char buf[96];
    int64_t C = lm->cfg.hidden_size;
    if (ids->ndim != 2 || ids->dt != DT_I32 || ids->shape[0] < 1 || ids->shape[1] < 1) {
        aspo_fail(ASPO_ERR_SHAPE, "%s: ids %s must be (B,T) i32", who,
                  tensor_describe(ids, buf, sizeof buf));
        return NULL;
    }
    if (features && (features->ndim < 2 || features->ndim > 3 || features->dt != DT_F32 ||
                     features->shape[features->ndim - 1] != C)) {
        aspo_fail(ASPO_ERR_SHAPE, "%s: features %s must be (M,%lld) f32", who,
                  tensor_describe(features, buf, sizeof buf), (long long)C);
        return NULL;
    }
    int64_t B = ids->shape[0], T = ids->shape[1];
    int64_t M = features ? tensor_numel(features) / C : 0;
    arena *host = &runtime_current()->host;
    int32_t *text_ids = arena_alloc(host, sizeof(int32_t) * (size_t)(B * T));
    int32_t *gather = arena_alloc(host, sizeof(int32_t) * (size_t)(B * T));
    if (!text_ids || !gather ||
        merge_indices(lm, who, image_token, ids, M, feature_row, text_ids, gather))
        return NULL;
    tensor *x = embedding_forward(&lm->embed, tensor_from_host(DT_I32, DIMS(B, T), text_ids));
    if (!features) return x;                                                  /* (B,T,C) */
    /* One gather from [text rows; feature rows]: its backward scatter-adds into both, so a
     * trainable projector gets its gradient. */
    tensor *rows[2] = {tensor_reshape(x, DIMS(B * T, C)), tensor_reshape(features, DIMS(M, C))};
    return tensor_embedding(tensor_concat(rows, 2, 0),
                            tensor_from_host(DT_I32, DIMS(B, T), gather));  /* (B,T,C) */
}
