/* A batch's LLaVA vision features: the disk cache, then the tower for what it lacks. */
#include "aspo/model/image_features.h"

#include <math.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aspo/data/image_rows.h"
#include "tensor/runtime.h"
#include "tensor/tensor_ops.h"

aspo_status llava_vision_cache_open(vision_cache *c, const char *dir, const llava_model *m,
                                   const char *model_dir)
{
    memset(c, 0, sizeof *c);
    if (!dir) return ASPO_OK;
    const llava_config *cfg = &m->cfg;
    uint64_t h = vision_cache_model_key("", model_dir); /* "": LLaVA's files keep their names */
    int32_t fields[] = {cfg->vision_feature_layer, cfg->keep_cls, cfg->pad_to_square,
                        cfg->image.crop_size, cfg->image.shortest_edge,
                        (int32_t)m->vision->storage_dt};
    h = vision_cache_hash(h, fields, sizeof fields);
    h = vision_cache_hash(h, cfg->image.mean, sizeof cfg->image.mean);
    h = vision_cache_hash(h, cfg->image.std, sizeof cfg->image.std);
    return vision_cache_start(c, dir, h, cfg->image_positions, llava_vision_width(m));
}

aspo_status image_features_load(llava_model *m, vision_cache *cache, const char *root,
                                const image_limits *limits, const preference_row *const *rows,
                                const int *slot, int n, float *out)
{
    int64_t S = m->cfg.image.crop_size, N = m->cfg.image_positions, Cv = llava_vision_width(m);
    size_t per_image = (size_t)(3 * S * S), per_feature = (size_t)(N * Cv);
    char files[n][4300];
    int miss[n], n_miss = 0;
    for (int i = 0; i < n; i++) {
        files[i][0] = 0;
        if (slot[i] < 0) continue;
        char path[4096];
        aspo_status s = image_row_path(root, rows[i], path, sizeof path);
        if (s) return s;
        if (cache && cache->dir && vision_cache_file(cache, path, NULL, 0, files[i], sizeof files[i]) &&
            vision_cache_get(cache, files[i], out + (size_t)slot[i] * per_feature)) {
            cache->hits++;
            continue;
        }
        miss[n_miss++] = i;
    }
    if (!n_miss) return ASPO_OK;
    if (cache) cache->misses += n_miss;
    /* One image per tower pass: the step arena keeps every layer's activations of a pass
     * (no tape, but no reuse either; about 1.7 GB for a ViT-L/14-336 image in f32), so
     * this bounds the memory to one image's, and an image's features do not depend on
     * which images share its batch. */
    float *pixels = malloc(sizeof(float) * per_image);
    if (!pixels) return aspo_fail(ASPO_ERR_OOM, "no host memory for an image");
    aspo_status s = ASPO_OK;
    for (int j = 0; j < n_miss && !s; j++) {
        int i = miss[j], zero = 0;
        float *dst = out + (size_t)slot[i] * per_feature;
        s = image_rows_pixels(m, root, limits, &rows[i], &zero, 1, pixels);
        tensor *f = NULL;
        if (!s && !(f = llava_vision_features(
                        m, tensor_from_host(DT_F32, DIMS(1, 3, S, S), pixels), NULL)))
            s = aspo_error_status();                                       /* (1,N,Cv) */
        if (!s) s = tensor_to_host_f32(f, dst);
        if (!s && cache && cache->dir && files[i][0]) s = vision_cache_put(cache, files[i], dst);
        runtime_step_reset(); /* the tower's activations: the features are on the host now */
    }
    free(pixels);
    return s;
}
