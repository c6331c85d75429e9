/* Preference training from the command line's point of view: a configuration (the flags of
 * `aspo run`, in TRL/PEFT names), and the loop that reads the data, opens the model with
 * LoRA, and trains it with DPO or ASPO, logging metrics and writing checkpoints. */
#ifndef ASPO_TRAINER_H
#define ASPO_TRAINER_H

#include <stdbool.h>

#include "aspo/cli/options.h"

typedef struct train_config {
    const char *backend, *model, *data, *out, *config, *resume, *adapter, *tokenizer;
    const char *image_root, *vision_tower, *clip_model, *vision_cache; /* images (LLaVA) */
    long max_image_pixels;
    bool train_projector;
    const char *loss;                     /* aspo | dpo */
    double beta, alpha, label_smoothing;
    const char *unit, *weights, *ppl_from, *k_scope;
    long lora_r;
    bool lora_given; /* a LoRA flag was given: else --adapter's own r, alpha, targets */
    bool overwrite;  /* --out may hold an earlier run's files: they are removed first */
    bool allow_setting_changes; /* --resume with settings that differ from the checkpoint's */
    double lora_alpha, lora_dropout;
    bool rslora, gradient_checkpointing, skip_bad_lines, no_bos;
    const char *lora_targets, *dtype, *chat_template, *truncation_mode, *scheduler;
    const char *activation_dtype; /* auto | f32 | bf16 | f16 (see trainer_open_model) */
    long batch_size, grad_accum, epochs, max_steps;
    double lr, warmup_ratio, weight_decay, max_grad_norm, eval_split;
    double loss_scale; /* f16 activations: the dynamic loss scale's start (GradScaler's init_scale) */
    long max_length, max_prompt_length, max_completion_length;
    /* Prefix sharing (pair_batch_pack) unless no_prefix_sharing; max_tokens_per_batch: its
     * row budget (0: the largest pair's length). */
    bool no_prefix_sharing;
    long max_tokens_per_batch;
    long seed, save_steps, logging_steps, eval_steps, threads, device;
    bool quiet; /* no progress lines (tests) */
    /* --dry-run: print the memory plan of one optimizer step (aspo/train/dry_run.h) and stop;
     * without --data, a synthetic batch of plan_seq positions (0 = max_length) per
     * sequence, with an image per pair when plan_image (LLaVA). plan_memory_gib: device
     * memory to compare the peak with (0 = the backend's device when there is one). */
    bool dry_run, plan_image;
    long plan_seq;
    double plan_memory_gib;
} train_config;

train_config train_defaults(void);
/* The flag table of `aspo run` (also the keys of its --config file). */
extern const option_spec TRAIN_SPECS[];

/* Device memory of a run by what holds it: bytes through the backend's alloc
 * (tensor/backend.h, backend_memory), measured at the end of a real run and predicted by
 * --dry-run. Backend scratch buffers and host memory are in neither. */
typedef struct train_memory {
    size_t weights;          /* frozen parameters in their storage dtype (every model opened) */
    size_t lora;             /* trainable parameters, f32 */
    size_t gradients;        /* f32, one per trainable element */
    size_t optimizer;        /* AdamW's m and v */
    size_t activations;      /* the step arena's device buffers at their largest */
    size_t activations_used; /* the most the step arena handed out at once */
    size_t peak;             /* the most bytes live at once on the backend */
    size_t reserved;         /* the most its allocator held, freed memory kept for reuse
                                included (CUDA's memory pool); 0 where that is `peak` */
} train_memory;

/* Held-out pairs evaluated before and after training (for `aspo demo`). */
typedef struct train_summary {
    long steps;
    double first_loss, last_loss;
    double eval_accuracy_before, eval_accuracy_after; /* NaN without an eval split */
    double eval_margin_before, eval_margin_after;
    train_memory memory; /* also <out>/memory.json; with --dry-run, the plan */
} train_summary;

/* Runs training; summary may be NULL. */
aspo_status train_run(const train_config *cfg, train_summary *summary);
/* The signal that stopped the last run (ASPO_ERR_STOPPED), for the exit status; 0 if none. */
int train_stop_signal(void);

#endif
