/* `aspo score`: reference log-probs of every pair, written beside the input rows. */
#define _POSIX_C_SOURCE 200809L /* getline, fsync, fileno */
#include "backends/registry.h"
#include "aspo/inference/score.h"
#include "aspo/train/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "aspo/model/image_features.h"
#include "aspo/data/image_rows.h"
#include "aspo/data/pair_batch.h"
#include "aspo/train/trainer.h"
#include "models/tokenizer.h"
#include "models/weights.h"
#include "nn/lora.h"
#include "nn/modules.h"
#include "tensor/json_guard.h"
#include "tensor/runtime.h"
#include "tensor/tensor_ops.h"

score_config score_defaults(void)
{
    train_config t = train_defaults();
    return (score_config){
        .backend = t.backend, .dtype = t.dtype, .activation_dtype = t.activation_dtype,
        .chat_template = t.chat_template,
        .truncation_mode = t.truncation_mode, .max_length = t.max_length,
        .max_prompt_length = t.max_prompt_length,
        .max_completion_length = t.max_completion_length, .batch_size = t.batch_size,
        .device = t.device,
    };
}

void pair_logps_free(pair_logps *p, int64_t n)
{
    for (int64_t i = 0; p && i < n; i++) {
        free(p[i].chosen_tokens);
        free(p[i].rejected_tokens);
        p[i].chosen_tokens = p[i].rejected_tokens = NULL;
    }
}

/* ---- scoring ---- */

typedef struct by_length {
    int64_t len, index;
} by_length;

static int longest_first(const void *a, const void *b)
{
    const by_length *x = a, *y = b;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

/* Sum (and copy) of row r's response log-probs from the (2P,T) host array. */
static aspo_status take_row(const pair_batch *b, const float *logp, int r, bool keep,
                            double *sum, float **tokens, int64_t *count)
{
    const float *v = logp + (size_t)r * (size_t)b->T + b->first[r];
    double s = 0;
    for (int64_t j = 0; j < b->count[r]; j++) s += v[j];
    *sum = s;
    *count = b->count[r];
    if (!keep) return ASPO_OK;
    *tokens = malloc(sizeof(float) * (size_t)(b->count[r] ? b->count[r] : 1));
    if (!*tokens) return aspo_fail(ASPO_ERR_OOM, "no host memory for per-token log-probs");
    memcpy(*tokens, v, sizeof(float) * (size_t)b->count[r]);
    return ASPO_OK;
}

/* One forward over the pairs order[0..n): out[order[i]] filled. */
static aspo_status score_batch(policy_model *m, const tokenized_pair *pairs,
                               const score_images *img, const by_length *order, int n,
                               const score_batching *batching, bool keep, float **host,
                               size_t *cap, pair_logps *out)
{
    const tokenized_pair *batch[n];
    for (int i = 0; i < n; i++) batch[i] = &pairs[order[i].index];
    pair_batch b;
    pair_batch_images images;
    bool reads_images = policy_images(m, &images);
    aspo_status s = pair_batch_make(batch, n, batching->pad_id, reads_images ? &images : NULL,
                                    batching->no_prefix_sharing, batching->max_tokens, &b);
    if (s) return s;
    float *vision = NULL;
    if (b.n_images) {
        size_t per = policy_feature_floats(m);
        const preference_row *rows[n];
        for (int i = 0; i < n; i++) rows[i] = &img->rows[order[i].index];
        if (!(vision = malloc(sizeof(float) * (size_t)b.n_images * per)))
            s = aspo_fail(ASPO_ERR_OOM, "no host memory for %d images' features", b.n_images);
        else
            s = policy_image_features(m, NULL, img->root, img->limits, rows, b.image_slot, n,
                                      vision);
    }
    size_t cells = (size_t)(2 * n) * (size_t)b.T;
    if (cells > *cap) {
        free(*host);
        *cap = 0;
        if (!(*host = malloc(sizeof(float) * cells)))
            s = aspo_fail(ASPO_ERR_OOM, "no host memory for %zu log-probs", cells);
        else
            *cap = cells;
    }
    tensor *logp = s ? NULL : policy_logprobs(m, &b, vision, NULL); /* (2P,T) */
    if (!s && !logp) s = aspo_error_status();
    if (!s) s = tensor_to_host_f32(logp, *host);
    for (int i = 0; i < n && !s; i++) {
        pair_logps *o = &out[order[i].index];
        s = take_row(&b, *host, i, keep, &o->chosen, &o->chosen_tokens, &o->n_chosen);
        if (!s) s = take_row(&b, *host, n + i, keep, &o->rejected, &o->rejected_tokens,
                             &o->n_rejected);
    }
    runtime_step_reset();
    pair_batch_free(&b);
    free(vision);
    return s;
}

aspo_status score_pairs(policy_model *m, const tokenized_pair *pairs, int64_t n,
                        const score_images *images, const score_batching *batching,
                        bool keep_tokens, pair_logps *out, FILE *progress)
{
    memset(out, 0, sizeof *out * (size_t)n);
    int batch_size = batching->batch_size;
    int32_t pad_id = batching->pad_id;
    if (batch_size < 1) return aspo_fail(ASPO_ERR_USAGE, "batch size %d: must be >= 1", batch_size);
    if (pad_id < 0 || pad_id >= m->lm->cfg.vocab_size)
        return aspo_fail(ASPO_ERR_USAGE, "pad id %d is outside the model's vocabulary (%lld)",
                         (int)pad_id, (long long)m->lm->cfg.vocab_size);
    pair_batch_images probe;
    if (policy_images(m, &probe) && !images)
        return aspo_fail(ASPO_ERR_USAGE, "score_pairs: a %s model needs the rows' images",
                         policy_describe(m));
    /* Longest first: similar lengths share a batch (less padding), and the biggest batch
     * comes first. Results land by index, so the order does not show in them. */
    by_length *order = malloc(sizeof *order * (size_t)(n ? n : 1));
    if (!order) return aspo_fail(ASPO_ERR_OOM, "no host memory to order %lld pairs", (long long)n);
    for (int64_t i = 0; i < n; i++) {
        int64_t c = pairs[i].chosen.n, r = pairs[i].rejected.n;
        order[i] = (by_length){c > r ? c : r, i};
    }
    qsort(order, (size_t)n, sizeof *order, longest_first);

    bool grad = autograd_set_enabled(false), training = nn_set_training(false);
    float *host = NULL;
    size_t cap = 0;
    aspo_status s = ASPO_OK;
    double start = now_seconds(), last = start;
    for (int64_t i = 0; i < n && !s; i += batch_size) {
        int k = (int)(n - i < batch_size ? n - i : batch_size);
        s = score_batch(m, pairs, images, order + i, k, batching, keep_tokens, &host, &cap,
                        out);
        double t = now_seconds();
        if (!s && progress && (t - last > 10 || i + k == n) && t - start > 1) {
            fprintf(progress, "scored %lld/%lld pairs\n", (long long)(i + k), (long long)n);
            last = t;
        }
    }
    nn_set_training(training);
    autograd_set_enabled(grad);
    free(host);
    free(order);
    if (s) pair_logps_free(out, n);
    return s;
}

/* ---- the job ---- */

typedef struct score_job {
    const score_config *cfg;
    preference_dataset ds;
    tokenized_pair *pairs; /* (ds.n_rows) */
    truncation_counts counts;
    tokenizer *tok;
    policy_model model;
    image_limits limits;
    pair_logps *logps;     /* (ds.n_rows) */
} score_job;

/* Whether dir holds a tokenizer (tokenizer.json or tokenizer.model). */
static bool tokenizer_files_exist(const char *dir)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    if (access(path, R_OK) == 0) return true;
    snprintf(path, sizeof path, "%s/tokenizer.model", dir);
    return access(path, R_OK) == 0;
}

static aspo_status tokenize_all(score_job *j)
{
    const score_config *cfg = j->cfg;
    tokenize_options topt = tokenize_options_default();
    topt.max_length = cfg->max_length;
    topt.max_prompt_length = cfg->max_prompt_length;
    topt.max_completion_length = cfg->max_completion_length;
    topt.add_bos = !cfg->no_bos;
    aspo_status s;
    if ((s = policy_tokenize_options(&j->model, cfg->chat_template, &topt)) ||
        (s = truncation_mode_parse(cfg->truncation_mode, &topt.mode)))
        return s;
    /* The tokenizer as aspo run loads it whenever there is one, also for pre-tokenized rows:
     * their ids are checked against its vocabulary by the same rule in both commands (and it
     * gives the padding id). Pre-tokenized rows and a model directory without tokenizer
     * files: the model's vocabulary is the limit. */
    bool text = cfg->tokenizer != NULL || tokenizer_files_exist(cfg->model);
    for (int64_t i = 0; i < j->ds.n_rows; i++) text |= !preference_row_is_tokenized(&j->ds.rows[i]);
    if (text && (s = tokenizer_load(cfg->tokenizer ? cfg->tokenizer : cfg->model, &j->tok)))
        return s;
    topt.vocab_size = j->model.lm->cfg.vocab_size;
    j->pairs = calloc((size_t)j->ds.n_rows, sizeof *j->pairs);
    if (!j->pairs) return aspo_fail(ASPO_ERR_OOM, "no host memory for %lld pairs", (long long)j->ds.n_rows);
    for (int64_t i = 0; i < j->ds.n_rows && !s; i++) {
        s = pair_tokenize(j->tok, &j->ds.rows[i], &topt, &j->pairs[i], &j->counts);
        if (!s) s = policy_check_row(&j->model, &j->ds.rows[i]);
    }
    return s;
}

/* The padding id, as aspo run picks it (the tokenizer's pad, else its EOS), else the
 * model config's; any id the embedding holds will do, since padding is masked. */
static int32_t pad_id(const score_job *j)
{
    const llama_config *c = &j->model.lm->cfg;
    int32_t tok_pad = j->tok ? tokenizer_pad_id(j->tok) : -1;
    int32_t tok_eos = j->tok ? tokenizer_eos_id(j->tok) : -1;
    int32_t candidates[] = {tok_pad, tok_eos, c->pad_token_id, c->n_eos ? c->eos_token_ids[0] : -1};
    for (size_t i = 0; i < sizeof candidates / sizeof *candidates; i++)
        if (candidates[i] >= 0 && candidates[i] < c->vocab_size) return candidates[i];
    return 0;
}

static aspo_status open_model(score_job *j)
{
    const score_config *cfg = j->cfg;
    policy_options o = policy_defaults();
    o.model = cfg->model;
    o.storage_dtype = strcmp(cfg->dtype, "auto") ? dtype_from_name(cfg->dtype) : -1;
    /* As aspo run computes: a precomputed reference must round as the run's policy does. */
    o.activation_dtype = policy_activation_dtype(cfg->activation_dtype, cfg->backend);
    o.adapter = cfg->adapter; /* r, alpha and targets from its adapter_config.json */
    o.vision_tower = cfg->vision_tower;
    return policy_open(&o, &j->model);
}

static json_t *float_array(const float *v, int64_t n)
{
    json_t *a = json_array();
    for (int64_t i = 0; a && i < n; i++)
        if (json_array_append_new(a, json_real(v[i]))) {
            json_decref(a);
            return NULL;
        }
    return a;
}

static bool is_score_key(const char *key)
{
    return !strcmp(key, "id") || !strcmp(key, "ref_chosen_logps") ||
           !strcmp(key, "ref_rejected_logps") || !strcmp(key, "ref_chosen_token_logps") ||
           !strcmp(key, "ref_rejected_token_logps");
}

/* The output line of row i: id and the sums first, the row's other fields in their order,
 * then the per-token arrays (long). Reference fields already in the row are replaced. */
static char *output_line(const score_job *j, int64_t i, const char *text, size_t len)
{
    const preference_row *row = &j->ds.rows[i];
    const pair_logps *p = &j->logps[i];
    json_error_t err;
    uint64_t mark = json_guard_mark(); /* jansson may lose a character or a field */
    json_t *in = json_loadb(text, len, 0, &err), *o = json_object();
    bool ok = in && json_is_object(in) && o;
    json_t *id = ok ? json_object_get(in, "id") : NULL;
    ok = ok && !json_object_set_new(o, "id", id && !json_is_null(id) ? json_incref(id)
                                                                      : json_integer(row->line));
    ok = ok && !json_object_set_new(o, "ref_chosen_logps", json_real(p->chosen)) &&
         !json_object_set_new(o, "ref_rejected_logps", json_real(p->rejected));
    const char *key;
    json_t *value;
    if (ok) json_object_foreach(in, key, value)
    {
        if (!is_score_key(key) && json_object_set(o, key, value)) ok = false;
    }
    if (ok && j->cfg->token_logps)
        ok = !json_object_set_new(o, "ref_chosen_token_logps",
                                  float_array(p->chosen_tokens, p->n_chosen)) &&
             !json_object_set_new(o, "ref_rejected_token_logps",
                                  float_array(p->rejected_tokens, p->n_rejected));
    /* 9 significant digits: every f32 round-trips; the sums are f32 model outputs too. */
    char *line = ok ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;
    char what[4200];
    snprintf(what, sizeof what, "%s line %lld", row->source, (long long)row->line);
    if (json_guard_check(mark, what)) {
        free(line);
        line = NULL;
    } else if (!line)
        aspo_fail(ASPO_ERR_FORMAT, "%s line %lld: cannot re-read the row to write its scores "
                  "(did the file change while scoring?)", row->source, (long long)row->line);
    json_decref(in);
    json_decref(o);
    return line;
}

/* SeVa's list has no lines to copy: each kept entry is written as an aspo JSONL row
 * (prompt, chosen, rejected, image) with its scores. */
static aspo_status write_list_rows(const score_job *j, FILE *f)
{
    aspo_status s = ASPO_OK;
    for (int64_t i = 0; i < j->ds.n_rows && !s; i++) {
        const preference_row *row = &j->ds.rows[i];
        uint64_t mark = json_guard_mark();
        json_t *o = json_pack("{s:s%, s:s%, s:s%}", "prompt", row->prompt, row->prompt_len,
                              "chosen", row->chosen, row->chosen_len, "rejected",
                              row->rejected, row->rejected_len);
        if (o && row->id) json_object_set_new(o, "id", json_string(row->id));
        if (o && row->image) json_object_set_new(o, "image", json_string(row->image));
        char *text = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        json_decref(o);
        if ((s = json_guard_check(mark, row->source))) {
            free(text);
            break;
        }
        char *out = text ? output_line(j, i, text, strlen(text)) : NULL;
        if (!out) s = text ? aspo_error_status() : aspo_fail(ASPO_ERR_OOM, "out of memory");
        else if (fputs(out, f) == EOF || fputc('\n', f) == EOF)
            s = aspo_fail(ASPO_ERR_IO, "%s: write failed: %s", j->cfg->out, strerror(errno));
        free(text);
        free(out);
    }
    return s;
}

/* Writes every row, in input order, to f: the input file is read again line by line and
 * each kept row's line becomes its output line (skipped and blank lines leave none). */
static aspo_status write_rows(const score_job *j, FILE *f)
{
    if (j->ds.format == DATASET_JSON_LIST) return write_list_rows(j, f);
    FILE *in = fopen(j->cfg->data, "rb");
    if (!in) return aspo_fail(ASPO_ERR_IO, "%s: cannot open: %s", j->cfg->data, strerror(errno));
    char *buf = NULL;
    size_t cap = 0;
    ssize_t got = 0;
    int64_t line = 0;
    aspo_status s = ASPO_OK;
    for (int64_t i = 0; i < j->ds.n_rows && !s; i++) {
        while (line < j->ds.rows[i].line && (got = getline(&buf, &cap, in)) >= 0) line++;
        if (line != j->ds.rows[i].line || got < 0) {
            s = aspo_fail(ASPO_ERR_IO, "%s: ended before line %lld (did it change while "
                          "scoring?)", j->cfg->data, (long long)j->ds.rows[i].line);
            break;
        }
        const char *text = buf;
        size_t len = (size_t)got;
        if (line == 1 && len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3)) text += 3, len -= 3;
        char *out = output_line(j, i, text, len);
        if (!out) s = aspo_error_status();
        else if (fputs(out, f) == EOF || fputc('\n', f) == EOF)
            s = aspo_fail(ASPO_ERR_IO, "%s: write failed: %s", j->cfg->out, strerror(errno));
        free(out);
    }
    free(buf);
    fclose(in);
    return s;
}

/* cfg->out via "<out>.tmp", fsync and rename: an old output survives a failed run. */
static aspo_status write_output(const score_job *j)
{
    const char *out = j->cfg->out;
    size_t n = strlen(out) + 5;
    char *tmp = malloc(n);
    if (!tmp) return aspo_fail(ASPO_ERR_OOM, "out of memory");
    snprintf(tmp, n, "%s.tmp", out);
    aspo_status s = ASPO_OK;
    FILE *f = fopen(tmp, "w");
    if (!f) s = aspo_fail(ASPO_ERR_IO, "%s: cannot create %s: %s", out, tmp, strerror(errno));
    if (!s) s = write_rows(j, f);
    if (f && !s && (fflush(f) != 0 || fsync(fileno(f)) != 0))
        s = aspo_fail(ASPO_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
    if (f && fclose(f) != 0 && !s)
        s = aspo_fail(ASPO_ERR_IO, "%s: close failed: %s", tmp, strerror(errno));
    if (!s && rename(tmp, out) != 0)
        s = aspo_fail(ASPO_ERR_IO, "%s: cannot rename %s over it: %s", out, tmp, strerror(errno));
    if (s && f) unlink(tmp);
    free(tmp);
    return s;
}

/* The output's directory exists (created like mkdir -p) and the output is no directory. */
static aspo_status prepare_output(const char *out)
{
    struct stat st;
    if (stat(out, &st) == 0 && S_ISDIR(st.st_mode))
        return aspo_fail(ASPO_ERR_USAGE, "--out %s is a directory; give a file name such as "
                         "%s/scored.jsonl", out, out);
    const char *slash = strrchr(out, '/');
    if (!slash || slash == out) return ASPO_OK;
    char dir[4096];
    snprintf(dir, sizeof dir, "%.*s", (int)(slash - out), out);
    return weights_make_dir(dir);
}

static aspo_status run(score_job *j, score_summary *sum)
{
    const score_config *cfg = j->cfg;
    dataset_options dopt = {.skip_bad_lines = cfg->skip_bad_lines};
    aspo_status s;
    /* The model before tokenizing: a LLaVA's image token is in its config. */
    if ((s = prepare_output(cfg->out)) || (s = dataset_load_jsonl(cfg->data, &dopt, &j->ds)) ||
        (s = image_rows_check(cfg->image_root, &j->ds, NULL)) || (s = open_model(j)) ||
        (s = tokenize_all(j)))
        return s;
    int64_t n = j->ds.n_rows;
    if (!cfg->quiet) {
        char counts[512];
        truncation_counts_format(&j->counts, counts, sizeof counts);
        fprintf(stderr, "data: %s: %lld pairs (%lld bad lines skipped); %s\n", cfg->data,
                (long long)n, (long long)j->ds.n_skipped, counts);
    }
    if (!(j->logps = calloc((size_t)n, sizeof *j->logps)))
        return aspo_fail(ASPO_ERR_OOM, "no host memory for %lld scores", (long long)n);
    double start = now_seconds();
    j->limits = (image_limits){.max_pixels = cfg->max_image_pixels};
    score_images images = {j->ds.rows, cfg->image_root, &j->limits};
    pair_batch_images probe;
    score_batching batching = {(int)cfg->batch_size, pad_id(j), cfg->no_prefix_sharing,
                               cfg->max_tokens_per_batch};
    s = score_pairs(&j->model, j->pairs, n, policy_images(&j->model, &probe) ? &images : NULL,
                    &batching, cfg->token_logps, j->logps, cfg->quiet ? NULL : stderr);
    if (s || (s = write_output(j))) return s;
    sum->pairs = n;
    sum->skipped_lines = j->ds.n_skipped;
    for (int64_t i = 0; i < n; i++) {
        sum->mean_chosen += j->logps[i].chosen / (double)n;
        sum->mean_rejected += j->logps[i].rejected / (double)n;
    }
    if (!cfg->quiet)
        fprintf(stderr, "scored %lld pairs in %.1f s with %s%s%s: mean logps chosen %.4f, "
                "rejected %.4f; wrote %s\n", (long long)n, now_seconds() - start, cfg->model,
                cfg->adapter ? " + adapter " : " (no adapter)", cfg->adapter ? cfg->adapter : "",
                sum->mean_chosen, sum->mean_rejected, cfg->out);
    return ASPO_OK;
}

aspo_status score_run(const score_config *cfg, score_summary *summary)
{
    if (!cfg->model || !cfg->data || !cfg->out) {
        char missing[64] = "";
        const char *flags[3] = {cfg->model ? NULL : "--model", cfg->data ? NULL : "--data",
                                cfg->out ? NULL : "--out"};
        for (int i = 0; i < 3; i++)
            if (flags[i])
                snprintf(missing + strlen(missing), sizeof missing - strlen(missing), "%s%s",
                         *missing ? ", " : "", flags[i]);
        return aspo_fail(ASPO_ERR_USAGE, "score needs --model DIR, --data FILE and --out FILE "
                         "(missing: %s)", missing);
    }
    backend *be = backend_get(cfg->backend);
    if (!be) return ASPO_ERR_USAGE;
    runtime_init(be, 0);
    score_job j = {.cfg = cfg};
    score_summary sum = {0};
    aspo_status s = run(&j, &sum);
    if (j.logps) pair_logps_free(j.logps, j.ds.n_rows);
    free(j.logps);
    policy_close(&j.model);
    for (int64_t i = 0; j.pairs && i < j.ds.n_rows; i++) tokenized_pair_free(&j.pairs[i]);
    free(j.pairs);
    tokenizer_free(j.tok);
    dataset_free(&j.ds);
    runtime_shutdown();
    if (summary) *summary = sum;
    return s;
}
