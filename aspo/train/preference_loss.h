/* DPO (sigmoid, optional cDPO label smoothing) and ASPO losses on host arrays of per-token
 * log-probs, with the gradient with respect to every policy log-prob and the metrics that
 * TRL's DPOTrainer logs (TRL 0.13.0 formulas) plus aspo/... statistics. The method made
 * exact is shared/ASPO_METHOD.md; the choices this code makes are in docs/ASPO.md.
 *
 * How the trainer uses it: run the policy and the reference, gather the log-prob of each
 * response token (response tokens and EOS only) into host floats, call
 * aspo_preference_loss for the batch, upload grad_chosen/grad_rejected as detached
 * weights g_t and back-propagate sum_t g_t * logp_t. Because ASPO's weights w and ratio k
 * are detached, M* is linear in the token log-probs and that gives the exact gradient. */
#ifndef ASPO_PREFERENCE_LOSS_H
#define ASPO_PREFERENCE_LOSS_H

#include <stdint.h>

#include "aspo/data/sentences.h"
#include "tensor/error.h"

typedef enum aspo_loss_kind {
    ASPO_LOSS_DPO = 0,
    ASPO_LOSS_ASPO,
} aspo_loss_kind;

/* Which normalised metrics make w (paper Table 5): S+P uses alpha, S only is alpha = 1,
 * P only is alpha = 0. */
typedef enum aspo_weight_kind {
    ASPO_WEIGHTS_SP = 0,
    ASPO_WEIGHTS_S,
    ASPO_WEIGHTS_P,
} aspo_weight_kind;

/* Whose token log-probs give the unit perplexities (both are detached). */
typedef enum aspo_ppl_source {
    ASPO_PPL_POLICY = 0, /* the policy of the current step (ASPO_METHOD.md) */
    ASPO_PPL_REFERENCE,
} aspo_ppl_source;

/* Over which rewards k = R_c / R*_c is taken. */
typedef enum aspo_k_scope {
    ASPO_K_PAIR = 0, /* each chosen response (ASPO_METHOD.md) */
    ASPO_K_BATCH,    /* the sums over all chosen responses of the batch (docs/ASPO.md) */
} aspo_k_scope;

typedef enum aspo_k_branch {
    ASPO_K_NONE = 0,      /* DPO: k is 1 */
    ASPO_K_REWARD_RATIO,  /* k = R_c / R*_c, in [0.5, 1] */
    ASPO_K_TOKEN_COUNT,   /* k = N_c / sum_t (1 + w_unit(t)): R*_c = 0 or k outside [0.5, 1] */
} aspo_k_branch;

typedef struct aspo_loss_options {
    aspo_loss_kind kind;
    double beta;            /* 0.1 */
    double label_smoothing; /* cDPO eps in [0, 0.5]; 0 is plain DPO/ASPO */
    double alpha;           /* weight of S' in w, [0, 1]; 0.5. Must be 0 on text-only data */
    aspo_weight_kind weights;
    aspo_unit_level level;  /* must match how the pairs' units were made */
    aspo_ppl_source ppl_source;
    aspo_k_scope k_scope;
} aspo_loss_options;

/* ASPO defaults of the paper: beta 0.1, alpha 0.5, S+P, sentence units, policy PPL. */
aspo_loss_options aspo_loss_defaults(aspo_loss_kind kind);

/* Optional per-pair intermediates (tests, debugging); arrays are the caller's, each may be
 * NULL. In DPO mode only the scalars are filled (k = 1, branch ASPO_K_NONE). */
typedef struct aspo_pair_trace {
    double *ppl, *s_norm, *ppl_norm, *w, *reward_unit; /* (n_units) PPL_i S'_i PPL'_i w_i r_i */
    double *coef_chosen;                               /* (n_chosen) c_t */
    double reward_chosen, reward_rejected; /* beta * (logp - logp_ref), summed over tokens */
    double units_reward, units_reward_star; /* R_c = sum_i r_i, R*_c = sum_i (1 + w_i) r_i */
    double k;
    aspo_k_branch k_branch;
    double margin; /* M* (ASPO) or M (DPO) */
    double loss;   /* this pair's loss before the batch mean */
} aspo_pair_trace;

/* One preference pair. Log-probs cover the response tokens only, EOS included. */
typedef struct aspo_pair {
    int n_chosen, n_rejected;
    const float *policy_chosen, *ref_chosen;     /* (n_chosen)   */
    const float *policy_rejected, *ref_rejected; /* (n_rejected) */
    /* ASPO only: */
    int n_units;
    const int32_t *unit_of_chosen; /* (n_chosen) in [0, n_units); NULL: every token in unit 0 */
    const float *similarity;       /* (n_units) CLIP S_i; NULL on text-only data */
    /* For logits/chosen and logits/rejected: the sum of the policy's logits over the
     * response positions and the whole vocabulary, and how many values that is
     * (tokens * vocab). Counts of 0 mean not given; the metric is then NaN. */
    double logits_sum_chosen, logits_sum_rejected;
    int64_t logits_count_chosen, logits_count_rejected;
    /* Outputs, each may be NULL: d loss / d policy log-prob of each token, where loss is
     * the batch mean; and the trace. */
    float *grad_chosen, *grad_rejected;
    aspo_pair_trace *trace;
} aspo_pair;

/* Batch results. TRL's metrics are means over the pairs (logits/... over all response
 * positions and vocabulary entries of the batch). aspo/... statistics are 0 (counts) or NaN
 * (values) in DPO mode; S' statistics are NaN unless every pair has similarities. */
typedef struct aspo_loss_stats {
    int n_pairs;
    double loss; /* mean over pairs */
    double rewards_chosen, rewards_rejected, rewards_accuracies, rewards_margins;
    double logps_chosen, logps_rejected, logits_chosen, logits_rejected;
    /* aspo/... */
    double margin;                  /* mean M* */
    double k_mean, k_min, k_max;    /* over pairs */
    int k_reward_ratio, k_token_count; /* how often each branch was taken (decisions) */
    int n_units;                    /* units of the chosen responses, whole batch */
    double w_mean, w_min, w_max;    /* over units */
    double s_mean, s_min, s_max;    /* raw CLIP similarities S_i, over units */
    double ppl_mean, ppl_min, ppl_max; /* raw unit perplexities PPL_i */
    double s_norm_mean, s_norm_min, s_norm_max;
    double ppl_norm_mean, ppl_norm_min, ppl_norm_max;
} aspo_loss_stats;

/* Loss of the batch (mean over pairs) into *loss, gradients and traces into the pairs,
 * statistics into *stats (may be NULL). Fails, writing nothing, on a bad option, a pair
 * whose arrays do not fit, a non-finite log-prob or similarity, or alpha > 0 (or weights
 * S only) on a pair without similarities. */
aspo_status aspo_preference_loss(const aspo_loss_options *o, aspo_pair *pairs, int n_pairs,
                                 double *loss, aspo_loss_stats *stats);

/* The statistics as (name, value) under TRL's names ("rewards/chosen", ...) followed by
 * aspo/... names; aspo/... only for ASPO. Returns the number of items, writing at most cap. */
typedef struct aspo_metric {
    const char *name;
    double value;
} aspo_metric;

int aspo_loss_metrics(const aspo_loss_options *o, const aspo_loss_stats *s, aspo_metric *out,
                      int cap);

#endif
