/* DPO and ASPO losses on host log-probs, in double. The steps follow ASPO_METHOD.md:
 * units -> PPL_i and S_i -> min-max -> w_i -> detached k -> M* -> -log sigmoid(M*).
 *
 * Why k is detached: k * R*_c with k = R_c / R*_c is R_c itself, so a k that carried
 * gradient would give DPO's gradient back. Held constant, k only rescales, and
 *     M* = sum_t c_t (logp_t - logp_ref_t),  c_t = beta k (1 + w_unit(t)) on chosen tokens,
 *                                            c_t = -beta on rejected tokens,
 * so d loss / d logp_t = loss'(M*) c_t exactly: each sentence's gradient is scaled by
 * k (1 + w_i), while the loss value equals DPO's whenever the ratio branch is taken. */
#include "aspo/train/preference_loss.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

aspo_loss_options aspo_loss_defaults(aspo_loss_kind kind)
{
    return (aspo_loss_options){.kind = kind, .beta = 0.1, .label_smoothing = 0.0,
                               .alpha = 0.5, .weights = ASPO_WEIGHTS_SP,
                               .level = ASPO_UNIT_SENTENCE, .ppl_source = ASPO_PPL_POLICY,
                               .k_scope = ASPO_K_PAIR};
}

/* log sigmoid(x) without overflow for large |x|. */
static double log_sigmoid(double x) { return fmin(x, 0.0) - log1p(exp(-fabs(x))); }

static double sigmoid(double x)
{
    double e = exp(-fabs(x));
    return x >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
}

/* alpha as used: the S-only and P-only ablations pin it. */
static double effective_alpha(const aspo_loss_options *o)
{
    if (o->weights == ASPO_WEIGHTS_S) return 1.0;
    if (o->weights == ASPO_WEIGHTS_P) return 0.0;
    return o->alpha;
}

static aspo_status check_options(const aspo_loss_options *o)
{
    if (o->kind != ASPO_LOSS_DPO && o->kind != ASPO_LOSS_ASPO)
        return aspo_fail(ASPO_ERR_USAGE, "unknown loss kind %d", (int)o->kind);
    if (!(o->beta > 0) || !isfinite(o->beta))
        return aspo_fail(ASPO_ERR_USAGE, "beta must be a positive number, got %g", o->beta);
    if (!(o->label_smoothing >= 0 && o->label_smoothing <= 0.5))
        return aspo_fail(ASPO_ERR_USAGE, "label smoothing must lie in [0, 0.5], got %g",
                         o->label_smoothing);
    if (o->kind == ASPO_LOSS_DPO) return ASPO_OK;
    if (!(o->alpha >= 0 && o->alpha <= 1))
        return aspo_fail(ASPO_ERR_USAGE, "ASPO alpha must lie in [0, 1], got %g", o->alpha);
    if (o->weights > ASPO_WEIGHTS_P || o->level > ASPO_UNIT_TOKEN ||
        o->ppl_source > ASPO_PPL_REFERENCE || o->k_scope > ASPO_K_BATCH)
        return aspo_fail(ASPO_ERR_USAGE, "ASPO options: unknown weights/level/ppl/k setting");
    return ASPO_OK;
}

static aspo_status check_logps(const float *v, int n, int pair, const char *what)
{
    if (n > 0 && !v) return aspo_fail(ASPO_ERR_USAGE, "pair %d: %s log-probs are NULL", pair, what);
    for (int t = 0; t < n; t++)
        if (!isfinite(v[t]))
            return aspo_fail(ASPO_ERR_NUMERIC, "pair %d: %s log-prob of token %d is %g", pair,
                             what, t, (double)v[t]);
    return ASPO_OK;
}

static aspo_status check_pair(const aspo_loss_options *o, const aspo_pair *p, int i)
{
    if (p->n_chosen < 1 || p->n_rejected < 1)
        return aspo_fail(ASPO_ERR_USAGE, "pair %d: %d chosen and %d rejected tokens; each "
                         "response needs at least its end-of-sequence token",
                         i, p->n_chosen, p->n_rejected);
    aspo_status s = check_logps(p->policy_chosen, p->n_chosen, i, "policy chosen");
    if (!s) s = check_logps(p->ref_chosen, p->n_chosen, i, "reference chosen");
    if (!s) s = check_logps(p->policy_rejected, p->n_rejected, i, "policy rejected");
    if (!s) s = check_logps(p->ref_rejected, p->n_rejected, i, "reference rejected");
    if (s || o->kind == ASPO_LOSS_DPO) return s;

    if (p->n_units < 1 || p->n_units > p->n_chosen)
        return aspo_fail(ASPO_ERR_USAGE, "pair %d: %d units for %d chosen tokens; every unit "
                         "needs at least one token", i, p->n_units, p->n_chosen);
    if (!p->unit_of_chosen && p->n_units != 1)
        return aspo_fail(ASPO_ERR_USAGE, "pair %d: %d units but no unit_of_chosen map", i,
                         p->n_units);
    if (o->level == ASPO_UNIT_RESPONSE && p->n_units != 1)
        return aspo_fail(ASPO_ERR_USAGE, "pair %d: response-level units but %d units", i,
                         p->n_units);
    if (o->level == ASPO_UNIT_TOKEN && p->n_units != p->n_chosen)
        return aspo_fail(ASPO_ERR_USAGE, "pair %d: token-level units but %d units for %d "
                         "tokens", i, p->n_units, p->n_chosen);
    for (int t = 0; p->unit_of_chosen && t < p->n_chosen; t++)
        if (p->unit_of_chosen[t] < 0 || p->unit_of_chosen[t] >= p->n_units)
            return aspo_fail(ASPO_ERR_USAGE, "pair %d: chosen token %d is in unit %d, outside "
                             "[0, %d)", i, t, (int)p->unit_of_chosen[t], p->n_units);
    double alpha = effective_alpha(o);
    if (!p->similarity && alpha > 0)
        return aspo_fail(ASPO_ERR_USAGE,
                         "pair %d has no image similarity (text-only data), but the ASPO "
                         "weights ask for it (alpha %g%s); use alpha 0 or P-only weights on "
                         "text-only data", i, alpha,
                         o->weights == ASPO_WEIGHTS_S ? ", S-only weights" : "");
    for (int u = 0; p->similarity && u < p->n_units; u++)
        if (!isfinite(p->similarity[u]))
            return aspo_fail(ASPO_ERR_NUMERIC, "pair %d: similarity of unit %d is %g", i, u,
                             (double)p->similarity[u]);
    return ASPO_OK;
}

/* Min-max normalisation in place over n values (of -v when negate). One value, or
 * max == min, gives zeros: every unit then weighs the same and ASPO reduces to DPO. */
static void min_max(double *v, int n, bool negate)
{
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < n; i++) {
        double x = negate ? -v[i] : v[i];
        lo = fmin(lo, x);
        hi = fmax(hi, x);
    }
    for (int i = 0; i < n; i++)
        v[i] = n > 1 && hi > lo ? ((negate ? -v[i] : v[i]) - lo) / (hi - lo) : 0.0;
}

/* k = R_c / R*_c when R*_c != 0 and the ratio lies in [0.5, 1] (it does whenever all r_i
 * share a sign); else the token-count normalisation N_c / sum_t (1 + w_unit(t)). */
static double choose_k(double R, double R_star, double n_tokens, double weighted_tokens,
                       aspo_k_branch *branch)
{
    if (R_star != 0) {
        double k = R / R_star;
        if (k >= 0.5 && k <= 1.0) {
            *branch = ASPO_K_REWARD_RATIO;
            return k;
        }
    }
    *branch = ASPO_K_TOKEN_COUNT;
    return n_tokens / weighted_tokens;
}

typedef struct pair_work {
    int unit0;                  /* first unit of the pair in the unit arrays */
    double logp_c, logp_r;      /* policy sums */
    double reward_c, reward_r;  /* beta (logp - logp_ref) sums */
    double R, R_star, weighted; /* sum r_i, sum (1 + w_i) r_i, sum_t (1 + w_unit(t)) */
    double k, margin, loss, dloss_dmargin;
    aspo_k_branch branch;
} pair_work;

typedef struct unit_work {
    double *ppl, *s_norm, *ppl_norm, *w, *reward, *tokens, *logp; /* (U) each */
} unit_work;

static int unit_of(const aspo_pair *p, int t)
{
    return p->unit_of_chosen ? p->unit_of_chosen[t] : 0;
}

/* Steps 2-4 of ASPO_METHOD.md: unit rewards, perplexities, normalised S and PPL, w. */
static aspo_status unit_weights(const aspo_loss_options *o, const aspo_pair *pairs, int n,
                                pair_work *pw, unit_work *uw, int U, bool have_s)
{
    for (int u = 0; u < U; u++) uw->reward[u] = uw->tokens[u] = uw->logp[u] = 0;
    for (int i = 0; i < n; i++) {
        const aspo_pair *p = &pairs[i];
        const float *ppl_logps = o->ppl_source == ASPO_PPL_REFERENCE ? p->ref_chosen
                                                                     : p->policy_chosen;
        for (int t = 0; t < p->n_chosen; t++) {
            int u = pw[i].unit0 + unit_of(p, t);
            uw->reward[u] += o->beta * ((double)p->policy_chosen[t] - p->ref_chosen[t]);
            uw->logp[u] += ppl_logps[t];
            uw->tokens[u] += 1;
        }
        for (int u = 0; u < p->n_units; u++) {
            int g = pw[i].unit0 + u;
            if (uw->tokens[g] == 0)
                return aspo_fail(ASPO_ERR_USAGE, "pair %d: unit %d owns no chosen token, so "
                                 "its perplexity is undefined", i, u);
            uw->ppl[g] = exp(-uw->logp[g] / uw->tokens[g]);
            uw->ppl_norm[g] = uw->ppl[g];
            uw->s_norm[g] = have_s ? p->similarity[u] : 0.0;
        }
    }
    /* Sentence and token level normalise over the units of each response; response level
     * over the responses of the batch (one unit each, stored contiguously). */
    if (o->level == ASPO_UNIT_RESPONSE) {
        min_max(uw->ppl_norm, U, true);
        if (have_s) min_max(uw->s_norm, U, false);
    } else {
        for (int i = 0; i < n; i++) {
            min_max(uw->ppl_norm + pw[i].unit0, pairs[i].n_units, true);
            if (have_s) min_max(uw->s_norm + pw[i].unit0, pairs[i].n_units, false);
        }
    }
    double alpha = effective_alpha(o);
    for (int u = 0; u < U; u++) {
        /* alpha is 0 when there are no similarities, so S' (0) drops out. */
        uw->w[u] = alpha * uw->s_norm[u] + (1 - alpha) * uw->ppl_norm[u];
        if (!isfinite(uw->w[u]))
            return aspo_fail(ASPO_ERR_NUMERIC, "ASPO weight of unit %d is %g (perplexity %g)",
                             u, uw->w[u], uw->ppl[u]);
    }
    return ASPO_OK;
}

/* Step 5: R_c, R*_c and the detached k, per pair or once for the batch. */
static void ratios(const aspo_loss_options *o, const aspo_pair *pairs, int n, pair_work *pw,
                   const unit_work *uw)
{
    double R = 0, R_star = 0, weighted = 0, tokens = 0;
    for (int i = 0; i < n; i++) {
        pair_work *q = &pw[i];
        q->R = q->R_star = q->weighted = 0;
        for (int u = q->unit0; u < q->unit0 + pairs[i].n_units; u++) {
            q->R += uw->reward[u];
            q->R_star += (1 + uw->w[u]) * uw->reward[u];
            q->weighted += (1 + uw->w[u]) * uw->tokens[u];
        }
        if (o->k_scope == ASPO_K_PAIR)
            q->k = choose_k(q->R, q->R_star, pairs[i].n_chosen, q->weighted, &q->branch);
        R += q->R;
        R_star += q->R_star;
        weighted += q->weighted;
        tokens += pairs[i].n_chosen;
    }
    if (o->k_scope == ASPO_K_BATCH) {
        aspo_k_branch branch;
        double k = choose_k(R, R_star, tokens, weighted, &branch);
        for (int i = 0; i < n; i++) {
            pw[i].k = k;
            pw[i].branch = branch;
        }
    }
}

static void copy_or_skip(double *dst, const double *src, int n)
{
    for (int i = 0; dst && i < n; i++) dst[i] = src[i];
}

/* Writes gradients and traces; nothing can fail here. */
static void write_outputs(const aspo_loss_options *o, aspo_pair *pairs, int n,
                          const pair_work *pw, const unit_work *uw)
{
    bool aspo = o->kind == ASPO_LOSS_ASPO;
    for (int i = 0; i < n; i++) {
        aspo_pair *p = &pairs[i];
        const pair_work *q = &pw[i];
        double scale = q->dloss_dmargin / n; /* the batch loss is the mean over pairs */
        for (int t = 0; t < p->n_chosen; t++) {
            double c = aspo ? o->beta * q->k * (1 + uw->w[q->unit0 + unit_of(p, t)]) : o->beta;
            if (p->grad_chosen) p->grad_chosen[t] = (float)(scale * c);
            if (p->trace && p->trace->coef_chosen) p->trace->coef_chosen[t] = c;
        }
        for (int t = 0; p->grad_rejected && t < p->n_rejected; t++)
            p->grad_rejected[t] = (float)(-scale * o->beta);
        aspo_pair_trace *tr = p->trace;
        if (!tr) continue;
        tr->reward_chosen = q->reward_c;
        tr->reward_rejected = q->reward_r;
        tr->units_reward = aspo ? q->R : q->reward_c;
        tr->units_reward_star = aspo ? q->R_star : q->reward_c;
        tr->k = q->k;
        tr->k_branch = q->branch;
        tr->margin = q->margin;
        tr->loss = q->loss;
        if (!aspo) continue;
        copy_or_skip(tr->ppl, uw->ppl + q->unit0, p->n_units);
        copy_or_skip(tr->s_norm, uw->s_norm + q->unit0, p->n_units);
        copy_or_skip(tr->ppl_norm, uw->ppl_norm + q->unit0, p->n_units);
        copy_or_skip(tr->w, uw->w + q->unit0, p->n_units);
        copy_or_skip(tr->reward_unit, uw->reward + q->unit0, p->n_units);
    }
}

static void range_stats(const double *v, int n, double *mean, double *lo, double *hi)
{
    double sum = 0;
    *lo = INFINITY;
    *hi = -INFINITY;
    for (int i = 0; i < n; i++) {
        sum += v[i];
        *lo = fmin(*lo, v[i]);
        *hi = fmax(*hi, v[i]);
    }
    if (n == 0) *lo = *hi = NAN;
    *mean = n ? sum / n : NAN;
}

static void batch_stats(const aspo_loss_options *o, const aspo_pair *pairs, int n,
                        const pair_work *pw, const unit_work *uw, int U, bool have_s,
                        aspo_loss_stats *s)
{
    *s = (aspo_loss_stats){.n_pairs = n};
    double lsum_c = 0, lsum_r = 0, lcount_c = 0, lcount_r = 0;
    for (int i = 0; i < n; i++) {
        const pair_work *q = &pw[i];
        s->loss += q->loss / n;
        s->rewards_chosen += q->reward_c / n;
        s->rewards_rejected += q->reward_r / n;
        s->rewards_accuracies += (q->reward_c > q->reward_r) / (double)n; /* strict, as TRL */
        s->rewards_margins += (q->reward_c - q->reward_r) / n;
        s->logps_chosen += q->logp_c / n;
        s->logps_rejected += q->logp_r / n;
        s->margin += q->margin / n;
        lsum_c += pairs[i].logits_sum_chosen;
        lsum_r += pairs[i].logits_sum_rejected;
        lcount_c += (double)pairs[i].logits_count_chosen;
        lcount_r += (double)pairs[i].logits_count_rejected;
    }
    /* TRL: logits[loss_mask].mean(), one mean over every response position and vocab entry. */
    s->logits_chosen = lcount_c > 0 ? lsum_c / lcount_c : NAN;
    s->logits_rejected = lcount_r > 0 ? lsum_r / lcount_r : NAN;

    s->k_mean = s->k_min = s->k_max = NAN;
    s->w_mean = s->w_min = s->w_max = NAN;
    s->s_norm_mean = s->s_norm_min = s->s_norm_max = NAN;
    s->s_mean = s->s_min = s->s_max = NAN;
    s->ppl_mean = s->ppl_min = s->ppl_max = NAN;
    s->ppl_norm_mean = s->ppl_norm_min = s->ppl_norm_max = NAN;
    if (o->kind != ASPO_LOSS_ASPO) return;
    double k_sum = 0, k_lo = INFINITY, k_hi = -INFINITY;
    for (int i = 0; i < n; i++) {
        k_sum += pw[i].k;
        k_lo = fmin(k_lo, pw[i].k);
        k_hi = fmax(k_hi, pw[i].k);
        /* One decision per pair, or one per batch with a batch-wide k. */
        if (o->k_scope == ASPO_K_PAIR || i == 0) {
            s->k_reward_ratio += pw[i].branch == ASPO_K_REWARD_RATIO;
            s->k_token_count += pw[i].branch == ASPO_K_TOKEN_COUNT;
        }
    }
    s->k_mean = k_sum / n;
    s->k_min = k_lo;
    s->k_max = k_hi;
    s->n_units = U;
    range_stats(uw->w, U, &s->w_mean, &s->w_min, &s->w_max);
    range_stats(uw->ppl_norm, U, &s->ppl_norm_mean, &s->ppl_norm_min, &s->ppl_norm_max);
    range_stats(uw->ppl, U, &s->ppl_mean, &s->ppl_min, &s->ppl_max);
    if (!have_s) return;
    range_stats(uw->s_norm, U, &s->s_norm_mean, &s->s_norm_min, &s->s_norm_max);
    double s_sum = 0;
    s->s_min = INFINITY;
    s->s_max = -INFINITY;
    for (int i = 0; i < n; i++)
        for (int u = 0; u < pairs[i].n_units; u++) {
            double v = pairs[i].similarity[u];
            s_sum += v;
            s->s_min = fmin(s->s_min, v);
            s->s_max = fmax(s->s_max, v);
        }
    s->s_mean = s_sum / U;
}

aspo_status aspo_preference_loss(const aspo_loss_options *o, aspo_pair *pairs, int n_pairs,
                                 double *loss, aspo_loss_stats *stats)
{
    aspo_status st = check_options(o);
    if (st) return st;
    if (n_pairs < 1 || !pairs)
        return aspo_fail(ASPO_ERR_USAGE, "preference loss of %d pairs: need at least one",
                         n_pairs);
    bool aspo = o->kind == ASPO_LOSS_ASPO, have_s = aspo;
    int U = 0;
    for (int i = 0; i < n_pairs; i++) {
        if ((st = check_pair(o, &pairs[i], i))) return st;
        if (aspo) {
            if (pairs[i].n_units > INT32_MAX - U)
                return aspo_fail(ASPO_ERR_USAGE, "too many units in the batch");
            U += pairs[i].n_units;
            have_s = have_s && pairs[i].similarity;
        }
    }

    /* One host block: pair records, then seven arrays of U doubles. */
    size_t bytes = (size_t)n_pairs * sizeof(pair_work) + (size_t)U * 7 * sizeof(double);
    pair_work *pw = calloc(1, bytes);
    if (!pw) return aspo_fail(ASPO_ERR_OOM, "preference loss: %zu bytes of host memory", bytes);
    double *ubase = (double *)(pw + n_pairs);
    unit_work uw = {ubase, ubase + U, ubase + 2 * (size_t)U, ubase + 3 * (size_t)U,
                    ubase + 4 * (size_t)U, ubase + 5 * (size_t)U, ubase + 6 * (size_t)U};

    for (int i = 0, u = 0; i < n_pairs; i++) {
        const aspo_pair *p = &pairs[i];
        pair_work *q = &pw[i];
        double rc = 0, rr = 0;
        for (int t = 0; t < p->n_chosen; t++) {
            q->logp_c += p->policy_chosen[t];
            rc += p->ref_chosen[t];
        }
        for (int t = 0; t < p->n_rejected; t++) {
            q->logp_r += p->policy_rejected[t];
            rr += p->ref_rejected[t];
        }
        q->reward_c = o->beta * (q->logp_c - rc);
        q->reward_r = o->beta * (q->logp_r - rr);
        q->k = 1.0;
        q->branch = ASPO_K_NONE;
        q->unit0 = u;
        if (aspo) u += p->n_units;
    }
    if (aspo) {
        if ((st = unit_weights(o, pairs, n_pairs, pw, &uw, U, have_s))) {
            free(pw);
            return st;
        }
        ratios(o, pairs, n_pairs, pw, &uw);
    }

    double total = 0, eps = o->label_smoothing;
    for (int i = 0; i < n_pairs; i++) {
        pair_work *q = &pw[i];
        /* M* = k sum_i (1 + w_i) r_i - r(y_r); DPO: r(y_c) - r(y_r). */
        q->margin = aspo ? q->k * q->R_star - q->reward_r : q->reward_c - q->reward_r;
        q->loss = -(1 - eps) * log_sigmoid(q->margin) - eps * log_sigmoid(-q->margin);
        q->dloss_dmargin = -(1 - eps) * sigmoid(-q->margin) + eps * sigmoid(q->margin);
        total += q->loss;
    }
    *loss = total / n_pairs;
    write_outputs(o, pairs, n_pairs, pw, &uw);
    if (stats) batch_stats(o, pairs, n_pairs, pw, &uw, U, have_s, stats);
    free(pw);
    return ASPO_OK;
}

int aspo_loss_metrics(const aspo_loss_options *o, const aspo_loss_stats *s, aspo_metric *out,
                      int cap)
{
    const aspo_metric all[] = {
        {"rewards/chosen", s->rewards_chosen},
        {"rewards/rejected", s->rewards_rejected},
        {"rewards/accuracies", s->rewards_accuracies},
        {"rewards/margins", s->rewards_margins},
        {"logps/chosen", s->logps_chosen},
        {"logps/rejected", s->logps_rejected},
        {"logits/chosen", s->logits_chosen},
        {"logits/rejected", s->logits_rejected},
        /* ASPO from here */
        {"aspo/margin", s->margin},
        {"aspo/k_mean", s->k_mean},
        {"aspo/k_min", s->k_min},
        {"aspo/k_max", s->k_max},
        {"aspo/k_reward_ratio", s->k_reward_ratio},
        {"aspo/k_token_count", s->k_token_count},
        {"aspo/units", s->n_units},
        {"aspo/w_mean", s->w_mean},
        {"aspo/w_min", s->w_min},
        {"aspo/w_max", s->w_max},
        {"aspo/s_mean", s->s_mean},
        {"aspo/s_min", s->s_min},
        {"aspo/s_max", s->s_max},
        {"aspo/ppl_mean", s->ppl_mean},
        {"aspo/ppl_min", s->ppl_min},
        {"aspo/ppl_max", s->ppl_max},
        {"aspo/s_norm_mean", s->s_norm_mean},
        {"aspo/s_norm_min", s->s_norm_min},
        {"aspo/s_norm_max", s->s_norm_max},
        {"aspo/ppl_norm_mean", s->ppl_norm_mean},
        {"aspo/ppl_norm_min", s->ppl_norm_min},
        {"aspo/ppl_norm_max", s->ppl_norm_max},
    };
    int n = o->kind == ASPO_LOSS_ASPO ? (int)(sizeof all / sizeof all[0]) : 8;
    for (int i = 0; i < n && i < cap; i++) out[i] = all[i];
    return n;
}
