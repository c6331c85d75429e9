/* Text rows -> token ids, as TRL 0.14.0's DPOTrainer does it (docs/DATA.md):
 *
 *   prompt_ids   = [BOS] + encode(template(prompt))        (BOS: tokenize_options.add_bos)
 *   chosen_ids   = encode(chosen) + [EOS]                   (each text encoded on its own,
 *   rejected_ids = encode(rejected) + [EOS]                  no special tokens)
 *   prompt_ids   = prompt_ids[-max_prompt_length:]          (tokenize_row)
 *   chosen_ids   = chosen_ids[:max_completion_length]       (tokenize_row)
 *   sequence     = prompt_ids + chosen_ids, cut to max_length keeping its start
 *                  (keep_start) or its end (keep_end)       (concatenated_forward)
 * and the same for rejected. Pre-tokenized rows skip everything but the max_length cut.
 * Each response token keeps the byte span [begin, end) of the response text it came from
 * (-1, -1 for EOS and for pre-tokenized rows), for the sentence mapping of ASPO. */
#ifndef ASPO_PAIR_TOKENS_H
#define ASPO_PAIR_TOKENS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aspo/data/chat_template.h"
#include "aspo/data/dataset.h"
#include "tensor/error.h"

typedef struct tokenizer tokenizer; /* models/tokenizer.h */

typedef enum truncation_mode {
    TRUNCATE_KEEP_END = 0, /* TRL's default */
    TRUNCATE_KEEP_START,
} truncation_mode;

aspo_status truncation_mode_parse(const char *name, truncation_mode *out); /* keep_end|keep_start */
const char *truncation_mode_name(truncation_mode m);

/* Limits are token counts; 0 means no limit (TRL's None). */
typedef struct tokenize_options {
    chat_template template;
    int64_t max_length;            /* prompt + response; TRL default 1024 */
    int64_t max_prompt_length;     /* TRL default 512 */
    int64_t max_completion_length; /* TRL default None (0) */
    truncation_mode mode;          /* applies to max_length only, as in TRL */
    bool add_bos;                  /* prepend BOS to text prompts (default true) */
    /* Image rows (row->image set) for a vision model: the prompt gets "<image>\n" in front
     * when it has no "<image>" (LLaVA's convention), and its one "<image>" becomes the single
     * id image_token (expanded to the image's positions only when the batch is built, so
     * the length limits count it as one token, as TRL with transformers 4.44 does). A
     * tokenizer that knows "<image>" as a token encodes the prompt whole and must give
     * image_token; one that does not (LLaVA's original checkpoints) has the text around it
     * encoded piece by piece, as LLaVA's tokenizer_image_token does. */
    bool images;
    int32_t image_token;
    /* InstructBLIP's placement instead: image_token goes before everything, BOS included,
     * after the length limits (which then count text only, as transformers' InstructBLIP
     * processor and model do), and a "<image>" in the prompt (LLaVA's marker, in data made
     * for LLaVA) is taken out with the newline after it: pair_prompt_text. */
    bool image_first;
    /* Pre-tokenized ids must lie below the tokenizer's vocabulary size, or below this one
     * when there is no tokenizer (0: no limit); aspo score sets the model's. */
    int64_t vocab_size;
} tokenize_options;

/* TRL 0.14.0 DPOConfig defaults, raw template, add_bos. */
tokenize_options tokenize_options_default(void);

/* One model input: prompt tokens, then response tokens (the loss covers the latter). */
typedef struct pair_sequence {
    int32_t *ids;          /* (n) */
    int64_t n;
    int64_t n_prompt;      /* ids[0..n_prompt) are prompt tokens */
    int32_t *span_begin;   /* (n - n_prompt) byte span in the response text of each */
    int32_t *span_end;     /*   response token; -1 for EOS and pre-tokenized rows */
    int64_t response_skip; /* leading response tokens cut by keep_end (usually 0) */
} pair_sequence;

typedef struct tokenized_pair {
    int32_t *prompt_ids;   /* TRL's prompt_input_ids: BOS, template, max_prompt_length */
    int64_t n_prompt_ids;
    pair_sequence chosen, rejected;
} tokenized_pair;

void tokenized_pair_free(tokenized_pair *p);

/* What truncation did, summed over calls (the caller zeroes it once). */
typedef struct truncation_counts {
    int64_t pairs;          /* pairs tokenized */
    int64_t prompts_cut;    /* prompts cut by max_prompt_length (one per pair) */
    int64_t responses_cut;  /* chosen or rejected responses cut by max_completion_length */
    int64_t sequences_cut;  /* chosen or rejected sequences cut by max_length */
    int64_t tokens_dropped; /* tokens removed by the three cuts together */
} truncation_counts;

/* One line such as "100 pairs: 3 prompts cut by max_prompt_length, 0 responses cut by
 * max_completion_length, 2 sequences cut by max_length; 41 tokens dropped". */
void truncation_counts_format(const truncation_counts *c, char *buf, size_t size);

/* Tokenizes `row`; tok may be NULL for pre-tokenized rows. counts may be NULL. Errors
 * name the row's file and line; a prompt that leaves no room for a response token under
 * max_length is one (fix: set max_prompt_length below max_length). */
/* The text an image row's prompt is encoded from: the marker put in or taken out as
 * opt->images / image_first say, then the chat template (*out malloc'd, NUL-terminated, of
 * *len bytes). InstructBLIP's Q-Former reads this text too. */
aspo_status pair_prompt_text(const preference_row *row, const tokenize_options *opt, char **out,
                             size_t *len);

aspo_status pair_tokenize(const tokenizer *tok, const preference_row *row,
                          const tokenize_options *opt, tokenized_pair *out,
                          truncation_counts *counts);

/* The steps after encoding, for ids already encoded (no BOS/EOS yet when `text_row`):
 * text_row adds BOS/EOS and applies max_prompt_length / max_completion_length; every row
 * gets the max_length cut. Spans may be NULL (then -1). source/line name the row in
 * errors ("source:line"; line < 0: source alone, e.g. preference_row_where's). pair_tokenize calls this. */
typedef struct pair_ids {
    const int32_t *prompt, *chosen, *rejected;
    int64_t n_prompt, n_chosen, n_rejected;
    const int32_t *chosen_begin, *chosen_end, *rejected_begin, *rejected_end;
} pair_ids;

aspo_status pair_assemble(const pair_ids *in, bool text_row, int32_t bos_id, int32_t eos_id,
                          const tokenize_options *opt, const char *source, int64_t line,
                          tokenized_pair *out, truncation_counts *counts);

#endif
