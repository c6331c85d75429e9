/* Reference log-probs of preference pairs, precomputed once (`aspo score`): each pair's
 * chosen and rejected sequences go through the model in one batch (TRL's concatenated
 * order), without the tape, and the log-probs of the response tokens (EOS included) are
 * summed per sequence. The output is the input file with, on every row, "id" (the line
 * number when the row has none), "ref_chosen_logps", "ref_rejected_logps" and optionally
 * the per-token "ref_chosen_token_logps" / "ref_rejected_token_logps" (ASPO needs those;
 * DPO reads only the sums): `aspo run` on that file skips its reference forward. */
#ifndef ASPO_SCORE_H
#define ASPO_SCORE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "aspo/data/pair_tokens.h"
#include "aspo/model/policy.h"
#include "models/image.h"

/* The flags of `aspo score`; the data flags mean what they mean for `aspo run`, and must
 * be the same for both, or the scored tokens are not the trained ones. */
typedef struct score_config {
    const char *config, *backend, *model, *tokenizer, *data, *out, *adapter;
    const char *image_root, *vision_tower;
    long max_image_pixels;
    const char *dtype, *activation_dtype, *chat_template, *truncation_mode;
    long max_length, max_prompt_length, max_completion_length, batch_size, threads, device;
    bool no_bos, skip_bad_lines, token_logps, quiet;
    bool no_prefix_sharing; /* as aspo run's (pair_batch_pack) */
    long max_tokens_per_batch;
} score_config;

/* `aspo run`'s defaults for the shared flags. */
score_config score_defaults(void);

/* One pair's response log-probs. */
typedef struct pair_logps {
    double chosen, rejected;                /* sums over the response tokens */
    float *chosen_tokens, *rejected_tokens; /* per token when asked for, else NULL */
    int64_t n_chosen, n_rejected;           /* response tokens, EOS included */
} pair_logps;

void pair_logps_free(pair_logps *p, int64_t n);

/* How score_pairs batches: batch_size pairs per forward; pad_id fills the padding (any valid
 * id: it is masked); packed rows of max_tokens (pair_batch_pack) unless no_prefix_sharing,
 * as aspo run computes them. */
typedef struct score_batching {
    int batch_size;
    int32_t pad_id;
    bool no_prefix_sharing;
    int64_t max_tokens;
} score_batching;

/* Scores pairs[0..n) into out[0..n) (zeroed first) with the model as it is (adapters on
 * when it has them), no tape, no dropout, batched as `batching` says (longest first, so
 * an out-of-memory shows on the first batch). images: the rows' images for a LLaVA model (NULL for LLaMA). Resets the step
 * arena after each batch. progress (may be NULL) gets a line
 * every few seconds. On failure out holds nothing to free. */
typedef struct score_images {
    const preference_row *rows; /* (n) the rows the pairs came from, for their images */
    const char *root;           /* --image-root */
    const image_limits *limits;
} score_images;

aspo_status score_pairs(policy_model *m, const tokenized_pair *pairs, int64_t n,
                        const score_images *images, const score_batching *batching,
                        bool keep_tokens, pair_logps *out, FILE *progress);

typedef struct score_summary {
    int64_t pairs, skipped_lines;
    double mean_chosen, mean_rejected; /* mean over pairs of the sums */
} score_summary;

/* The whole job: read and tokenize the data, open the model (and adapter), score, write
 * cfg->out under a temporary name and rename it. Needs runtime-free state: it initialises
 * and shuts down the runtime itself. summary may be NULL. */
aspo_status score_run(const score_config *cfg, score_summary *summary);

#endif
