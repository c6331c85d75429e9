/* BERT's WordPiece tokenizer, as InstructBLIP's Q-Former reads its instruction with it:
 * matches transformers 4.44's slow BertTokenizer token for token, loaded from a checkpoint's
 * qformer_tokenizer/ directory (vocab.txt, tokenizer_config.json, special_tokens_map.json,
 * added_tokens.json; tokenizer.json is not read).
 *
 * Steps, as BertTokenizer.__call__ does them:
 *   1. With do_lower_case, the text is lower-cased one character at a time (Python's
 *      str.lower of each character: "Σ" always becomes "σ", never a final "ς"), except where
 *      a special token (bos, eos, unk, sep, pad, cls, mask, additional) or a non-special
 *      "normalized" added token is spelled exactly.
 *   2. Added tokens (added_tokens_decoder, or the legacy added_tokens.json, and every
 *      special token) are cut out of the text, leftmost longest first, and kept whole;
 *      their lstrip / rstrip / single_word flags act on the neighbouring text.
 *   3. BasicTokenizer on the rest: drop U+0000, U+FFFD and category C* except \t \n \r;
 *      \t \n \r and Zs become a space; spaces around CJK ideographs; NFC; split on
 *      whitespace (Python's str.isspace, so U+2028 too); per word, unless it is a special
 *      token or in never_split: lower-case, strip accents (NFD, drop Mn) when do_lower_case
 *      and strip_accents is not false (or strip_accents is true), then split off every
 *      punctuation character (ASCII 33-47, 58-64, 91-96, 123-126, and category P*).
 *   4. WordPiece per word: a word of more than 100 code points is [UNK]; else greedy
 *      longest match first from vocab.txt, pieces after the first prefixed "##"; a word
 *      with an unmatchable rest is one [UNK].
 *   5. [CLS] ids [SEP]; truncation to max_length drops text tokens on the tokenizer's
 *      truncation_side (InstructBLIP's qformer_tokenizer says "left": the end of a long
 *      instruction is kept).
 * BertTokenizerFast, what AutoTokenizer and so InstructBlipProcessor load, skips the NFC of
 * step 3 and has its own Unicode tables; it gave the same ids on all the test strings, but
 * the slow tokenizer is the one followed here. Unicode data comes from ICU (text_unicode.h). */
#ifndef ASPO_BERT_TOKENIZER_H
#define ASPO_BERT_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tensor/error.h"

typedef struct bert_tokenizer bert_tokenizer;

typedef enum bert_side { BERT_TRUNCATE_RIGHT, BERT_TRUNCATE_LEFT } bert_side;

/* dir holds vocab.txt and, optionally, tokenizer_config.json, special_tokens_map.json and
 * added_tokens.json, read as transformers 4.44 reads them: with "added_tokens_decoder" in
 * tokenizer_config.json the other two are not read; without it, special_tokens_map.json
 * overrides the config's special tokens and added_tokens.json names the added tokens. A
 * special token in neither vocab.txt nor the added tokens gets the next id, as HF gives it,
 * except [UNK], [CLS] and [SEP] (unk_token, cls_token, sep_token), which must be there. A
 * malformed file, a token in vocab.txt twice, or such a missing token is ASPO_ERR_FORMAT
 * naming the file (and line). */
aspo_status bert_tokenizer_load(const char *dir, bert_tokenizer **out);
void bert_tokenizer_free(bert_tokenizer *t);

/* ids[0..*n) = the text's tokens, between [CLS] and [SEP] when `specials`, truncated as
 * tokenizer(text, add_special_tokens=specials, truncation=True, max_length=max_len):
 * text tokens are dropped on the truncation side until *n <= max_len. ids must hold max_len
 * entries; max_len >= 2 with specials, >= 1 without (at max_len 2 HF refuses to truncate a
 * non-empty text and logs an error; here the result is [CLS] [SEP]). text must be valid
 * UTF-8 (ASPO_ERR_USAGE). */
aspo_status bert_encode(const bert_tokenizer *t, const char *text, size_t len, bool specials,
                        int32_t *ids, int max_len, int *n);

/* tokenizer_config.json's truncation_side ("right" when absent); settable like HF's
 * tokenizer.truncation_side. */
bert_side bert_tokenizer_truncation_side(const bert_tokenizer *t);
void bert_tokenizer_set_truncation_side(bert_tokenizer *t, bert_side side);
/* model_max_length (INT64_MAX when absent or the "no limit" 1e30 of HF configs). */
int64_t bert_tokenizer_model_max_length(const bert_tokenizer *t);

int32_t bert_tokenizer_cls_id(const bert_tokenizer *t);
int32_t bert_tokenizer_sep_id(const bert_tokenizer *t);
int32_t bert_tokenizer_pad_id(const bert_tokenizer *t); /* -1 when no pad token is named */
int32_t bert_tokenizer_unk_id(const bert_tokenizer *t);
/* Largest id + 1: HF's len(tokenizer), the rows the Q-Former's word embeddings need
 * (30523 for InstructBLIP: bert-base-uncased's 30522 and [DEC]). */
int32_t bert_tokenizer_vocab_size(const bert_tokenizer *t);
/* The token of an id (an added token's content, else the vocab.txt line); NULL when no
 * token has it. */
const char *bert_tokenizer_id_to_token(const bert_tokenizer *t, int32_t id);

#endif
