/* CLIP vision tower throughput: clip_vision_forward with want_layer -2 (LLaVA's feature
 * layer) on batches of random pixels, autograd off, through a random CLIP ViT that is
 * written to a temporary directory (bare CLIPVisionConfig + model.safetensors, the layout of
 * a LLaVA vision tower directory) and opened with clip_open. A benchmark, not a test: it
 * never asserts.
 *
 *   bench_clip [--preset vit-l-14-336|vit-b-16-224|vit-b-32-224] [--hidden N] [--layers N]
 *              [--heads N] [--ffn N] [--image N] [--patch N] [--batch N] [--steps N]
 *              [--warmup N] [--threads N] [--seed N]
 *
 * The default preset is LLaVA-1.5's tower, ViT-L/14-336 (hidden 1024, 24 layers, 16 heads,
 * ffn 4096, image 336, patch 14: 577 tokens); the size flags override the preset's. Prints
 * one JSON line; bench/clip_torch.py prints the same for transformers' CLIPVisionModel and
 * bench/run_clip.sh runs both. */
#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "backends/registry.h"
#include "aspo/train/clock.h"
#include "models/clip.h"
#include "models/weights.h"
#include "tensor/rng.h"
#include "tensor/runtime.h"
#include "tensor/tensor_ops.h"

typedef struct vit_spec {
    const char *preset;
    long hidden, layers, heads, ffn, image, patch;
} vit_spec;

static const vit_spec presets[] = {
    {"vit-l-14-336", 1024, 24, 16, 4096, 336, 14},
    {"vit-b-16-224", 768, 12, 12, 3072, 224, 16},
    {"vit-b-32-224", 768, 12, 12, 3072, 224, 32},
};

typedef struct weight_plan {
    weights_item *items;
    char (*names)[128];
    int n;
    uint64_t seed;
} weight_plan;

static void add_item(weight_plan *p, const char *name, int ndim, int64_t d0, int64_t d1,
                     int64_t d2, int64_t d3)
{
    snprintf(p->names[p->n], sizeof p->names[p->n], "vision_model.%s", name);
    p->items[p->n] = (weights_item){.name = p->names[p->n], .dt = DT_F32, .ndim = ndim,
                                    .shape = {d0, d1, d2, d3}};
    p->n++;
}

/* transformers' names and shapes of a CLIPVisionModel. */
static void plan_weights(const vit_spec *v, weight_plan *p)
{
    int64_t C = v->hidden, F = v->ffn, P = v->patch, g = v->image / v->patch;
    add_item(p, "embeddings.patch_embedding.weight", 4, C, 3, P, P);
    add_item(p, "embeddings.class_embedding", 1, C, 0, 0, 0);
    add_item(p, "embeddings.position_embedding.weight", 2, g * g + 1, C, 0, 0);
    add_item(p, "pre_layrnorm.weight", 1, C, 0, 0, 0);
    add_item(p, "pre_layrnorm.bias", 1, C, 0, 0, 0);
    char name[96];
    for (long l = 0; l < v->layers; l++) {
        const struct { const char *sub; int64_t out, in; } lin[] = {
            {"self_attn.q_proj", C, C}, {"self_attn.k_proj", C, C}, {"self_attn.v_proj", C, C},
            {"self_attn.out_proj", C, C}, {"mlp.fc1", F, C}, {"mlp.fc2", C, F},
        };
        for (size_t k = 0; k < sizeof lin / sizeof *lin; k++) {
            snprintf(name, sizeof name, "encoder.layers.%ld.%s.weight", l, lin[k].sub);
            add_item(p, name, 2, lin[k].out, lin[k].in, 0, 0);
            snprintf(name, sizeof name, "encoder.layers.%ld.%s.bias", l, lin[k].sub);
            add_item(p, name, 1, lin[k].out, 0, 0, 0);
        }
        for (int k = 1; k <= 2; k++) {
            snprintf(name, sizeof name, "encoder.layers.%ld.layer_norm%d.weight", l, k);
            add_item(p, name, 1, C, 0, 0, 0);
            snprintf(name, sizeof name, "encoder.layers.%ld.layer_norm%d.bias", l, k);
            add_item(p, name, 1, C, 0, 0, 0);
        }
    }
    add_item(p, "post_layernorm.weight", 1, C, 0, 0, 0);
    add_item(p, "post_layernorm.bias", 1, C, 0, 0, 0);
}

static bool ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), m = strlen(tail);
    return n >= m && !strcmp(s + n - m, tail);
}

/* LayerNorm weights 1 and biases 0; everything else uniform with std 0.02 (CLIP's
 * initializer_range), small enough that 24 pre-LN layers stay far from overflow and
 * denormals, which would time something else. */
static aspo_status fill_weight(void *ctx, int i, void *host)
{
    const weight_plan *p = ctx;
    const weights_item *it = &p->items[i];
    int64_t n = 1;
    for (int d = 0; d < it->ndim; d++) n *= it->shape[d];
    float *v = host;
    bool norm = strstr(it->name, "norm") != NULL;
    if (norm) {
        float c = ends_with(it->name, ".weight") ? 1.0f : 0.0f;
        for (int64_t k = 0; k < n; k++) v[k] = c;
        return ASPO_OK;
    }
    const float a = 0.02f * sqrtf(3.0f);
    for (int64_t k = 0; k < n; k++)
        v[k] = a * (2.0f * rng_uniform(p->seed, (uint64_t)i << 40, (uint64_t)k) - 1.0f);
    return ASPO_OK;
}

static aspo_status write_tower(const char *dir, const vit_spec *v, uint64_t seed)
{
    char config[1024], path[4200];
    int len = snprintf(config, sizeof config,
                       "{\"model_type\": \"clip_vision_model\", \"hidden_size\": %ld, "
                       "\"intermediate_size\": %ld, \"num_hidden_layers\": %ld, "
                       "\"num_attention_heads\": %ld, \"image_size\": %ld, \"patch_size\": %ld, "
                       "\"num_channels\": 3, \"hidden_act\": \"quick_gelu\", "
                       "\"layer_norm_eps\": 1e-05}\n",
                       v->hidden, v->ffn, v->layers, v->heads, v->image, v->patch);
    snprintf(path, sizeof path, "%s/config.json", dir);
    aspo_status s = weights_write_file(path, config, (size_t)len);
    int cap = 8 + 16 * (int)v->layers;
    weight_plan p = {.items = calloc((size_t)cap, sizeof *p.items),
                     .names = calloc((size_t)cap, sizeof *p.names), .seed = seed};
    if (!s && (!p.items || !p.names)) s = aspo_fail(ASPO_ERR_OOM, "bench_clip: no host memory");
    if (!s) {
        plan_weights(v, &p);
        s = weights_save(dir, "model", p.items, p.n, (size_t)1 << 30, fill_weight, &p);
    }
    free(p.items);
    free(p.names);
    return s;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Multiply-adds x2 of the matmuls of one image (patch embedding, projections, attention
 * scores and values, MLP); the elementwise work is left out. */
static double gflop_per_image(const vit_spec *v)
{
    double C = (double)v->hidden, F = (double)v->ffn, P = (double)v->patch,
           N = (double)((v->image / v->patch) * (v->image / v->patch)), T = N + 1;
    double layer = 2 * T * C * (4 * C + 2 * F) + 2 * 2 * T * T * C;
    return (2 * N * 3 * P * P * C + (double)v->layers * layer) * 1e-9;
}

typedef struct bench_args {
    vit_spec v;
    long batch, steps, warmup, threads, seed;
} bench_args;

/* Times `steps` batches after `warmup` ones; prints the JSON line. */
static aspo_status run(const bench_args *a, clip_model *m, double load_s)
{
    const vit_spec *v = &a->v;
    int64_t per = 3 * v->image * v->image, B = a->batch;
    float *pixels = malloc(sizeof(float) * (size_t)(B * per));
    double *times = calloc((size_t)a->steps, sizeof *times);
    if (!pixels || !times) {
        free(pixels);
        free(times);
        return aspo_fail(ASPO_ERR_OOM, "bench_clip: no host memory for %ld images", a->batch);
    }
    /* Roughly the range of normalised CLIP pixels. */
    for (int64_t k = 0; k < B * per; k++)
        pixels[k] = 4.0f * rng_uniform((uint64_t)a->seed, 1ull << 62, (uint64_t)k) - 2.0f;
    aspo_status s = ASPO_OK;
    double cpu0 = 0;
    for (long i = 0; i < a->warmup + a->steps && !s; i++) {
        if (i == a->warmup) cpu0 = clock_seconds(CLOCK_PROCESS_CPUTIME_ID);
        double t0 = now_seconds();
        tensor *hidden = NULL;
        tensor *px = tensor_from_host(DT_F32, DIMS(B, 3, v->image, v->image), pixels);
        if (!clip_vision_forward(m, px, -2, &hidden) || !hidden) s = aspo_error_status();
        if (!s) s = runtime_backend()->synchronize(runtime_backend());
        if (i >= a->warmup) times[i - a->warmup] = now_seconds() - t0;
        runtime_step_reset();
    }
    if (!s) {
        double cpu = (clock_seconds(CLOCK_PROCESS_CPUTIME_ID) - cpu0) / (double)a->steps;
        double total = 0;
        for (long i = 0; i < a->steps; i++) total += times[i];
        qsort(times, (size_t)a->steps, sizeof *times, compare_doubles);
        double mean = total / (double)a->steps,
               median = a->steps % 2 ? times[a->steps / 2]
                                     : 0.5 * (times[a->steps / 2 - 1] + times[a->steps / 2]);
        struct rusage ru;
        double rss = getrusage(RUSAGE_SELF, &ru) == 0 ? (double)ru.ru_maxrss / 1024.0 : -1;
        printf("{\"impl\": \"aspo\", \"preset\": \"%s\", \"hidden\": %ld, \"layers\": %ld, "
               "\"heads\": %ld, \"ffn\": %ld, \"image\": %ld, \"patch\": %ld, \"tokens\": %ld, "
               "\"batch\": %ld, \"steps\": %ld, \"threads\": %d, \"params\": %lld, "
               "\"images_per_s\": %.3f, \"batch_s_mean\": %.4f, \"batch_s_median\": %.4f, "
               "\"batch_s_min\": %.4f, \"cpu_s_per_batch\": %.4f, \"gflop_per_image\": %.3f, "
               "\"gflops\": %.2f, \"load_s\": %.2f, \"peak_arena_mb\": %.1f, "
               "\"peak_rss_mb\": %.1f, \"openblas_core\": \"%s\", \"openblas_config\": \"%s\"}\n",
               v->preset, v->hidden, v->layers, v->heads, v->ffn, v->image, v->patch,
               (v->image / v->patch) * (v->image / v->patch) + 1, a->batch, a->steps,
               openblas_get_num_threads(), (long long)param_store_count(&m->ps, false),
               (double)B / mean, mean, median, times[0], cpu, gflop_per_image(v),
               gflop_per_image(v) * (double)B / mean, load_s,
               (double)runtime_peak_data_bytes() / (1024.0 * 1024.0), rss,
               openblas_get_corename(), openblas_get_config());
        fflush(stdout);
    }
    free(pixels);
    free(times);
    return s;
}

static long parse_long(const char *flag, const char *value, long lo)
{
    char *end = NULL;
    errno = 0;
    long v = value ? strtol(value, &end, 10) : 0;
    if (!value || !*value || *end || errno || v < lo || v > 1000000) {
        fprintf(stderr, "bench_clip: %s needs an integer >= %ld\n", flag, lo);
        exit(2);
    }
    return v;
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_clip [--preset vit-l-14-336|vit-b-16-224|vit-b-32-224] "
                    "[--hidden N] [--layers N] [--heads N] [--ffn N] [--image N] [--patch N] "
                    "[--batch N] [--steps N] [--warmup N] [--threads N] [--seed N]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    bench_args a = {.v = presets[0], .batch = 4, .steps = 3, .warmup = 1, .seed = 1};
    for (int i = 1; i < argc; i++) { /* the preset first: size flags override it */
        if (strcmp(argv[i], "--preset")) continue;
        const char *name = i + 1 < argc ? argv[i + 1] : "";
        size_t k = 0;
        while (k < sizeof presets / sizeof *presets && strcmp(presets[k].preset, name)) k++;
        if (k == sizeof presets / sizeof *presets) usage();
        a.v = presets[k];
    }
    for (int i = 1; i < argc; i += 2) {
        const char *f = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        long *slot = !strcmp(f, "--hidden") ? &a.v.hidden : !strcmp(f, "--layers") ? &a.v.layers
                   : !strcmp(f, "--heads") ? &a.v.heads : !strcmp(f, "--ffn") ? &a.v.ffn
                   : !strcmp(f, "--image") ? &a.v.image : !strcmp(f, "--patch") ? &a.v.patch
                   : !strcmp(f, "--batch") ? &a.batch : !strcmp(f, "--steps") ? &a.steps
                   : !strcmp(f, "--warmup") ? &a.warmup : !strcmp(f, "--threads") ? &a.threads
                   : !strcmp(f, "--seed") ? &a.seed : NULL;
        if (slot) *slot = parse_long(f, val, slot == &a.warmup || slot == &a.threads ? 0 : 1);
        else if (strcmp(f, "--preset") || !val) usage();
    }
    if (a.v.hidden % a.v.heads || a.v.image % a.v.patch) {
        fprintf(stderr, "bench_clip: --hidden %ld must split into --heads %ld, and --image %ld "
                        "into patches of %ld\n", a.v.hidden, a.v.heads, a.v.image, a.v.patch);
        return 2;
    }
    /* OpenBLAS does the GEMMs, OpenMP aspo's own loops: both get the same count. */
    if (a.threads) {
        openblas_set_num_threads((int)a.threads);
        omp_set_num_threads((int)a.threads);
    }

    const char *tmp = getenv("TMPDIR");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/aspo-bench-clip-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        fprintf(stderr, "bench_clip: %s: cannot create a temporary directory: %s\n", dir,
                strerror(errno));
        return 1;
    }
    aspo_status s = runtime_init(backend_cpu(), 0);
    double t0 = now_seconds();
    if (!s) s = write_tower(dir, &a.v, (uint64_t)a.seed);
    clip_model m = {0};
    if (!s) s = clip_open(dir, DT_F32, &m);
    weights_remove_dir(dir); /* the weights are in memory now */
    if (!s) {
        autograd_set_enabled(false); /* LLaVA runs its tower without a tape */
        s = run(&a, &m, now_seconds() - t0);
        clip_close(&m);
    }
    if (s) fprintf(stderr, "bench_clip: %s\n", aspo_error_message());
    runtime_shutdown();
    return s ? 1 : 0;
}
