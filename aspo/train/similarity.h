/* ASPO's image similarities (docs/ASPO.md, step 2): for each unit i of a chosen response,
 * S_i = cosine(CLIP_text(unit_i), CLIP_image(x)), with both embeddings taken after the
 * projection heads as transformers' CLIPModel.get_text_features / get_image_features.
 *
 * Texts are tokenized by CLIP's tokenizer as CLIPTokenizer(text, truncation=True,
 * max_length=77): <|startoftext|>, the text's first 75 tokens, <|endoftext|> (kept last);
 * a text tower with fewer than 77 positions cuts to its own length the same way.
 * An empty unit is therefore <|startoftext|><|endoftext|> and gets that sequence's
 * similarity, a well-defined number like any other (the sentence splitter drops
 * whitespace-only pieces, so only a caller's own empty text reaches it).
 *
 * Both functions run with autograd off and call runtime_step_reset() between batches and
 * before they return: every step tensor the caller holds is gone afterwards. The trainer
 * calls them at data-load time, before training starts, where that is what it wants (no
 * CLIP activation stays in the arena); inputs and outputs are host arrays for this reason. */
#ifndef ASPO_SIMILARITY_H
#define ASPO_SIMILARITY_H

#include <stddef.h>
#include <stdint.h>

#include "models/clip.h"
#include "models/clip_tokenizer.h"

typedef struct clip_scorer {
    clip_model *clip;          /* a full CLIPModel: text tower and both projections */
    const clip_tokenizer *tok; /* the tokenizer of that CLIP (vocab.json + merges.txt) */
    int max_batch;             /* texts or images per forward pass; <= 0: 32 */
} clip_scorer;

/* E: the width of the shared embedding space (text_projection's output), 0 when the
 * model has no text tower. */
int64_t clip_scorer_dim(const clip_scorer *s);

/* texts[i] (lens[i] bytes, UTF-8, need not be NUL-terminated) for i < n -> S[i] =
 * cosine(text features of texts[i], image_embed), computed in double and stored as float.
 * image_embed: (E) host floats, the image features of the same CLIP (clip_image_embedding,
 * or llava_image_features' clip_embeds copied to the host); E must equal
 * clip_scorer_dim(s). Texts are padded per batch to the batch's longest; the result does
 * not depend on max_batch beyond float rounding. Errors: a model without a text tower or
 * whose vocabulary / end token does not fit the tokenizer (ASPO_ERR_USAGE), invalid UTF-8
 * (ASPO_ERR_USAGE, naming the unit), E mismatch (ASPO_ERR_SHAPE), a zero or non-finite
 * embedding (ASPO_ERR_NUMERIC). n = 0 does nothing. */
aspo_status clip_similarities(const clip_scorer *s, int64_t n, const char *const *texts,
                              const size_t *lens, const float *image_embed, int64_t E,
                              float *S);

/* pixels (n,3,S,S) host floats, S = the vision tower's image_size, preprocessed as
 * clip_preprocess does -> embeds (n,E), the image features after visual_projection (not
 * normalised), for a --clip-model that is not LLaVA's own tower. Only s->clip and
 * s->max_batch are used (tok may be NULL). A model without visual_projection is an error:
 * its pooled output is not in the text embedding space. */
aspo_status clip_image_embedding(const clip_scorer *s, int64_t n, const float *pixels,
                                 float *embeds);

#endif
