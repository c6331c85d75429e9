/* `aspo bench`: the flags, and one JSON line with the result (bench/run_train_step.sh
 * prints it beside PyTorch doing the same step). */
#include <cblas.h>
#include <omp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "aspo/train/bench.h"
#include "aspo/cli/commands.h"
#include "aspo/cli/options.h"
#include "tensor/backend.h"

int cmd_bench(int argc, char **argv);

typedef struct bench_flags {
    bench_config c;
    long threads;
} bench_flags;

static const char *const LOSSES[] = {"dpo", "aspo", NULL};
static const char *const KINDS[] = {"llama", "llava", "instructblip", NULL};
static const char *const DTYPES[] = {"f32", "bf16", "f16", NULL};
static const char *const ACT_DTYPES[] = {"auto", "f32", "bf16", "f16", NULL};

#define F(name, kind, field, help, choices, lo, hi) \
    {name, kind, offsetof(bench_flags, field), help, choices, lo, hi}

static const option_spec BENCH_SPECS[] = {
    F("backend", OPT_STRING, c.backend, "compute backend", NULL, 0, 0),
    F("threads", OPT_INT, threads, "CPU threads for OpenMP and OpenBLAS (0 = all)", NULL, 0, 4096),
    F("loss", OPT_STRING, c.loss, "preference loss of the step", LOSSES, 0, 0),
    F("model-kind", OPT_STRING, c.model_kind, "llama; llava: the same LLaMA with a CLIP "
      "vision tower and one image per pair; instructblip: the same LLaMA with a BLIP vision "
      "encoder, a Q-Former reading the image and an instruction, one image per pair", KINDS, 0,
      0),
    F("dtype", OPT_STRING, c.dtype, "storage dtype of the frozen weights", DTYPES, 0, 0),
    F("activation-dtype", OPT_STRING, c.activation_dtype, "hidden states' dtype, as aspo run's "
      "(auto: the weights' on cuda and hip, f32 elsewhere)", ACT_DTYPES, 0, 0),
    F("no-prefix-sharing", OPT_BOOL, c.no_prefix_sharing, "pad every sequence and compute "
      "each prompt twice (aspo run's --no-prefix-sharing), as TRL does", NULL, 0, 0),
    F("max-tokens-per-batch", OPT_INT, c.max_tokens_per_batch, "packed positions per row "
      "(aspo run's flag; 0 = the largest pair's length)", NULL, 0, 1 << 30),
    F("checkpointing", OPT_BOOL, c.checkpointing, "re-run each decoder layer in backward "
      "(aspo run's --gradient-checkpointing)", NULL, 0, 0),
    F("peak-tflops", OPT_FLOAT, c.peak_tflops, "the device's dense peak for --dtype, for MFU "
      "(0 = look the card up; unknown cards: mfu null)", NULL, 0, 1e9),
    F("layers", OPT_INT, c.layers, "decoder layers", NULL, 1, 1024),
    F("dim", OPT_INT, c.dim, "hidden size", NULL, 2, 1 << 16),
    F("heads", OPT_INT, c.heads, "attention heads", NULL, 1, 1024),
    F("kv-heads", OPT_INT, c.kv_heads, "key/value heads (0 = heads)", NULL, 0, 1024),
    F("ffn", OPT_INT, c.ffn, "intermediate size", NULL, 1, 1 << 18),
    F("vocab", OPT_INT, c.vocab, "vocabulary size", NULL, 4, 1 << 22),
    F("seq", OPT_INT, c.seq, "tokens per sequence (prompt + response)", NULL, 2, 1 << 20),
    F("prompt", OPT_INT, c.prompt, "prompt tokens per sequence (0 = seq/4)", NULL, 0, 1 << 20),
    F("pairs", OPT_INT, c.pairs, "preference pairs per step", NULL, 1, 1 << 16),
    F("rank", OPT_INT, c.rank, "LoRA rank on every decoder linear (alpha = 2 rank)", NULL, 1,
      65536),
    F("unit", OPT_INT, c.unit, "ASPO: tokens per synthetic sentence", NULL, 1, 1 << 20),
    F("steps", OPT_INT, c.steps, "measured optimizer steps", NULL, 1, 1e6),
    F("warmup", OPT_INT, c.warmup, "untimed steps before them", NULL, 0, 1e6),
    F("seed", OPT_INT, c.seed, "seed of weights, ids, LoRA init and dropout", NULL, 0, 9e18),
    F("vision-layers", OPT_INT, c.vision_layers, "images: vision tower layers", NULL, 1, 1024),
    F("vision-dim", OPT_INT, c.vision_dim, "images: vision tower hidden size", NULL, 1, 1 << 16),
    F("vision-heads", OPT_INT, c.vision_heads, "images: vision tower heads (InstructBLIP: the "
      "Q-Former's too)", NULL, 1, 1024),
    F("vision-ffn", OPT_INT, c.vision_ffn, "images: vision intermediate size (0 = 4 dim)", NULL,
      0, 1 << 18),
    F("image-size", OPT_INT, c.image_size, "images: image side in pixels", NULL, 1, 4096),
    F("patch-size", OPT_INT, c.patch_size, "images: patch side; LLaVA's image fills "
      "(image/patch)^2 positions", NULL, 1, 4096),
    F("qformer-layers", OPT_INT, c.qformer_layers, "InstructBLIP: Q-Former layers "
      "(cross-attention on every 2nd)", NULL, 1, 1024),
    F("qformer-dim", OPT_INT, c.qformer_dim, "InstructBLIP: Q-Former hidden size (0 = "
      "vision-dim; ffn 4 dim)", NULL, 0, 1 << 16),
    F("queries", OPT_INT, c.queries, "InstructBLIP: query tokens, the positions an image fills",
      NULL, 1, 4096),
    {NULL},
};

/* One JSON line. With images it names two rates: text tokens (what a text-only run of the
 * same data would count) and positions (text + image positions, what the language model
 * runs). */
static void print_result(const bench_config *c, const bench_result *r)
{
    bool images = strcmp(c->model_kind, "llama") != 0;
    bool blip = !strcmp(c->model_kind, "instructblip");
    if (images) printf("{\"src\": \"aspo\", \"model_kind\": \"%s\", ", c->model_kind);
    else printf("{\"src\": \"aspo\", ");
    printf("\"loss\": \"%s\", \"layers\": %ld, \"dim\": %ld, "
           "\"heads\": %ld, \"kv_heads\": %ld, \"ffn\": %ld, \"vocab\": %ld, \"seq\": %ld, "
           "\"prompt\": %ld, \"pairs\": %ld, \"rank\": %ld, \"dtype\": \"%s\", "
           "\"activation_dtype\": \"%s\", \"checkpointing\": %s, \"prefix_sharing\": %s, ",
           c->loss, c->layers, c->dim, c->heads,
           c->kv_heads ? c->kv_heads : c->heads, c->ffn, c->vocab, c->seq,
           c->prompt ? c->prompt : c->seq / 4, c->pairs, c->rank, c->dtype,
           r->activation_dtype, c->checkpointing ? "true" : "false",
           c->no_prefix_sharing ? "false" : "true");
    if (images)
        printf("\"vision_layers\": %ld, \"vision_dim\": %ld, \"vision_heads\": %ld, "
               "\"vision_ffn\": %ld, \"image_size\": %ld, \"patch_size\": %ld, ",
               c->vision_layers, c->vision_dim, c->vision_heads,
               c->vision_ffn ? c->vision_ffn : 4 * c->vision_dim, c->image_size, c->patch_size);
    if (blip)
        printf("\"qformer_layers\": %ld, \"qformer_dim\": %ld, \"queries\": %ld, ",
               c->qformer_layers, c->qformer_dim ? c->qformer_dim : c->vision_dim, c->queries);
    if (images) printf("\"image_positions\": %lld, ", (long long)r->image_positions);
    printf("\"steps\": %ld, \"threads\": %d, \"openblas_core\": \"%s\", \"trainable\": %lld, "
           "\"params\": %lld, ", c->steps, omp_get_max_threads(), openblas_get_corename(),
           (long long)r->trainable, (long long)r->params);
    if (images)
        printf("\"text_tokens_per_step\": %lld, \"positions_per_step\": %lld, ",
               (long long)r->text_tokens_per_step, (long long)r->tokens_per_step);
    else
        printf("\"tokens_per_step\": %lld, ", (long long)r->tokens_per_step);
    printf("\"computed_positions_per_step\": %lld, ", (long long)r->computed_per_step);
    printf("\"step_s_mean\": %.4f, \"step_s_median\": %.4f, \"step_s_min\": %.4f, ",
           r->step_s_mean, r->step_s_median, r->step_s_min);
    if (images)
        printf("\"text_tokens_per_s\": %.1f, \"positions_per_s\": %.1f, "
               "\"image_s_per_step\": %.4f, \"vision_s_per_step\": %.4f, ",
               r->text_tokens_per_s, r->train_tokens_per_s, r->image_s_per_step,
               r->vision_s_per_step);
    else
        printf("\"train_tokens_per_s\": %.1f, ", r->train_tokens_per_s);
    printf("\"cpu_s_per_step\": %.4f, \"peak_rss_mb\": %.1f, \"peak_arena_mb\": %.1f, "
           "\"peak_device_mb\": %.1f, \"planned_peak_mb\": %.1f, ", r->cpu_s_per_step,
           r->peak_rss_mb, r->peak_arena_mb, r->peak_device_mb, r->planned_peak_mb);
    /* The device name as a JSON string: backends report printable names, but a quote or a
     * backslash in one must not break the line. */
    printf("\"device\": \"");
    for (const char *p = r->device; *p; p++)
        if (*p == '"' || *p == '\\') printf("\\%c", *p);
        else if ((unsigned char)*p >= 0x20) putchar(*p);
    printf("\", \"model_flops_per_step\": %.0f, \"achieved_tflops\": %.3f, ",
           r->model_flops_per_step, r->achieved_tflops);
    if (r->peak_tflops > 0)
        printf("\"peak_tflops\": %.1f, \"mfu\": %.4f, ", r->peak_tflops, r->mfu);
    else
        printf("\"peak_tflops\": null, \"mfu\": null, ");
    printf("\"epoch_s_7b_16k\": %.1f, \"loss_first\": %.9g, \"loss_last\": %.9g}\n",
           r->epoch_s_7b_16k, r->loss_first, r->loss_last);
    fflush(stdout);
}

int cmd_bench(int argc, char **argv)
{
    bench_flags f = {bench_defaults(), 0}, defaults = f;
    options_source src;
    aspo_status s;
    if (command_parse(BENCH_SPECS, &f, &defaults, "usage: aspo bench [flags]\n\n"
               "Times preference-training steps as `aspo run` takes them (reference forward\n"
               "with adapters off, policy forward and backward on chosen and rejected, gradient\n"
               "clipping, AdamW) on a random LLaMA with LoRA on every decoder linear and random\n"
               "token ids, then prints one JSON line: train_tokens_per_s over the measured steps\n"
               "and peak_rss_mb of the process. --model-kind llava puts the LLaMA in a random\n"
               "LLaVA-1.5 with one PNG image per pair (vision tower and projector frozen) and\n"
               "reports text_tokens_per_s and positions_per_s (text + image positions) instead;\n"
               "--model-kind instructblip does the same in a random InstructBLIP (vision\n"
               "encoder, Q-Former reading the image and the prompt, projection; all frozen),\n"
               "whose --queries positions per image go before BOS.\n"
               "It also prints the step's model FLOPs (aspo/train/bench.h has the formula), the\n"
               "achieved TFLOP/s, the MFU against --peak-tflops or the card's known peak, and\n"
               "epoch_s_7b_16k: one epoch of 16,384 pairs through LLaVA-1.5-7B's language\n"
               "model (32 layers, vocabulary 32064, this run's width) at that rate.\n"
               "Backends in this build: %s.\n\n",
                      argc, argv, &src, &s))
        return 0;
    if (!s) command_set_threads(f.threads);
    bench_result r;
    if (!s) s = bench_train_step(&f.c, &r);
    if (!s) print_result(&f.c, &r);
    options_release(&src);
    if (s) {
        /* A JSON line for scripts that put runs side by side (scripts/gpu-check.sh retries
         * an out-of-memory run with --checkpointing); the message goes to stderr. */
        if (s != ASPO_ERR_USAGE) {
            printf("{\"src\": \"aspo\", \"error\": \"%s\"}\n", aspo_status_name(s));
            fflush(stdout);
        }
        return command_fail(s);
    }
    return 0;
}
