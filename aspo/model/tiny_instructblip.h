/* Small random InstructBLIP checkpoints in the layout of transformers 4.44's
 * InstructBlipForConditionalGeneration.save_pretrained, for the benchmark: config.json with
 * vision_config (qkv_bias, gelu, eps 1e-6), qformer_config (cross-attention every 2nd layer
 * as released, 512 positions, eps 1e-12) and text_config (the LLaMA of aspo/model/tiny_llama.h),
 * no image token (4.44's layout); preprocessor_config.json (BlipImageProcessor at
 * image_size); model.safetensors with vision_model.*, qformer.*, query_tokens,
 * language_projection.* and language_model.*; qformer_tokenizer/ (a BERT WordPiece
 * vocabulary that tokenizes any ASCII text: letters and digits, and as whole words those of
 * the benchmark's instruction "Describe the image.", which is then [CLS] describe the
 * image . [SEP], ids 2 5 6 7 8 3). */
#ifndef ASPO_TINY_INSTRUCTBLIP_H
#define ASPO_TINY_INSTRUCTBLIP_H

#include <stdint.h>

#include "aspo/model/tiny_llama.h"

/* The Q-Former's word embeddings: rows enough for qformer_tokenizer/vocab.txt (81 ids). */
enum { TINY_INSTRUCTBLIP_QFORMER_VOCAB = 128 };

typedef struct tiny_instructblip_spec {
    tiny_llama_spec text;
    int64_t vision_layers, vision_dim, vision_heads, vision_ffn, image_size, patch_size;
    int64_t qformer_layers, qformer_dim, qformer_heads, qformer_ffn;
    int64_t queries; /* num_query_tokens: the LLM positions an image becomes */
} tiny_instructblip_spec;

/* Writes the files into dir (made when missing). Weights are f32 from a counter-based RNG
 * keyed by seed: matrices, embeddings and query_tokens normal(0, 0.02), biases 0 (the k
 * third of the vision qkv bias too, as transformers fixes it), LayerNorm weights 1 and
 * RMSNorm weights 1: every block is normed, so activations stay O(1). A spec that does not
 * fit is a usage error. */
aspo_status tiny_instructblip_write(const char *dir, const tiny_instructblip_spec *spec,
                                    uint64_t seed);

#endif
