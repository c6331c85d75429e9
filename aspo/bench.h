/* The training-step benchmark of `aspo bench`: a random LLaMA of the given sizes with LoRA on
 * every linear of its decoder layers, synthetic pre-tokenized preference pairs, and real
 * optimizer steps through the trainer's own code (train_batch: reference forward with
 * adapters off, policy forward and backward on chosen and rejected; then gradient
 * clipping and AdamW). Reports tokens/s of the steady-state steps and the peak RSS.
 *
 * model_kind "llava": the same LLaMA inside a random LLaVA-1.5 (llava-hf layout) with a
 * CLIP vision tower of the vision_* sizes, frozen like the projector; every pair's prompt
 * holds the image token once (after BOS) and its row names a PNG of image_size pixels
 * square that the benchmark writes, so train_batch decodes, preprocesses and encodes the
 * images as `aspo run` does. */
#ifndef ASPO_BENCH_H
#define ASPO_BENCH_H

#include <stdint.h>

#include "tensor/error.h"

typedef struct bench_config {
    const char *backend;
    const char *loss; /* dpo | aspo */
    const char *model_kind; /* llama | llava */
    long layers, dim, heads, kv_heads, ffn, vocab;
    long seq;    /* text tokens per sequence: prompt + response (EOS included) */
    long prompt; /* text prompt tokens (BOS included); 0 = seq / 4. LLaVA adds the image
                  * token to the prompt, which becomes image_positions positions */
    long pairs;  /* pairs per step; each step runs 2 * pairs sequences */
    long rank;   /* LoRA r; alpha is 2r (scaling 2), dropout 0.05 */
    long unit;   /* ASPO: tokens per synthetic "sentence" of a chosen response */
    long steps, warmup;
    long seed;
    /* LLaVA: the vision tower (vision_ffn 0 = 4 * vision_dim) and the image side */
    long vision_layers, vision_dim, vision_heads, vision_ffn, image_size, patch_size;
} bench_config;

/* The sizes: 4 layers, dim 256, 8 heads, ffn 688, vocab 4096, 2 pairs x 256
 * tokens, r 16, 5 measured steps after 2 warm-up steps, DPO; model_kind llama. For LLaVA
 * a small ViT: 4 layers, dim 256, 4 heads, ffn 1024, images 112 px in patches of 14
 * (64 image positions). */
bench_config bench_defaults(void);

typedef struct bench_result {
    /* real positions of the policy batch: 2 * pairs * seq, plus for LLaVA the image's
     * image_positions in each of the 2 * pairs sequences (less its placeholder token) */
    int64_t tokens_per_step;
    int64_t text_tokens_per_step; /* 2 * pairs * seq: the positions that are not image */
    int64_t image_positions;      /* LLaVA: positions one image fills; 0 for LLaMA */
    int64_t trainable, params;    /* parameter counts (LLaVA: vision tower included) */
    double step_s_mean, step_s_median, step_s_min; /* over the measured steps */
    double train_tokens_per_s;   /* tokens_per_step / step_s_mean */
    double text_tokens_per_s;    /* text_tokens_per_step / step_s_mean */
    /* LLaVA, timed apart after the measured steps, per step as train_batch runs them:
     * decoding + preprocessing the step's images, and the vision side: the tower once per
     * image (both forwards use its features) + the projector twice (the reference and the
     * policy forward each project them). */
    double image_s_per_step, vision_s_per_step;
    double cpu_s_per_step;       /* process CPU time (all threads) per measured step */
    double peak_rss_mb;          /* getrusage ru_maxrss of the process, MiB */
    double peak_arena_mb;        /* peak of the step arena, MiB */
    double loss_first, loss_last; /* of the measured steps */
} bench_result;

/* Checks the sizes (usage errors name the flag), writes the model to a temporary
 * directory (removed again), trains, and fills *r. */
aspo_status bench_train_step(const bench_config *cfg, bench_result *r);

#endif
