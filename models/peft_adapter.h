/* PEFT LoRA adapters on disk, both ways, and merging them into the base weights. Generic
 * over a param_store whose parameters carry the Hugging Face module names
 * ("<module>.weight", "<module>.lora_A.weight", "<module>.lora_B.weight", nn/linear.h):
 * PEFT's file key is "base_model.model." + that name, e.g.
 * base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight.
 *
 * Supported: peft_type LORA with bias "none", no DoRA, no rank/alpha patterns, no
 * modules_to_save, no layer_replication; target_modules as a list of suffixes, as a
 * regular expression string (matched whole, POSIX extended syntax: PEFT's re.fullmatch for
 * the common patterns; no \d), or "all-linear"; layers_to_transform with the default
 * layers pattern. Anything else is ASPO_ERR_UNSUPPORTED naming the file and the key. */
#ifndef ASPO_MODELS_PEFT_ADAPTER_H
#define ASPO_MODELS_PEFT_ADAPTER_H

#include <stdbool.h>
#include <stddef.h>

#include "nn/lora.h"
#include "tensor/params.h"

typedef struct peft_config {
    lora_config lora;        /* r, lora_alpha, lora_dropout, use_rslora */
    char **targets;          /* target_modules as a list of names/suffixes */
    int n_targets;
    char *target_regex;      /* target_modules given as one string (re.fullmatch) */
    bool all_linear;         /* "all-linear": every linear except the output layer */
    int *layers;             /* layers_to_transform; NULL = every layer */
    int n_layers;
    char task_type[32];      /* "CAUSAL_LM"; "" writes null */
} peft_config;

/* A config from options: targets "q_proj,v_proj" (comma-separated suffixes) or
 * "all-linear"; NULL targets = "q_proj,v_proj" (PEFT's default for LLaMA). */
aspo_status peft_config_init(peft_config *c, const lora_config *lora, const char *targets);
/* Reads <dir>/adapter_config.json; errors name the file and the key. */
aspo_status peft_config_load(const char *dir, peft_config *c);
void peft_config_free(peft_config *c);

/* Whether module `name` (e.g. "model.layers.3.mlp.up_proj") gets an adapter, as PEFT's
 * check_target_module_exists decides; is_output marks the output layer (lm_head), which
 * all-linear leaves out. */
bool peft_targets_module(const peft_config *c, const char *name, bool is_output);

/* Writes <dir>/adapter_config.json (the keys PEFT 0.12 writes for LoRA) and
 * <dir>/adapter_model.safetensors (every *.lora_A/B.weight of ps, f32). Both are written
 * under temporary names first and then renamed, so neither is ever half-written. */
aspo_status peft_adapter_save(const param_store *ps, const peft_config *c,
                              const char *base_model, const char *dir);
/* Loads <dir>/adapter_model.safetensors into the declared LoRA tensors of ps: every key
 * must name one of them with the same shape, and every one of them must be in the file.
 * f32/bf16/f16 values are converted to f32. */
aspo_status peft_adapter_load(param_store *ps, const char *dir);

/* Writes every non-LoRA parameter of ps into dir as <stem>.safetensors (sharded above
 * max_shard_bytes, see weights_save) in out_dt, with W + scaling * B A for each weight
 * that has an adapter. skip (optional) leaves parameters out. In f16, a weight beyond its
 * range (65504) is ASPO_ERR_USAGE counting the tensors, before anything is written. */
aspo_status peft_merge_save(const param_store *ps, float scaling, const char *dir,
                            dtype out_dt, size_t max_shard_bytes,
                            bool (*skip)(const tensor *param, void *ctx), void *skip_ctx);

#endif
