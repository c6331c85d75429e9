/* `aspo bench`: the flags, and one JSON line with the result (bench/run_train_step.sh
 * prints it beside PyTorch doing the same step). */
#include <cblas.h>
#include <omp.h>
#include <stddef.h>
#include <stdio.h>

#include "aspo/bench.h"
#include "aspo/commands.h"
#include "aspo/options.h"
#include "tensor/backend.h"

int cmd_bench(int argc, char **argv);

typedef struct bench_flags {
    bench_config c;
    long threads;
} bench_flags;

static const char *const LOSSES[] = {"dpo", "aspo", NULL};

#define F(name, kind, field, help, choices, lo, hi) \
    {name, kind, offsetof(bench_flags, field), help, choices, lo, hi}

static const option_spec BENCH_SPECS[] = {
    F("backend", OPT_STRING, c.backend, "compute backend", NULL, 0, 0),
    F("threads", OPT_INT, threads, "CPU threads for OpenMP and OpenBLAS (0 = all)", NULL, 0, 4096),
    F("loss", OPT_STRING, c.loss, "preference loss of the step", LOSSES, 0, 0),
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
    {NULL},
};

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
               "and peak_rss_mb of the process. Backends in this build: %s.\n\n",
                      argc, argv, &src, &s))
        return 0;
    if (!s) command_set_threads(f.threads);
    bench_result r;
    if (!s) s = bench_train_step(&f.c, &r);
    if (!s) {
        const bench_config *c = &f.c;
        printf("{\"src\": \"aspo\", \"loss\": \"%s\", \"layers\": %ld, \"dim\": %ld, "
               "\"heads\": %ld, \"kv_heads\": %ld, \"ffn\": %ld, \"vocab\": %ld, \"seq\": %ld, "
               "\"prompt\": %ld, \"pairs\": %ld, \"rank\": %ld, \"steps\": %ld, "
               "\"threads\": %d, \"openblas_core\": \"%s\", \"trainable\": %lld, "
               "\"params\": %lld, \"tokens_per_step\": %lld, \"step_s_mean\": %.4f, "
               "\"step_s_median\": %.4f, \"step_s_min\": %.4f, \"train_tokens_per_s\": %.1f, "
               "\"cpu_s_per_step\": %.4f, \"peak_rss_mb\": %.1f, \"peak_arena_mb\": %.1f, "
               "\"loss_first\": %.9g, "
               "\"loss_last\": %.9g}\n",
               c->loss, c->layers, c->dim, c->heads, c->kv_heads ? c->kv_heads : c->heads,
               c->ffn, c->vocab, c->seq, c->prompt ? c->prompt : c->seq / 4, c->pairs, c->rank,
               c->steps, omp_get_max_threads(), openblas_get_corename(),
               (long long)r.trainable, (long long)r.params, (long long)r.tokens_per_step,
               r.step_s_mean, r.step_s_median, r.step_s_min, r.train_tokens_per_s, r.cpu_s_per_step,
               r.peak_rss_mb, r.peak_arena_mb, r.loss_first, r.loss_last);
        fflush(stdout);
    }
    options_release(&src);
    if (s) {
        fprintf(stderr, "aspo: error: %s\n", aspo_error_message());
        return s == ASPO_ERR_USAGE ? 2 : 1;
    }
    return 0;
}
