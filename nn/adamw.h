/* torch.optim.AdamW over every trainable tensor of a param_store, and global-norm gradient
 * clipping as torch.nn.utils.clip_grad_norm_. The moments m and v of all trainables sit in
 * one allocation on the store's backend. */
#ifndef ASPO_NN_ADAMW_H
#define ASPO_NN_ADAMW_H

#include "tensor/params.h"

typedef struct adamw_config {
    float beta1, beta2, eps, weight_decay;
} adamw_config;

/* torch.optim.AdamW's defaults: betas (0.9, 0.999), eps 1e-8, weight_decay 0.01. */
adamw_config adamw_defaults(void);

typedef struct adamw {
    param_store *ps;
    adamw_config cfg;
    int64_t step;        /* optimizer steps taken; the next step uses step + 1 */
    char *state;         /* backend memory: m of every trainable, then v */
    size_t state_bytes;
    int n;               /* trainable tensors */
    int *index;          /* their indices in ps->items */
    tensor *m, *v;       /* n headers each: views into state, shaped as the parameters */
} adamw;

/* ps must be allocated; its trainables are those with requires_grad. Moments start at 0. */
aspo_status adamw_init(adamw *opt, param_store *ps, const adamw_config *cfg);
/* One update of every trainable from its gradient in ps->grads, at learning rate lr. Does
 * not zero the gradients (param_store_zero_grad does). */
aspo_status adamw_step(adamw *opt, float lr);
void adamw_free(adamw *opt);

/* Resume. State on the host: m and v each as one float array, the trainables' elements
 * concatenated in store order (adamw_state_numel floats each). */
int64_t adamw_state_numel(const adamw *opt);
aspo_status adamw_state_to_host(const adamw *opt, float *m, float *v);
aspo_status adamw_state_from_host(adamw *opt, const float *m, const float *v, int64_t step);
/* A safetensors file with "<param>.exp_avg" and "<param>.exp_avg_sq" per trainable and the
 * step count in the metadata ("step"). Loading checks every name, dtype and shape. */
aspo_status adamw_save(const adamw *opt, const char *path);
aspo_status adamw_load(adamw *opt, const char *path);

/* clip_grad_norm_(trainables, max_norm): total = sqrt(sum of squares of every trainable
 * grad); when max_norm / (total + 1e-6) < 1 every grad is scaled by it, in place. The total
 * (before clipping) goes to *total_norm. A non-finite total is ASPO_ERR_NUMERIC and leaves
 * the grads untouched. Uses the step arena for the per-tensor sums. */
aspo_status clip_grad_norm(param_store *ps, float max_norm, double *total_norm);

#endif
