/* Small modules as plain structs of parameter tensors, declared into a param_store under
 * Hugging Face names ("<prefix>.weight", "<prefix>.bias"), and the global training flag. */
#ifndef ASPO_NN_MODULES_H
#define ASPO_NN_MODULES_H

#include <stdbool.h>

#include "tensor/params.h"

/* Training mode turns dropout on (LoRA dropout, attention dropout); returns the previous
 * setting. Off by default, as after model.eval(). */
bool nn_set_training(bool training);
bool nn_training(void);

/* nn.Embedding: weight (V,C). */
typedef struct embedding {
    tensor *weight;
    int64_t num_embeddings, dim;
} embedding;

aspo_status embedding_declare(embedding *e, param_store *ps, const char *prefix,
                              int64_t num_embeddings, int64_t dim, dtype dt, bool trainable);
tensor *embedding_forward(const embedding *e, tensor *ids); /* (...) i32 -> (...,C) */

/* LlamaRMSNorm: weight (C), y = x / sqrt(mean(x^2) + eps) * weight. */
typedef struct rmsnorm {
    tensor *weight;
    float eps;
} rmsnorm;

aspo_status rmsnorm_declare(rmsnorm *n, param_store *ps, const char *prefix, int64_t dim,
                            float eps, dtype dt, bool trainable);
tensor *rmsnorm_forward(const rmsnorm *n, tensor *x); /* (...,C) -> (...,C) */

/* nn.LayerNorm with elementwise affine: weight and bias (C). */
typedef struct layernorm {
    tensor *weight, *bias;
    float eps;
} layernorm;

aspo_status layernorm_declare(layernorm *n, param_store *ps, const char *prefix, int64_t dim,
                              float eps, dtype dt, bool trainable);
tensor *layernorm_forward(const layernorm *n, tensor *x); /* (...,C) -> (...,C) */

/* "<prefix>.<suffix>" into buf; an error when it does not fit. Shared by the modules. */
aspo_status nn_param_name(char *buf, size_t size, const char *prefix, const char *suffix);

#endif
