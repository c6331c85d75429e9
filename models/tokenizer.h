/* LLaMA / Vicuna / LLaVA tokenizer: SentencePiece-style BPE with byte fallback, loaded from a
 * Hugging Face tokenizer.json or a SentencePiece tokenizer.model, matching HF `tokenizers`
 * (as driven by transformers' LlamaTokenizerFast) token for token, offsets included.
 *
 * What is read:
 *   tokenizer.json   model (BPE: vocab, merges as "a b" strings or [a, b] pairs, unk_token,
 *                    fuse_unk, byte_fallback, ignore_merges), added_tokens (id, lstrip,
 *                    rstrip, single_word, normalized, special), normalizer (Sequence, Prepend,
 *                    Replace with a String pattern), pre_tokenizer (Metaspace with
 *                    prepend_scheme always/first/never or the older add_prefix_space, split),
 *                    decoder (Sequence, Replace, ByteFallback, Fuse, Strip, Metaspace),
 *                    post_processor TemplateProcessing (BOS/EOS) and padding (pad token).
 *   tokenizer.model  pieces, trainer_spec (model type, unk piece); converted as transformers'
 *                    LlamaConverter does (merges from piece scores, byte fallback, CONTROL
 *                    pieces special, USER_DEFINED pieces added), legacy or not per the config.
 *   tokenizer_config.json, special_tokens_map.json (beside the tokenizer file, either may be
 *                    absent; the second wins as in transformers): bos/eos/unk/pad_token and
 *                    additional_special_tokens (string or {"content": ...}; a named token
 *                    that is not yet an added token becomes a special one, as HF does),
 *                    added_tokens_decoder (tokens not yet added are added), legacy and
 *                    add_prefix_space (tokenizer.model only), clean_up_tokenization_spaces
 *                    (default false, as LlamaTokenizerFast).
 * Ids are checked, not renumbered: a vocabulary piece given twice or two pieces on one id,
 * and an added token (added_tokens, added_tokens_decoder) whose listed id is not the one HF
 * gives it (its vocabulary id, else the next free one; HF only logs a warning and
 * renumbers), are errors naming the file, the token and the id. Every file must be a
 * regular file of at most 64 MiB (TOK_FILE_MAX_BYTES).
 * Special ids, first found wins: special_tokens_map.json, tokenizer_config.json, then
 * tokenizer.json (post_processor's leading/trailing special token for BOS/EOS, padding's
 * pad_token, model.unk_token), then LlamaTokenizerFast's defaults "<s>", "</s>", "<unk>"
 * where the vocabulary has them. */
#ifndef ASPO_TOKENIZER_H
#define ASPO_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tensor/error.h"

typedef struct tokenizer tokenizer;

/* path: tokenizer.json, tokenizer.model, or a model directory holding one (tokenizer.json
 * preferred). Errors name the file, and the line/column for JSON syntax or the field. */
aspo_status tokenizer_load(const char *path, tokenizer **out);
void tokenizer_free(tokenizer *t);

typedef struct token_list {
    int32_t *ids;
    int32_t *start, *end; /* byte offsets [start,end) in the encoded UTF-8 text of the
                             characters this token covers (HF offsets, converted from
                             characters to bytes); a byte-fallback token covers its whole
                             character */
    int n, cap;
} token_list;

/* Appends the tokens of text[0..len) to out, with no BOS/EOS (HF add_special_tokens=False);
 * special/added tokens that appear literally in text are matched as HF does. text must be
 * valid UTF-8 (ASPO_ERR_USAGE otherwise) and shorter than 2 GiB. */
aspo_status tokenizer_encode(const tokenizer *t, const char *text, size_t len, token_list *out);
void token_list_clear(token_list *l);
void token_list_free(token_list *l);
aspo_status token_list_push(token_list *l, int32_t id, int32_t start, int32_t end);

/* HF tokenizer.decode(ids, skip_special_tokens=skip_special). *text is malloc'd and
 * NUL-terminated. Ids outside the vocabulary are skipped, as HF does. */
aspo_status tokenizer_decode(const tokenizer *t, const int32_t *ids, int n, bool skip_special,
                             char **text);

int32_t tokenizer_bos_id(const tokenizer *t);
int32_t tokenizer_eos_id(const tokenizer *t);
int32_t tokenizer_pad_id(const tokenizer *t); /* -1 when none */
int32_t tokenizer_unk_id(const tokenizer *t); /* -1 when none */
int32_t tokenizer_vocab_size(const tokenizer *t); /* including added tokens: largest id + 1 */
int32_t tokenizer_piece_to_id(const tokenizer *t, const char *piece); /* -1 when absent */
const char *tokenizer_id_to_piece(const tokenizer *t, int32_t id); /* NULL when out of range */

#endif
