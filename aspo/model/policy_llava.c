/* The LLaVA family: a CLIP vision tower, the projector and the LLaMA (llava-hf or original
 * layout, models/llava.h). The tower is frozen: its features are computed once per image and
 * step (aspo/model/image_features.c), optionally cached on disk, and projected in every pass. */
#define _POSIX_C_SOURCE 200809L /* strdup */
#include "aspo/model/policy_family.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/tensor_ops.h"

static aspo_status open_llava(const policy_options *o, clip_model *shared_clip, policy_model *p)
{
    llava_options v = llava_defaults();
    v.lm = policy_language_options(o);
    v.train_projector = o->train_projector;
    v.vision_tower_dir = o->vision_tower;
    v.shared_clip = shared_clip;
    aspo_status s = llava_open(o->model, &v, &p->llava);
    if (s) return s;
    p->lm = &p->llava.lm;
    /* ASPO's similarities from LLaVA's own tower when it is a full CLIP (the original
     * layout's mm_vision_tower directory) and no --clip-model was given. */
    clip_model *tower = p->llava.vision;
    if (o->need_similarity && !p->sim_clip && tower->cfg.has_text &&
        tower->has_visual_projection) {
        p->sim_clip = tower;
        if (!(p->clip_dir = strdup(p->llava.cfg.vision_tower_dir)))
            return aspo_fail(ASPO_ERR_OOM, "out of memory");
    }
    return ASPO_OK;
}

static void close_llava(policy_model *p)
{
    llava_close(&p->llava);
}

static const char *describe(const policy_model *p)
{
    return p->llava.cfg.hf_layout ? "LLaVA (llava-hf layout)" : "LLaVA (original layout)";
}

static tensor *hidden(policy_model *p, const pair_batch *b, const pair_batch_input *in,
                      const float *vision)
{
    tensor *features = NULL;
    if (b->n_images) {
        int64_t N = p->llava.cfg.image_positions, Cv = llava_vision_width(&p->llava);
        tensor *v = tensor_from_host(DT_F32, DIMS(b->n_images, N, Cv), vision);
        features = llava_project(&p->llava, v);                             /* (k,N,C) */
        if (!features) return NULL;
        features = tensor_reshape(features, DIMS(-1, features->shape[2])); /* (k*N,C) */
    }
    return llava_forward_hidden(&p->llava, in->ids, in->mask, in->positions, features,
                                features ? in->feature_row : NULL); /* (B,T,C) */
}

static aspo_status save_adapter(const policy_model *p, const char *dir)
{
    return llava_save_adapter(&p->llava, dir);
}

static pair_batch_images images(const policy_model *p)
{
    return (pair_batch_images){p->llava.cfg.image_token_index, p->llava.cfg.image_positions,
                               false};
}

static size_t feature_floats(const policy_model *p)
{
    return (size_t)(p->llava.cfg.image_positions * llava_vision_width(&p->llava)); /* N*Cv */
}

static aspo_status image_features(policy_model *p, vision_cache *cache, const char *root,
                                  const image_limits *limits, const preference_row *const *rows,
                                  const int *slot, int n, float *out)
{
    return image_features_load(&p->llava, cache, root, limits, rows, slot, n, out);
}

static aspo_status cache_open(const policy_model *p, vision_cache *c, const char *dir,
                              const char *model_dir)
{
    return llava_vision_cache_open(c, dir, &p->llava, model_dir);
}

static aspo_status own_pixels(const policy_model *p, const image_rgb8 *img, int size, float *out,
                              bool *done)
{
    if (p->llava.cfg.image.crop_size != size) return ASPO_OK;
    *done = true;
    return llava_preprocess(&p->llava, img, out);
}

static int vision_stores(const policy_model *p, const param_store **out, int max)
{
    if (max < 1) return 0;
    out[0] = &p->llava.vision->ps;
    return 1;
}

static void describe_vision(const policy_model *p, char *buf, size_t size)
{
    const char *similarity =
        !p->sim_clip ? "not used"
        : p->sim_clip != p->llava.vision ? "from --clip-model (a CLIP other than LLaVA's tower)"
        : p->has_clip                    ? "from --clip-model, whose vision tower LLaVA shares"
                                         : "from LLaVA's own CLIP (mm_vision_tower)";
    snprintf(buf, size, "%lld frozen parameters, %lld image positions per image; similarities "
             "S %s", (long long)param_store_count(&p->llava.vision->ps, false),
             (long long)p->llava.cfg.image_positions, similarity);
}

const policy_family policy_llava_family = {
    .kind = "llava",
    .name = "LLaVA",
    .chat_template = "vicuna_v1",
    .detect = llava_detect,
    .open = open_llava,
    .close = close_llava,
    .describe = describe,
    .hidden = hidden,
    .save_adapter = save_adapter,
    .images = images,
    .feature_floats = feature_floats,
    .image_features = image_features,
    .cache_open = cache_open,
    .own_pixels = own_pixels,
    .vision_stores = vision_stores,
    .describe_vision = describe_vision,
};
