/* LLaVA's frozen vision tower output for a batch's images, computed once per image and step
 * (both the reference and the policy pass project the same features), and optionally kept
 * on disk between epochs (--vision-cache DIR, aspo/model/vision_cache.h). */
#ifndef ASPO_IMAGE_FEATURES_H
#define ASPO_IMAGE_FEATURES_H

#include <stdint.h>

#include "aspo/data/dataset.h"
#include "aspo/model/vision_cache.h"
#include "models/image.h"
#include "models/llava.h"

/* --vision-cache DIR for LLaVA: the key is the tower (model directory, feature layer, CLS,
 * image processing, dtype). dir NULL leaves the cache off. Creates dir (mkdir -p). */
aspo_status llava_vision_cache_open(vision_cache *c, const char *dir, const llava_model *m,
                                    const char *model_dir);

/* out (k,N,Cv) host: the features of rows[i] for every i with slot[i] >= 0, at out +
 * slot[i]*N*Cv; from the cache when it has them, else decoded, preprocessed and run
 * through the tower (no tape) and stored in the cache. cache may be NULL. Resets the step
 * arena (call it before a batch's passes). */
aspo_status image_features_load(llava_model *m, vision_cache *cache, const char *root,
                                const image_limits *limits, const preference_row *const *rows,
                                const int *slot, int n, float *out);

#endif
