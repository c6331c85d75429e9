/* The frozen vision tower's output for a batch's images, computed once per image and step
 * (both the reference and the policy pass project the same features), and optionally kept
 * on disk between epochs (--vision-cache DIR): the tower is frozen, so an image's features
 * never change during training. */
#ifndef ASPO_IMAGE_FEATURES_H
#define ASPO_IMAGE_FEATURES_H

#include <stdint.h>

#include "aspo/dataset.h"
#include "models/image.h"
#include "models/llava.h"

/* A directory of feature files, one per image: <dir>/<hash>.f32 holding a header (magic,
 * the tower's key, N, Cv) and N*Cv floats. The name hashes the tower's key and the image
 * file's path, size and modification time, so an edited image or another model misses. */
typedef struct vision_cache {
    char *dir;    /* NULL: no cache */
    uint64_t key; /* the tower: model directory, feature layer, CLS, image processing, dtype */
    int64_t N, Cv;
    int64_t hits, misses;
} vision_cache;

/* dir NULL leaves the cache off. Creates dir (mkdir -p). */
aspo_status vision_cache_open(vision_cache *c, const char *dir, const llava_model *m,
                              const char *model_dir);
void vision_cache_close(vision_cache *c);

/* out (k,N,Cv) host: the features of rows[i] for every i with slot[i] >= 0, at out +
 * slot[i]*N*Cv; from the cache when it has them, else decoded, preprocessed and run
 * through the tower (no tape) and stored in the cache. cache may be NULL. Resets the step
 * arena (call it before a batch's passes). */
aspo_status image_features_load(llava_model *m, vision_cache *cache, const char *root,
                                const image_limits *limits, const preference_row *const *rows,
                                const int *slot, int n, float *out);

#endif
