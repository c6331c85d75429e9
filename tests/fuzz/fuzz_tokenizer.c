/* The LLaMA tokenizer: tokenizer.json or tokenizer.model loaded from a model directory with
 * its tokenizer_config.json and special_tokens_map.json, then each line of a text encoded,
 * decoded both ways (special tokens kept and skipped) and re-encoded, and ids made from the
 * text's bytes (out-of-range ones included) decoded.
 *
 * Input, cut by scissors lines (fuzz_common.h): the tokenizer file (tokenizer.json when it
 * starts with '{' after blanks, else tokenizer.model), the text, then optionally
 * tokenizer_config.json and special_tokens_map.json; an empty config part is no file. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "fuzz_tokenize.h"
#include "models/tokenizer.h"

enum { MAX_INPUT = 1 << 18 };

static bool looks_like_json(const fuzz_part *p)
{
    size_t i = 0;
    while (i < p->size && p->data[i] && strchr(" \t\r\n", p->data[i])) i++;
    return i < p->size && p->data[i] == '{';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT) return 0;
    const char *dir = fuzz_reset();
    fuzz_part part[4];
    fuzz_split(data, size, part, 4);
    fuzz_write(looks_like_json(&part[0]) ? "tokenizer.json" : "tokenizer.model", part[0].data,
               part[0].size);
    if (part[2].size) fuzz_write("tokenizer_config.json", part[2].data, part[2].size);
    if (part[3].size) fuzz_write("special_tokens_map.json", part[3].data, part[3].size);
    tokenizer *t;
    if (tokenizer_load(dir, &t) == ASPO_OK) {
        fuzz_tokenize_lines(t, part[1].data, part[1].size);
        tokenizer_free(t);
    }
    fuzz_error_done();
    return 0;
}
