/* Small random LLaMA checkpoints in the Hugging Face layout (config.json +
 * model.safetensors), for the demo, the benchmark and the command-line tests. */
#ifndef ASPO_TINY_LLAMA_H
#define ASPO_TINY_LLAMA_H

#include <stdint.h>

#include "tensor/error.h"

typedef struct tiny_llama_spec {
    int64_t layers, dim, heads, kv_heads, ffn, vocab, max_positions;
    int bos_id, eos_id, pad_id; /* pad -1: none */
} tiny_llama_spec;

/* Writes <dir>/config.json and <dir>/model.safetensors (f32, normal(0, 0.02) weights as
 * transformers initialises LLaMA, RMSNorm weights 1) from a counter-based RNG keyed by seed. */
aspo_status tiny_llama_write(const char *dir, const tiny_llama_spec *spec, uint64_t seed);

#endif
