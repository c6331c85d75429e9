/* The vision encoder of BLIP-2 and InstructBLIP (EVA ViT-g/14 in the released models) as
 * transformers' InstructBlipVisionModel: patch embedding with a bias, class token, position
 * embedding, pre-LN encoder layers whose attention is one fused qkv linear (biases on q and
 * v only, none on k) and a `projection`, GELU, and post_layernorm over every position. No
 * pre-layernorm (CLIP has one). Frozen (no LoRA); the ops are differentiable. */
#ifndef ASPO_MODELS_BLIP_VISION_H
#define ASPO_MODELS_BLIP_VISION_H

#include <stdbool.h>
#include <stdint.h>

#include "models/clip.h"
#include "nn/linear.h"
#include "nn/modules.h"

struct json_t;

/* CLIP's tower fields (clip_tower_config: sizes, hidden_act, layer_norm_eps) with
 * InstructBlipVisionConfig's defaults, which save_pretrained leaves out: 1408 wide, 6144,
 * 39 layers, 16 heads, 224 pixels, patch 14, gelu, eps 1e-6; and qkv_bias (default true). */
typedef struct blip_vision_config {
    clip_tower_config tower;
    bool qkv_bias;
} blip_vision_config;

void blip_vision_defaults(blip_vision_config *c);
/* Reads a vision_config object; `where` names it in messages. Errors as
 * clip_tower_config_from_json's, and qkv_bias must be a boolean. */
aspo_status blip_vision_config_from_json(const struct json_t *obj, const char *where,
                                         blip_vision_config *c);

typedef struct blip_vision_layer {
    layernorm ln1, ln2; /* layer_norm1, layer_norm2 */
    linear qkv;         /* self_attn.qkv (3C,C); its bias (3C) holds q, 0, v */
    linear proj;        /* self_attn.projection */
    linear fc1, fc2;    /* mlp.fc1, mlp.fc2 */
} blip_vision_layer;

typedef struct blip_vision {
    blip_vision_config cfg;
    tensor *class_embedding;    /* embeddings.class_embedding (1,1,C) */
    tensor *patch_weight;       /* embeddings.patch_embedding.weight (C,3,P,P) */
    tensor *patch_bias;         /* embeddings.patch_embedding.bias (C) */
    tensor *position_embedding; /* embeddings.position_embedding (1,1+N,C) */
    blip_vision_layer *layers;
    layernorm post_ln; /* post_layernorm */
} blip_vision;

/* Declares the encoder's parameters in ps (frozen, in dtype dt) under prefix
 * ("vision_model"), with Hugging Face's names. Call before param_store_allocate. */
aspo_status blip_vision_declare(blip_vision *v, param_store *ps, const char *prefix,
                                const blip_vision_config *c, dtype dt);
void blip_vision_free(blip_vision *v);

/* Positions per image: (image_size / patch_size)^2 patches + the class token. */
int64_t blip_vision_positions(const blip_vision_config *c);

/* pixels (B,3,S,S) f32, S = image_size (preprocessed as BlipImageProcessor does) ->
 * last_hidden_state (B,1+N,C) f32: post_layernorm of the last layer's output, the class
 * token first. This is what the Q-Former cross-attends to. */
tensor *blip_vision_forward(const blip_vision *v, tensor *pixels);

#endif
