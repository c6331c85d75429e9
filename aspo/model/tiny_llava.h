/* Small random LLaVA-1.5 checkpoints in the llava-hf layout of transformers 4.44
 * (LlavaForConditionalGeneration): config.json with text_config (the LLaMA of
 * aspo/model/tiny_llama.h) and vision_config (a CLIP ViT with quick_gelu), image_token_index,
 * vision_feature_layer -2, select strategy "default", projector_hidden_act "gelu";
 * preprocessor_config.json (CLIPImageProcessor with CLIP's mean and std, crop = resize =
 * image_size); model.safetensors with language_model.*, vision_tower.vision_model.* and
 * multi_modal_projector.linear_1/2. For the benchmark. */
#ifndef ASPO_TINY_LLAVA_H
#define ASPO_TINY_LLAVA_H

#include <stdint.h>

#include "aspo/model/tiny_llama.h"

typedef struct tiny_llava_spec {
    tiny_llama_spec text;
    int64_t vision_layers, vision_dim, vision_heads, vision_ffn, image_size, patch_size;
    int32_t image_token; /* image_token_index: an id of the text vocabulary */
} tiny_llava_spec;

/* Writes the three files into dir (made when missing). Weights are f32 from a
 * counter-based RNG keyed by seed: linears and embeddings normal(0, 0.02), biases 0,
 * LayerNorm weights 1 and RMSNorm weights 1. A spec that does not fit is a usage error. */
aspo_status tiny_llava_write(const char *dir, const tiny_llava_spec *spec, uint64_t seed);

#endif
