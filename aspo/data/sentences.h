/* ASPO units of a response: sentence splitting on UTF-8 bytes and the unit of each
 * response token (docs/ASPO.md, "Units"). Host code, no tensors. */
#ifndef ASPO_SENTENCES_H
#define ASPO_SENTENCES_H

#include <stddef.h>
#include <stdint.h>

#include "tensor/error.h"

/* Bytes [begin, end) of a response text. */
typedef struct aspo_span {
    int64_t begin, end;
} aspo_span;

/* The granularity of ASPO's adaptive weights (paper Table 6). */
typedef enum aspo_unit_level {
    ASPO_UNIT_SENTENCE = 0, /* default */
    ASPO_UNIT_RESPONSE,     /* one unit per response; min-max runs over the batch */
    ASPO_UNIT_TOKEN,        /* every token is its own unit */
} aspo_unit_level;

const char *aspo_unit_level_name(aspo_unit_level level);

/* Splits text (len bytes, UTF-8, need not be NUL-terminated) into sentences. A sentence
 * ends after a run of '.', '!' or '?' (plus closing quotes or brackets) that is followed
 * by whitespace or the end of the text, except after a common abbreviation ("e.g.",
 * "Dr."), a list marker at the start of a sentence ("1.", "a."), or an ellipsis (".." or
 * more dots; '…' is no terminator). A newline always ends a sentence; CJK '。', '！', '？'
 * end one whatever follows. Spans are trimmed of ASCII whitespace; whitespace-only pieces
 * are dropped. *count is the number of sentences; the first min(*count, cap) are written
 * to spans (spans may be NULL when cap is 0). */
aspo_status aspo_split_sentences(const char *text, size_t len, aspo_span *spans, int cap,
                                 int *count);

/* Units of one response at `level` and the unit of each of its n_tokens tokens.
 * token_begin/token_end: byte span [begin, end) of each token in text, in token order, as
 * aspo/data/pair_tokens.h keeps them; -1/-1 for a token without text (EOS, pre-tokenized rows);
 * both NULL: no token has text.
 *   sentence: a token belongs to the sentence holding its first non-space byte; a token of
 *             whitespace only takes the unit of the next token that has text, or of the
 *             previous one when none follows; a token without a span (EOS) takes the last
 *             unit. A sentence that then owns no token (its text lies inside a token that
 *             starts in an earlier sentence, or truncation cut its tokens) is merged into
 *             the unit before it (the first: into the one after), so every unit owns at
 *             least one token. When no token has text, one unit holds them all.
 *   response: one unit, the trimmed text.
 *   token:    unit t is token t, its span the token's (a spanless token gets the empty
 *             span {len, len}).
 * A text with no non-space byte gives one unit with the empty span {0, 0}. unit_spans and
 * unit_of_token have room for n_tokens entries (units never outnumber tokens); *n_units
 * receives the count. n_tokens must be at least 1 (the EOS token). */
aspo_status aspo_response_units(aspo_unit_level level, const char *text, size_t len,
                                const int64_t *token_begin, const int64_t *token_end,
                                int64_t n_tokens, aspo_span *unit_spans,
                                int32_t *unit_of_token, int *n_units);

#endif
