/* Unicode helpers that the text tokenizers of transformers' Python code need to be matched
 * exactly: Python's str.isspace, BERT's CJK ranges, and NFC / NFD / lower-casing over UTF-32
 * code points, with categories and mappings from ICU (Debian: libicu-dev). ICU 72 carries
 * Unicode 15 where Python 3.11 has Unicode 14: a character assigned in Unicode 15 may be
 * classified differently. */
#ifndef ASPO_TEXT_UNICODE_H
#define ASPO_TEXT_UNICODE_H

#include <stdbool.h>
#include <stdint.h>

#include "tensor/error.h"

/* Python's str.isspace for one character: bidi class WS, B or S, or category Zs. */
bool text_py_isspace(int32_t c);

/* transformers' BasicTokenizer._is_chinese_char: the CJK Unified Ideographs blocks and
 * their extensions A-E, and the compatibility ideographs (not Hangul, kana or
 * extension F and later). */
bool text_is_cjk(int32_t c);

typedef enum text_form {
    TEXT_NFC,
    TEXT_NFD,
    TEXT_LOWER, /* full lower-casing in the root locale, final sigma by context */
} text_form;

/* in[0..n) mapped to a new array *out (free() it) of *nout code points. ASPO_ERR_OOM, or
 * ASPO_ERR_UNSUPPORTED when ICU fails; `who` names the caller in the message. */
aspo_status text_map(const int32_t *in, int n, text_form form, int32_t **out, int *nout,
                     const char *who);

#endif
