/* nn.Linear with the LoRA adapter inside: y = x W^T + b + scaling * (dropout(x) A^T) B^T. */
#include "linear.h"

#include "modules.h"
#include "tensor/tensor_ops.h"

aspo_status linear_declare(linear *l, param_store *ps, const char *prefix,
                           int64_t in_features, int64_t out_features, bool bias, dtype dt,
                           bool trainable)
{
    *l = (linear){.in_features = in_features, .out_features = out_features};
    if (in_features < 1 || out_features < 1 || !dtype_is_float(dt))
        return aspo_fail(ASPO_ERR_SHAPE, "%s: linear %lld -> %lld in %s; need sizes >= 1 and "
                         "a float dtype", prefix, (long long)in_features,
                         (long long)out_features, dtype_name(dt));
    char name[256];
    aspo_status s = nn_param_name(name, sizeof name, prefix, "weight");
    if (s) return s;
    if (!(l->weight = param_declare(ps, name, dt, DIMS(out_features, in_features), trainable)))
        return aspo_error_status();
    if (bias) {
        if ((s = nn_param_name(name, sizeof name, prefix, "bias"))) return s;
        if (!(l->bias = param_declare(ps, name, dt, DIMS(out_features), trainable)))
            return aspo_error_status();
    }
    return ASPO_OK;
}

aspo_status linear_add_lora(linear *l, param_store *ps, const char *prefix,
                            const lora_config *cfg)
{
    if (!l->weight)
        return aspo_fail(ASPO_ERR_USAGE, "%s: declare the linear before its LoRA adapter", prefix);
    if (l->lora_A)
        return aspo_fail(ASPO_ERR_USAGE, "%s: already has a LoRA adapter", prefix);
    aspo_status s = lora_config_check(cfg, prefix);
    if (s) return s;
    char name[256];
    if ((s = nn_param_name(name, sizeof name, prefix, "lora_A.weight"))) return s;
    if (!(l->lora_A = param_declare(ps, name, DT_F32, DIMS(cfg->r, l->in_features), true)))
        return aspo_error_status();
    if ((s = nn_param_name(name, sizeof name, prefix, "lora_B.weight"))) return s;
    if (!(l->lora_B = param_declare(ps, name, DT_F32, DIMS(l->out_features, cfg->r), true)))
        return aspo_error_status();
    l->lora_scaling = lora_scaling(cfg);
    l->lora_dropout = cfg->dropout;
    return ASPO_OK;
}

tensor *linear_forward(const linear *l, tensor *x)
{
    if (!x) return NULL;
    if (x->ndim < 2 || x->shape[x->ndim - 1] != l->in_features) {
        char a[96];
        aspo_fail(ASPO_ERR_SHAPE, "linear %s: input %s does not end in %lld features",
                  l->weight->name, tensor_describe(x, a, sizeof a),
                  (long long)l->in_features);
        return NULL;
    }
    /* The transposed weight is a view: the matmul reads W (out,in) in place. */
    tensor *y = tensor_matmul(x, tensor_transpose(l->weight, -1, -2)); /* (...,out) */
    if (l->bias) y = tensor_add(y, l->bias);
    if (l->lora_A && lora_enabled()) {
        /* Half-precision activations run the adapter as torch.autocast does (HF Trainer's
         * bf16=True): its f32 weights are cast to the activations' dtype for the products,
         * which accumulate in f32; their gradients flow back into the f32 weights. */
        tensor *A = l->lora_A, *B = l->lora_B;
        if (x->dt != A->dt) A = tensor_cast(A, x->dt);                        /* (r,in)    */
        if (x->dt != B->dt) B = tensor_cast(B, x->dt);                        /* (out,r)   */
        tensor *h = nn_training() ? tensor_dropout(x, l->lora_dropout) : x;   /* (...,in)  */
        tensor *a = tensor_matmul(h, tensor_transpose(A, -1, -2));            /* (...,r)   */
        /* PEFT scales B(A(x)); scaling the rank-r product instead saves an (...,out)
         * tensor (the same values up to rounding, exactly so for a power of two), and the
         * base output, fresh from its product, takes B's product in place: the GEMM adds
         * it (beta = 1), no (...,out) product or add pass. */
        a = tensor_scale(a, l->lora_scaling);
        y = tensor_matmul_into(y, a, tensor_transpose(B, -1, -2));           /* (...,out) += */
    }
    return y;
}
