/* A batch of preference pairs as one model input: the chosen sequences of the P pairs,
 * then their rejected sequences (TRL's concatenated order), right-padded to one length,
 * with the next-token targets that select the response log-probs. That padded view is what
 * the log-probs come back in; the model may instead compute packed rows
 * (pair_batch_pack): each pair once as [shared prefix, chosen rest, rejected rest], pairs
 * end to end, so a prompt is computed once per pair and nothing is padding but the ends
 * of rows. */
#ifndef ASPO_PAIR_BATCH_H
#define ASPO_PAIR_BATCH_H

#include "aspo/data/pair_tokens.h"
#include "tensor/tensor.h"

enum { IGNORE_TARGET = -100 };

typedef struct pair_batch {
    int n_pairs;      /* P; rows 0..P-1 chosen, P..2P-1 rejected */
    int64_t T;        /* padded length */
    int32_t *ids;     /* (2P,T) host; pad positions hold pad_id */
    float *mask;      /* (2P,T) 1 = real token, 0 = padding */
    /* (2P,T) host: the token at t+1 where t+1 is a response position, else IGNORE_TARGET.
     * Position t's logits predict token t+1, so response token j of row r is scored at
     * t = first[r] + j. */
    int32_t *targets;
    int64_t *first;   /* (2P) position scoring the first response token */
    int64_t *count;   /* (2P) response tokens (EOS included) */
    /* Images (NULL without): the k pairs that have an image each get rows
     * [slot*N, (slot+1)*N) of the image features, slot counting those pairs in order. */
    int n_images;         /* k */
    int *image_slot;      /* (P) slot of pair i, -1 without an image */
    int32_t *feature_row; /* (2P,T) host: feature row at an image position, -1 elsewhere */
    /* Packed rows (rows = 0: the model reads the padded ones above). */
    struct {
        int rows;             /* R */
        int64_t width;        /* W: the longest row */
        int32_t *ids;         /* (R,W) pad_id after a row's end */
        int32_t *layout;      /* (R,2,W) segment, base: tensor_attention's segment layout */
        int32_t *positions;   /* (R,W) RoPE positions: an answer continues its prompt's */
        int32_t *feature_row; /* (R,W) as feature_row above, or NULL without images */
        int32_t *at;          /* (2P,T) where each real cell of the padded view is computed:
                                 r*W + w, -1 for padding; a shared prefix is one place for
                                 both of a pair's rows */
        int64_t computed;     /* real positions of the packed rows */
    } packed;
} pair_batch;

/* How image placeholders become positions: each `token` in a prompt is replaced by
 * `positions` positions (their ids set to pad_id) that the image features fill. first: the
 * family puts the token before BOS (tokenize_options.image_first), not where the prompt's
 * "<image>" stands. */
typedef struct pair_batch_images {
    int32_t token;
    int64_t positions;
    bool first;
} pair_batch_images;

/* pairs[i] for i < n; pad_id fills the padding (any valid id: it is masked). A sequence
 * whose prompt is empty cannot score its first response token: an error naming it.
 * images: NULL for text models; otherwise a pair's image placeholder (one per image pair,
 * in both sequences, as pair_tokenize left it) expands to images->positions positions. */
aspo_status pair_batch_build(const tokenized_pair *const *pairs, int n, int32_t pad_id,
                             const pair_batch_images *images, pair_batch *b);
void pair_batch_free(pair_batch *b);
/* Real tokens in the batch (for tokens/s): of the padded view, as TRL counts them, whether
 * packed or not. */
int64_t pair_batch_tokens(const pair_batch *b);

/* Packs b for the model: each pair's chosen and rejected sequences share their longest
 * common prefix (the prompt, image positions included, and any response tokens both begin
 * with), computed once as segment s with the answers' rests as segments s+1 and s+2 that
 * see it and not each other; positions continue the prefix in both rests, so every
 * position computes what it does in the padded rows. Pairs go end to end into rows of at
 * most max_tokens positions, each into the first row with room (0: the largest pair's
 * length, so no row is longer than one pair; a pair longer than max_tokens has a row of
 * its own). The padded view stays: the log-probs come back in it. */
aspo_status pair_batch_pack(pair_batch *b, int32_t pad_id, int64_t max_tokens);
/* Drops the packed rows (the model reads the padded ones again). */
void pair_batch_unpack(pair_batch *b);
/* pair_batch_build, then pair_batch_pack (max_tokens) unless pad_rows: a batch as aspo run
 * and aspo score compute it (--no-prefix-sharing, --max-tokens-per-batch). On failure b
 * holds nothing. */
aspo_status pair_batch_make(const tokenized_pair *const *pairs, int n, int32_t pad_id,
                            const pair_batch_images *images, bool pad_rows, int64_t max_tokens,
                            pair_batch *b);
/* Positions the model computes for b: its packed rows' real ones, or every padded cell. */
int64_t pair_batch_computed(const pair_batch *b);

/* The model's input, packed or padded: ids (rows,width) i32, the attention mask (a key mask
 * (rows,width) f32, or the segment layout (rows,2,width) i32), and the host arrays that go
 * with them, positions (NULL: 0..width-1) and feature rows (NULL without images). */
typedef struct pair_batch_input {
    tensor *ids, *mask;
    const int32_t *positions, *feature_row;
} pair_batch_input;
pair_batch_input pair_batch_model_input(const pair_batch *b);

/* The N positions that score a token (target not IGNORE_TARGET, row by row), N the sum of
 * count: hidden (2P,T,C), or (R,W,C) of packed rows, -> (N,C), with autograd. The LM head and log-softmax run on these
 * rows only (in an image pair most positions are prompt). */
tensor *pair_batch_scored_hidden(const pair_batch *b, tensor *hidden);
/* Per-position log-probs of the targets from logits (N,V) of the scored positions: logp
 * (2P,T) f32 (0 at ignored positions), with autograd when recording. When logit_sums is
 * non-NULL it receives, detached, the sum over the vocabulary of the logits at each
 * position (2P,T; 0 at ignored ones), for TRL's logits/chosen and logits/rejected metrics. */
tensor *pair_batch_logprobs(const pair_batch *b, tensor *logits, tensor **logit_sums);

#endif
