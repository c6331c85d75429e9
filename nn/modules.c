/* Embedding, RMSNorm and LayerNorm modules over the tensor ops, and the training flag. */
#include "modules.h"

#include <stdio.h>

#include "tensor/tensor_ops.h"

static bool training_mode;

bool nn_set_training(bool training)
{
    bool prev = training_mode;
    training_mode = training;
    return prev;
}

bool nn_training(void) { return training_mode; }

aspo_status nn_param_name(char *buf, size_t size, const char *prefix, const char *suffix)
{
    int n = prefix && *prefix ? snprintf(buf, size, "%s.%s", prefix, suffix)
                              : snprintf(buf, size, "%s", suffix);
    if (n < 0 || (size_t)n >= size)
        return aspo_fail(ASPO_ERR_USAGE, "parameter name %s.%s is longer than %zu bytes",
                         prefix ? prefix : "", suffix, size - 1);
    return ASPO_OK;
}

/* Declares "<prefix>.<suffix>" of shape (dim). */
static aspo_status declare_vector(tensor **out, param_store *ps, const char *prefix,
                                  const char *suffix, int64_t dim, dtype dt, bool trainable)
{
    char name[256];
    aspo_status s = nn_param_name(name, sizeof name, prefix, suffix);
    if (s) return s;
    *out = param_declare(ps, name, dt, DIMS(dim), trainable);
    return *out ? ASPO_OK : aspo_error_status();
}

static aspo_status check_dim(const char *prefix, const char *what, int64_t dim, dtype dt)
{
    if (dim < 1 || !dtype_is_float(dt))
        return aspo_fail(ASPO_ERR_SHAPE, "%s: %s of size %lld in %s; need size >= 1 and a "
                         "float dtype", prefix, what, (long long)dim, dtype_name(dt));
    return ASPO_OK;
}

aspo_status embedding_declare(embedding *e, param_store *ps, const char *prefix,
                              int64_t num_embeddings, int64_t dim, dtype dt, bool trainable)
{
    *e = (embedding){.num_embeddings = num_embeddings, .dim = dim};
    aspo_status s = check_dim(prefix, "embedding", num_embeddings < dim ? num_embeddings : dim, dt);
    if (s) return s;
    char name[256];
    if ((s = nn_param_name(name, sizeof name, prefix, "weight"))) return s;
    e->weight = param_declare(ps, name, dt, DIMS(num_embeddings, dim), trainable);
    return e->weight ? ASPO_OK : aspo_error_status();
}

tensor *embedding_forward(const embedding *e, tensor *ids)
{
    return tensor_embedding(e->weight, ids); /* (...) -> (...,C) */
}

aspo_status rmsnorm_declare(rmsnorm *n, param_store *ps, const char *prefix, int64_t dim,
                            float eps, dtype dt, bool trainable)
{
    *n = (rmsnorm){.eps = eps};
    aspo_status s = check_dim(prefix, "rmsnorm", dim, dt);
    return s ? s : declare_vector(&n->weight, ps, prefix, "weight", dim, dt, trainable);
}

tensor *rmsnorm_forward(const rmsnorm *n, tensor *x)
{
    return tensor_rmsnorm(x, n->weight, n->eps); /* (...,C) */
}

aspo_status layernorm_declare(layernorm *n, param_store *ps, const char *prefix, int64_t dim,
                              float eps, dtype dt, bool trainable)
{
    *n = (layernorm){.eps = eps};
    aspo_status s = check_dim(prefix, "layernorm", dim, dt);
    if (!s) s = declare_vector(&n->weight, ps, prefix, "weight", dim, dt, trainable);
    if (!s) s = declare_vector(&n->bias, ps, prefix, "bias", dim, dt, trainable);
    return s;
}

tensor *layernorm_forward(const layernorm *n, tensor *x)
{
    return tensor_layernorm(x, n->weight, n->bias, n->eps); /* (...,C) */
}
