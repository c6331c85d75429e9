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
 * images as `aspo run` does.
 *
 * model_kind "instructblip": the same LLaMA inside a random InstructBLIP (transformers 4.44's
 * layout): a BLIP vision encoder of the vision_* sizes, a Q-Former of qformer_layers x
 * qformer_dim (vision_heads heads, ffn 4 x qformer_dim) with `queries` learned queries, and
 * language_projection, all frozen. Each pair's image becomes `queries` positions before BOS
 * (the image token first, as pair_tokenize leaves an image_first row), and its row's prompt
 * text is an instruction (BENCH_INSTRUCTION) that the Q-Former reads.
 *
 * Model FLOPs of a step (bench_step_flops; bench/flops.py is the same formula for the
 * PyTorch side, change both together). On S = 2 * pairs sequences of T positions, a LLaMA
 * of L layers, width C, K = kv_heads * C / heads, intermediate F, vocabulary V, LoRA rank r
 * on the 7 linears of every layer:
 *
 *   N  = L (2CC + 2CK + 3CF) + VC                 frozen matmul weights, LM head included
 *                                                 (the embedding is a lookup)
 *   Nl = L r (2(C+C) + 2(C+K) + 3(C+F))           LoRA weights, r (in + out) per linear
 *   A  = L 2TTC                                   causal attention forward per sequence:
 *                                                 QK^T and AV are 2TTC each over the full
 *                                                 TxT, the causal half of that counted
 *   reference forward (adapters off)   2NT          + A
 *   policy forward                     2NT + 2NlT   + A
 *   policy backward                    2NT + 4NlT   + 2A   (input grads of every matmul,
 *                                                    LoRA weight and input grads,
 *                                                    attention backward ~2x its forward)
 *   step = S (6NT + 6NlT + 4A)
 *
 * Left out: norms, RoPE, softmax, SiLU, log-softmax, loss and AdamW (O(N/C) per token), the
 * re-run of --checkpointing (MFU counts the model's work, not the hardware's), and the
 * frozen image side (LLaVA's tower and projector, InstructBLIP's vision encoder, Q-Former
 * and projection; T counts its image positions, though). */
#ifndef ASPO_BENCH_H
#define ASPO_BENCH_H

#include <stdbool.h>
#include <stdint.h>

#include "tensor/error.h"

typedef struct bench_config {
    const char *backend;
    const char *loss; /* dpo | aspo */
    const char *model_kind; /* llama | llava | instructblip */
    const char *dtype;      /* storage dtype of the frozen weights: f32 | bf16 | f16 */
    const char *activation_dtype; /* auto | f32 | bf16 | f16, as aspo run's flag */
    bool no_prefix_sharing; /* aspo run's --no-prefix-sharing: padded rows, prompts twice */
    long max_tokens_per_batch; /* aspo run's --max-tokens-per-batch (0: the largest pair's) */
    bool checkpointing;     /* re-run each decoder layer in backward (aspo run's
                             * --gradient-checkpointing) */
    double peak_tflops;     /* the card's dense peak for dtype; 0 = bench_peak_tflops */
    long layers, dim, heads, kv_heads, ffn, vocab;
    long seq;    /* text tokens per sequence: prompt + response (EOS included) */
    long prompt; /* text prompt tokens (BOS included); 0 = seq / 4. LLaVA adds the image
                  * token to the prompt (InstructBLIP before BOS), which becomes
                  * image_positions positions */
    long pairs;  /* pairs per step; each step runs 2 * pairs sequences */
    long rank;   /* LoRA r; alpha is 2r (scaling 2), dropout 0.05 */
    long unit;   /* ASPO: tokens per synthetic "sentence" of a chosen response */
    long steps, warmup;
    long seed;
    /* LLaVA and InstructBLIP: the vision tower (vision_ffn 0 = 4 * vision_dim) and the
     * image side */
    long vision_layers, vision_dim, vision_heads, vision_ffn, image_size, patch_size;
    /* InstructBLIP: the Q-Former (qformer_dim 0 = vision_dim) and its queries */
    long qformer_layers, qformer_dim, queries;
} bench_config;

/* The prompt text of every InstructBLIP row: [CLS] describe the image . [SEP] for the
 * Q-Former (bench/instructblip_step_torch.py feeds the same 6 positions). */
#define BENCH_INSTRUCTION "Describe the image."


/* The sizes: 4 layers, dim 256, 8 heads, ffn 688, vocab 4096, 2 pairs x 256
 * tokens, r 16, 5 measured steps after 2 warm-up steps, DPO, f32 weights, no checkpointing;
 * model_kind llama. For LLaVA
 * a small ViT: 4 layers, dim 256, 4 heads, ffn 1024, images 112 px in patches of 14
 * (64 image positions). For InstructBLIP the same ViT (65 positions with its class token)
 * and a Q-Former of 2 layers at its width with 8 queries (8 image positions). */
bench_config bench_defaults(void);

typedef struct bench_result {
    /* real positions of the policy batch: 2 * pairs * seq, plus with images the image's
     * image_positions in each of the 2 * pairs sequences (less its placeholder token) */
    int64_t tokens_per_step;
    int64_t computed_per_step;    /* positions the policy pass computes: packed, or padded */
    int64_t text_tokens_per_step; /* 2 * pairs * seq: the positions that are not image */
    int64_t image_positions;      /* positions one image fills (InstructBLIP: queries); 0 for
                                   * LLaMA */
    int64_t trainable, params;    /* parameter counts (the image side included) */
    double step_s_mean, step_s_median, step_s_min; /* over the measured steps */
    double train_tokens_per_s;   /* tokens_per_step / step_s_mean */
    double text_tokens_per_s;    /* text_tokens_per_step / step_s_mean */
    /* With images, timed apart after the measured steps, per step as train_batch runs
     * them: decoding + preprocessing the step's images, and the image side's model work:
     * LLaVA's tower once per image (both forwards use its features) + its projector twice
     * (the reference and the policy forward each project them); InstructBLIP's vision
     * encoder + Q-Former + language_projection once per image (both forwards use the
     * projected queries). */
    double image_s_per_step, vision_s_per_step;
    double cpu_s_per_step;       /* process CPU time (all threads) per measured step */
    double peak_rss_mb;          /* getrusage ru_maxrss of the process, MiB */
    double peak_arena_mb;        /* peak of the step arena, MiB */
    double loss_first, loss_last; /* of the measured steps */
    char device[128];             /* the backend's device name */
    char activation_dtype[8];     /* what the model's hidden states were (auto resolved) */
    double peak_device_mb;        /* the most the backend had allocated at once, MiB */
    double planned_peak_mb;       /* what `aspo run --dry-run` plans for the step, MiB */
    double model_flops_per_step;  /* bench_step_flops */
    double achieved_tflops;       /* model_flops_per_step / step_s_mean */
    double peak_tflops;           /* cfg->peak_tflops, else the device's; 0 = unknown */
    double mfu;                   /* achieved / peak; NAN when the peak is unknown */
    double epoch_s_7b_16k;        /* bench_epoch_s_7b at the achieved rate */
} bench_result;

/* LLaVA-1.5-7B's language model: 32 layers and a vocabulary of 32064 at the width of the
 * run (hidden 4096, ffn 11008, 32 heads); one epoch is 16,384 pairs. */
enum { BENCH_7B_LAYERS = 32, BENCH_7B_VOCAB = 32064, BENCH_EPOCH_PAIRS = 16384 };

/* Model FLOPs of one step of c's sizes on `sequences` sequences of `positions` positions
 * each (the formula above). */
double bench_step_flops(const bench_config *c, int64_t sequences, int64_t positions);

/* Seconds of one epoch of BENCH_EPOCH_PAIRS pairs through the LLaVA-1.5-7B language model
 * (c's width, rank and kv heads; BENCH_7B_LAYERS and BENCH_7B_VOCAB) at `flops_per_s`. */
double bench_epoch_s_7b(const bench_config *c, int64_t positions, double flops_per_s);

/* The dense tensor-core peak (TFLOP/s) of a known card for dtype ("f32", "bf16", "f16"),
 * found by words of its device name (bench/flops.py holds the same table); 0 = unknown. */
double bench_peak_tflops(const char *device_name, const char *dtype);

/* Checks the sizes (usage errors name the flag), writes the model to a temporary
 * directory (removed again), trains, and fills *r. */
aspo_status bench_train_step(const bench_config *cfg, bench_result *r);

#endif
