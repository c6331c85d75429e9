/* The model being trained, whichever it is: a text-only LLaMA or a LLaVA (detected from
 * config.json), plus the CLIP that gives ASPO's image-text similarities. The trainer, the
 * scorer and the benchmark see one interface: open, log-probs of a pair batch (with the
 * batch's images), save the adapter. */
#ifndef ASPO_POLICY_H
#define ASPO_POLICY_H

#include <stdbool.h>

#include "aspo/pair_batch.h"
#include "models/clip.h"
#include "models/clip_tokenizer.h"
#include "models/llama.h"
#include "models/llava.h"

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

typedef struct policy_model {
    bool is_llava;
    llama_model llama;   /* text-only models */
    llava_model llava;
    llama_model *lm;     /* the language model either way */
    clip_model clip;     /* --clip-model when given */
    bool has_clip;
    clip_model *sim_clip;     /* the CLIP for similarities (NULL when not needed) */
    clip_tokenizer *clip_tok; /* its tokenizer (vocab.json + merges.txt of its directory) */
    char *clip_dir;
} policy_model;

/* Opened in place (lm points into it): do not copy. On failure p is left closed. */
aspo_status policy_open(const policy_options *o, policy_model *p);
void policy_close(policy_model *p);

/* Whether the model reads images; then images->token/positions for pair_batch_build. */
bool policy_images(const policy_model *p, pair_batch_images *images);

/* Log-probs of b's response targets (pair_batch_logprobs). vision: host (k,N,Cv), the
 * vision tower's features of the batch's k = b->n_images images in slot order
 * (aspo/image_features.h; NULL when k = 0); the projector runs here, in every pass. */
tensor *policy_logprobs(policy_model *p, const pair_batch *b, const float *vision,
                        tensor **logit_sums);

/* The chat template a --chat-template name means: "auto" is LLaVA-1.5's vicuna_v1 for a
 * LLaVA model and raw text for LLaMA; other names are themselves. */
const char *policy_chat_template(const policy_model *p, const char *name);

aspo_status policy_save_adapter(const policy_model *p, const char *dir);

#endif
