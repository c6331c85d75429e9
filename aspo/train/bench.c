/* `aspo bench`: timed DPO/ASPO optimizer steps on a random LLaMA (or LLaVA, InstructBLIP) with
 * synthetic pairs, through the same train_batch + clip_grad_norm + adamw_step as `aspo run`. */
#include "backends/registry.h"
#include "aspo/train/bench.h"
#include "aspo/train/clock.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "aspo/data/image_rows.h"
#include "aspo/model/tiny_instructblip.h"
#include "aspo/model/tiny_llava.h"
#include "aspo/train/trainer_internal.h"
#include "models/weights.h"
#include "nn/lora.h"
#include "nn/modules.h"
#include "tensor/autograd.h"
#include "tensor/dtype.h"
#include "tensor/rng.h"
#include "tensor/runtime.h"

enum { BOS_ID = 1, EOS_ID = 2, FIRST_TEXT_ID = 3 };

bench_config bench_defaults(void)
{
    return (bench_config){
        .backend = "cpu", .loss = "dpo", .model_kind = "llama", .dtype = "f32",
        .activation_dtype = "auto", .layers = 4,
        .dim = 256, .heads = 8, .kv_heads = 0, .ffn = 688, .vocab = 4096, .seq = 256,
        .prompt = 0, .pairs = 2, .rank = 16, .unit = 16, .steps = 5, .warmup = 2, .seed = 1,
        .vision_layers = 4, .vision_dim = 256, .vision_heads = 4, .vision_ffn = 0,
        .image_size = 112, .patch_size = 14, .qformer_layers = 2, .qformer_dim = 0,
        .queries = 8,
    };
}

/* bench.h has the formula and what it leaves out; bench/flops.py is the same in Python. */
double bench_step_flops(const bench_config *c, int64_t sequences, int64_t positions)
{
    double C = (double)c->dim, F = (double)c->ffn, L = (double)c->layers, T = (double)positions;
    double K = (double)(c->kv_heads ? c->kv_heads : c->heads) * (double)(c->dim / c->heads);
    double N = L * (2 * C * C + 2 * C * K + 3 * C * F) + (double)c->vocab * C;
    double Nl = L * (double)c->rank * (2 * (C + C) + 2 * (C + K) + 3 * (C + F));
    double A = L * 2 * T * T * C;
    return (double)sequences * (6 * N * T + 6 * Nl * T + 4 * A);
}

double bench_epoch_s_7b(const bench_config *c, int64_t positions, double flops_per_s)
{
    bench_config full = *c;
    full.layers = BENCH_7B_LAYERS;
    full.vocab = BENCH_7B_VOCAB;
    return BENCH_EPOCH_PAIRS * bench_step_flops(&full, 2, positions) / flops_per_s;
}

/* Dense peaks (TFLOP/s) from NVIDIA's data sheets; the first row whose words both occur in
 * the device name (the card's model as a whole word, the variant starting one) wins, so the
 * longer names come first. f16 equals bf16 on these cards (f32 accumulation); f32 is the
 * plain, non-TF32 rate; 0 = not known. Same table as PEAKS in bench/flops.py. */
static const struct {
    const char *words[2];
    double f32, bf16, f16;
} PEAKS[] = {
    {{"H100", "NVL"}, 0, 0, 0},           {{"H100", "PCIe"}, 51.0, 756.0, 756.0},
    {{"H100", "HBM3"}, 67.0, 989.4, 989.4}, {{"H100", "SXM"}, 67.0, 989.4, 989.4},
    {{"H200", "NVL"}, 0, 0, 0},           {{"H200", NULL}, 67.0, 989.4, 989.4},
    {{"A100", NULL}, 19.5, 312.0, 312.0}, {{"L20", NULL}, 0, 119.5, 119.5},
    {{"L40S", NULL}, 0, 362.0, 362.0},
};

/* Whether word occurs in name starting a word (after a non-alphanumeric character or at the
 * start), and with whole set, ending one too: "A100" is in "NVIDIA A100-SXM4-80GB" but not
 * in "NVIDIA RTX A1000"; "SXM" is in "H100 SXM5". */
static bool has_word(const char *name, const char *word, bool whole)
{
    size_t n = strlen(word);
    for (const char *p = name; *p; p++)
        if ((p == name || !isalnum((unsigned char)p[-1])) && !strncasecmp(p, word, n) &&
            (!whole || !isalnum((unsigned char)p[n])))
            return true;
    return false;
}

double bench_peak_tflops(const char *device_name, const char *dtype)
{
    for (size_t i = 0; i < sizeof PEAKS / sizeof *PEAKS; i++) {
        if (!has_word(device_name, PEAKS[i].words[0], true) ||
            (PEAKS[i].words[1] && !has_word(device_name, PEAKS[i].words[1], false)))
            continue;
        return !strcmp(dtype, "bf16") ? PEAKS[i].bf16
               : !strcmp(dtype, "f16") ? PEAKS[i].f16
               : !strcmp(dtype, "f32") ? PEAKS[i].f32 : 0;
    }
    return 0;
}

static bool is_llava(const bench_config *c)
{
    return !strcmp(c->model_kind, "llava");
}

static bool is_instructblip(const bench_config *c)
{
    return !strcmp(c->model_kind, "instructblip");
}

static long qformer_dim(const bench_config *c)
{
    return c->qformer_dim ? c->qformer_dim : c->vision_dim;
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
    if (c->vocab <= FIRST_TEXT_ID + is_llava(c))
        return aspo_fail(ASPO_ERR_USAGE, "--vocab %ld: need more than %d ids (BOS, EOS, %stext)",
                         c->vocab, FIRST_TEXT_ID + is_llava(c), is_llava(c) ? "image, " : "");
    if (strcmp(c->loss, "dpo") && strcmp(c->loss, "aspo"))
        return aspo_fail(ASPO_ERR_USAGE, "--loss %s: dpo or aspo", c->loss);
    bool images = is_llava(c) || is_instructblip(c);
    if (strcmp(c->model_kind, "llama") && !images)
        return aspo_fail(ASPO_ERR_USAGE, "--model-kind %s: llama, llava or instructblip",
                         c->model_kind);
    int dt = dtype_from_name(c->dtype);
    if (dt < 0 || !dtype_is_float((dtype)dt))
        return aspo_fail(ASPO_ERR_USAGE, "--dtype %s: f32, bf16 or f16", c->dtype);
    int act = dtype_from_name(c->activation_dtype);
    if (strcmp(c->activation_dtype, "auto") && (act < 0 || !dtype_is_float((dtype)act)))
        return aspo_fail(ASPO_ERR_USAGE, "--activation-dtype %s: auto, f32, bf16 or f16",
                         c->activation_dtype);
    if (!(c->peak_tflops >= 0))
        return aspo_fail(ASPO_ERR_USAGE, "--peak-tflops %g: a peak in TFLOP/s, or 0 to look "
                         "the card up", c->peak_tflops);
    if (images && c->vision_dim % c->vision_heads)
        return aspo_fail(ASPO_ERR_USAGE, "--vision-dim %ld --vision-heads %ld: the dim must "
                         "split into heads", c->vision_dim, c->vision_heads);
    if (images && c->image_size % c->patch_size)
        return aspo_fail(ASPO_ERR_USAGE, "--image-size %ld --patch-size %ld: the image must "
                         "split into whole patches", c->image_size, c->patch_size);
    if (is_instructblip(c) && qformer_dim(c) % c->vision_heads)
        return aspo_fail(ASPO_ERR_USAGE, "--qformer-dim %ld --vision-heads %ld: the Q-Former has "
                         "--vision-heads heads, and its dim must split into them",
                         qformer_dim(c), c->vision_heads);
    return ASPO_OK;
}

/* n text ids in [FIRST_TEXT_ID, vocab) drawn from (seed, stream). */
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
 * seq - prompt tokens (EOS last), and ASPO units of `unit` tokens over the chosen one.
 * img (NULL: none): every prompt holds its token once, after BOS as pair_tokenize leaves
 * LLaVA's "<image>\n" + prompt, or before it (img->first, InstructBLIP, whose row keeps
 * BENCH_INSTRUCTION as its prompt text for the Q-Former); row i names the image
 * "pair-<i>.png"; text ids stay below the token. */
static aspo_status make_data(const bench_config *c, long prompt, const pair_batch_images *img,
                             train_data *d)
{
    memset(d, 0, sizeof *d);
    int64_t n = c->pairs, resp = c->seq - prompt, n_prompt = prompt + (img != NULL);
    int64_t vocab = img && img->token < c->vocab ? img->token : c->vocab;
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
        if (img) {
            preference_row *row = &d->ds.rows[i];
            char name[64];
            snprintf(name, sizeof name, "pair-%lld.png", (long long)i);
            if (!(row->image = strdup(name)) ||
                (img->first && !(row->prompt = strdup(BENCH_INSTRUCTION))))
                return aspo_fail(ASPO_ERR_OOM, "bench: no host memory for an image row");
            row->prompt_len = row->prompt ? strlen(row->prompt) : 0;
            d->n_images++;
        }
        tokenized_pair *p = &d->pairs[i];
        int32_t *text = random_ids(prompt, vocab, seed, 3 * (uint64_t)i << 32);
        p->prompt_ids = malloc(sizeof(int32_t) * (size_t)n_prompt);
        if (!text || !p->prompt_ids) {
            free(text);
            return aspo_fail(ASPO_ERR_OOM, "bench: no host memory for a prompt");
        }
        int at = 0; /* [image] BOS [image] text */
        if (img && img->first) p->prompt_ids[at++] = img->token;
        p->prompt_ids[at++] = BOS_ID;
        if (img && !img->first) p->prompt_ids[at++] = img->token;
        memcpy(p->prompt_ids + at, text + 1, sizeof(int32_t) * (size_t)(prompt - 1));
        free(text);
        p->n_prompt_ids = n_prompt;
        aspo_status s = fill_sequence(&p->chosen, p->prompt_ids, n_prompt, n_prompt + resp, vocab,
                                      seed, (3 * (uint64_t)i + 1) << 32);
        if (!s)
            s = fill_sequence(&p->rejected, p->prompt_ids, n_prompt, n_prompt + resp, vocab, seed,
                              (3 * (uint64_t)i + 2) << 32);
        if (s) return s;
        if (!(d->unit_of[i] = malloc(sizeof(int32_t) * (size_t)resp)))
            return aspo_fail(ASPO_ERR_OOM, "bench: no host memory for units");
        for (int64_t j = 0; j < resp; j++) d->unit_of[i][j] = (int32_t)(j / c->unit);
        d->n_units[i] = (int)((resp + c->unit - 1) / c->unit);
    }
    return ASPO_OK;
}

/* skip_weights: a plan (shapes and bytes only, no tensor data read). */
static aspo_status open_model(const bench_config *c, const char *dir, bool skip_weights,
                              policy_model *m)
{
    policy_options o = policy_defaults();
    o.skip_weights = skip_weights;
    o.model = dir;
    o.lora = (lora_config){(int)c->rank, 2.0f * (float)c->rank, 0.05f, false};
    o.lora_targets = "all-linear"; /* with images: the language model's 7 linears only */
    o.lora_seed = (uint64_t)c->seed;
    o.storage_dtype = dtype_from_name(c->dtype); /* check_config made sure it is one */
    o.activation_dtype = policy_activation_dtype(c->activation_dtype, c->backend);
    o.checkpoint_layers = c->checkpointing;
    return policy_open(&o, m);
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One optimizer step as train_loop takes it (one micro-batch), finished on the device (a
 * GPU backend runs ahead of the host: the step's time ends when its AdamW update has). */
static aspo_status one_step(trainer *t, adamw *opt, batch_result *r)
{
    aspo_status s = train_batch(t, t->data.train, (int)t->data.n_train, 1.0, r);
    double norm = 0;
    if (!s) s = clip_grad_norm(&t->model.lm->ps, 1.0f, &norm);
    if (!s) s = adamw_step(opt, 1e-4f);
    if (!s) s = param_store_zero_grad(&t->model.lm->ps);
    backend *be = runtime_backend();
    if (!s) s = be->synchronize(be);
    return s;
}

/* Decoding + preprocessing of the step's images into pixels (slot order), as the family's
 * image_features does them: LLaVA's image_rows_pixels, InstructBLIP's image_row_load +
 * blip_preprocess per row (row_inputs in aspo/model/policy_instructblip.c). */
static aspo_status step_pixels(trainer *t, const preference_row *const *rows, const int *slot,
                               int n, int64_t S, float *pixels)
{
    if (!strcmp(policy_kind(&t->model), "llava"))
        return image_rows_pixels(&t->model.llava, t->cfg->image_root, &t->image_limits, rows,
                                 slot, n, pixels);
    aspo_status s = ASPO_OK;
    for (int i = 0; i < n && !s; i++) {
        image_rgb8 img;
        if ((s = image_row_load(t->cfg->image_root, rows[i], &t->image_limits, &img))) break;
        s = blip_preprocess(&img, &t->model.blip.model.cfg.image,
                            pixels + (size_t)slot[i] * (size_t)(3 * S * S));
        image_free(&img);
    }
    return s;
}

/* The image side of a step, timed apart over `reps` repetitions as train_batch runs it, with
 * no tape: decoding + preprocessing the step's images (timed alone); the family's frozen
 * features once per image and step through policy_image_features (no cache; less the
 * decoding it repeats): LLaVA's tower, InstructBLIP's vision encoder + Q-Former +
 * language_projection; and LLaVA's projector on those features twice, as the reference and
 * the policy forward each project them. */
static aspo_status time_vision(trainer *t, long reps, bench_result *r)
{
    /* Timed apart by stage, which needs the family's own stages: the one family-specific
     * part of the benchmark (bench_config.model_kind chose it). */
    bool llava = !strcmp(policy_kind(&t->model), "llava");
    if (!llava && strcmp(policy_kind(&t->model), "instructblip"))
        return aspo_fail(ASPO_ERR_UNSUPPORTED, "bench: the vision timing is LLaVA's and "
                         "InstructBLIP's; %s has none", policy_describe(&t->model));
    llava_model *m = &t->model.llava;
    int n = (int)t->data.n_train;
    int64_t S = llava ? m->cfg.image.crop_size : t->model.blip.model.cfg.image.crop_size;
    int64_t N = llava ? m->cfg.image_positions : 0, Cv = llava ? llava_vision_width(m) : 0;
    int64_t C = t->model.lm->cfg.hidden_size;
    size_t per_image = policy_feature_floats(&t->model); /* LLaVA N*Cv, InstructBLIP Q*C */
    const preference_row *rows[n];
    int slot[n];
    for (int i = 0; i < n; i++) {
        rows[i] = &t->data.ds.rows[t->data.train[i]];
        slot[i] = i;
    }
    float *pixels = malloc(sizeof(float) * (size_t)(n * 3 * S * S));
    float *features = malloc(sizeof(float) * (size_t)n * per_image);
    float *projected = malloc(sizeof(float) * (size_t)(llava ? n * N * C : 1));
    aspo_status s = pixels && features && projected
                        ? ASPO_OK
                        : aspo_fail(ASPO_ERR_OOM, "bench: no host memory for images");
    bool grad = autograd_set_enabled(false), lora = lora_set_enabled(false);
    bool training = nn_set_training(false);
    double load = 0, side = 0, project = 0;
    for (long i = 0; i < reps && !s; i++) {
        double t0 = clock_seconds(CLOCK_MONOTONIC);
        s = step_pixels(t, rows, slot, n, S, pixels);
        double t1 = clock_seconds(CLOCK_MONOTONIC);
        if (!s)
            s = policy_image_features(&t->model, NULL, t->cfg->image_root, &t->image_limits,
                                      rows, slot, n, features); /* (n,per_image) */
        double t2 = clock_seconds(CLOCK_MONOTONIC);
        tensor *p = s || !llava
                        ? NULL
                        : llava_project(m, tensor_from_host(DT_F32, DIMS(n, N, Cv), features));
        if (!s && llava) s = p ? tensor_to_host_f32(p, projected) : aspo_error_status();
        load += t1 - t0;
        side += (t2 - t1) - (t1 - t0);
        project += clock_seconds(CLOCK_MONOTONIC) - t2;
        runtime_step_reset();
    }
    nn_set_training(training);
    lora_set_enabled(lora);
    autograd_set_enabled(grad);
    r->image_s_per_step = load / (double)reps;
    r->vision_s_per_step = fmax(0.0, side + 2 * project) / (double)reps;
    free(pixels);
    free(features);
    free(projected);
    return s;
}

/* The model, the data, the loss and AdamW of the benchmark in t (t->cfg set by the caller). */
static aspo_status prepare(const bench_config *c, long prompt, const char *dir, bool plan,
                           trainer *t, adamw *opt, bool *opt_ready)
{
    aspo_status s = open_model(c, dir, plan, &t->model);
    if (!s) ASPO_ASSERT(!strcmp(policy_kind(&t->model), c->model_kind)); /* write_model's */
    pair_batch_images images;
    bool vision = !s && policy_images(&t->model, &images);
    if (!s) s = make_data(c, prompt, vision ? &images : NULL, &t->data);
    if (!s) {
        t->loss = aspo_loss_defaults(strcmp(c->loss, "dpo") ? ASPO_LOSS_ASPO : ASPO_LOSS_DPO);
        t->loss.alpha = 0; /* no CLIP text tower: perplexity weights only */
        t->pad_id = EOS_ID;
        adamw_config ac = adamw_defaults();
        s = adamw_init(opt, &t->model.lm->ps, &ac);
        *opt_ready = !s;
    }
    return s;
}

/* aspo run's settings for the benchmark: its defaults, the images' directory, and the
 * benchmark's batching flags. */
static train_config train_config_of(const bench_config *c, const char *dir)
{
    train_config tc = train_defaults();
    tc.image_root = dir; /* where write_images put the PNGs */
    tc.no_prefix_sharing = c->no_prefix_sharing;
    tc.max_tokens_per_batch = c->max_tokens_per_batch;
    return tc;
}

/* The step's device memory as `aspo run --dry-run` plans it: one step of the same code on
 * the plan backend (backends/plan: addresses never backed, kernels that do nothing), its
 * peak in MiB; to hold against the measured peak_device_mb. */
static aspo_status plan_peak(const bench_config *c, long prompt, const char *dir, double *mb)
{
    backend *plan = backend_get("plan");
    if (!plan) return aspo_error_status();
    backend_memory_reset_peak(plan);
    size_t before = backend_memory_stats(plan).live;
    aspo_status s = runtime_init(plan, 0);
    if (s) return s;
    train_config tc = train_config_of(c, dir);
    trainer t = {.cfg = &tc};
    adamw opt = {0};
    bool opt_ready = false;
    batch_result br;
    s = prepare(c, prompt, dir, true, &t, &opt, &opt_ready);
    if (!s) s = one_step(&t, &opt, &br);
    *mb = (double)(backend_memory_stats(plan).peak - before) / (1024.0 * 1024.0);
    if (opt_ready) adamw_free(&opt);
    trainer_free(&t);
    runtime_shutdown();
    return s;
}

static aspo_status train(const bench_config *c, long prompt, const char *dir, bench_result *r)
{
    train_config tc = train_config_of(c, dir);
    trainer t = {.cfg = &tc};
    adamw opt = {0};
    double *times = calloc((size_t)c->steps, sizeof *times);
    aspo_status s = times ? ASPO_OK : aspo_fail(ASPO_ERR_OOM, "bench: no host memory");
    bool opt_ready = false;
    if (!s) s = prepare(c, prompt, dir, false, &t, &opt, &opt_ready);
    if (!s) snprintf(r->activation_dtype, sizeof r->activation_dtype, "%s",
                     dtype_name(t.model.lm->activation_dt));
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
        r->computed_per_step = br.computed;
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
        r->text_tokens_per_step = 2 * c->pairs * c->seq;
        r->train_tokens_per_s = (double)r->tokens_per_step / r->step_s_mean;
        r->text_tokens_per_s = (double)r->text_tokens_per_step / r->step_s_mean;
        r->trainable = param_store_count(&t.model.lm->ps, true);
        r->params = param_store_count(&t.model.lm->ps, false);
        r->peak_arena_mb = (double)runtime_peak_data_bytes() / (1024.0 * 1024.0);
    }
    pair_batch_images images;
    if (!s && policy_images(&t.model, &images)) {
        r->image_positions = images.positions;
        const param_store *others[4];
        int n_others = policy_other_stores(&t.model, others, 4);
        for (int i = 0; i < n_others; i++) r->params += param_store_count(others[i], false);
        s = time_vision(&t, c->steps, r);
    }
    if (opt_ready) adamw_free(&opt);
    trainer_free(&t);
    free(times);
    return s;
}

/* dir/pair-<i>.png for each pair: S x S RGB noise (libpng's simplified API). */
static aspo_status write_images(const char *dir, long pairs, long S, uint64_t seed)
{
    uint8_t *rgb = malloc((size_t)(3 * S * S));
    if (!rgb) return aspo_fail(ASPO_ERR_OOM, "bench: no host memory for an image");
    aspo_status s = ASPO_OK;
    for (long i = 0; i < pairs && !s; i++) {
        for (long j = 0; j < 3 * S * S; j++)
            rgb[j] = (uint8_t)(rng_uniform(seed, 0x1a6e000000000000ull + (uint64_t)i,
                                           (uint64_t)j) * 255.0f);
        char path[4200];
        snprintf(path, sizeof path, "%s/pair-%ld.png", dir, i);
        png_image im = {.version = PNG_IMAGE_VERSION, .width = (png_uint_32)S,
                        .height = (png_uint_32)S, .format = PNG_FORMAT_RGB};
        if (!png_image_write_to_file(&im, path, 0, rgb, 0, NULL))
            s = aspo_fail(ASPO_ERR_IO, "%s: cannot write the PNG: %s", path, im.message);
        png_image_free(&im);
    }
    free(rgb);
    return s;
}

/* The random checkpoint (and with images the images) in dir. */
static aspo_status write_model(const bench_config *c, const char *dir)
{
    uint64_t seed = (uint64_t)c->seed;
    tiny_llama_spec text = {c->layers, c->dim, c->heads, c->kv_heads ? c->kv_heads : c->heads,
                            c->ffn, c->vocab, c->seq > 2048 ? c->seq : 2048,
                            BOS_ID, EOS_ID, -1};
    if (!is_llava(c) && !is_instructblip(c)) return tiny_llama_write(dir, &text, seed);
    int64_t g = c->image_size / c->patch_size, N = is_llava(c) ? g * g : c->queries;
    if (c->seq + N > text.max_positions) text.max_positions = c->seq + N;
    long vision_ffn = c->vision_ffn ? c->vision_ffn : 4 * c->vision_dim, Cq = qformer_dim(c);
    aspo_status s;
    if (is_llava(c)) {
        tiny_llava_spec spec = {text, c->vision_layers, c->vision_dim, c->vision_heads,
                                vision_ffn, c->image_size, c->patch_size,
                                (int32_t)c->vocab - 1};
        s = tiny_llava_write(dir, &spec, seed);
    } else { /* the Q-Former as BERT sizes it: ffn 4 x its width */
        tiny_instructblip_spec spec = {text, c->vision_layers, c->vision_dim, c->vision_heads,
                                       vision_ffn, c->image_size, c->patch_size,
                                       c->qformer_layers, Cq, c->vision_heads, 4 * Cq,
                                       c->queries};
        s = tiny_instructblip_write(dir, &spec, seed);
    }
    if (!s) s = write_images(dir, c->pairs, c->image_size, seed);
    return s;
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
    s = write_model(c, dir);
    if (!s && !(s = runtime_init(be, 0))) {
        size_t total = 0, free_bytes = 0;
        if (be->device_info(be, r->device, sizeof r->device, &total, &free_bytes)) {
            snprintf(r->device, sizeof r->device, "unknown"); /* a report, not a need */
            aspo_error_clear();
        }
        runtime_set_seed((uint64_t)c->seed);
        s = train(c, prompt, dir, r);
        r->peak_device_mb = (double)backend_memory_stats(be).peak / (1024.0 * 1024.0);
        runtime_shutdown();
    }
    if (!s) s = plan_peak(c, prompt, dir, &r->planned_peak_mb);
    weights_remove_dir(dir);
    struct rusage ru;
    if (!s && getrusage(RUSAGE_SELF, &ru) == 0) r->peak_rss_mb = (double)ru.ru_maxrss / 1024.0;
    if (!s) {
        /* Positions per sequence: text, and with images the image's positions too. */
        int64_t T = r->tokens_per_step / (2 * c->pairs);
        double flops = bench_step_flops(c, 2 * c->pairs, T), rate = flops / r->step_s_mean;
        r->model_flops_per_step = flops;
        r->achieved_tflops = rate / 1e12;
        r->peak_tflops = c->peak_tflops > 0 ? c->peak_tflops
                                            : bench_peak_tflops(r->device, c->dtype);
        r->mfu = r->peak_tflops > 0 ? r->achieved_tflops / r->peak_tflops : NAN;
        r->epoch_s_7b_16k = bench_epoch_s_7b(c, T, rate);
    }
    return s;
}
