/* CLIP's text tokenizer (the [VISION] text tower): byte-level BPE with an "</w>" end-of-word
 * suffix, loaded from vocab.json + merges.txt, matching transformers' slow CLIPTokenizer
 * without ftfy installed (what LLaVA/CLIP setups without ftfy run) token for token.
 *
 * Steps, as CLIPTokenizer does them:
 *   1. Literal "<|startoftext|>" / "<|endoftext|>" in the raw text are special tokens
 *      (case-sensitive, leftmost first); the text between them is tokenized separately.
 *   2. BasicTokenizer(strip_accents=False, do_split_on_punc=False): drop U+0000, U+FFFD and
 *      every general-category C* character except \t \n \r; \t \n \r and Zs become a
 *      space; put spaces around CJK ideographs; NFC; split on whitespace; lower-case each
 *      word (full Unicode lower-casing with final sigma, Python's str.lower). No accent
 *      stripping. (With ftfy installed HF would run ftfy.fix_text + whitespace_clean +
 *      lower() instead; that path is not reproduced.)
 *   3. The pattern <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|
 *      [^\s\p{L}\p{N}]+ (IGNORECASE) cuts each word into pieces; characters it matches
 *      nowhere are dropped (e.g. U+0345, whose case partner is a letter).
 *   4. Each piece's UTF-8 bytes go through GPT-2's bytes_to_unicode table; the last symbol
 *      gets "</w>"; adjacent symbols merge by lowest merges.txt rank (first line of
 *      merges.txt is a header; at most 48894 merges are read, as HF does). A symbol
 *      missing from the vocabulary becomes the unk token ("<|endoftext|>").
 *
 * CLIPTokenizerFast differs from the slow tokenizer on: CJK (fast keeps a run of ideographs
 * as one word), control/format characters such as ZWJ inside emoji, U+FEFF, U+0000 and
 * U+FFFD (fast keeps them), final sigma, "'ſ" (slow's IGNORECASE takes it as the 's
 * contraction), U+0345, and a special token hidden by a control character ("<|endo\0ftext|>",
 * which slow turns into <|endoftext|>). We follow the slow tokenizer everywhere.
 *
 * Unicode data (categories, lower-casing, NFC) comes from ICU; Python 3.11 uses Unicode 14,
 * ICU 72 Unicode 15, so characters new in Unicode 15 may differ. */
#ifndef ASPO_CLIP_TOKENIZER_H
#define ASPO_CLIP_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "tensor/error.h"

#define CLIP_CONTEXT_LENGTH 77 /* CLIP's text positions */

typedef struct clip_tokenizer clip_tokenizer;

/* dir_or_files: a directory holding vocab.json and merges.txt, or the path of vocab.json
 * (merges.txt beside it). The pad token is read from special_tokens_map.json or
 * tokenizer_config.json in the same directory when present ("pad_token", a string or
 * {"content": ...}), else "<|endoftext|>" as CLIPTokenizer's default. */
aspo_status clip_tokenizer_load(const char *dir_or_files, clip_tokenizer **out);
void clip_tokenizer_free(clip_tokenizer *t);

/* ids[0..*n) = <|startoftext|> tokens... <|endoftext|>, truncated as
 * CLIPTokenizer(text, truncation=True, max_length=max_len): the text's tokens are cut to
 * max_len - 2 and the end token is kept, so *n <= max_len. ids must hold max_len entries;
 * max_len >= 2. No padding here: see clip_pad. text must be valid UTF-8 (ASPO_ERR_USAGE). */
aspo_status clip_tokenize(const clip_tokenizer *t, const char *text, size_t len, int32_t *ids,
                          int max_len, int *n);

/* padding="max_length": ids[n..max_len) = the pad id. With the default pad token
 * (<|endoftext|>, as openai/clip-*) HF's CLIPTextTransformer pools at the first
 * <|endoftext|> (eos_token_id; with legacy configs eos_token_id == 2 it pools at argmax of
 * the ids, the same position in the real vocabulary where <|endoftext|> is the largest id):
 * that is ids[n-1] unless the text itself spelled "<|endoftext|>" earlier. */
void clip_pad(const clip_tokenizer *t, int32_t *ids, int n, int max_len);

int32_t clip_tokenizer_bos_id(const clip_tokenizer *t);
int32_t clip_tokenizer_eos_id(const clip_tokenizer *t);
int32_t clip_tokenizer_pad_id(const clip_tokenizer *t);
int32_t clip_tokenizer_vocab_size(const clip_tokenizer *t); /* largest id + 1 */

#endif
