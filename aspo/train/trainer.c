/* The training loop of `aspo run`: data, model with LoRA, AdamW with a warmup schedule and
 * clipping, gradient accumulation, metrics under TRL's names, checkpoints and resume. */
#include <errno.h>
#include <float.h>
#include <signal.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backends/registry.h"
#include "aspo/train/trainer_internal.h"
#include "aspo/train/clock.h"
#include "aspo/train/dry_run.h"
#include "aspo/train/run_output.h"
#include "models/weights.h"
#include "tensor/json_guard.h"
#include "tensor/runtime.h"

aspo_status trainer_loss_options(const train_config *cfg, bool has_images, aspo_loss_options *o)
{
    *o = aspo_loss_defaults(strcmp(cfg->loss, "dpo") ? ASPO_LOSS_ASPO : ASPO_LOSS_DPO);
    o->beta = cfg->beta;
    o->label_smoothing = cfg->label_smoothing;
    /* alpha < 0 means "auto": the paper's 0.5 with images, 0 on text-only data. */
    o->alpha = cfg->alpha >= 0 ? cfg->alpha : has_images ? 0.5 : 0.0;
    if (!has_images && o->kind == ASPO_LOSS_ASPO && (o->alpha > 0 || !strcmp(cfg->weights, "s")))
        return aspo_fail(ASPO_ERR_USAGE,
                         "--alpha %g / --weights %s: %s holds text only, so there is no image "
                         "similarity S; use --alpha 0 (perplexity weights only)",
                         o->alpha, cfg->weights, cfg->data);
    o->weights = !strcmp(cfg->weights, "s") ? ASPO_WEIGHTS_S
                 : !strcmp(cfg->weights, "p") ? ASPO_WEIGHTS_P : ASPO_WEIGHTS_SP;
    o->level = !strcmp(cfg->unit, "response") ? ASPO_UNIT_RESPONSE
               : !strcmp(cfg->unit, "token") ? ASPO_UNIT_TOKEN : ASPO_UNIT_SENTENCE;
    o->ppl_source = !strcmp(cfg->ppl_from, "reference") ? ASPO_PPL_REFERENCE : ASPO_PPL_POLICY;
    o->k_scope = !strcmp(cfg->k_scope, "batch") ? ASPO_K_BATCH : ASPO_K_PAIR;
    return ASPO_OK;
}

const char *trainer_image_rows(const train_config *cfg, const train_data *d, char *buf,
                               size_t size)
{
    if (!d->n_images) return NULL;
    snprintf(buf, size, "%s: %lld rows have images", cfg->data, (long long)d->n_images);
    return buf;
}

aspo_status trainer_check_images(const train_config *cfg, const char *images)
{
    if (!images) return ASPO_OK;
    const policy_family *family;
    aspo_status s = policy_detect(cfg->model, &family);
    if (s || policy_family_reads_images(family)) return s;
    return aspo_fail(ASPO_ERR_USAGE, "%s, but %s is a text-only %s; give a model that reads "
                     "images (LLaVA, InstructBLIP)", images, cfg->model, policy_family_name(family));
}

aspo_status trainer_open_model(const train_config *cfg, uint64_t seed, bool need_similarity,
                               policy_model *m)
{
    policy_options o = policy_defaults();
    o.model = cfg->model;
    o.adapter = cfg->adapter;
    o.storage_dtype = strcmp(cfg->dtype, "auto") ? dtype_from_name(cfg->dtype) : -1;
    o.activation_dtype = policy_activation_dtype(cfg->activation_dtype, cfg->backend);
    o.lora = (lora_config){(int)cfg->lora_r, (float)cfg->lora_alpha, (float)cfg->lora_dropout,
                           cfg->rslora};
    o.lora_targets = cfg->lora_targets;
    if (cfg->adapter && !cfg->lora_given) { /* r 0: the adapter's r, alpha and targets */
        o.lora.r = 0;
        o.lora_targets = NULL;
    }
    o.lora_seed = seed;
    o.checkpoint_layers = cfg->gradient_checkpointing;
    o.train_projector = cfg->train_projector;
    o.vision_tower = cfg->vision_tower;
    o.clip_model = cfg->clip_model;
    o.need_similarity = need_similarity;
    o.skip_weights = cfg->dry_run; /* a plan reads no tensor data */
    return policy_open(&o, m);
}

/* Mean of the batch results of one optimizer step (pairs weigh equally). */
static void add_result(batch_result *sum, const batch_result *r, int n_pairs, int *pairs_seen)
{
    double w = (double)n_pairs, total = (double)(*pairs_seen + n_pairs);
    double a = *pairs_seen / total, b = w / total;
#define MIX(f) sum->f = *pairs_seen ? a * sum->f + b * r->f : r->f
    MIX(loss);
    MIX(stats.rewards_chosen);
    MIX(stats.rewards_rejected);
    MIX(stats.rewards_accuracies);
    MIX(stats.rewards_margins);
    MIX(stats.logps_chosen);
    MIX(stats.logps_rejected);
    MIX(stats.logits_chosen);
    MIX(stats.logits_rejected);
    MIX(stats.margin);
    MIX(stats.k_mean);
    MIX(stats.w_mean);
    MIX(stats.s_norm_mean);
    MIX(stats.s_mean);
    MIX(stats.ppl_mean);
    MIX(stats.ppl_norm_mean);
#undef MIX
    if (!*pairs_seen) {
        sum->stats.k_min = r->stats.k_min, sum->stats.k_max = r->stats.k_max;
        sum->stats.w_min = r->stats.w_min, sum->stats.w_max = r->stats.w_max;
        sum->stats.s_norm_min = r->stats.s_norm_min, sum->stats.s_norm_max = r->stats.s_norm_max;
        sum->stats.s_min = r->stats.s_min, sum->stats.s_max = r->stats.s_max;
        sum->stats.ppl_min = r->stats.ppl_min, sum->stats.ppl_max = r->stats.ppl_max;
        sum->stats.ppl_norm_min = r->stats.ppl_norm_min;
        sum->stats.ppl_norm_max = r->stats.ppl_norm_max;
        sum->stats.k_reward_ratio = sum->stats.k_token_count = sum->stats.n_units = 0;
        sum->tokens = 0;
    } else {
        sum->stats.k_min = fmin(sum->stats.k_min, r->stats.k_min);
        sum->stats.k_max = fmax(sum->stats.k_max, r->stats.k_max);
        sum->stats.w_min = fmin(sum->stats.w_min, r->stats.w_min);
        sum->stats.w_max = fmax(sum->stats.w_max, r->stats.w_max);
        sum->stats.s_norm_min = fmin(sum->stats.s_norm_min, r->stats.s_norm_min);
        sum->stats.s_norm_max = fmax(sum->stats.s_norm_max, r->stats.s_norm_max);
        sum->stats.s_min = fmin(sum->stats.s_min, r->stats.s_min);
        sum->stats.s_max = fmax(sum->stats.s_max, r->stats.s_max);
        sum->stats.ppl_min = fmin(sum->stats.ppl_min, r->stats.ppl_min);
        sum->stats.ppl_max = fmax(sum->stats.ppl_max, r->stats.ppl_max);
        sum->stats.ppl_norm_min = fmin(sum->stats.ppl_norm_min, r->stats.ppl_norm_min);
        sum->stats.ppl_norm_max = fmax(sum->stats.ppl_norm_max, r->stats.ppl_norm_max);
    }
    sum->stats.k_reward_ratio += r->stats.k_reward_ratio;
    sum->stats.k_token_count += r->stats.k_token_count;
    sum->stats.n_units += r->stats.n_units;
    sum->stats.n_pairs = *pairs_seen + n_pairs;
    sum->tokens += r->tokens;
    *pairs_seen += n_pairs;
}

/* Loss and reward accuracy over the eval pairs, no tape. */
static aspo_status evaluate(trainer *t, batch_result *out)
{
    int seen = 0;
    memset(out, 0, sizeof *out);
    for (int64_t i = 0; i < t->data.n_eval; i += t->cfg->batch_size) {
        int n = (int)(t->data.n_eval - i < t->cfg->batch_size ? t->data.n_eval - i : t->cfg->batch_size);
        batch_result r;
        aspo_status s = train_batch(t, t->data.eval + i, n, 0.0, &r);
        if (s) return s;
        add_result(out, &r, n, &seen);
    }
    return ASPO_OK;
}

/* One metrics.jsonl line; a failed write (disk full, a file size limit) is an error. */
static aspo_status write_metrics(FILE *f, const trainer *t, const char *prefix, int64_t step,
                                 double epoch, const batch_result *r, double lr,
                                 double grad_norm, double tokens_per_s)
{
    uint64_t mark = json_guard_mark(); /* a failed json_real() would drop its field */
    json_t *o = json_object();
    json_object_set_new(o, "step", json_integer(step));
    json_object_set_new(o, "epoch", json_real(epoch));
    char key[96];
    snprintf(key, sizeof key, "%sloss", prefix);
    json_object_set_new(o, key, json_real(r->loss));
    aspo_metric m[64];
    int n = aspo_loss_metrics(&t->loss, &r->stats, m, 64);
    for (int i = 0; i < n && i < 64; i++) {
        snprintf(key, sizeof key, "%s%s", prefix, m[i].name);
        json_object_set_new(o, key, isfinite(m[i].value) ? json_real(m[i].value) : json_null());
    }
    if (!*prefix) {
        json_object_set_new(o, "learning_rate", json_real(lr));
        json_object_set_new(o, "grad_norm", json_real(grad_norm));
        json_object_set_new(o, "tokens_per_s", json_real(tokens_per_s));
        if (t->scaler.enabled) json_object_set_new(o, "loss_scale", json_real(t->scaler.scale));
    }
    char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
    json_decref(o);
    if (json_guard_check(mark, "metrics.jsonl")) {
        free(line);
        return aspo_fail_replace(ASPO_ERR_OOM, "%s/metrics.jsonl: out of memory building step "
                                 "%lld's line", t->cfg->out, (long long)step);
    }
    bool ok = line && fprintf(f, "%s\n", line) >= 0 && fflush(f) == 0;
    free(line);
    if (!ok)
        return aspo_fail(ASPO_ERR_IO, "%s/metrics.jsonl: cannot write step %lld's line: %s",
                         t->cfg->out, (long long)step, line ? strerror(errno) : "out of memory");
    return ASPO_OK;
}

/* metrics.jsonl, opened for the run's lines; a resumed run keeps only the lines up to the
 * checkpoint's step (copied aside, then renamed over it: a failure keeps the old file). */
static aspo_status open_metrics(const char *out, int64_t keep_until, FILE **f)
{
    char path[4200], tmp[4300];
    snprintf(path, sizeof path, "%s/metrics.jsonl", out);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    *f = NULL;
    if (keep_until > 0) {
        FILE *in = fopen(path, "r"), *outf = fopen(tmp, "w");
        bool ok = outf != NULL;
        char *line = NULL;
        size_t cap = 0;
        uint64_t mark = json_guard_mark();
        while (ok && in && getline(&line, &cap, in) > 0) {
            json_t *o = json_loads(line, 0, NULL);
            json_int_t step = o ? json_integer_value(json_object_get(o, "step")) : 0;
            if (o && step <= keep_until) ok = fputs(line, outf) >= 0;
            json_decref(o);
        }
        ok = ok && !(in && ferror(in));
        free(line);
        if (in) fclose(in);
        if (outf && fclose(outf) != 0) ok = false;
        aspo_status s = json_guard_check(mark, path);
        if (s || !ok || rename(tmp, path) != 0) {
            int e = errno;
            remove(tmp);
            return s ? s : aspo_fail(ASPO_ERR_IO, "%s: cannot keep its lines up to step %lld: "
                                     "%s", path, (long long)keep_until, strerror(e));
        }
    }
    *f = fopen(path, keep_until > 0 ? "a" : "w");
    if (!*f) return aspo_fail(ASPO_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    return ASPO_OK;
}

static void progress(const train_config *cfg, int64_t step, int64_t total, const batch_result *r,
                     double tok_s, double elapsed)
{
    if (cfg->quiet || (step % cfg->logging_steps && step != total)) return;
    double eta = step ? elapsed / (double)step * (double)(total - step) : 0;
    fprintf(stderr, "step %lld/%lld  loss %.4f  acc %.2f  margin %+.4f  %.0f tok/s  ETA %dm%02ds\n",
            (long long)step, (long long)total, r->loss, r->stats.rewards_accuracies,
            r->stats.rewards_margins, tok_s, (int)(eta / 60), (int)fmod(eta, 60));
}

/* Names the step in a NaN/Inf error, so the user knows which checkpoints predate it. */
static aspo_status at_step(aspo_status s, int64_t step)
{
    if (s != ASPO_ERR_NUMERIC) return s;
    char cause[1024]; /* the message buffer is both source and target otherwise */
    snprintf(cause, sizeof cause, "%s", aspo_error_message());
    return aspo_fail_replace(s, "step %lld: %s; nothing of this step was saved, the "
                             "checkpoints of earlier steps are kept (--resume)",
                             (long long)step, cause);
}

/* SIGINT and SIGTERM during training: the step under way finishes, a checkpoint holds it,
 * and the run ends with ASPO_ERR_STOPPED (exit 128 + the signal). The handler only notes
 * the signal and gives the next one its default action: a second Ctrl-C ends the process
 * at once (checkpoints are written whole or not at all). Before the loop nothing is lost,
 * and the default action stays. */
static volatile sig_atomic_t stop_signal;
static int stopped_by;

int train_stop_signal(void) { return stopped_by; }

static void note_stop(int sig)
{
    stop_signal = sig;
    signal(sig, SIG_DFL);
}

/* Catches SIGINT and SIGTERM (not one the process was told to ignore, as nohup and a
 * shell's background jobs are), or gives back what was there before. */
static void catch_stops(bool on)
{
    static const int sigs[2] = {SIGINT, SIGTERM};
    static struct sigaction before[2];
    for (int i = 0; i < 2; i++) {
        if (!on) {
            sigaction(sigs[i], &before[i], NULL);
            continue;
        }
        sigaction(sigs[i], NULL, &before[i]);
        if (before[i].sa_handler == SIG_IGN) continue;
        struct sigaction sa = {0};
        sa.sa_handler = note_stop;
        sigemptyset(&sa.sa_mask);
        sigaction(sigs[i], &sa, NULL);
    }
    if (!on) stop_signal = 0;
}

static aspo_status stop_after_step(trainer *t, adamw *opt, const train_state *st,
                                   int64_t total, bool saved)
{
    const train_config *cfg = t->cfg;
    stopped_by = stop_signal;
    aspo_status s = saved ? ASPO_OK : checkpoint_save(t, opt, st, cfg->out);
    if (s) return s;
    return aspo_fail(ASPO_ERR_STOPPED, "stopped by %s after step %lld of %lld; %s/checkpoint-%lld "
                     "holds it: run the same command with --resume auto to go on",
                     stopped_by == SIGINT ? "SIGINT" : "SIGTERM", (long long)st->step,
                     (long long)total, cfg->out, (long long)st->step);
}

static aspo_status train_loop(trainer *t, adamw *opt, const lr_schedule *sched, int64_t total,
                              int64_t steps_per_epoch, train_state *st, FILE *metrics,
                              train_summary *sum)
{
    const train_config *cfg = t->cfg;
    int64_t per_step = cfg->batch_size * cfg->grad_accum;
    int64_t *order = malloc(sizeof(int64_t) * (size_t)t->data.n_train);
    int64_t *index = malloc(sizeof(int64_t) * (size_t)cfg->batch_size);
    if (!order || !index) {
        free(order);
        free(index);
        return aspo_fail(ASPO_ERR_OOM, "no host memory for the data order");
    }
    aspo_status s = ASPO_OK;
    int64_t epoch_of_order = -1;
    double start = now_seconds();
    int64_t start_step = st->step;
    while (st->step < total && !s) {
        int64_t epoch = st->step / steps_per_epoch, within = st->step % steps_per_epoch;
        if (epoch != epoch_of_order) { /* each epoch its own seeded order */
            shuffle_indices(order, t->data.n_train, (uint64_t)cfg->seed, (uint64_t)epoch + 1);
            epoch_of_order = epoch;
        }
        batch_result step_result = {0};
        int seen = 0;
        for (long a = 0; a < cfg->grad_accum && !s; a++) {
            int64_t first = within * per_step + a * cfg->batch_size;
            int n = 0;
            for (; n < cfg->batch_size && first + n < t->data.n_train; n++)
                index[n] = t->data.train[order[first + n]];
            if (!n) break;
            batch_result r;
            double scale = t->scaler.scale / (double)cfg->grad_accum;
            s = at_step(train_batch(t, index, n, scale, &r), st->step + 1);
            if (!s) add_result(&step_result, &r, n, &seen);
        }
        if (s) break;
        double norm = 0;
        param_store *ps = &t->model.lm->ps;
        s = loss_scale_unscale(&t->scaler, ps);
        /* --max-grad-norm 0 = off: clip_grad_norm wants a finite bound, and no finite
         * norm exceeds FLT_MAX; it still measures the norm and stops on NaN/Inf. */
        if (!s) s = clip_grad_norm(ps, cfg->max_grad_norm > 0 ? (float)cfg->max_grad_norm
                                                             : FLT_MAX, &norm);
        bool overflow = t->scaler.enabled && s == ASPO_ERR_NUMERIC;
        if (overflow) { /* f16 gradients overflowed: the same step again at half the scale */
            aspo_error_clear();
            if (!cfg->quiet)
                fprintf(stderr, "step %lld: gradients overflowed f16 at loss scale %g; the step "
                        "runs again at %g\n", (long long)st->step + 1, t->scaler.scale,
                        t->scaler.scale / 2);
            s = loss_scale_update(&t->scaler, true);
            if (!s) s = param_store_zero_grad(ps);
            s = at_step(s, st->step + 1);
            if (s) break;
            continue;
        }
        if (!s) s = loss_scale_update(&t->scaler, false);
        s = at_step(s, st->step + 1);
        double lr = schedule_lr(sched, st->step);
        if (!s) s = adamw_step(opt, (float)lr);
        if (!s) s = param_store_zero_grad(&t->model.lm->ps);
        if (s) break;
        st->step++;
        st->rng_counter = runtime_current()->rng_counter;
        if (st->step == start_step + 1) sum->first_loss = step_result.loss;
        sum->last_loss = step_result.loss;
        double elapsed = now_seconds() - start;
        double tok_s = elapsed > 0 ? (double)step_result.tokens / (elapsed / (double)(st->step - start_step)) : 0;
        s = write_metrics(metrics, t, "", st->step, (double)st->step / (double)steps_per_epoch,
                          &step_result, lr, norm, tok_s);
        if (s) break;
        progress(cfg, st->step, total, &step_result, tok_s, elapsed);
        /* Evaluate before saving: a step whose eval loss is NaN leaves no checkpoint. */
        if (cfg->eval_steps && t->data.n_eval && st->step % cfg->eval_steps == 0) {
            batch_result ev;
            s = at_step(evaluate(t, &ev), st->step);
            if (!s) s = write_metrics(metrics, t, "eval/", st->step, (double)st->step / (double)steps_per_epoch, &ev, 0, 0, 0);
        }
        bool saved = false;
        if (!s && cfg->save_steps && st->step % cfg->save_steps == 0 && st->step < total) {
            s = checkpoint_save(t, opt, st, cfg->out);
            saved = true;
        }
        if (!s && stop_signal && st->step < total) s = stop_after_step(t, opt, st, total, saved);
    }
    free(order);
    free(index);
    return s;
}

static aspo_status run(trainer *t, train_summary *sum)
{
    const train_config *cfg = t->cfg;
    tokenizer *tok = NULL;
    aspo_status s = tokenizer_load(cfg->tokenizer ? cfg->tokenizer : cfg->model, &tok);
    if (s) return s;
    t->pad_id = tokenizer_pad_id(tok) >= 0 ? tokenizer_pad_id(tok) : tokenizer_eos_id(tok);
    int64_t tok_vocab = tokenizer_vocab_size(tok);
    t->image_limits = (image_limits){.max_pixels = cfg->max_image_pixels};
    /* The rows first (whether there are images decides alpha's default and whether a CLIP is
     * needed), then the model (its image token and CLIP), then tokens, units and S. */
    bool need_similarity = false;
    char rows[4200];
    if (!(s = train_data_read(cfg, &t->data)) &&
        !(s = trainer_loss_options(cfg, t->data.n_images > 0, &t->loss))) {
        s = trainer_check_images(cfg, trainer_image_rows(cfg, &t->data, rows, sizeof rows));
        need_similarity = t->loss.kind == ASPO_LOSS_ASPO && t->data.n_images > 0 &&
                          (t->loss.alpha > 0 || t->loss.weights == ASPO_WEIGHTS_S);
        if (!s) s = trainer_open_model(cfg, (uint64_t)cfg->seed, need_similarity, &t->model);
    }
    if (!s) s = train_data_prepare(cfg, tok, t->loss.level, &t->model, &t->image_limits,
                                   &t->data);
    if (!s) s = policy_vision_cache_open(&t->model, &t->cache, cfg->vision_cache, cfg->model);
    tokenizer_free(tok);
    if (s) return s;
    char counts[512];
    truncation_counts_format(&t->data.counts, counts, sizeof counts);
    if (!cfg->quiet)
        fprintf(stderr, "data: %s: %lld pairs (%lld train, %lld eval, %lld bad lines skipped); %s\n",
                cfg->data, (long long)t->data.n, (long long)t->data.n_train,
                (long long)t->data.n_eval, (long long)t->data.ds.n_skipped, counts);
    if (t->data.ds.n_skipped) /* a warning, so also under --quiet */
        fprintf(stderr, "aspo: warning: --skip-bad-lines left out %lld bad lines; the first: %s\n",
                (long long)t->data.ds.n_skipped, t->data.ds.first_skip);
    int64_t sums_only = 0;
    for (int64_t i = 0; i < t->data.n; i++)
        sums_only += t->data.ds.rows[i].has_ref_logps && !t->data.ds.rows[i].ref_chosen_tokens;
    if (sums_only && t->loss.kind == ASPO_LOSS_ASPO)
        fprintf(stderr,
                "aspo: warning: %lld rows carry only summed reference log-probs; ASPO needs "
                "each token's, so the reference model runs for them (`aspo score "
                "--token-logps` writes per-token values)\n",
                (long long)sums_only);
    if (tok_vocab > t->model.lm->cfg.vocab_size)
        return aspo_fail(ASPO_ERR_USAGE,
                         "the tokenizer (%s) has %lld tokens but the model %s has vocab_size "
                         "%lld: they do not belong together",
                         cfg->tokenizer ? cfg->tokenizer : cfg->model, (long long)tok_vocab,
                         cfg->model, (long long)t->model.lm->cfg.vocab_size);

    adamw opt;
    adamw_config ac = adamw_defaults();
    ac.weight_decay = (float)cfg->weight_decay;
    if ((s = adamw_init(&opt, &t->model.lm->ps, &ac))) return s;
    t->scaler = loss_scale_defaults(t->model.lm->activation_dt == DT_F16);
    if (t->scaler.enabled) t->scaler.scale = cfg->loss_scale;
    int64_t per_step = cfg->batch_size * cfg->grad_accum;
    int64_t steps_per_epoch = (t->data.n_train + per_step - 1) / per_step;
    int64_t total = cfg->max_steps > 0 ? cfg->max_steps : cfg->epochs * steps_per_epoch;
    lr_schedule sched = {.kind = (schedule_kind)schedule_kind_from_name(cfg->scheduler),
                         .base_lr = cfg->lr,
                         .warmup_steps = schedule_warmup_steps(total, cfg->warmup_ratio, 0),
                         .total_steps = total};
    train_state st = {.total = total};
    if (!(s = schedule_check(&sched)) && cfg->resume)
        s = checkpoint_load(t, &opt, cfg->resume, cfg->out, &st);
    if (!s) runtime_current()->rng_counter = st.rng_counter;
    FILE *metrics = NULL;
    if (!s) s = open_metrics(cfg->out, st.step, &metrics);
    if (!s && !cfg->quiet)
        fprintf(stderr, "model: %s: %lld trainable of %lld parameters (frozen %s, activations "
                "%s); %lld steps%s\n", cfg->model,
                (long long)param_store_count(&t->model.lm->ps, true),
                (long long)param_store_count(&t->model.lm->ps, false),
                dtype_name(t->model.lm->storage_dt), dtype_name(t->model.lm->activation_dt),
                (long long)total, st.step ? " (resumed)" : "");
    char vision[512];
    if (!s && !cfg->quiet && policy_describe_vision(&t->model, vision, sizeof vision))
        fprintf(stderr, "vision: %s\n", vision);
    batch_result ev;
    if (!s && t->data.n_eval && !st.step && !(s = evaluate(t, &ev))) {
        sum->eval_accuracy_before = ev.stats.rewards_accuracies;
        sum->eval_margin_before = ev.stats.rewards_margins;
        s = write_metrics(metrics, t, "eval/", 0, 0, &ev, 0, 0, 0);
    }
    if (!s) {
        catch_stops(true);
        s = train_loop(t, &opt, &sched, total, steps_per_epoch, &st, metrics, sum);
        catch_stops(false);
    }
    if (!s) s = run_output_save_adapter(&t->model, cfg->out);
    if (!s && t->data.n_eval && !(s = evaluate(t, &ev))) {
        sum->eval_accuracy_after = ev.stats.rewards_accuracies;
        sum->eval_margin_after = ev.stats.rewards_margins;
        /* the loop already wrote this step's eval line when eval_steps divides it */
        if (!cfg->eval_steps || st.step % cfg->eval_steps)
            s = write_metrics(metrics, t, "eval/", st.step,
                              (double)st.step / (double)steps_per_epoch, &ev, 0, 0, 0);
    }
    sum->steps = st.step;
    if (!cfg->quiet && t->cache.dir)
        fprintf(stderr, "vision cache %s: %lld images read from it, %lld computed\n",
                t->cache.dir, (long long)t->cache.hits, (long long)t->cache.misses);
    if (metrics && fclose(metrics) != 0 && !s)
        s = aspo_fail(ASPO_ERR_IO, "%s/metrics.jsonl: cannot write: %s", cfg->out, strerror(errno));
    adamw_free(&opt);
    return s;
}

void trainer_free(trainer *t)
{
    policy_close(&t->model);
    train_data_free(&t->data);
    free(t->logp);
    free(t->ref);
    free(t->sums);
    free(t->grad);
    free(t->vision);
    vision_cache_close(&t->cache);
    t->logp = t->ref = t->sums = t->grad = t->vision = NULL;
    t->cap = t->vision_cap = 0;
}

aspo_status train_run(const train_config *cfg, train_summary *summary)
{
    if (cfg->dry_run) return dry_run(cfg, summary); /* the memory plan: nothing allocated */
    if (cfg->plan_seq || cfg->plan_image || cfg->plan_memory_gib > 0)
        return aspo_fail(ASPO_ERR_USAGE, "--plan-seq, --plan-image and --plan-memory describe "
                         "a memory plan: give --dry-run too");
    if (!cfg->model || !cfg->data)
        return aspo_fail(ASPO_ERR_USAGE, "run needs --model DIR and --data FILE");
    backend *be = backend_get(cfg->backend);
    if (!be) return aspo_error_status();
    aspo_status s = run_output_prepare(cfg->out, cfg->resume != NULL, cfg->overwrite, cfg->adapter);
    if (s) return s;
    runtime_init(be, 0);
    runtime_set_seed((uint64_t)cfg->seed);
    size_t live_before = backend_memory_stats(be).live; /* what this run adds is its own */
    backend_memory_reset_peak(be);
    train_summary local = {.eval_accuracy_before = NAN, .eval_accuracy_after = NAN,
                           .eval_margin_before = NAN, .eval_margin_after = NAN};
    trainer t = {.cfg = cfg};
    s = run(&t, &local);
    if (!s) { /* the measured peak: a "memory:" line and <out>/memory.json */
        train_memory_measure(&t.model, live_before, &local.memory);
        s = train_memory_report(cfg, &local.memory);
    }
    trainer_free(&t);
    runtime_shutdown();
    if (summary) *summary = local;
    return s;
}
