/* LoRA as PEFT does it: y = base(x) + scaling * B(A(dropout(x))), A (r,in) and B (out,r)
 * trainable f32, A kaiming-uniform (a = sqrt(5)), B zeros, scaling alpha/r or, with rsLoRA,
 * alpha/sqrt(r). The adapters live inside `linear` (nn/linear.h); this file holds the
 * configuration, the global on/off switch and the initialisation. */
#ifndef ASPO_NN_LORA_H
#define ASPO_NN_LORA_H

#include <stdbool.h>
#include <stdint.h>

#include "tensor/params.h"

typedef struct lora_config {
    int r;           /* rank; 0 = no adapter */
    float alpha;     /* lora_alpha */
    float dropout;   /* lora_dropout, on the adapter's input only, in training mode */
    bool rslora;     /* use_rslora: scaling alpha/sqrt(r) */
} lora_config;

/* alpha/r, or alpha/sqrt(r) with rslora. */
float lora_scaling(const lora_config *cfg);
/* Checks r >= 1, alpha finite, dropout in [0,1); `where` names the layer in the message. */
aspo_status lora_config_check(const lora_config *cfg, const char *where);

/* Adapters on or off for every linear; returns the previous setting. The DPO reference
 * model is the base model with adapters off: `bool prev = lora_set_enabled(false); ...
 * lora_set_enabled(prev);`. */
bool lora_set_enabled(bool enabled);
bool lora_enabled(void);

/* PEFT's init after param_store_allocate: every "*.lora_A.weight" (r,in) uniform in
 * [-1/sqrt(in), 1/sqrt(in)] from Philox keyed by seed, with the parameter's index in the
 * store choosing the counter range (so it reproduces on every backend and run), and every
 * "*.lora_B.weight" zero. */
aspo_status lora_init_weights(param_store *ps, uint64_t seed);

#endif
