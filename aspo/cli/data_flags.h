/* Flags shared by every command that reads a preference file the way `aspo run` does
 * (run, score): model input, tokenization and truncation. `type` is the command's flag
 * struct; it must have fields with these names. */
#ifndef ASPO_DATA_FLAGS_H
#define ASPO_DATA_FLAGS_H

#include <stddef.h>

#include "aspo/cli/options.h"

extern const char *const DATA_FLAG_DTYPES[], *const DATA_FLAG_TEMPLATES[],
    *const DATA_FLAG_TRUNCATION[];

#define DATA_FLAG(type, name, kind, field, help, choices, lo, hi) \
    {name, kind, offsetof(type, field), help, choices, lo, hi}

#define DATA_FLAG_SPECS(type)                                                                  \
    DATA_FLAG(type, "config", OPT_STRING, config, "JSON file whose keys are these flags' names", NULL, 0, 0), \
    DATA_FLAG(type, "backend", OPT_STRING, backend, "compute backend", NULL, 0, 0),            \
    DATA_FLAG(type, "threads", OPT_INT, threads, "CPU threads (0 = all)", NULL, 0, 4096),       \
    DATA_FLAG(type, "device", OPT_INT, device, "GPU backends: device index (-1 = ASPO_VULKAN_DEVICE, else the first usable)", NULL, -1, 64), \
    DATA_FLAG(type, "model", OPT_STRING, model, "Hugging Face LLaMA or LLaVA directory (config.json, safetensors, tokenizer)", NULL, 0, 0), \
    DATA_FLAG(type, "vision-tower", OPT_STRING, vision_tower, "LLaVA original layout: CLIP directory instead of config mm_vision_tower", NULL, 0, 0), \
    DATA_FLAG(type, "tokenizer", OPT_STRING, tokenizer, "tokenizer file or directory (default: --model)", NULL, 0, 0), \
    DATA_FLAG(type, "data", OPT_STRING, data, "preference file: JSONL, or SeVa's JSON list", NULL, 0, 0), \
    DATA_FLAG(type, "image-root", OPT_STRING, image_root, "directory the rows' image names are relative to", NULL, 0, 0), \
    DATA_FLAG(type, "max-image-pixels", OPT_INT, max_image_pixels, "refuse images that would need more pixels decoded, padded or resized (0 = 64M)", NULL, 0, 1LL << 40), \
    DATA_FLAG(type, "dtype", OPT_STRING, dtype, "storage dtype of frozen weights (auto = the file's)", DATA_FLAG_DTYPES, 0, 0), \
    DATA_FLAG(type, "activation-dtype", OPT_STRING, activation_dtype, "hidden states' dtype: f32, or the frozen weights' bf16/f16 as PyTorch autocast computes (auto: the weights' on cuda and hip, f32 elsewhere)", DATA_FLAG_DTYPES, 0, 0), \
    DATA_FLAG(type, "max-length", OPT_INT, max_length, "prompt + response tokens (0 = no limit)", NULL, 0, 1 << 24), \
    DATA_FLAG(type, "max-prompt-length", OPT_INT, max_prompt_length, "prompt tokens (0 = no limit)", NULL, 0, 1 << 24), \
    DATA_FLAG(type, "max-completion-length", OPT_INT, max_completion_length, "response tokens (0 = no limit)", NULL, 0, 1 << 24), \
    DATA_FLAG(type, "truncation-mode", OPT_STRING, truncation_mode, "which end max-length keeps", DATA_FLAG_TRUNCATION, 0, 0), \
    DATA_FLAG(type, "chat-template", OPT_STRING, chat_template, "prompt template (auto: vicuna_v1 for LLaVA, raw for LLaMA)", DATA_FLAG_TEMPLATES, 0, 0), \
    DATA_FLAG(type, "no-prefix-sharing", OPT_BOOL, no_prefix_sharing, "pad every sequence to the batch's longest and compute each prompt twice, as TRL does (default: a pair's prompt computed once, pairs packed without padding)", NULL, 0, 0), \
    DATA_FLAG(type, "max-tokens-per-batch", OPT_INT, max_tokens_per_batch, "packed positions per row of a micro-batch: pairs go end to end, each into the first row with room (0 = the largest pair's length)", NULL, 0, 1 << 30), \
    DATA_FLAG(type, "no-bos", OPT_BOOL, no_bos, "do not prepend BOS to text prompts (TRL's behaviour)", NULL, 0, 0), \
    DATA_FLAG(type, "skip-bad-lines", OPT_BOOL, skip_bad_lines, "count and skip malformed dataset lines", NULL, 0, 0), \
    DATA_FLAG(type, "quiet", OPT_BOOL, quiet, "no progress lines", NULL, 0, 0)

#endif
