/* LLaVA-1.5 as transformers' LlavaForConditionalGeneration (4.44 semantics) over the same
 * in-memory model for both checkpoint layouts:
 *
 *   llava-hf   config.json model_type "llava" with text_config + vision_config; weights
 *              language_model.{model.*,lm_head}, vision_tower.vision_model.*,
 *              multi_modal_projector.linear_1/linear_2.
 *   original   (liuhaotian/llava-v1.5-*) model_type "llava_llama": a LLaMA config plus
 *              mm_vision_tower, mm_projector_type "mlp2x_gelu", mm_vision_select_layer,
 *              mm_vision_select_feature; weights model.* / lm_head and
 *              model.mm_projector.0/2; the vision tower is the CLIP checkpoint in the
 *              directory mm_vision_tower names (relative paths are taken from the model
 *              directory) or llava_options.vision_tower_dir.
 *
 * Configs: text_config may be partial (LlamaConfig's defaults fill it, as LlavaConfig
 * does) but must be there (an absent one is an error, not LlavaConfig's LLaMA-7B);
 * vision_config may be partial too (CLIPVisionConfig's defaults), and an absent one is
 * LlavaConfig's default CLIP ViT-L/14-336. image_token_index must be a token of
 * text_config's vocabulary. Only LLaMA text models and CLIP vision towers are read; other
 * model_types, select strategies, projector activations or mm_projector_types are errors
 * naming the file and the field.
 *
 * Image features: the CLIP hidden state of vision_feature_layer (-2: second-to-last
 * layer, before post_layernorm), CLS dropped ("default" select strategy; "full" keeps it),
 * then Linear-GELU-Linear. One image placeholder token in a sequence becomes N positions
 * (N = (image_size / patch_size)^2, 576 for ViT-L/14-336) filled with the features, as
 * 4.44's _merge_input_ids_with_image_features does. The vision tower is frozen and always
 * runs without a tape; the projector is frozen unless llava_options.train_projector. */
#ifndef ASPO_MODELS_LLAVA_H
#define ASPO_MODELS_LLAVA_H

#include <stdbool.h>
#include <stdint.h>

#include "models/clip.h"
#include "models/image.h"
#include "models/llama.h"

/* The original layout's placeholder (LLaVA's IMAGE_TOKEN_INDEX): not a vocabulary id. */
enum { LLAVA_IMAGE_TOKEN_ORIGINAL = -200 };

typedef struct llava_config {
    bool hf_layout;            /* llava-hf (true) or the original layout */
    int32_t image_token_index; /* llava-hf: config image_token_index; original: -200 */
    int vision_feature_layer;  /* Python-style index into CLIP hidden_states; -2 */
    bool keep_cls;             /* vision_feature_select_strategy "full" */
    clip_act projector_act;    /* projector_hidden_act: gelu (erf) for LLaVA-1.5 */
    int64_t image_positions;   /* N: positions one image fills */
    /* Image processing: preprocessor_config.json of the model directory when present
     * (crop_size, size.shortest_edge, image_mean, image_std, rescale_factor, do_*), else
     * (original layout) the tower directory's, else CLIP's at the tower's image size
     * (CLIP-336's for LLaVA-1.5); crop_size must be the tower's image_size. pad_to_square
     * is LLaVA-1.5's image_aspect_ratio "pad" (on unless the config names another;
     * "anyres" is an error), with the mean colour (int(m * 255) per channel). */
    clip_preprocess_config image;
    bool pad_to_square;
    char vision_tower_dir[4096]; /* original layout: the CLIP directory used */
} llava_config;

typedef struct llava_model {
    llava_config cfg;
    /* The language model, opened with llama_open_with: parameter names are the
     * checkpoint's ("language_model.model..." for llava-hf); the projector's parameters
     * (and LoRA) live in lm.ps too, so one allocation and one adapter file hold both. */
    llama_model lm;
    clip_model *vision;  /* the vision tower (owned unless shared) */
    bool owns_vision;
    linear proj1, proj2; /* multi_modal_projector.linear_1/2 or model.mm_projector.0/2 */
} llava_model;

typedef struct llava_options {
    /* storage dtype (of the vision tower and the projector too), LoRA (its targets apply
     * to the language model's linears only: PEFT module names are matched against
     * "language_model.model.layers..." in the llava-hf layout and "model.layers..." in the
     * original), adapter_dir, checkpoint_layers, skip_weights (the vision tower's too; a
     * shared_clip with the tower's config is then taken to be the same tower, as no
     * weights are compared). */
    llama_options lm;
    /* LoRA on the projector's two linears as well. With adapter_dir, the adapter decides
     * (an adapter that adapts the projector turns it on); asking for it when the adapter
     * leaves the projector out is an error. */
    bool train_projector;
    /* original layout: instead of config mm_vision_tower (relative to the working
     * directory, not the model's) */
    const char *vision_tower_dir;
    /* A CLIP model the caller already opened (e.g. --clip-model for ASPO's similarities):
     * when its vision tower is LLaVA's (same config and, for llava-hf, byte-equal weights
     * with vision_tower.*; for the original layout, the same directory) it is used instead
     * of loading a second copy; llava_model.vision then points at it and is not owned
     * (close the LLaVA first). Any other CLIP is ignored: LLaVA loads its own tower. */
    clip_model *shared_clip;
} llava_options;

llava_options llava_defaults(void);

/* Whether dir/config.json describes a LLaVA model (model_type "llava" or "llava_llama",
 * or an architecture name containing "Llava"). Errors only for an unreadable config. */
aspo_status llava_detect(const char *dir, bool *is_llava);

/* On failure m is left closed and the message names the file and tensor; a checkpoint
 * without vision weights (llava-hf without vision_tower.*, original without a tower
 * directory) is an error that says which. */
aspo_status llava_open(const char *dir, const llava_options *opt, llava_model *m);
void llava_close(llava_model *m);

/* Decoded RGB -> (3,S,S) pixels as LLaVA-1.5 feeds CLIP (pad to square, then
 * CLIPImageProcessor). out holds 3*S*S floats, S = cfg.image.crop_size. */
aspo_status llava_preprocess(const llava_model *m, const image_rgb8 *img, float *out);

/* pixels (n,3,S,S) f32 -> projector outputs (n,N,C) f32 (C = the LLM's hidden size). The
 * vision tower runs with autograd off; the projector records when it has trainable
 * parameters. clip_embeds: NULL, or gets the tower's own image embedding (n,E) from the
 * same pass (visual_projection of the pooled output when the tower has one, else NULL),
 * detached, for ASPO's similarities. */
tensor *llava_image_features(llava_model *m, tensor *pixels, tensor **clip_embeds);
/* The two halves of llava_image_features, so a trainer can run the frozen tower once per
 * image and step (or read its output from a cache) and the projector in every pass:
 * pixels (n,3,S,S) -> the selected CLIP hidden states (n,N,Cv), no tape ... */
tensor *llava_vision_features(llava_model *m, tensor *pixels, tensor **clip_embeds);
/* ... and the projector, (n,N,Cv) -> (n,N,C), recording when it has trainable parameters. */
tensor *llava_project(llava_model *m, tensor *vision_features);
/* Cv: the vision tower's width (the projector's input). */
int64_t llava_vision_width(const llava_model *m);

/* ids (B,T) i32 where image positions may hold anything; key_mask and positions as
 * llama_forward_hidden; features (M,C) f32 (or (n,N,C) as llava_image_features gives them)
 * or NULL; feature_row: host (B,T), -1 for a text position, else the row of `features` that
 * fills it (NULL when features is NULL). Returns the final hidden states (B,T,C). NULL
 * positions are 0..T-1 (right padding; transformers gives padded positions other positions
 * and zero embeddings, which changes only the outputs at padded positions). A text position
 * holding the image token, an id outside the vocabulary or a row outside the features is an
 * error. */
tensor *llava_forward_hidden(llava_model *m, tensor *ids, tensor *key_mask,
                             const int32_t *positions, tensor *features,
                             const int32_t *feature_row);
/* hidden (...,C) -> logits (...,V). */
tensor *llava_lm_head(llava_model *m, tensor *hidden);

/* PEFT adapter (adapter_config.json + adapter_model.safetensors) that PEFT 0.12 loads onto
 * LlavaForConditionalGeneration (llava-hf) with the same modules adapted: target_modules
 * written as a regular expression over the full module names (POSIX ERE and Python re
 * alike), e.g. "language_model\.model\.layers\.[0-9]+\.(self_attn\.q_proj|self_attn\.
 * v_proj)|multi_modal_projector\.linear_1|multi_modal_projector\.linear_2": a module
 * adapted in every decoder layer under [0-9]+, anything else by its full name. The
 * original layout's names are model.layers... and model.mm_projector.0/2. */
aspo_status llava_save_adapter(const llava_model *m, const char *out_dir);

#endif
