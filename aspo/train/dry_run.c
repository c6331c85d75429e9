/* The memory plan of `aspo run --dry-run`: one optimizer step of the trainer's own code on
 * the plan backend, then the bytes by what holds them; and the same measurement at the
 * end of a real run (<out>/memory.json). */
#define _DEFAULT_SOURCE /* mkdtemp */
#include "backends/registry.h"
#include "aspo/train/dry_run.h"

#include <errno.h>
#include <float.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aspo/train/similarity.h"
#include "aspo/train/trainer_internal.h"
#include "models/weights.h"
#include "tensor/json_guard.h"
#include "tensor/runtime.h"

/* ---- measuring ---- */

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

/* Adds a store's frozen and trainable bytes as param_store_allocate lays them out. */
static void add_store(const param_store *ps, train_memory *mem)
{
    size_t trainable = 0;
    for (int i = 0; i < ps->n; i++)
        if (ps->items[i]->requires_grad) trainable += align64(tensor_nbytes(ps->items[i]));
    mem->lora += trainable;
    mem->weights += ps->bytes - trainable;
    mem->gradients += ps->grad_bytes;
}

void train_memory_measure(const policy_model *m, size_t live_before, train_memory *mem)
{
    memset(mem, 0, sizeof *mem);
    if (m->lm) add_store(&m->lm->ps, mem);
    const param_store *others[4]; /* the vision tower, a separate similarity CLIP */
    int n_others = m->family ? policy_other_stores(m, others, 4) : 0;
    for (int i = 0; i < n_others; i++) add_store(others[i], mem);
    mem->optimizer = m->lm ? 2 * m->lm->ps.grad_bytes : 0; /* adamw_init: m and v */
    const arena *a = &runtime_current()->data;
    for (int i = 0; i < a->n_chunks; i++) mem->activations += a->chunks[i].size;
    mem->activations_used = a->peak;
    backend *be = runtime_backend();
    size_t peak = backend_memory_stats(be).peak;
    mem->peak = peak > live_before ? peak - live_before : 0;
    mem->reserved = be->reserved_peak ? be->reserved_peak(be) : 0;
}

static json_t *memory_json(const train_memory *mem)
{
    json_t *o = json_object();
    json_object_set_new(o, "weights_bytes", json_integer((json_int_t)mem->weights));
    json_object_set_new(o, "lora_bytes", json_integer((json_int_t)mem->lora));
    json_object_set_new(o, "gradient_bytes", json_integer((json_int_t)mem->gradients));
    json_object_set_new(o, "optimizer_bytes", json_integer((json_int_t)mem->optimizer));
    json_object_set_new(o, "activation_bytes", json_integer((json_int_t)mem->activations));
    json_object_set_new(o, "activation_used_bytes",
                        json_integer((json_int_t)mem->activations_used));
    json_object_set_new(o, "peak_bytes", json_integer((json_int_t)mem->peak));
    if (mem->reserved)
        json_object_set_new(o, "device_reserved_peak_bytes", json_integer((json_int_t)mem->reserved));
    return o;
}

/* "12.3 MiB" or "45.67 GiB". */
static const char *human(size_t bytes, char *buf, size_t size)
{
    double mib = (double)bytes / (1024.0 * 1024.0);
    if (mib < 1024) snprintf(buf, size, "%.1f MiB", mib);
    else snprintf(buf, size, "%.2f GiB", mib / 1024.0);
    return buf;
}

aspo_status train_memory_report(const train_config *cfg, const train_memory *mem)
{
    char a[32], b[32], c[32], d[32], e[32], f[32], g[32], h[80] = "";
    if (mem->reserved) { /* what the process took from the device: allocations + pool */
        char r[32];
        snprintf(h, sizeof h, "; the allocator's pool held %s at most",
                 human(mem->reserved, r, sizeof r));
    }
    if (!cfg->quiet)
        fprintf(stderr, "memory: peak %s on %s: weights %s, LoRA %s, gradients %s, optimizer %s, "
                "activations %s (%s used)%s\n", human(mem->peak, a, sizeof a), cfg->backend,
                human(mem->weights, b, sizeof b), human(mem->lora, c, sizeof c),
                human(mem->gradients, d, sizeof d), human(mem->optimizer, e, sizeof e),
                human(mem->activations, f, sizeof f), human(mem->activations_used, g, sizeof g), h);
    char path[4200];
    snprintf(path, sizeof path, "%s/memory.json", cfg->out);
    uint64_t mark = json_guard_mark(); /* a failed json_integer() would drop its field */
    json_t *o = memory_json(mem);
    json_object_set_new(o, "backend", json_string(cfg->backend));
    json_object_set_new(o, "measured", json_true());
    char *text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(o);
    aspo_status s = json_guard_check(mark, path);
    if (s || !text) {
        free(text);
        return s ? s : aspo_fail(ASPO_ERR_OOM, "%s: out of memory", path);
    }
    size_t n = strlen(text);
    text[n] = '\n'; /* json_dumps' terminator becomes the last line's end */
    s = weights_write_file(path, text, n + 1);
    free(text);
    return s;
}

/* ---- the batch ---- */

/* What the plan ran: for the table and the JSON line. */
typedef struct plan_batch {
    int n;                 /* pairs */
    int64_t *index;        /* (n) into t->data.pairs */
    int64_t positions;     /* the longest sequence, image positions included */
    int64_t computed;      /* positions the batch computes: packed units, or padded rows */
    int images;            /* pairs with an image */
    bool synthetic;
} plan_batch;

/* Image placeholders among ids[0..n). */
static int64_t placeholders(const int32_t *ids, int64_t n, const pair_batch_images *img)
{
    int64_t k = 0;
    for (int64_t t = 0; t < n; t++) k += ids[t] == img->token;
    return k;
}

/* Pair i's positions: its longer sequence's (*longest), and what it costs a batch (the
 * return): with prefix sharing its packed unit (both sequences, their common prefix once:
 * pair_batch_pack); padded, its longer sequence, which every row of its batch is padded
 * to. Image placeholders count as the positions they expand to. */
static int64_t pair_positions(const trainer *t, int64_t i, int64_t *longest)
{
    const pair_sequence *c = &t->data.pairs[i].chosen, *r = &t->data.pairs[i].rejected;
    pair_batch_images img;
    bool image = t->data.ds.rows[i].image && policy_images(&t->model, &img);
    int64_t extra = image ? img.positions - 1 : 0; /* per placeholder */
    int64_t lc = c->n + extra * (image ? placeholders(c->ids, c->n, &img) : 0);
    int64_t lr = r->n + extra * (image ? placeholders(r->ids, r->n, &img) : 0);
    *longest = lc > lr ? lc : lr;
    if (t->cfg->no_prefix_sharing) return *longest;
    int64_t shared = 0, most = c->n < r->n ? c->n : r->n;
    while (shared < most && c->ids[shared] == r->ids[shared]) shared++;
    return lc + lr - shared - extra * (image ? placeholders(c->ids, shared, &img) : 0);
}

typedef struct pair_length {
    int64_t cost, positions, index;
} pair_length;

static int by_length_desc(const void *a, const void *b)
{
    const pair_length *x = a, *y = b;
    if (x->cost != y->cost) return x->cost < y->cost ? 1 : -1;
    return x->index < y->index ? -1 : 1; /* file order among equals */
}

/* The data as `aspo run` reads it (aspo/train/trainer.c, run()): tokenizer, rows, loss, model,
 * tokens, units and ASPO's similarities (that CLIP pass runs on the plan backend too). */
static aspo_status open_with_data(trainer *t, const train_config *c)
{
    tokenizer *tok = NULL;
    aspo_status s = tokenizer_load(c->tokenizer ? c->tokenizer : c->model, &tok);
    if (s) return s;
    t->pad_id = tokenizer_pad_id(tok) >= 0 ? tokenizer_pad_id(tok) : tokenizer_eos_id(tok);
    t->image_limits = (image_limits){.max_pixels = c->max_image_pixels};
    char rows[4200];
    if (!(s = train_data_read(c, &t->data)) &&
        !(s = trainer_loss_options(c, t->data.n_images > 0, &t->loss)) &&
        !(s = trainer_check_images(c, trainer_image_rows(c, &t->data, rows, sizeof rows)))) {
        bool need_similarity = t->loss.kind == ASPO_LOSS_ASPO && t->data.n_images > 0 &&
                               (t->loss.alpha > 0 || t->loss.weights == ASPO_WEIGHTS_S);
        if (!s) s = trainer_open_model(c, (uint64_t)c->seed, need_similarity, &t->model);
    }
    if (!s) s = train_data_prepare(c, tok, t->loss.level, &t->model, &t->image_limits, &t->data);
    tokenizer_free(tok);
    return s;
}

/* A 1x1 grey PNG: the synthetic pairs' image, decoded and preprocessed like any other. */
static const unsigned char PLAN_PNG[] = {
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44,
    0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90,
    0x77, 0x53, 0xde, 0x00, 0x00, 0x00, 0x0c, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x68,
    0x68, 0x68, 0x00, 0x00, 0x03, 0x04, 0x01, 0x81, 0x4b, 0xd3, 0xd2, 0x10, 0x00, 0x00, 0x00,
    0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82};
#define PLAN_IMAGE "plan.png"

static aspo_status write_plan_image(char *dir, size_t size)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, size, "%s/aspo_plan.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) return aspo_fail(ASPO_ERR_IO, "%s: cannot make a temporary directory", dir);
    char path[4200];
    snprintf(path, sizeof path, "%s/" PLAN_IMAGE, dir);
    FILE *f = fopen(path, "wb");
    bool ok = f && fwrite(PLAN_PNG, 1, sizeof PLAN_PNG, f) == sizeof PLAN_PNG;
    if (f && fclose(f) != 0) ok = false;
    return ok ? ASPO_OK : aspo_fail(ASPO_ERR_IO, "%s: cannot write", path);
}

enum { UNIT_TOKENS = 16 }; /* a synthetic sentence */

/* One synthetic sequence: prompt (BOS, the image token when image, text) then response
 * (answer_id: the two answers of a pair differ from their first token on, as real ones
 * do, so prefix sharing shares the prompt only). */
static aspo_status synthetic_sequence(pair_sequence *s, int64_t n, int64_t n_prompt,
                                      int32_t text_id, int32_t answer_id, int32_t image_token,
                                      bool image)
{
    if (!(s->ids = malloc(sizeof(int32_t) * (size_t)n)))
        return aspo_fail(ASPO_ERR_OOM, "no host memory for a synthetic sequence of %lld tokens",
                         (long long)n);
    for (int64_t k = 0; k < n; k++) s->ids[k] = k < n_prompt ? text_id : answer_id;
    if (image) s->ids[1] = image_token;
    s->n = n;
    s->n_prompt = n_prompt;
    return ASPO_OK;
}

/* ASPO's S of every unit, through the similarity CLIP as the real run computes them at
 * load time (its activations are part of the plan): the one synthetic image against unit
 * texts as long as CLIP reads (77 tokens). */
static aspo_status synthetic_similarities(trainer *t, int n_units, float *out)
{
    policy_model *m = &t->model;
    clip_scorer sc = {m->sim_clip, m->clip_tok, 32};
    int64_t E = clip_scorer_dim(&sc), S = m->sim_clip->cfg.vision.image_size;
    float *pixels = calloc((size_t)(3 * S * S), sizeof(float));
    float *embed = malloc(sizeof(float) * (size_t)E);
    char text[2 * 80 + 1];
    for (int k = 0; k < 80; k++) memcpy(text + 2 * k, "a ", 2);
    text[2 * 80] = 0;
    const char *texts[n_units];
    size_t lens[n_units];
    for (int u = 0; u < n_units; u++) texts[u] = text, lens[u] = strlen(text);
    aspo_status s = pixels && embed ? clip_image_embedding(&sc, 1, pixels, embed)
                                    : aspo_fail(ASPO_ERR_OOM, "no host memory for an image");
    if (!s) s = clip_similarities(&sc, n_units, texts, lens, embed, E, out);
    free(pixels);
    free(embed);
    return s;
}

/* --batch-size pairs whose sequences are all `positions` long; each with an image when
 * --plan-image. Rows and pairs are built as train_data_prepare leaves them. */
static aspo_status open_synthetic(trainer *t, const train_config *c)
{
    aspo_status s = trainer_check_images(c, c->plan_image ? "--plan-image plans an image" : NULL);
    if (s) return s;
    if ((s = trainer_loss_options(c, c->plan_image, &t->loss))) return s;
    bool need_similarity = t->loss.kind == ASPO_LOSS_ASPO && c->plan_image &&
                           (t->loss.alpha > 0 || t->loss.weights == ASPO_WEIGHTS_S);
    if ((s = trainer_open_model(c, (uint64_t)c->seed, need_similarity, &t->model))) return s;
    const llama_config *lc = &t->model.lm->cfg;
    pair_batch_images img = {0};
    bool image = c->plan_image && policy_images(&t->model, &img);
    int64_t S = c->plan_seq > 0 ? c->plan_seq : c->max_length;
    int64_t N = image ? img.positions : 0;
    if (S < N + 3)
        return aspo_fail(ASPO_ERR_USAGE, "--plan-seq %lld: a sequence needs room for %sa prompt "
                         "and a response token; give a longer --plan-seq (or --max-length)",
                         (long long)S, image ? "the image's positions, " : "");
    int64_t text = S - (image ? N - 1 : 0); /* tokens, the image token counting one */
    int64_t R = (S - N) / 2, P = text - R;    /* response (EOS included), prompt */
    t->pad_id = lc->pad_token_id >= 0 ? lc->pad_token_id : lc->eos_token_ids[0];
    int32_t text_id = image && img.token == 1 ? 2 : 1, other_id = 1;
    while (other_id == text_id || (image && other_id == img.token)) other_id++;
    int n = (int)c->batch_size, n_units = (int)((R + UNIT_TOKENS - 1) / UNIT_TOKENS);

    train_data *d = &t->data;
    d->n = d->n_train = d->ds.n_rows = n;
    d->n_images = image ? n : 0;
    d->ds.rows = calloc((size_t)n, sizeof *d->ds.rows);
    d->pairs = calloc((size_t)n, sizeof *d->pairs);
    d->unit_of = calloc((size_t)n, sizeof *d->unit_of);
    d->n_units = calloc((size_t)n, sizeof *d->n_units);
    d->similarity = calloc((size_t)n, sizeof *d->similarity);
    d->train = malloc(sizeof(int64_t) * (size_t)n);
    d->eval = malloc(sizeof(int64_t));
    if (!d->ds.rows || !d->pairs || !d->unit_of || !d->n_units || !d->similarity || !d->train ||
        !d->eval)
        return aspo_fail(ASPO_ERR_OOM, "no host memory for %d synthetic pairs", n);
    for (int i = 0; i < n && !s; i++) {
        preference_row *row = &d->ds.rows[i];
        row->line = i + 1;
        row->source = "--dry-run's synthetic batch";
        if (image && !(row->image = strdup(PLAN_IMAGE)))
            s = aspo_fail(ASPO_ERR_OOM, "out of memory");
        tokenized_pair *p = &d->pairs[i];
        if (!s) s = synthetic_sequence(&p->chosen, text, P, text_id, text_id, img.token, image);
        if (!s) s = synthetic_sequence(&p->rejected, text, P, text_id, other_id, img.token, image);
        d->train[i] = i;
        d->n_units[i] = n_units;
        if (!s && !(d->unit_of[i] = malloc(sizeof(int32_t) * (size_t)R)))
            s = aspo_fail(ASPO_ERR_OOM, "no host memory for units");
        for (int64_t k = 0; !s && k < R; k++) d->unit_of[i][k] = (int32_t)(k / UNIT_TOKENS);
        if (!s && t->model.sim_clip) {
            if (!(d->similarity[i] = malloc(sizeof(float) * (size_t)n_units)))
                s = aspo_fail(ASPO_ERR_OOM, "no host memory for similarities");
            else
                s = synthetic_similarities(t, n_units, d->similarity[i]);
        }
    }
    return s;
}

/* ---- the step ---- */

/* The target's device memory: --plan-memory, else the device of a backend this binary has
 * and this machine runs, else 0 (unknown). */
static size_t device_bytes(const train_config *c, char *name, size_t size)
{
    snprintf(name, size, "unknown");
    if (c->plan_memory_gib > 0) {
        snprintf(name, size, "--plan-memory");
        return (size_t)(c->plan_memory_gib * 1024.0 * 1024.0 * 1024.0);
    }
    size_t total = 0, free_bytes = 0;
    backend *be = backend_get(c->backend); /* NULL: not built, or no device here */
    if (!be || be->device_info(be, name, size, &total, &free_bytes)) {
        snprintf(name, size, "%s", aspo_error_status() == ASPO_ERR_USAGE ? "not in this build"
                                                                        : "no device here");
        total = 0;
    }
    aspo_error_clear();
    return total;
}

/* One micro-batch and one optimizer step, as train_loop does them. */
static aspo_status plan_step(trainer *t, const plan_batch *b, adamw *opt, bool *have_opt)
{
    const train_config *c = t->cfg;
    adamw_config ac = adamw_defaults();
    ac.weight_decay = (float)c->weight_decay;
    aspo_status s = adamw_init(opt, &t->model.lm->ps, &ac);
    if (s) return s;
    *have_opt = true;
    batch_result r;
    if ((s = train_batch(t, b->index, b->n, 1.0 / (double)c->grad_accum, &r))) return s;
    double norm = 0;
    s = clip_grad_norm(&t->model.lm->ps, c->max_grad_norm > 0 ? (float)c->max_grad_norm : FLT_MAX,
                       &norm);
    if (!s) s = adamw_step(opt, (float)c->lr);
    if (!s) s = param_store_zero_grad(&t->model.lm->ps);
    return s;
}

/* After a step stopped at the step arena's chunk limit: the same micro-batch again with one
 * chunk that holds anything, so the arena's most bytes handed out are what the step asks
 * for. 0 when that fails too. */
static size_t step_demand(trainer *t, const plan_batch *b)
{
    arena *a = &runtime_current()->data;
    a->chunk_default = (size_t)1 << 40;
    batch_result r;
    if (train_batch(t, b->index, b->n, 1.0, &r)) {
        aspo_error_clear();
        return 0;
    }
    return a->peak;
}

/* ---- the report ---- */

/* What the plan found, beside the bytes. */
typedef struct plan_result {
    const char *stopped; /* the error that stops the real step, or NULL */
    size_t demand;       /* when stopped: the activations the step asks for (0 unknown) */
    size_t device;       /* the target's memory, 0 unknown */
    char device_name[256];
} plan_result;

/* The peak the step would reach without the arena's chunk limit (persistent bytes plus
 * the activations it asks for), 0 when unknown. */
static size_t demand_peak(const train_memory *mem, const plan_result *pr)
{
    return pr->demand ? mem->weights + mem->lora + mem->gradients + mem->optimizer + pr->demand
                      : 0;
}

static void print_plan(const train_config *c, const trainer *t, const plan_batch *b,
                       const train_memory *mem, const plan_result *pr)
{
    const char *stopped = pr->stopped;
    size_t device = pr->device;
    const char *device_name = pr->device_name;
    const policy_model *m = &t->model;
    char buf[32], buf2[32];
    const char *kind = policy_describe(m);
    fprintf(stderr, "memory plan: one optimizer step of `aspo run --backend %s` (nothing was "
            "allocated)\n", c->backend);
    fprintf(stderr, "  model   %s: %s, %s frozen weights, ", c->model, kind,
            dtype_name(m->lm->storage_dt));
    if (m->lm->has_lora)
        fprintf(stderr, "LoRA r=%d on %s", m->lm->peft.lora.r,
                c->adapter ? "the adapter's modules" : c->lora_targets);
    else
        fprintf(stderr, "no LoRA");
    fprintf(stderr, ", gradient checkpointing %s\n", c->gradient_checkpointing ? "on" : "off");
    if (c->no_prefix_sharing)
        fprintf(stderr, "  batch   %d pair%s = %d sequences padded to %lld positions, %s", b->n,
                b->n == 1 ? "" : "s", 2 * b->n, (long long)b->positions,
                b->synthetic ? "synthetic (--plan-seq)" : "the longest pairs of --data");
    else
        fprintf(stderr, "  batch   %d pair%s packed, each prompt once: %lld positions "
                "(sequences up to %lld), %s", b->n, b->n == 1 ? "" : "s",
                (long long)b->computed, (long long)b->positions,
                b->synthetic ? "synthetic (--plan-seq)" : "the largest pairs of --data");
    pair_batch_images img;
    if (b->images && policy_images(m, &img))
        fprintf(stderr, "; %d with an image (%lld positions each)", b->images,
                (long long)img.positions);
    fprintf(stderr, "\n");
    struct { const char *what; size_t bytes; } rows[] = {
        {"weights (frozen)", mem->weights},      {"LoRA parameters (f32)", mem->lora},
        {"gradients (f32)", mem->gradients},    {"optimizer (AdamW m, v)", mem->optimizer},
        {"activations (step arena)", mem->activations},
    };
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++)
        fprintf(stderr, "  %-26s %12s  %16zu bytes\n", rows[i].what,
                human(rows[i].bytes, buf, sizeof buf), rows[i].bytes);
    fprintf(stderr, "  %-26s %12s  (the arena handed out at most %s)\n", "",
            "", human(mem->activations_used, buf, sizeof buf));
    fprintf(stderr, "  %-26s %12s  %16zu bytes%s\n", "peak", human(mem->peak, buf, sizeof buf),
            mem->peak, stopped ? " when the step stopped" : "");
    size_t want = demand_peak(mem, pr);
    if (stopped)
        fprintf(stderr, "  stops   the real step would stop here: %s\n", stopped);
    if (stopped && want)
        fprintf(stderr, "          without that limit it would hand out %s of activations: a "
                "peak of about %s\n", human(pr->demand, buf, sizeof buf),
                human(want, buf2, sizeof buf2));
    if (!device)
        fprintf(stderr, "  device  %s (%s): give --plan-memory GIB to compare\n", c->backend,
                device_name);
    else if (stopped)
        fprintf(stderr, "  device  %s, %s: the step does not run (above)%s\n", device_name,
                human(device, buf, sizeof buf),
                !want ? "" : want <= device ? "; without the limit it would fit"
                                            : "; it would not fit without the limit either");
    else if (mem->peak <= device)
        fprintf(stderr, "  device  %s, %s: fits, %s to spare\n", device_name,
                human(device, buf, sizeof buf), human(device - mem->peak, buf2, sizeof buf2));
    else
        fprintf(stderr, "  device  %s, %s: does not fit, %s short\n", device_name,
                human(device, buf, sizeof buf), human(mem->peak - device, buf2, sizeof buf2));
    bool short_of_device = device && (stopped || mem->peak > device);
    if (short_of_device && !c->gradient_checkpointing)
        fprintf(stderr, "  hint    --gradient-checkpointing keeps one decoder layer's "
                "intermediates at a time instead of all of them\n");
    fprintf(stderr, "  not in the plan: the backend's own scratch buffers (cpu_scratch, Vulkan's "
            "and CUDA's scratch), host memory, device allocator rounding\n");
}

/* The plan's JSON line on stdout. */
static aspo_status print_json(const train_config *c, const trainer *t, const plan_batch *b,
                              const train_memory *mem, const plan_result *pr)
{
    uint64_t mark = json_guard_mark();
    const char *stopped = pr->stopped;
    size_t device = pr->device, want = demand_peak(mem, pr);
    const policy_model *m = &t->model;
    json_t *o = json_object();
    json_object_set_new(o, "dry_run", json_true());
    json_object_set_new(o, "backend", json_string(c->backend));
    json_object_set_new(o, "model", json_string(c->model));
    json_object_set_new(o, "model_kind", json_string(policy_kind(m)));
    json_object_set_new(o, "storage_dtype", json_string(dtype_name(m->lm->storage_dt)));
    json_object_set_new(o, "lora_r", json_integer(m->lm->has_lora ? m->lm->peft.lora.r : 0));
    json_object_set_new(o, "gradient_checkpointing", json_boolean(c->gradient_checkpointing));
    json_object_set_new(o, "pairs", json_integer(b->n));
    json_object_set_new(o, "positions", json_integer(b->positions));
    json_object_set_new(o, "images", json_integer(b->images));
    json_object_set_new(o, "synthetic", json_boolean(b->synthetic));
    json_object_set_new(o, "prefix_sharing", json_boolean(!c->no_prefix_sharing));
    json_object_set_new(o, "computed_positions", json_integer(b->computed));
    json_t *bytes = memory_json(mem);
    json_object_update(o, bytes);
    json_decref(bytes);
    json_object_set_new(o, "device_bytes", device ? json_integer((json_int_t)device) : json_null());
    json_object_set_new(o, "fits", stopped  ? json_false()
                                   : device ? json_boolean(mem->peak <= device)
                                            : json_null());
    json_object_set_new(o, "stopped", stopped ? json_string(stopped) : json_null());
    json_object_set_new(o, "activation_demand_bytes",
                        pr->demand ? json_integer((json_int_t)pr->demand) : json_null());
    json_object_set_new(o, "peak_demand_bytes",
                        want ? json_integer((json_int_t)want) : json_null());
    char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    aspo_status s = json_guard_check(mark, "the plan's JSON line");
    if (!s && !line) s = aspo_fail(ASPO_ERR_OOM, "the plan's JSON line: out of memory");
    if (!s && (printf("%s\n", line) < 0 || fflush(stdout) != 0))
        s = aspo_fail(ASPO_ERR_IO, "the plan's JSON line: cannot write to stdout: %s",
                      strerror(errno));
    free(line);
    return s;
}

/* ---- the plan ---- */

/* A plan may name any compute backend aspo has code for, built into this binary or not
 * (plan a CUDA run on a laptop). */
static aspo_status check_target(const char *name)
{
    unsigned caps = 0;
    if (backend_caps_of(name, &caps) && (caps & BACKEND_COMPUTE)) return ASPO_OK;
    return aspo_fail(ASPO_ERR_USAGE, "--backend %s: a plan is for %s", name, backend_known());
}

/* The batch: the --batch-size costliest pairs (all of them when fewer): the longest when
 * padded, the largest packed units with prefix sharing. */
static aspo_status choose_batch(const trainer *t, bool synthetic, plan_batch *b)
{
    int64_t n_all = t->data.n;
    b->synthetic = synthetic;
    b->n = (int)(n_all < t->cfg->batch_size ? n_all : t->cfg->batch_size);
    pair_length *len = malloc(sizeof *len * (size_t)(n_all ? n_all : 1));
    b->index = malloc(sizeof(int64_t) * (size_t)(b->n ? b->n : 1));
    if (!len || !b->index) {
        free(len);
        return aspo_fail(ASPO_ERR_OOM, "no host memory to sort %lld pairs", (long long)n_all);
    }
    for (int64_t i = 0; i < n_all; i++) {
        len[i].index = i;
        len[i].cost = pair_positions(t, i, &len[i].positions);
    }
    qsort(len, (size_t)n_all, sizeof *len, by_length_desc);
    pair_batch_images img;
    bool reads_images = policy_images(&t->model, &img);
    for (int i = 0; i < b->n; i++) {
        b->index[i] = len[i].index;
        if (len[i].positions > b->positions) b->positions = len[i].positions;
        b->computed += len[i].cost;
        b->images += reads_images && t->data.ds.rows[len[i].index].image != NULL;
    }
    if (t->cfg->no_prefix_sharing) b->computed = 2 * (int64_t)b->n * b->positions;
    free(len);
    return ASPO_OK;
}

aspo_status dry_run(const train_config *cfg, train_summary *summary)
{
    if (!cfg->model) return aspo_fail(ASPO_ERR_USAGE, "--dry-run needs --model DIR");
    aspo_status s = check_target(cfg->backend);
    if (s) return s;
    if (cfg->data && (cfg->plan_seq || cfg->plan_image))
        return aspo_fail(ASPO_ERR_USAGE, "--plan-seq and --plan-image describe a synthetic batch; "
                         "with --data the plan takes the file's longest pairs");
    train_config c = *cfg;
    c.vision_cache = NULL; /* a plan writes nothing: not its zeros into the user's cache */
    char image_dir[4096] = "";
    if (!cfg->data && cfg->plan_image && (s = write_plan_image(image_dir, sizeof image_dir)))
        return s;
    if (image_dir[0]) c.image_root = image_dir;

    backend *plan = backend_get("plan");
    runtime_init(plan, 0);
    runtime_set_seed((uint64_t)c.seed);
    size_t live_before = backend_memory_stats(plan).live;
    backend_memory_reset_peak(plan);
    trainer t = {.cfg = &c};
    plan_batch b = {0};
    adamw opt = {0};
    bool have_opt = false;
    char stopped[1024] = "";
    plan_result pr = {0};
    s = cfg->data ? open_with_data(&t, &c) : open_synthetic(&t, &c);
    if (!s) s = choose_batch(&t, !cfg->data, &b);
    if (!s) s = plan_step(&t, &b, &opt, &have_opt);
    /* Out of memory is the plan's answer, not its failure: the real step stops there too.
     * The plan backend itself never runs out, so it was the step arena's chunk limit. */
    train_memory mem;
    if (s == ASPO_ERR_OOM && t.model.lm) {
        snprintf(stopped, sizeof stopped, "%s", aspo_error_message());
        aspo_error_clear();
        pr.stopped = stopped;
        s = ASPO_OK;
        train_memory_measure(&t.model, live_before, &mem); /* as it stopped */
        if (have_opt && b.n) pr.demand = step_demand(&t, &b);
    } else if (!s) {
        train_memory_measure(&t.model, live_before, &mem);
    }
    if (!s) {
        if (!have_opt) mem.optimizer = 0;
        pr.device = device_bytes(&c, pr.device_name, sizeof pr.device_name);
        if (!c.quiet) print_plan(&c, &t, &b, &mem, &pr);
        s = print_json(&c, &t, &b, &mem, &pr);
        if (!s && summary) {
            memset(summary, 0, sizeof *summary);
            summary->memory = mem;
        }
    }
    if (have_opt) adamw_free(&opt);
    free(b.index);
    trainer_free(&t);
    runtime_shutdown();
    if (image_dir[0]) {
        char path[4200];
        snprintf(path, sizeof path, "%s/" PLAN_IMAGE, image_dir);
        unlink(path);
        rmdir(image_dir);
    }
    return s;
}
