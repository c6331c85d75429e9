/* nn.Linear with an optional PEFT LoRA adapter hidden inside:
 *   y = x W^T + b  [+ scaling * (dropout(x) A^T) B^T  when adapters are enabled]
 * W (out,in) may be f32, bf16 or f16 (frozen base weights); A (r,in) and B (out,r) are
 * trainable f32. Parameter names follow Hugging Face and PEFT: "<prefix>.weight",
 * "<prefix>.bias", "<prefix>.lora_A.weight", "<prefix>.lora_B.weight". */
#ifndef ASPO_NN_LINEAR_H
#define ASPO_NN_LINEAR_H

#include "lora.h"

typedef struct linear {
    tensor *weight;  /* (out,in) */
    tensor *bias;    /* (out) or NULL */
    tensor *lora_A;  /* (r,in) f32, or NULL without an adapter */
    tensor *lora_B;  /* (out,r) f32 */
    int64_t in_features, out_features;
    float lora_scaling, lora_dropout;
} linear;

/* Declares "<prefix>.weight" (and "<prefix>.bias" when bias) in ps. */
aspo_status linear_declare(linear *l, param_store *ps, const char *prefix,
                           int64_t in_features, int64_t out_features, bool bias, dtype dt,
                           bool trainable);
/* Declares the adapter "<prefix>.lora_A.weight", "<prefix>.lora_B.weight" (trainable f32).
 * Call before param_store_allocate; lora_init_weights fills them after it. */
aspo_status linear_add_lora(linear *l, param_store *ps, const char *prefix,
                            const lora_config *cfg);
/* x (...,in) -> (...,out). */
tensor *linear_forward(const linear *l, tensor *x);

#endif
