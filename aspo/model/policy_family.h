/* One model family behind the policy interface (aspo/model/policy.h): how a LLaMA, a LLaVA (and
 * later families) open, read images, run a batch and save their adapter. policy_open picks
 * the family once, from config.json; everything else in aspo/ calls policy_*() and never
 * asks which family it has. A new family is one more policy_<family>.c and one line in
 * policy.c's table. */
#ifndef ASPO_POLICY_FAMILY_H
#define ASPO_POLICY_FAMILY_H

#include "aspo/model/policy.h"

struct policy_family {
    const char *kind;          /* "llama", "llava": --dry-run's model_kind */
    const char *name;          /* "LLaMA", "LLaVA": for messages */
    const char *chat_template; /* what --chat-template auto means */
    /* Whether the config.json at model_dir is this family's (the first family that says
     * yes opens it). */
    aspo_status (*detect)(const char *model_dir, bool *yes);
    /* Opens the model of o->model into p (p->lm set); shared_clip: --clip-model's CLIP when
     * it was opened first, for a family that can share its vision tower (NULL otherwise). */
    aspo_status (*open)(const policy_options *o, clip_model *shared_clip, policy_model *p);
    void (*close)(policy_model *p);
    /* "LLaMA", "LLaVA (llava-hf layout)": the plan's and the logs' name for the model. */
    const char *(*describe)(const policy_model *p);
    /* The language model's hidden states (rows,width,C) of batch b's model input `in`
     * (packed or padded); vision: the host features of its images (policy_image_features),
     * NULL when it has none. */
    tensor *(*hidden)(policy_model *p, const pair_batch *b, const pair_batch_input *in,
                      const float *vision);
    aspo_status (*save_adapter)(const policy_model *p, const char *dir);
    /* The model with its adapter folded into the weights, as a checkpoint of the family's
     * own layout in out_dtype (aspo merge); NULL where the family has none yet. */
    aspo_status (*save_merged)(const policy_model *p, const char *dir, dtype out_dtype);

    /* ---- image families only (NULL in a text-only family) ---- */
    /* The image token and the positions an image fills (pair_batch_images). */
    pair_batch_images (*images)(const policy_model *p);
    /* The floats of one image's frozen features: what policy_image_features writes. */
    size_t (*feature_floats)(const policy_model *p);
    aspo_status (*image_features)(policy_model *p, vision_cache *cache, const char *root,
                                  const image_limits *limits,
                                  const preference_row *const *rows, const int *slot, int n,
                                  float *out);
    aspo_status (*cache_open)(const policy_model *p, vision_cache *c, const char *dir,
                              const char *model_dir);
    /* Checks of one row beyond tokenizing it (NULL: none). */
    aspo_status (*check_row)(const policy_model *p, const preference_row *row);
    /* The model's own preprocessing of img into (3,size,size) pixels when it makes images
     * of that size (*done true), so a similarity CLIP of that size sees the model's pixels. */
    aspo_status (*own_pixels)(const policy_model *p, const image_rgb8 *img, int size,
                              float *out, bool *done);
    /* Frozen parameter stores besides the language model's (the vision tower), for memory
     * accounting and parameter counts; returns how many it wrote (at most max). */
    int (*vision_stores)(const policy_model *p, const param_store **out, int max);
    /* One line on the vision side for the run's log (its frozen parameters, positions per
     * image, where the similarity CLIP comes from). */
    void (*describe_vision)(const policy_model *p, char *buf, size_t size);
};

/* The language model's options from the policy's (dtypes, LoRA, adapter, checkpointing):
 * the same for every family. */
llama_options policy_language_options(const policy_options *o);

extern const policy_family policy_llama_family;
extern const policy_family policy_llava_family;
extern const policy_family policy_instructblip_family;

#endif
