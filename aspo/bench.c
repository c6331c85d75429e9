/* `aspo bench`: timed DPO/ASPO optimizer steps on a random LLaMA with synthetic pairs,
 * through the same train_batch + clip_grad_norm + adamw_step as `aspo run`. */
#include "aspo/bench.h"
#include "aspo/clock.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "aspo/tiny_llama.h"
#include "aspo/trainer_internal.h"
#include "tensor/rng.h"
#include "tensor/runtime.h"

enum { BOS_ID = 1, EOS_ID = 2, FIRST_TEXT_ID = 3 };

bench_config bench_defaults(void)
{
    return (bench_config){
        .backend = "cpu", .loss = "dpo", .layers = 4, .dim = 256, .heads = 8, .kv_heads = 0,
        .ffn = 688, .vocab = 4096, .seq = 256, .prompt = 0, .pairs = 2, .rank = 16,
        .unit = 16, .steps = 5, .warmup = 2, .seed = 1,
    };
}

static aspo_status check_config(const bench_config *c, long prompt)
{
    long kv = c->kv_heads ? c->kv_heads : c->heads;
    if (c->dim % c->heads || (c->dim / c->heads) % 2 || c->heads % kv)
        return aspo_fail(ASPO_ERR_USAGE,
                         "--dim %ld --heads %ld --kv-heads %ld: dim must split into heads of "
                         "even size, and heads into kv-heads", c->dim, c->heads, kv);
    if (prompt < 1 || prompt >= c->seq)
        return aspo_fail(ASPO_ERR_USAGE,
                         "--prompt %ld --seq %ld: a sequence needs at least one prompt token "
                         "(BOS) and one response token", prompt, c->seq);
    if (c->vocab <= FIRST_TEXT_ID)
        return aspo_fail(ASPO_ERR_USAGE, "--vocab %ld: need more than %d ids (BOS, EOS, text)",
                         c->vocab, FIRST_TEXT_ID);
    if (strcmp(c->loss, "dpo") && strcmp(c->loss, "aspo"))
        return aspo_fail(ASPO_ERR_USAGE, "--loss %s: dpo or aspo", c->loss);
    return ASPO_OK;
}

/* ids of n tokens: text ids drawn from (seed, stream), first/last replaced by BOS/EOS. */
static int32_t *random_ids(int64_t n, int64_t vocab, uint64_t seed, uint64_t stream)
{
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)n);
    if (!ids) return NULL;
    int64_t span = vocab - FIRST_TEXT_ID;
    for (int64_t i = 0; i < n; i++) {
        int64_t v = (int64_t)(rng_uniform(seed, stream, (uint64_t)i) * (float)span);
        ids[i] = (int32_t)(FIRST_TEXT_ID + (v < span ? v : span - 1));
    }
    return ids;
}

static aspo_status fill_sequence(pair_sequence *s, const int32_t *prompt, int64_t n_prompt,
                                 int64_t n, int64_t vocab, uint64_t seed, uint64_t stream)
{
    int32_t *resp = random_ids(n - n_prompt, vocab, seed, stream);
    s->ids = malloc(sizeof(int32_t) * (size_t)n);
    if (!resp || !s->ids) {
        free(resp);
        return aspo_fail(ASPO_ERR_OOM, "bench: no host memory for a sequence");
    }
    memcpy(s->ids, prompt, sizeof(int32_t) * (size_t)n_prompt);
    memcpy(s->ids + n_prompt, resp, sizeof(int32_t) * (size_t)(n - n_prompt));
    s->ids[n - 1] = EOS_ID;
    s->n = n;
    s->n_prompt = n_prompt;
    free(resp);
    return ASPO_OK;
}

/* P pre-tokenized pairs: a shared prompt (BOS + text), chosen and rejected responses of
 * seq - prompt tokens (EOS last), and ASPO units of `unit` tokens over the chosen one. */
static aspo_status make_data(const bench_config *c, long prompt, train_data *d)
{
    memset(d, 0, sizeof *d);
    int64_t n = c->pairs, resp = c->seq - prompt;
    d->ds.path = strdup("bench");
    d->ds.rows = calloc((size_t)n, sizeof *d->ds.rows);
    d->pairs = calloc((size_t)n, sizeof *d->pairs);
    d->unit_of = calloc((size_t)n, sizeof *d->unit_of);
    d->n_units = calloc((size_t)n, sizeof *d->n_units);
    d->train = malloc(sizeof(int64_t) * (size_t)n);
    if (!d->ds.path || !d->ds.rows || !d->pairs || !d->unit_of || !d->n_units || !d->train)
        return aspo_fail(ASPO_ERR_OOM, "bench: no host memory for %ld pairs", c->pairs);
    d->ds.n_rows = d->n = d->n_train = n;
    uint64_t seed = (uint64_t)c->seed;
    for (int64_t i = 0; i < n; i++) {
        d->ds.rows[i] = (preference_row){.line = i + 1, .source = d->ds.path};
        d->train[i] = i;
        tokenized_pair *p = &d->pairs[i];
        if (!(p->prompt_ids = random_ids(prompt, c->vocab, seed, 3 * (uint64_t)i << 32)))
            return aspo_fail(ASPO_ERR_OOM, "bench: no host memory for a prompt");
        p->prompt_ids[0] = BOS_ID;
        p->n_prompt_ids = prompt;
        aspo_status s = fill_sequence(&p->chosen, p->prompt_ids, prompt, c->seq, c->vocab, seed,
                                      (3 * (uint64_t)i + 1) << 32);
        if (!s)
            s = fill_sequence(&p->rejected, p->prompt_ids, prompt, c->seq, c->vocab, seed,
                              (3 * (uint64_t)i + 2) << 32);
        if (s) return s;
        if (!(d->unit_of[i] = malloc(sizeof(int32_t) * (size_t)resp)))
            return aspo_fail(ASPO_ERR_OOM, "bench: no host memory for units");
        for (int64_t j = 0; j < resp; j++) d->unit_of[i][j] = (int32_t)(j / c->unit);
        d->n_units[i] = (int)((resp + c->unit - 1) / c->unit);
    }
    return ASPO_OK;
}

static aspo_status open_model(const bench_config *c, const char *dir, policy_model *m)
{
    policy_options o = policy_defaults();
    o.model = dir;
    o.lora = (lora_config){(int)c->rank, 2.0f * (float)c->rank, 0.05f, false};
    o.lora_targets = "all-linear";
    o.lora_seed = (uint64_t)c->seed;
    return policy_open(&o, m);
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One optimizer step as train_loop takes it (one micro-batch). */
static aspo_status one_step(trainer *t, adamw *opt, batch_result *r)
{
    aspo_status s = train_batch(t, t->data.train, (int)t->data.n_train, 1.0, r);
    double norm = 0;
    if (!s) s = clip_grad_norm(&t->model.lm->ps, 1.0f, &norm);
    if (!s) s = adamw_step(opt, 1e-4f);
    if (!s) s = param_store_zero_grad(&t->model.lm->ps);
    return s;
}

static aspo_status train(const bench_config *c, long prompt, const char *dir, bench_result *r)
{
    trainer t = {0};
    adamw opt = {0};
    double *times = calloc((size_t)c->steps, sizeof *times);
    aspo_status s = times ? ASPO_OK : aspo_fail(ASPO_ERR_OOM, "bench: no host memory");
    bool opt_ready = false;
    if (!s) s = make_data(c, prompt, &t.data);
    if (!s) s = open_model(c, dir, &t.model);
    if (!s) {
        t.loss = aspo_loss_defaults(strcmp(c->loss, "dpo") ? ASPO_LOSS_ASPO : ASPO_LOSS_DPO);
        t.loss.alpha = 0; /* text only: perplexity weights */
        t.pad_id = EOS_ID;
        adamw_config ac = adamw_defaults();
        s = adamw_init(&opt, &t.model.lm->ps, &ac);
        opt_ready = !s;
    }
    batch_result br = {0};
    for (long i = 0; i < c->warmup && !s; i++) s = one_step(&t, &opt, &br);
    double cpu0 = clock_seconds(CLOCK_PROCESS_CPUTIME_ID);
    for (long i = 0; i < c->steps && !s; i++) {
        double t0 = clock_seconds(CLOCK_MONOTONIC);
        s = one_step(&t, &opt, &br);
        times[i] = clock_seconds(CLOCK_MONOTONIC) - t0;
        if (i == 0) r->loss_first = br.loss;
        r->loss_last = br.loss;
        r->tokens_per_step = br.tokens;
    }
    if (!s) {
        r->cpu_s_per_step = (clock_seconds(CLOCK_PROCESS_CPUTIME_ID) - cpu0) / (double)c->steps;
        double total = 0;
        for (long i = 0; i < c->steps; i++) total += times[i];
        qsort(times, (size_t)c->steps, sizeof *times, compare_doubles);
        r->step_s_mean = total / (double)c->steps;
        r->step_s_min = times[0];
        r->step_s_median = c->steps % 2 ? times[c->steps / 2]
                                         : 0.5 * (times[c->steps / 2 - 1] + times[c->steps / 2]);
        r->train_tokens_per_s = (double)r->tokens_per_step / r->step_s_mean;
        r->trainable = param_store_count(&t.model.lm->ps, true);
        r->params = param_store_count(&t.model.lm->ps, false);
        r->peak_arena_mb = (double)runtime_peak_data_bytes() / (1024.0 * 1024.0);
    }
    if (opt_ready) adamw_free(&opt);
    trainer_free(&t);
    free(times);
    return s;
}

/* Removes the files tiny_llama_write made and the directory. */
static void remove_model_dir(const char *dir)
{
    static const char *const files[] = {"config.json", "model.safetensors"};
    char path[4200];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}

aspo_status bench_train_step(const bench_config *c, bench_result *r)
{
    memset(r, 0, sizeof *r);
    long prompt = c->prompt ? c->prompt : c->seq / 4;
    aspo_status s = check_config(c, prompt);
    if (s) return s;
    backend *be = backend_get(c->backend);
    if (!be) return ASPO_ERR_USAGE;

    const char *tmp = getenv("TMPDIR");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/aspo-bench-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir))
        return aspo_fail(ASPO_ERR_IO, "%s: cannot create a temporary directory: %s", dir,
                         strerror(errno));
    tiny_llama_spec spec = {c->layers, c->dim, c->heads, c->kv_heads ? c->kv_heads : c->heads,
                            c->ffn, c->vocab, c->seq > 2048 ? c->seq : 2048,
                            BOS_ID, EOS_ID, -1};
    s = tiny_llama_write(dir, &spec, (uint64_t)c->seed);
    if (!s && !(s = runtime_init(be, 0))) {
        runtime_set_seed((uint64_t)c->seed);
        s = train(c, prompt, dir, r);
        runtime_shutdown();
    }
    remove_model_dir(dir);
    struct rusage ru;
    if (!s && getrusage(RUSAGE_SELF, &ru) == 0) r->peak_rss_mb = (double)ru.ru_maxrss / 1024.0;
    return s;
}
