/* CLIP as transformers' CLIPModel (4.40-4.44 semantics): Hugging Face config.json (a
 * CLIPConfig with vision_config/text_config, or a bare CLIPVisionConfig as a LLaVA vision
 * tower directory has) and weight names. Vision tower: patch embedding (the conv as a
 * matmul over unfolded patches), class token, position embedding, pre_layrnorm, pre-LN
 * encoder, post_layernorm on the class token, visual_projection. Text tower: token +
 * position embedding, causal pre-LN encoder, final_layer_norm, pooling at the first
 * end-of-text token, text_projection. Frozen (no LoRA); the ops are differentiable. */
#ifndef ASPO_MODELS_CLIP_H
#define ASPO_MODELS_CLIP_H

#include <stdbool.h>
#include <stdint.h>

#include "nn/linear.h"
#include "nn/modules.h"

struct json_t;

typedef enum clip_act { CLIP_QUICK_GELU, CLIP_GELU, CLIP_GELU_TANH } clip_act;

/* hidden_act names: quick_gelu, gelu (erf), gelu_new and gelu_pytorch_tanh (tanh form);
 * false for any other name or NULL. */
bool clip_act_from_name(const char *name, clip_act *act);
/* x -> act(x), elementwise. */
tensor *clip_activation(clip_act act, tensor *x);

/* One tower's encoder (CLIPVisionConfig or CLIPTextConfig). */
typedef struct clip_tower_config {
    int64_t hidden_size, intermediate_size, num_layers, num_heads, head_dim;
    double layer_norm_eps;
    clip_act act; /* hidden_act: quick_gelu, gelu, gelu_new / gelu_pytorch_tanh */
    /* vision */
    int64_t image_size, patch_size, num_channels;
    /* text */
    int64_t vocab_size, max_position_embeddings;
    int bos_token_id, eos_token_id, pad_token_id;
} clip_tower_config;

typedef struct clip_config {
    clip_tower_config vision, text;
    bool has_text;          /* false for a bare CLIPVisionConfig */
    int64_t projection_dim; /* CLIPConfig.projection_dim (512 when absent) */
    double logit_scale_init_value;
} clip_config;

/* transformers' defaults for fields that save_pretrained leaves out (it writes only what
 * differs from them): vision 224/32/768/3072/12 layers/12 heads, text vocab 49408, hidden
 * 512, 2048, 12 layers, 8 heads, 77 positions, bos 49406, eos 49407, pad 1; quick_gelu,
 * eps 1e-5, projection_dim 512, logit_scale_init_value 2.6592. */
void clip_vision_defaults(clip_tower_config *c);
void clip_text_defaults(clip_tower_config *c);
/* Reads one tower's object (e.g. LLaVA's "vision_config"); `where` names it in messages.
 * A hidden_act aspo lacks is ASPO_ERR_UNSUPPORTED; a size that is not positive or is over
 * its bound (widths 2^20, 4096 layers, 2^24 tokens, images 2^14 a side), a hidden_size the
 * heads do not divide, an image_size the patch_size does not divide, or a text token id
 * outside the vocabulary (bos and pad may be null or -1, eos may not) is ASPO_ERR_FORMAT
 * naming the field and its value. */
aspo_status clip_tower_config_from_json(const struct json_t *obj, const char *where,
                                        bool vision, clip_tower_config *c);
/* The same over the values already in *c (absent fields keep them): for towers of other
 * families with CLIP's fields and their own defaults (models/blip_vision.c). */
aspo_status clip_tower_config_update(const struct json_t *obj, const char *where, bool vision,
                                     clip_tower_config *c);
/* config.json: a CLIPConfig ("vision_config" [+ "text_config"]) or a bare vision config
 * (model_type "clip_vision_model", or hidden_size + patch_size at the top level). */
aspo_status clip_config_load(const char *path, clip_config *c);
/* A bare CLIPVisionConfig given as a parsed object (LLaVA's "vision_config"): has_text
 * false, projection_dim from the object (512 when absent). */
aspo_status clip_vision_config_from_json(const struct json_t *obj, const char *where,
                                         clip_config *c);

typedef struct clip_layer {
    layernorm ln1, ln2;      /* layer_norm1, layer_norm2 */
    linear q, k, v, o;       /* self_attn.{q,k,v,out}_proj, with biases */
    linear fc1, fc2;         /* mlp.fc1, mlp.fc2 */
} clip_layer;

typedef struct clip_model {
    clip_config cfg;
    char *dir;      /* the directory opened, as given */
    param_store ps; /* every weight: one allocation */
    dtype storage_dt;
    /* vision_model.* */
    tensor *patch_weight;    /* embeddings.patch_embedding.weight (C,3,P,P), no bias */
    tensor *class_embedding; /* embeddings.class_embedding (C) */
    embedding vision_pos;    /* embeddings.position_embedding (N+1,C) */
    layernorm pre_ln, post_ln;
    clip_layer *vision_layers;
    bool has_visual_projection; /* present in the file (CLIPModel, ...WithProjection) */
    linear visual_projection;   /* (E,C), no bias; E from the file for a bare vision config */
    /* text_model.* (when cfg.has_text) */
    embedding token_embedding, text_pos;
    clip_layer *text_layers;
    layernorm final_ln;
    linear text_projection; /* (E,C), no bias */
    tensor *logit_scale;    /* scalar; NULL when the file has none */
} clip_model;

/* config.json -> declare -> allocate -> load model.safetensors (or a sharded index) from
 * dir, converting f32/bf16/f16 to storage_dtype (-1 = the file's dtype). Weights are read
 * under the names above; the text tower, visual_projection and logit_scale only when the
 * config / file has them. On failure m is left closed and the message names the file and
 * the tensor. */
aspo_status clip_open(const char *dir, int storage_dtype, clip_model *m);
/* Only a vision tower, described by a parsed CLIPVisionConfig object (`where` names it),
 * from dir's checkpoint whose keys are key_prefix + the names above (llava-hf:
 * "vision_tower." + "vision_model.encoder..."). visual_projection is loaded when the file
 * has key_prefix + "visual_projection.weight". A checkpoint without key_prefix +
 * "vision_model.*" weights is an error that says so. */
aspo_status clip_open_vision(const struct json_t *vision_config, const char *where,
                             const char *dir, const char *key_prefix, int storage_dtype,
                             clip_model *m);

/* How clip_open_with and clip_open_vision_with read the checkpoint. */
typedef struct clip_open_options {
    int storage_dtype; /* as clip_open's: -1 = the file's */
    /* Memory plans (`aspo run --dry-run`): declare and allocate without reading tensor
     * data. The checkpoint's header, when there is one, still says which optional tensors
     * exist and gives "the file's" dtype; without one a full CLIP config has
     * visual_projection and logit_scale, a bare vision config neither, and the dtype is
     * config.json's torch_dtype. */
    bool skip_weights;
} clip_open_options;

aspo_status clip_open_with(const char *dir, const clip_open_options *o, clip_model *m);
aspo_status clip_open_vision_with(const struct json_t *vision_config, const char *where,
                                  const char *dir, const char *key_prefix,
                                  const clip_open_options *o, clip_model *m);
void clip_close(clip_model *m);

/* pixels (B,ch,H,W) -> patches (B,N,ch*P*P) in a patch conv weight's (ch,py,px) order, so
 * that the conv is a matmul with its weight as (C, ch*P*P); the unfold runs on the host
 * (frozen towers take no gradient to the pixels). */
tensor *clip_unfold_patches(tensor *pixels, int64_t P);

/* Number of hidden_states entries of the vision tower: num_layers + 1. */
int clip_vision_num_hidden(const clip_model *m);

/* pixels (B,3,H,W) f32 with H = W = image_size (clip_preprocess's layout). Returns the
 * image features (B,E) after visual_projection, not normalised (get_image_features;
 * CLIPOutput.image_embeds is their l2 normalisation), or the pooled output (B,C)
 * (post_layernorm of the class token) when the file has no visual_projection.
 * hidden_of_layer: NULL, or gets transformers' hidden_states[want_layer] (B,1+N,C):
 * index 0 is the embeddings after pre_layrnorm, index i the output of encoder layer i
 * (no post_layernorm); negative indices count from the end as in Python, so LLaVA's
 * vision_feature_layer -2 is want_layer = -2. Out of range is an error. */
tensor *clip_vision_forward(clip_model *m, tensor *pixels, int want_layer,
                            tensor **hidden_of_layer);

/* hidden_states[want_layer] (B,1+N,C) alone: the layers after it are not run (LLaVA's
 * features need layer -2, not the last layer, the pooler or the projection). */
tensor *clip_vision_hidden(clip_model *m, tensor *pixels, int want_layer);

/* ids (B,T) i32 (padded rows are fine: attention is causal and pooling stops at the end
 * token); key_mask (B,T) nonzero = real token, or NULL. Pools each row at its first
 * eos_token_id (or, for legacy configs with eos_token_id 2, at the argmax of the ids, as
 * transformers does) and returns text_projection of it (B,E). A row without the end token
 * is an error. Not normalised (get_text_features), like clip_vision_forward. */
tensor *clip_text_forward(clip_model *m, tensor *ids, tensor *key_mask);

/* CLIPModel's logits_per_image (B_img,B_txt): exp(logit_scale) * normalize(img) @
 * normalize(txt)^T; logits_per_text is its transpose. logit_scale: a scalar tensor (the
 * model's m->logit_scale, the log of the scale; required). */
tensor *clip_logits(tensor *image_embeds, tensor *text_embeds, tensor *logit_scale);

#endif
