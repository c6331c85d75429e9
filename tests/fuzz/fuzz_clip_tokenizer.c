/* CLIP's text tokenizer: vocab.json and merges.txt (and special_tokens_map.json for the pad
 * token) loaded from a directory, then each line of a text tokenized at CLIP's 77 positions
 * and at the shortest length allowed, and padded.
 *
 * Input, cut by scissors lines (fuzz_common.h): vocab.json, merges.txt, the text, then
 * optionally special_tokens_map.json (an empty part is no file). */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "models/clip_tokenizer.h"

enum { MAX_INPUT = 1 << 18, MAX_LINES = 4 };

static void tokenize(const clip_tokenizer *t, const char *text, size_t len, int max_len)
{
    int32_t ids[CLIP_CONTEXT_LENGTH];
    int n = -1;
    if (clip_tokenize(t, text, len, ids, max_len, &n) == ASPO_OK) {
        if (n < 2 || n > max_len)
            fuzz_fail("clip_tokenize gave %d ids for max_len %d", n, max_len);
        for (int i = 0; i < n; i++)
            if (ids[i] < 0 || ids[i] >= clip_tokenizer_vocab_size(t))
                fuzz_fail("id %d at %d is outside the vocabulary [0, %d)", ids[i], i,
                          clip_tokenizer_vocab_size(t));
        clip_pad(t, ids, n, max_len);
    }
    fuzz_error_done();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT) return 0;
    const char *dir = fuzz_reset();
    fuzz_part part[4];
    fuzz_split(data, size, part, 4);
    fuzz_write("vocab.json", part[0].data, part[0].size);
    fuzz_write("merges.txt", part[1].data, part[1].size);
    if (part[3].size) fuzz_write("special_tokens_map.json", part[3].data, part[3].size);
    clip_tokenizer *t;
    if (clip_tokenizer_load(dir, &t) != ASPO_OK) {
        fuzz_error_done();
        return 0;
    }
    const char *line = (const char *)part[2].data, *end = line + part[2].size;
    for (int k = 0; k < MAX_LINES; k++) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        size_t len = nl ? (size_t)(nl - line) : (size_t)(end - line);
        char *s = fuzz_memdup(line, len); /* ASan sees a read past the line */
        tokenize(t, s, len, CLIP_CONTEXT_LENGTH);
        tokenize(t, s, len, 2);
        free(s);
        if (!nl) break;
        line = nl + 1;
    }
    clip_tokenizer_free(t);
    return 0;
}
