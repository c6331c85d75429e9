/* Preference training from the command line's point of view: a configuration (the flags of
 * `aspo run`, in TRL/PEFT names), and the loop that reads the data, opens the model with
 * LoRA, and trains it with DPO or ASPO, logging metrics and writing checkpoints. */
#ifndef ASPO_TRAINER_H
#define ASPO_TRAINER_H

#include <stdbool.h>

#include "aspo/options.h"

typedef struct train_config {
    const char *backend, *model, *data, *out, *config, *resume, *adapter, *tokenizer;
    const char *image_root, *vision_tower, *clip_model, *vision_cache; /* images (LLaVA) */
    long max_image_pixels;
    bool train_projector;
    const char *loss;                     /* aspo | dpo */
    double beta, alpha, label_smoothing;
    const char *unit, *weights, *ppl_from, *k_scope;
    long lora_r;
    double lora_alpha, lora_dropout;
    bool rslora, gradient_checkpointing, skip_bad_lines, no_bos;
    const char *lora_targets, *dtype, *chat_template, *truncation_mode, *scheduler;
    long batch_size, grad_accum, epochs, max_steps;
    double lr, warmup_ratio, weight_decay, max_grad_norm, eval_split;
    long max_length, max_prompt_length, max_completion_length;
    long seed, save_steps, logging_steps, eval_steps, threads, device;
    bool quiet; /* no progress lines (tests) */
} train_config;

train_config train_defaults(void);
/* The flag table of `aspo run` (also the keys of its --config file). */
extern const option_spec TRAIN_SPECS[];

/* Held-out pairs evaluated before and after training (for `aspo demo`). */
typedef struct train_summary {
    long steps;
    double first_loss, last_loss;
    double eval_accuracy_before, eval_accuracy_after; /* NaN without an eval split */
    double eval_margin_before, eval_margin_after;
} train_summary;

/* Runs training; summary may be NULL. */
aspo_status train_run(const train_config *cfg, train_summary *summary);

#endif
