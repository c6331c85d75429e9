/* Image positions in a language model's input: the token embeddings of a batch's ids with
 * the rows of image features put where the batch says (LLaVA's projected patches, or
 * InstructBLIP's projected query outputs), as one gather so that the backward pass reaches
 * both the embedding table and the features. */
#ifndef ASPO_MODELS_IMAGE_MERGE_H
#define ASPO_MODELS_IMAGE_MERGE_H

#include <stdint.h>

#include "models/llama.h"

/* ids (B,T) i32 where image positions may hold anything; features (M,C) f32 (or (n,N,C))
 * or NULL; feature_row: host (B,T), -1 for a text position, else the row of `features` that
 * fills it (NULL when features is NULL). -> (B,T,C) input embeddings of lm. A text position
 * holding image_token, an id outside the vocabulary or a row outside the
 * features is an error whose message starts with `who` ("llava", "instructblip"). */
tensor *image_merge_embeddings(llama_model *lm, const char *who, int32_t image_token,
                               tensor *ids, tensor *features, const int32_t *feature_row);

#endif
