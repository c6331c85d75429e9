/* The training-step benchmark of `aspo bench`: a random LLaMA of the given sizes with LoRA on
 * every linear of its decoder layers, synthetic pre-tokenized preference pairs, and real
 * optimizer steps through the trainer's own code (train_batch: reference forward with
 * adapters off, policy forward and backward on chosen and rejected; then gradient
 * clipping and AdamW). Reports tokens/s of the steady-state steps and the peak RSS. */
#ifndef ASPO_BENCH_H
#define ASPO_BENCH_H

#include <stdint.h>

#include "tensor/error.h"

typedef struct bench_config {
    const char *backend;
    const char *loss; /* dpo | aspo */
    long layers, dim, heads, kv_heads, ffn, vocab;
    long seq;    /* tokens per sequence: prompt + response (EOS included) */
    long prompt; /* prompt tokens (BOS included); 0 = seq / 4 */
    long pairs;  /* pairs per step; each step runs 2 * pairs sequences */
    long rank;   /* LoRA r; alpha is 2r (scaling 2), dropout 0.05 */
    long unit;   /* ASPO: tokens per synthetic "sentence" of a chosen response */
    long steps, warmup;
    long seed;
} bench_config;

/* The sizes: 4 layers, dim 256, 8 heads, ffn 688, vocab 4096, 2 pairs x 256
 * tokens, r 16, 5 measured steps after 2 warm-up steps, DPO. */
bench_config bench_defaults(void);

typedef struct bench_result {
    int64_t tokens_per_step;     /* real tokens of the policy batch (2 * pairs * seq) */
    int64_t trainable, params;   /* parameter counts */
    double step_s_mean, step_s_median, step_s_min; /* over the measured steps */
    double train_tokens_per_s;   /* tokens_per_step / step_s_mean */
    double cpu_s_per_step;       /* process CPU time (all threads) per measured step */
    double peak_rss_mb;          /* getrusage ru_maxrss of the process, MiB */
    double peak_arena_mb;        /* peak of the step arena, MiB */
    double loss_first, loss_last; /* of the measured steps */
} bench_result;

/* Checks the sizes (usage errors name the flag), writes the model to a temporary
 * directory (removed again), trains, and fills *r. */
aspo_status bench_train_step(const bench_config *cfg, bench_result *r);

#endif
