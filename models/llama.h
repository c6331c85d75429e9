/* LLaMA as transformers' LlamaForCausalLM (4.40-4.44 semantics): Hugging Face config.json
 * and weight names, grouped-query attention with rotate-half RoPE (no scaling or linear),
 * SiLU-gated MLP, RMSNorm, tied or separate lm_head, and PEFT LoRA adapters inside the
 * linears. The reference model of preference training is this model with adapters off
 * (lora_set_enabled(false)): no second copy of the weights. */
#ifndef ASPO_MODELS_LLAMA_H
#define ASPO_MODELS_LLAMA_H

#include <stdbool.h>
#include <stdint.h>

#include "models/peft_adapter.h"
#include "nn/linear.h"
#include "nn/modules.h"

struct json_t;

enum { LLAMA_MAX_EOS = 8 };

/* Bounds on config.json's sizes. The largest LLaMA-family checkpoints are far inside them
 * (Llama 3.1 405B: hidden 16384, intermediate 53248, 126 layers, 128256 tokens), and they
 * keep every product of sizes small: no tensor has more than vocab x dim = 2^44 elements
 * and a model fewer than 2^56, so no element or byte count made from a config (parameter
 * store, gradients, optimizer state, memory plans) can wrap 64 bits. */
enum {
    LLAMA_MAX_DIM = 1 << 20,    /* hidden, intermediate, heads x head size, ... */
    LLAMA_MAX_LAYERS = 4096,
    LLAMA_MAX_VOCAB = 1 << 24,
};

typedef struct llama_config {
    int64_t hidden_size, intermediate_size, num_layers, num_heads, num_kv_heads, head_dim;
    int64_t vocab_size, max_position_embeddings;
    double rms_norm_eps, rope_theta;
    double rope_linear_factor; /* rope_scaling {"type": "linear", "factor": f}; 1 = none */
    bool tie_word_embeddings, attention_bias, mlp_bias;
    int bos_token_id, pad_token_id; /* -1 when absent or null */
    int eos_token_ids[LLAMA_MAX_EOS], n_eos; /* eos_token_id may be a list (Llama 3) */
    int torch_dtype; /* DT_F32/DT_BF16/DT_F16 from "torch_dtype", -1 when absent */
} llama_config;

/* Reads config.json. Required: hidden_size, intermediate_size, num_hidden_layers,
 * num_attention_heads, vocab_size, rms_norm_eps (every LLaMA config has it, and its
 * default differs between releases). The rest take transformers' defaults when missing:
 * num_key_value_heads = num_attention_heads, head_dim = hidden_size / heads, rope_theta
 * 10000, rope_scaling none, max_position_embeddings 2048, tie_word_embeddings false,
 * bos 1, eos 2, pad none, no biases. Unknown fields are ignored. Every size must be
 * positive and within the bounds above, hidden_size divisible by the heads (without
 * head_dim), the heads by the kv heads; token ids must be in the vocabulary (null = none;
 * pad_token_id -1 = none too), at most LLAMA_MAX_EOS of them for eos. Errors name the file,
 * the field and its value; a rope_scaling type other than linear, a hidden_act other than
 * silu or a non-zero attention_dropout is ASPO_ERR_UNSUPPORTED. */
aspo_status llama_config_load(const char *path, llama_config *c);
/* A container's text_config (LLaVA's, InstructBLIP's) with LlamaConfig's defaults filled in
 * for the fields llama_config_from_json requires: save_pretrained leaves out whatever
 * equals them (llava-1.5-7b-hf's text_config has no hidden_size), and the container builds
 * LlamaConfig(**text_config). Sets model_type "llama". ASPO_ERR_OOM only. */
aspo_status llama_config_fill_defaults(struct json_t *tc, const char *where);
/* llama_config_load's reading of a parsed JSON object (e.g. LLaVA's "text_config");
 * `where` names it. */
aspo_status llama_config_from_json(const struct json_t *obj, const char *where,
                                   llama_config *c);

typedef struct llama_layer {
    rmsnorm input_norm, post_attention_norm;
    linear q, k, v, o;    /* self_attn.{q,k,v,o}_proj */
    linear gate, up, down; /* mlp.{gate,up,down}_proj */
} llama_layer;

typedef struct llama_model llama_model;

/* One decoder layer's handle for activation checkpointing (lives as long as the model). */
typedef struct llama_block_ctx {
    const llama_model *m;
    int layer;
} llama_block_ctx;

/* Opened in place by llama_open: the layers' checkpoint handles point at it, so do not
 * copy it by value. */
struct llama_model {
    llama_config cfg;
    param_store ps; /* every weight and adapter: one allocation */
    embedding embed;
    llama_layer *layers;
    llama_block_ctx *blocks;
    rmsnorm norm;
    linear lm_head; /* weight is embed.weight when tie_word_embeddings */
    bool has_lora;
    peft_config peft; /* the adapter's configuration when has_lora */
    bool checkpoint_layers;
    dtype storage_dt;
    dtype activation_dt; /* the hidden states: f32, or storage_dt when that is bf16/f16 */
    char *dir;         /* model directory as given */
    char *config_text; /* config.json as read, for llama_save_merged */
    char *name_prefix; /* llama_open_spec.name_prefix ("" for a plain LLaMA) */
};

typedef struct llama_options {
    int storage_dtype; /* DT_F32/DT_BF16/DT_F16 for the frozen weights; -1 = the file's */
    /* LoRA: lora.r = 0 means none, unless adapter_dir is set (then r, alpha, dropout,
     * rsLoRA and targets come from its adapter_config.json). */
    lora_config lora;
    /* PEFT target_modules: comma-separated suffixes ("q_proj,v_proj"), "all-linear" (every
     * linear of the decoder layers, not lm_head), or NULL = PEFT's LLaMA default
     * "q_proj,v_proj". */
    const char *lora_targets;
    uint64_t lora_seed; /* A's kaiming-uniform init (B starts at zero) */
    /* A PEFT adapter directory to load. When lora.r > 0 too, its r, alpha, rsLoRA and
     * targeted modules must equal the options' (an error says which differs); the
     * options' dropout wins. */
    const char *adapter_dir;
    bool checkpoint_layers; /* re-run each decoder layer in backward (tensor_checkpoint) */
    /* The hidden states' dtype: DT_F32 (the default, zero), or the frozen weights' dtype
     * (-1 names it whatever it is), which computes as transformers does with a model loaded
     * in that dtype (PEFT's adapters still run in f32, logits come out f32). */
    int activation_dtype;
    /* Memory plans (`aspo run --dry-run`): declare and allocate from the config alone. No
     * tensor data is read (checkpoint or adapter) and LoRA is not initialised; the
     * checkpoint's header, when there is one, still gives "the file's" storage dtype, else
     * config.json's torch_dtype does. */
    bool skip_weights;
} llama_options;

llama_options llama_defaults(void);

/* config.json -> declare parameters (one param_store) -> add LoRA -> allocate -> load
 * weights (model.safetensors or a sharded index; f32/bf16/f16 converted to the storage
 * dtype) -> init or load the adapter. On failure m is left closed (llama_close is a no-op)
 * and the message names the file and tensor. */
aspo_status llama_open(const char *model_dir, const llama_options *opt, llama_model *m);
void llama_close(llama_model *m);

/* How a model that contains a LLaMA (LLaVA) opens it in place. */
typedef struct llama_open_spec {
    /* Put before every parameter name, which is both the checkpoint key and the PEFT
     * module name: "language_model." for llava-hf ("language_model.model.layers.0.
     * self_attn.q_proj.weight"). NULL or "" = none. */
    const char *name_prefix;
    /* A parsed config read instead of model_dir/config.json (LLaVA's text_config with
     * LlamaConfig's defaults filled in); config_where names it in messages. */
    const struct json_t *config;
    const char *config_where;
    /* Called after the LLaMA's parameters and adapters are declared and before the store
     * is allocated: declares more parameters in m->ps (LLaVA's projector, with LoRA when
     * wanted), which are then loaded from the same checkpoint, and whose adapters are
     * initialised, loaded and saved with the LLaMA's. adapter: the adapter_dir's config,
     * or NULL without one. NULL = nothing more. */
    aspo_status (*declare_more)(void *ctx, llama_model *m, const peft_config *adapter);
    void *ctx;
} llama_open_spec;

/* llama_open with a spec (NULL spec = llama_open). */
aspo_status llama_open_with(const char *model_dir, const llama_options *opt,
                            const llama_open_spec *spec, llama_model *m);

/* ids (B,T) i32; key_mask (B,T) f32/i32 nonzero = real token, or NULL, or the segment
 * layout (B,2,T) i32 of packed sequences (tensor_attention); positions: host (B,T) position
 * ids or NULL = 0..T-1 for every row (transformers' default, also with padding). Returns the
 * final normed hidden states (B,T,C) f32. */
tensor *llama_forward_hidden(llama_model *m, tensor *ids, tensor *key_mask,
                             const int32_t *positions);
/* The same from input embeddings x (B,T,C) f32 instead of ids (LLaVA puts image features
 * among the token embeddings); gradients flow into x. */
tensor *llama_forward_hidden_embeds(llama_model *m, tensor *x, tensor *key_mask,
                                    const int32_t *positions);
/* hidden (...,C) -> logits (...,V) f32; lets the trainer compute log-probs in chunks. */
tensor *llama_lm_head(llama_model *m, tensor *hidden);
/* Logits (B,T,V) f32. */
tensor *llama_forward(llama_model *m, tensor *ids, tensor *key_mask, const int32_t *positions);

/* Writes the adapter as PEFT does (adapter_config.json + adapter_model.safetensors). */
aspo_status llama_save_adapter(const llama_model *m, const char *out_dir);
/* As llama_save_adapter, with target_modules a regular expression (POSIX ERE and Python re
 * alike) that matches exactly the adapted modules: for a LLaMA inside a larger model whose
 * other parts have modules of the same names (LLaVA's CLIP tower has q_proj too), which
 * PEFT's suffix list would adapt as well. task_type: PEFT's, as adapter_config.json gets it
 * (NULL: null, for a model that PEFT wraps as a plain PeftModel). */
aspo_status llama_save_adapter_exact(const llama_model *m, const char *task_type,
                                     const char *out_dir);
/* Writes model.safetensors (W + scaling * B A for adapted weights, the rest copied, HF
 * names; sharded above 5 GB like save_pretrained) and config.json (the input config with
 * torch_dtype set to out_dtype) that LlamaForCausalLM.from_pretrained loads; tokenizer and
 * generation files of the model directory are copied when present. */
aspo_status llama_save_merged(const llama_model *m, const char *out_dir, dtype out_dtype);
/* What a merged checkpoint holds besides the weights: config.json's text (torch_dtype is set
 * to the dtype written) and files copied from the model directory when they are there (a
 * name may be "sub/file"). llama_save_merged writes a LLaMA's; a model around a LLaMA whose
 * parameters share its store (InstructBLIP) gives its own. */
#define LLAMA_TOKENIZER_FILES                                                              \
    "tokenizer.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json", \
        "added_tokens.json"
typedef struct llama_merged_files {
    const char *config_text;
    const char *const *files;
    size_t n_files;
} llama_merged_files;
aspo_status llama_save_merged_as(const llama_model *m, const llama_merged_files *f,
                                 const char *out_dir, dtype out_dtype);

#endif
