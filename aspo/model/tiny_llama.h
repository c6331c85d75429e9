/* Small random LLaMA checkpoints in the Hugging Face layout (config.json +
 * model.safetensors), for the demo, the benchmark and the command-line tests. The pieces
 * below serve aspo/model/tiny_llava.c too, which puts the same LLaMA inside a LLaVA. */
#ifndef ASPO_TINY_LLAMA_H
#define ASPO_TINY_LLAMA_H

#include <stdint.h>

#include "tensor/error.h"

struct json_t;

typedef struct tiny_llama_spec {
    int64_t layers, dim, heads, kv_heads, ffn, vocab, max_positions;
    int bos_id, eos_id, pad_id; /* pad -1: none */
} tiny_llama_spec;

/* Writes <dir>/config.json and <dir>/model.safetensors (f32, normal(0, 0.02) weights as
 * transformers initialises LLaMA, RMSNorm weights 1) from a counter-based RNG keyed by seed. */
aspo_status tiny_llama_write(const char *dir, const tiny_llama_spec *spec, uint64_t seed);

/* f32 tensors collected for one safetensors file. */
typedef struct tiny_weights tiny_weights;

tiny_weights *tiny_weights_new(void);
/* name: shape[0..ndim) (ndim 1 to 4), normal(0, std) by Box-Muller over Philox keyed by
 * (seed, the tensor's index in the list), or `constant` everywhere when std is 0. */
aspo_status tiny_weights_add(tiny_weights *w, const char *name, int ndim, const int64_t *shape,
                             double std, float constant, uint64_t seed);
aspo_status tiny_weights_write(const tiny_weights *w, const char *path);
/* name.weight (rows, cols) normal(0, TINY_STD) and name.bias (rows) zeros: a linear; with
 * cols 0 a LayerNorm (rows): weight ones, bias zeros. */
#define TINY_STD 0.02 /* transformers' initializer_range */
aspo_status tiny_weights_add_linear(tiny_weights *w, const char *name, int64_t rows,
                                    int64_t cols, uint64_t seed);
/* dir/file: obj as indented JSON in its key order; takes obj's reference (NULL: out of
 * memory, an error). */
aspo_status tiny_write_json(const char *dir, const char *file, struct json_t *obj);
void tiny_weights_free(tiny_weights *w);

/* The LLaMA's tensors with `prefix` before their names ("" for LlamaForCausalLM,
 * "language_model." inside llava-hf's LLaVA); a spec that does not fit is a usage error. */
aspo_status tiny_llama_add_weights(tiny_weights *w, const char *prefix, const tiny_llama_spec *s,
                                   uint64_t seed);
/* The LlamaConfig of s as a JSON object (a new reference), NULL when out of memory. */
struct json_t *tiny_llama_config(const tiny_llama_spec *s);

#endif
