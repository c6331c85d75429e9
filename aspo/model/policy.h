/* The model being trained, whichever family it is (a text-only LLaMA, a LLaVA; chosen once
 * from config.json, aspo/model/policy_family.h), plus the CLIP that gives ASPO's image-text
 * similarities. The trainer, the scorer, the planner and the benchmark see this interface
 * only: open, the batch's images and their features, log-probs of a pair batch, save the
 * adapter. */
#ifndef ASPO_POLICY_H
#define ASPO_POLICY_H

#include <stdbool.h>

#include "aspo/data/dataset.h"
#include "aspo/model/image_features.h"
#include "aspo/data/pair_batch.h"
#include "models/clip.h"
#include "models/image.h"
#include "models/clip_tokenizer.h"
#include "models/llama.h"
#include "models/llava.h"
#include "models/bert_tokenizer.h"
#include "models/instructblip.h"

typedef struct policy_options {
    const char *model;        /* directory with config.json */
    const char *adapter;      /* PEFT adapter to start from, or NULL */
    int storage_dtype;        /* -1 = the file's */
    int activation_dtype;     /* llama_options.activation_dtype (policy_activation_dtype) */
    lora_config lora;         /* r = 0: none (unless adapter) */
    const char *lora_targets; /* NULL = PEFT's default for LLaMA (q_proj,v_proj) */
    uint64_t lora_seed;
    bool checkpoint_layers;
    /* LLaVA only: */
    bool train_projector;     /* LoRA on the projector too */
    const char *vision_tower; /* original layout: the CLIP directory, instead of the config's */
    /* A full CLIP (text + vision towers) for ASPO's similarities; NULL = LLaVA's own tower
     * when it is a full CLIP (the original layout's mm_vision_tower directory). Opened only
     * when need_similarity. */
    const char *clip_model;
    bool need_similarity;
    bool skip_weights; /* memory plans: no tensor data is read (llama_options.skip_weights) */
} policy_options;

/* llama_options.activation_dtype for a flag value "auto" | "f32" | "bf16" | "f16" on a
 * backend: auto is the weights' dtype (-1) on cuda and hip, whose fast path is half GEMMs,
 * and f32 elsewhere (the CPU and Vulkan convert half values element by element, so f32 is
 * faster there and closer to the exact result). */
int policy_activation_dtype(const char *choice, const char *backend);
policy_options policy_defaults(void);

typedef struct policy_family policy_family;

typedef struct policy_model {
    const policy_family *family;
    union { /* the family's model */
        llama_model llama;
        llava_model llava;
        struct {
            instructblip_model model;
            bert_tokenizer *instruction_tok; /* <model>/qformer_tokenizer */
            bool plan;                       /* opened for a memory plan (skip_weights) */
        } blip;
    };
    llama_model *lm;     /* the language model, whichever the family */
    clip_model clip;     /* --clip-model when given */
    bool has_clip;
    clip_model *sim_clip;     /* the CLIP for similarities (NULL when not needed) */
    clip_tokenizer *clip_tok; /* its tokenizer (vocab.json + merges.txt of its directory) */
    char *clip_dir;
    tokenize_options prompts; /* policy_tokenize_options' */
} policy_model;

/* The family of the model in model_dir (its config.json), and whether it reads images:
 * for checks before the model is opened. */
aspo_status policy_detect(const char *model_dir, const policy_family **family);
bool policy_family_reads_images(const policy_family *family);
/* "LLaMA", "LLaVA": the family's name for messages. */
const char *policy_family_name(const policy_family *family);

/* Opened in place (lm points into it): do not copy. On failure p is left closed. */
aspo_status policy_open(const policy_options *o, policy_model *p);
void policy_close(policy_model *p);

/* "llama", "llava": the family's name (--dry-run's model_kind). */
const char *policy_kind(const policy_model *p);
/* "LLaMA", "LLaVA (llava-hf layout)": the model as the logs and the plan name it. */
const char *policy_describe(const policy_model *p);

/* Whether the model reads images; then images->token/positions for pair_batch_build. */
bool policy_images(const policy_model *p, pair_batch_images *images);
/* The family's checks of one row beyond tokenizing it, before training starts
 * (InstructBLIP: the instruction fits the Q-Former's positions); errors name the row. */
aspo_status policy_check_row(const policy_model *p, const preference_row *row);
/* The floats of one image's features (0 for a text-only model). */
size_t policy_feature_floats(const policy_model *p);
/* out (k, policy_feature_floats) host: the frozen features of rows[i] for every i with
 * slot[i] >= 0, at out + slot[i] * policy_feature_floats; from cache (may be NULL) when it
 * has them. Resets the step arena: call it before a batch's passes. */
aspo_status policy_image_features(policy_model *p, vision_cache *cache, const char *root,
                                  const image_limits *limits, const preference_row *const *rows,
                                  const int *slot, int n, float *out);
/* --vision-cache DIR for this model (dir NULL: off; a text-only model refuses a dir). */
aspo_status policy_vision_cache_open(const policy_model *p, vision_cache *c, const char *dir,
                                     const char *model_dir);
/* The model's own preprocessing of img into (3,size,size) pixels when it makes images of
 * that size (*done true; false leaves out untouched): a similarity CLIP of the same size
 * then sees the pixels the model sees. */
aspo_status policy_own_pixels(const policy_model *p, const image_rgb8 *img, int size,
                              float *out, bool *done);
/* The frozen parameter stores besides the language model's: the vision tower, and the
 * similarity CLIP when it is another model. Returns how many it wrote (at most max). */
int policy_other_stores(const policy_model *p, const param_store **out, int max);
/* One line on the vision side for the run's log; false (buf untouched) for a text-only
 * model. */
bool policy_describe_vision(const policy_model *p, char *buf, size_t size);

/* Log-probs of b's response targets (pair_batch_logprobs). vision: host (k,N,Cv), the
 * vision tower's features of the batch's k = b->n_images images in slot order
 * (aspo/model/image_features.h; NULL when k = 0); the projector runs here, in every pass. */
tensor *policy_logprobs(policy_model *p, const pair_batch *b, const float *vision,
                        tensor **logit_sums);

/* The model's part of the tokenize options: how its images are placed (images, image_token,
 * image_first) and the chat template its prompts go through (chat_template: a
 * --chat-template name; "auto" is the family's: LLaVA-1.5's vicuna_v1 for a LLaVA, raw text
 * otherwise). p keeps them, for a family that reads the prompt itself (InstructBLIP's
 * Q-Former reads the text the language model's prompt is made from). */
aspo_status policy_tokenize_options(policy_model *p, const char *chat_template,
                                    tokenize_options *topt);

aspo_status policy_save_adapter(const policy_model *p, const char *dir);
/* The model with its adapter merged into the weights, written to dir in out_dtype as a
 * checkpoint of the family's layout (aspo merge; LLaMA and InstructBLIP so far: other
 * families are an error that says so). */
aspo_status policy_save_merged(const policy_model *p, const char *dir, dtype out_dtype);

#endif
