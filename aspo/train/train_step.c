/* One batch of preference pairs: the reference log-probs (adapters off, no tape, or the
 * dataset's precomputed sums), the policy log-probs with the tape, the loss and per-token
 * gradients on the host (aspo/train/preference_loss.h), and the backward of
 * sum_t g_t * logp_t, which is exact because ASPO's w and k are detached. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aspo/train/trainer_internal.h"
#include "nn/lora.h"
#include "nn/modules.h"
#include "tensor/autograd.h"
#include "tensor/runtime.h"
#include "tensor/tensor_ops.h"

static aspo_status host_buffers(trainer *t, size_t cells)
{
    if (cells <= t->cap) return ASPO_OK;
    float **bufs[4] = {&t->logp, &t->ref, &t->sums, &t->grad};
    for (int i = 0; i < 4; i++) {
        free(*bufs[i]);
        *bufs[i] = malloc(cells * sizeof(float));
        if (!*bufs[i]) {
            t->cap = 0;
            return aspo_fail(ASPO_ERR_OOM, "no host memory for %zu log-probs", cells);
        }
    }
    t->cap = cells;
    return ASPO_OK;
}

/* The vision features of the batch's images, (k,N,Cv) in slot order, into t->vision: once
 * per step for both passes, from the cache when it has them. */
static aspo_status batch_vision(trainer *t, const pair_batch *b, const int64_t *index, int n)
{
    size_t need = (size_t)b->n_images * policy_feature_floats(&t->model);
    if (need > t->vision_cap) {
        free(t->vision);
        if (!(t->vision = malloc(need * sizeof(float)))) {
            t->vision_cap = 0;
            return aspo_fail(ASPO_ERR_OOM, "no host memory for %d images' features", b->n_images);
        }
        t->vision_cap = need;
    }
    const preference_row *rows[n];
    for (int i = 0; i < n; i++) rows[i] = &t->data.ds.rows[index[i]];
    return policy_image_features(&t->model, &t->cache, t->cfg->image_root, &t->image_limits,
                                 rows, b->image_slot, n, t->vision);
}

/* Precomputed reference. Per-token values (`aspo score --token-logps`) serve both losses;
 * TRL's columns are sums per response, enough for DPO only (the sum is placed on the last
 * token: DPO reads only sums). The caller checked that the loss has what it needs. */
static aspo_status precomputed_reference(trainer *t, const pair_batch *b, const int64_t *index,
                                         int n)
{
    for (int i = 0; i < n; i++) {
        const preference_row *row = &t->data.ds.rows[index[i]];
        for (int side = 0; side < 2; side++) {
            int r = side ? n + i : i;
            float *ref = t->ref + (size_t)r * b->T + b->first[r];
            const float *tokens = side ? row->ref_rejected_tokens : row->ref_chosen_tokens;
            int64_t n_tokens = side ? row->n_ref_rejected_tokens : row->n_ref_chosen_tokens;
            if (tokens && n_tokens != b->count[r])
                return aspo_fail(ASPO_ERR_USAGE,
                                 "%s: %lld per-token reference log-probs for a %s "
                                 "response of %lld tokens; score the file with the same "
                                 "tokenizer and length flags as this run",
                                 preference_row_where(row), (long long)n_tokens,
                                 side ? "rejected" : "chosen", (long long)b->count[r]);
            if (tokens) {
                memcpy(ref, tokens, sizeof(float) * (size_t)n_tokens);
                continue;
            }
            memset(ref, 0, sizeof(float) * (size_t)b->count[r]);
            ref[b->count[r] - 1] =
                (float)(side ? row->ref_rejected_logps : row->ref_chosen_logps);
        }
    }
    return ASPO_OK;
}

/* Prefixes an error of the loss with the data lines of the batch: its "pair i" is the
 * i-th line listed. */
static aspo_status name_batch_rows(aspo_status s, const train_data *d, const int64_t *index,
                                   int n)
{
    char cause[1024], lines[256] = "";
    snprintf(cause, sizeof cause, "%s", aspo_error_message());
    int shown = 0;
    for (; shown < n && strlen(lines) + 32 < sizeof lines; shown++)
        snprintf(lines + strlen(lines), sizeof lines - strlen(lines), "%s%lld",
                 shown ? ", " : "", (long long)d->ds.rows[index[shown]].line);
    const preference_row *first = &d->ds.rows[index[0]];
    bool list = first->in_list; /* SeVa: entries, not lines */
    return aspo_fail_replace(s, "%s %s%s %s%s: %s", first->source, list ? "entr" : "line",
                             n > 1 ? (list ? "ies" : "s") : (list ? "y" : ""), lines,
                             shown < n ? ", ..." : "", cause);
}

aspo_status train_batch(trainer *t, const int64_t *index, int n, double scale, batch_result *r)
{
    const tokenized_pair *pairs[n];
    for (int i = 0; i < n; i++) pairs[i] = &t->data.pairs[index[i]];
    pair_batch b;
    pair_batch_images images;
    bool vision = policy_images(&t->model, &images);
    aspo_status s = pair_batch_make(pairs, n, t->pad_id, vision ? &images : NULL,
                                    t->cfg->no_prefix_sharing, t->cfg->max_tokens_per_batch, &b);
    if (s) return s;
    if (b.n_images && (s = batch_vision(t, &b, index, n))) {
        pair_batch_free(&b);
        return s;
    }
    aspo_pair *pp = calloc((size_t)n, sizeof *pp);
    if (!pp) {
        pair_batch_free(&b);
        return aspo_fail(ASPO_ERR_OOM, "no host memory for %d pairs", n);
    }
    size_t cells = (size_t)(2 * n) * (size_t)b.T;
    /* Precomputed values serve only when every row of the batch has what the loss needs
     * (ASPO: per-token values; DPO: sums); otherwise the reference runs for the batch. */
    bool all_precomputed = true;
    for (int i = 0; i < n; i++) {
        const preference_row *row = &t->data.ds.rows[index[i]];
        all_precomputed &= t->loss.kind == ASPO_LOSS_ASPO ? row->ref_chosen_tokens != NULL
                                                          : row->has_ref_logps;
    }
    if ((s = host_buffers(t, cells))) goto done;

    /* Reference: the base model (adapters off), no tape, no dropout. */
    if (all_precomputed) {
        s = precomputed_reference(t, &b, index, n);
    } else {
        bool grad = autograd_set_enabled(false), lora = lora_set_enabled(false);
        bool training = nn_set_training(false);
        tensor *ref = policy_logprobs(&t->model, &b, t->vision, NULL);
        s = ref ? tensor_to_host_f32(ref, t->ref) : aspo_error_status();
        nn_set_training(training);
        lora_set_enabled(lora);
        autograd_set_enabled(grad);
        runtime_step_reset(); /* its values are on the host now: free the arena for the policy */
    }
    if (s) goto done;

    /* Policy, with the tape when we will step. */
    bool grad = autograd_set_enabled(scale > 0);
    bool training = nn_set_training(scale > 0);
    tensor *sums = NULL, *logp = policy_logprobs(&t->model, &b, t->vision, &sums);
    nn_set_training(training);
    autograd_set_enabled(grad);
    if (!logp) {
        s = aspo_error_status();
        goto done;
    }
    if ((s = tensor_to_host_f32(logp, t->logp)) || (s = tensor_to_host_f32(sums, t->sums)))
        goto done;

    /* The loss and d loss / d logp on the host. */
    memset(t->grad, 0, cells * sizeof(float));
    int64_t V = t->model.lm->cfg.vocab_size;
    for (int i = 0; i < n; i++) {
        int rc = i, rr = n + i;
        size_t oc = (size_t)rc * b.T + b.first[rc], orr = (size_t)rr * b.T + b.first[rr];
        double sum_c = 0, sum_r = 0;
        for (int64_t j = 0; j < b.count[rc]; j++) sum_c += t->sums[oc + j];
        for (int64_t j = 0; j < b.count[rr]; j++) sum_r += t->sums[orr + j];
        pp[i] = (aspo_pair){
            .n_chosen = (int)b.count[rc], .n_rejected = (int)b.count[rr],
            .policy_chosen = t->logp + oc, .ref_chosen = t->ref + oc,
            .policy_rejected = t->logp + orr, .ref_rejected = t->ref + orr,
            .n_units = t->data.n_units[index[i]], .unit_of_chosen = t->data.unit_of[index[i]],
            .similarity = t->data.similarity ? t->data.similarity[index[i]] : NULL,
            .logits_sum_chosen = sum_c, .logits_sum_rejected = sum_r,
            .logits_count_chosen = b.count[rc] * V, .logits_count_rejected = b.count[rr] * V,
            .grad_chosen = t->grad + oc, .grad_rejected = t->grad + orr,
        };
    }
    s = aspo_preference_loss(&t->loss, pp, n, &r->loss, &r->stats);
    if (!s && !isfinite(r->loss))
        s = aspo_fail(ASPO_ERR_NUMERIC, "the loss is %g; stopping: lower --lr or check the data",
                      r->loss);
    if (s) {
        s = name_batch_rows(s, &t->data, index, n);
        goto done;
    }
    r->tokens = pair_batch_tokens(&b);
    r->computed = pair_batch_computed(&b);

    if (scale > 0) {
        for (size_t c = 0; c < cells; c++) t->grad[c] *= (float)scale;
        tensor *g = tensor_from_host(DT_F32, DIMS(2 * n, b.T), t->grad);
        s = tensor_backward(tensor_sum_all(tensor_mul(logp, g)));
    }
done:
    runtime_step_reset();
    pair_batch_free(&b);
    free(pp);
    return s;
}
