/* What both tokenizer targets do with a tokenizer that loaded (fuzz_tokenize.c). */
#ifndef ASPO_FUZZ_TOKENIZE_H
#define ASPO_FUZZ_TOKENIZE_H

#include <stddef.h>
#include <stdint.h>

#include "models/tokenizer.h"

/* The special ids and the first lines of text through encode, decode (special tokens kept
 * and skipped) and encode again; ids made from text's bytes through decode. Stops the run
 * (fuzz_fail) when an id is outside the vocabulary or an offset outside the text. */
void fuzz_tokenize_lines(const tokenizer *t, const uint8_t *text, size_t size);

#endif
