/* Softmax and log-softmax over the last dim, the log-probability of target tokens
 * (gather_logprobs) and cross-entropy built on it, with their backward rules. Kernels
 * subtract the row max and accumulate in double; half-precision inputs give outputs of
 * their own dtype, everything else f32. */
#include "op_backward.h"
#include "runtime.h"
#include "tensor_ops.h"

static tensor *softmax_op(tensor *x, bool log)
{
    if (!x) return NULL;
    const char *name = log ? "log_softmax" : "softmax";
    char b[96];
    if (x->ndim < 1 || !dtype_is_float(x->dt)) {
        aspo_fail(ASPO_ERR_SHAPE, "%s: input %s; need at least one dim and a float dtype", name,
                  tensor_describe(x, b, sizeof b));
        return NULL;
    }
    /* bf16/f16 activations stay half on GPU backends; anything else is f32. */
    dtype dt = (x->dt == DT_BF16 || x->dt == DT_F16) ? x->dt : DT_F32;
    tensor *out = tensor_empty_like(x, dt);
    op_params p = {.i = {log ? 1 : 0}};
    return op_exec(OP_SOFTMAX, &x, 1, &p, &out, 1);
}

tensor *tensor_softmax(tensor *x) { return softmax_op(x, false); }
tensor *tensor_log_softmax(tensor *x) { return softmax_op(x, true); }

aspo_status backward_softmax(const tape_node *n, tensor *dy)
{
    /* softmax: dx = y*(dy - sum(dy*y)); log-softmax: dx = dy - exp(y)*sum(dy). */
    tensor *x = n->in[0];
    tensor *dx = tensor_empty_like(x, DT_F32);
    tensor *in[2] = {n->out[0], dy};
    return grad_accumulate(x, op_exec(OP_SOFTMAX_BACKWARD, in, 2, &n->p, &dx, 1));
}

/* logits (...,V) and targets (...) i32 with the same leading dims. */
static bool gather_shapes_fit(const char *name, const tensor *logits, const tensor *targets)
{
    char a[96], b[96];
    bool fits = logits->ndim >= 1 && targets->ndim == logits->ndim - 1;
    for (int d = 0; fits && d < targets->ndim; d++) fits = targets->shape[d] == logits->shape[d];
    if (!fits) {
        aspo_fail(ASPO_ERR_SHAPE, "%s: logits %s and targets %s do not fit (need (...,V) and (...))",
                  name, tensor_describe(logits, a, sizeof a), tensor_describe(targets, b, sizeof b));
        return false;
    }
    if (!dtype_is_float(logits->dt) || targets->dt != DT_I32) {
        aspo_fail(ASPO_ERR_SHAPE, "%s: logits %s must be a float dtype and targets %s i32", name,
                  tensor_describe(logits, a, sizeof a), tensor_describe(targets, b, sizeof b));
        return false;
    }
    return true;
}

tensor *tensor_gather_logprobs(tensor *logits, tensor *targets, int ignore_index)
{
    if (!logits || !targets) return NULL;
    if (!gather_shapes_fit("gather_logprobs", logits, targets)) return NULL;
    int64_t V = logits->shape[logits->ndim - 1], N = tensor_numel(targets);
    /* (...,V) -> (N,V) and (...) -> (N): the kernel sees rows only. */
    tensor *rows = logits->ndim == 2 ? logits : tensor_reshape(logits, DIMS(N, V));
    tensor *ids = targets->ndim == 1 ? targets : tensor_reshape(targets, DIMS(N));
    tensor *out[2] = {tensor_empty(DT_F32, DIMS(N)), tensor_empty(DT_F32, DIMS(N))};
    tensor *in[2] = {rows, ids};
    op_params p = {.i = {ignore_index}};
    tensor *logp = op_exec(OP_GATHER_LOGPROBS, in, 2, &p, out, 2); /* (N) */
    if (!logp || targets->ndim == 1) return logp;
    return tensor_reshape(logp, targets->ndim, targets->shape); /* (...) */
}

aspo_status backward_gather_logprobs(const tape_node *n, tensor *dy)
{
    /* dlogits = dlogp * (onehot(target) - softmax(logits)), from the saved lse (N). */
    tensor *logits = n->in[0];
    tensor *dlogits = tensor_empty(DT_F32, logits->ndim, logits->shape); /* (N,V) */
    tensor *in[4] = {logits, n->in[1], n->out[1], dy};
    return grad_accumulate(logits,
                           op_exec(OP_GATHER_LOGPROBS_BACKWARD, in, 4, &n->p, &dlogits, 1));
}

tensor *tensor_cross_entropy(tensor *logits, tensor *targets, int ignore_index)
{
    if (!logits || !targets) return NULL;
    tensor *logp = tensor_gather_logprobs(logits, targets, ignore_index); /* (...) */
    if (!logp) return NULL;
    /* The mean's denominator counts non-ignored targets: read them on the host, into the
     * host step arena (no heap allocation per call). */
    int64_t N = tensor_numel(targets);
    int32_t *ids = arena_alloc(&runtime_current()->host, sizeof(int32_t) * (N ? N : 1));
    if (!ids || tensor_to_host(targets, ids)) return NULL;
    int64_t count = 0;
    for (int64_t i = 0; i < N; i++) count += ids[i] != ignore_index;
    /* Every row ignored: logp is all zeros, so scaling by 0 gives a 0 loss and 0 grads. */
    return tensor_scale(tensor_sum_all(logp), count ? -1.0f / (float)count : 0.0f);
}
