/* The flags of `aspo run`, in the kebab-case of TRL's DPOConfig and PEFT's LoraConfig. */
#include <stddef.h>

#include "aspo/cli/data_flags.h"
#include "aspo/train/trainer.h"

train_config train_defaults(void)
{
    return (train_config){
        .backend = "cpu", .out = "out", .loss = "aspo", .beta = 0.1, .alpha = -1,
        .unit = "sentence", .weights = "sp", .ppl_from = "policy", .k_scope = "pair",
        .lora_r = 8, .lora_alpha = 16, .lora_dropout = 0.05, .lora_targets = "all-linear",
        .dtype = "auto", .activation_dtype = "auto", .chat_template = "auto", .truncation_mode = "keep_end",
        .scheduler = "cosine", .batch_size = 4, .grad_accum = 1, .epochs = 1,
        .lr = 5e-6, .warmup_ratio = 0.1, .max_grad_norm = 1.0, .max_length = 1024,
        .max_prompt_length = 512, .seed = 42, .loss_scale = 65536, .logging_steps = 1, .device = -1,
    };
}

static const char *const LOSSES[] = {"aspo", "dpo", NULL};
static const char *const UNITS[] = {"sentence", "response", "token", NULL};
static const char *const WEIGHTS[] = {"sp", "s", "p", NULL};
static const char *const PPL_FROM[] = {"policy", "reference", NULL};
static const char *const K_SCOPE[] = {"pair", "batch", NULL};
const char *const DATA_FLAG_DTYPES[] = {"auto", "f32", "bf16", "f16", NULL};
const char *const DATA_FLAG_TEMPLATES[] = {"auto", "raw", "vicuna_v1", NULL};
const char *const DATA_FLAG_TRUNCATION[] = {"keep_end", "keep_start", NULL};
static const char *const SCHEDULERS[] = {"cosine", "linear", "constant", NULL};

#define F(name, kind, field, help, choices, lo, hi) \
    {name, kind, offsetof(train_config, field), help, choices, lo, hi}

const option_spec TRAIN_SPECS[] = {
    DATA_FLAG_SPECS(train_config),
    F("out", OPT_STRING, out, "output directory: adapter, checkpoints, metrics.jsonl", NULL, 0, 0),
    F("adapter", OPT_STRING, adapter, "PEFT adapter to start from", NULL, 0, 0),
    F("resume", OPT_STRING, resume, "checkpoint directory to resume, or 'auto' for the newest in --out", NULL, 0, 0),
    F("overwrite", OPT_BOOL, overwrite, "--out may hold an earlier run: its files are removed first", NULL, 0, 0),
    F("allow-setting-changes", OPT_BOOL, allow_setting_changes, "--resume although loss, data, batch, lr or steps differ from the checkpoint's", NULL, 0, 0),
    F("loss", OPT_STRING, loss, "preference loss", LOSSES, 0, 0),
    F("beta", OPT_FLOAT, beta, "DPO beta", NULL, 1e-6, 1e6),
    F("alpha", OPT_FLOAT, alpha, "ASPO weight of image similarity; -1 = 0.5 with images, 0 on text-only data", NULL, -1, 1),
    F("label-smoothing", OPT_FLOAT, label_smoothing, "cDPO label smoothing", NULL, 0, 0.5),
    F("unit", OPT_STRING, unit, "ASPO unit level", UNITS, 0, 0),
    F("weights", OPT_STRING, weights, "ASPO weights: S+P, S only, P only", WEIGHTS, 0, 0),
    F("ppl-from", OPT_STRING, ppl_from, "whose log-probs give unit perplexities", PPL_FROM, 0, 0),
    F("k-scope", OPT_STRING, k_scope, "ASPO ratio k per pair or per batch", K_SCOPE, 0, 0),
    F("lora-r", OPT_INT, lora_r, "LoRA rank", NULL, 1, 65536),
    F("lora-alpha", OPT_FLOAT, lora_alpha, "LoRA alpha", NULL, 1e-6, 1e9),
    F("lora-dropout", OPT_FLOAT, lora_dropout, "LoRA dropout", NULL, 0, 0.99),
    F("rslora", OPT_BOOL, rslora, "scale by alpha/sqrt(r)", NULL, 0, 0),
    F("lora-targets", OPT_STRING, lora_targets, "PEFT target_modules: suffixes or all-linear", NULL, 0, 0),
    F("clip-model", OPT_STRING, clip_model, "full CLIP directory for ASPO's image-text similarities (default: LLaVA's own tower when it has a text tower)", NULL, 0, 0),
    F("vision-cache", OPT_STRING, vision_cache, "directory keeping each image's vision-tower features between epochs", NULL, 0, 0),
    F("train-projector", OPT_BOOL, train_projector, "LLaVA: LoRA on the projector's linears too", NULL, 0, 0),
    F("loss-scale", OPT_FLOAT, loss_scale, "f16 activations: starting dynamic loss scale (halved on an overflow, doubled after 2000 clean steps)", NULL, 1, 1e30),
    F("gradient-checkpointing", OPT_BOOL, gradient_checkpointing, "re-run decoder layers in backward", NULL, 0, 0),
    F("batch-size", OPT_INT, batch_size, "pairs per micro-batch", NULL, 1, 1 << 20),
    F("grad-accum", OPT_INT, grad_accum, "micro-batches per optimizer step", NULL, 1, 1 << 20),
    F("epochs", OPT_INT, epochs, "passes over the training pairs", NULL, 1, 1 << 20),
    F("max-steps", OPT_INT, max_steps, "stop after this many optimizer steps (0 = epochs decide)", NULL, 0, 1e12),
    F("lr", OPT_FLOAT, lr, "peak learning rate", NULL, 0, 10),
    F("scheduler", OPT_STRING, scheduler, "learning-rate schedule", SCHEDULERS, 0, 0),
    F("warmup-ratio", OPT_FLOAT, warmup_ratio, "warmup steps / total steps", NULL, 0, 1),
    F("weight-decay", OPT_FLOAT, weight_decay, "AdamW decoupled weight decay", NULL, 0, 10),
    F("max-grad-norm", OPT_FLOAT, max_grad_norm, "global gradient-norm clip (0 = off)", NULL, 0, 1e9),
    F("eval-split", OPT_FLOAT, eval_split, "fraction of pairs held out for evaluation", NULL, 0, 0.9),
    F("eval-steps", OPT_INT, eval_steps, "evaluate every N steps (0 = only at the end)", NULL, 0, 1e12),
    F("seed", OPT_INT, seed, "seed of LoRA init, data order and dropout", NULL, 0, 9e18),
    F("save-steps", OPT_INT, save_steps, "write a checkpoint every N steps (0 = only the end)", NULL, 0, 1e12),
    F("logging-steps", OPT_INT, logging_steps, "print progress every N steps", NULL, 1, 1e12),
    F("dry-run", OPT_BOOL, dry_run, "print the memory plan of one step (weights, LoRA, gradients, optimizer, activations, peak) and stop: nothing is allocated or written, no weights are read", NULL, 0, 0),
    F("plan-seq", OPT_INT, plan_seq, "--dry-run without --data: positions per sequence of a synthetic batch (0 = --max-length)", NULL, 0, 1 << 24),
    F("plan-image", OPT_BOOL, plan_image, "--dry-run without --data: each synthetic pair has an image (LLaVA)", NULL, 0, 0),
    F("plan-memory", OPT_FLOAT, plan_memory_gib, "--dry-run: GiB of device memory to compare the peak with (0 = the backend's device, when present)", NULL, 0, 1e6),
    {NULL},
};
