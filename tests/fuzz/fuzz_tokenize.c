#include "fuzz_tokenize.h"

#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"

enum { MAX_LINES = 4, MAX_RAW_IDS = 64 };

static volatile uint64_t sink;

static void check_id(const tokenizer *t, int32_t id, const char *what, bool may_be_none)
{
    if ((may_be_none && id == -1) || (id >= 0 && id < tokenizer_vocab_size(t))) return;
    fuzz_fail("%s id %d is outside the vocabulary [0, %d)", what, id, tokenizer_vocab_size(t));
}

static void decode(const tokenizer *t, const int32_t *ids, int n, bool skip_special)
{
    char *text = NULL;
    if (tokenizer_decode(t, ids, n, skip_special, &text) == ASPO_OK) {
        token_list again = {0};
        tokenizer_encode(t, text, strlen(text), &again); /* decoded text may be invalid UTF-8 */
        fuzz_error_done();
        token_list_free(&again);
    }
    fuzz_error_done();
    free(text);
}

static void encode_decode(const tokenizer *t, const char *text, size_t len)
{
    token_list l = {0};
    if (tokenizer_encode(t, text, len, &l) == ASPO_OK) {
        for (int i = 0; i < l.n; i++) {
            check_id(t, l.ids[i], "encoded", false);
            if (!(l.start[i] >= 0 && l.start[i] <= l.end[i] && (size_t)l.end[i] <= len))
                fuzz_fail("token %d (id %d) has offsets [%d, %d) in a text of %zu bytes", i,
                          l.ids[i], l.start[i], l.end[i], len);
            const char *piece = tokenizer_id_to_piece(t, l.ids[i]);
            if (piece) sink += (uint64_t)tokenizer_piece_to_id(t, piece);
        }
        decode(t, l.ids, l.n, false);
        decode(t, l.ids, l.n, true);
    }
    fuzz_error_done();
    token_list_free(&l);
}

void fuzz_tokenize_lines(const tokenizer *t, const uint8_t *text, size_t size)
{
    check_id(t, tokenizer_bos_id(t), "BOS", true);
    check_id(t, tokenizer_eos_id(t), "EOS", true);
    check_id(t, tokenizer_pad_id(t), "pad", true);
    check_id(t, tokenizer_unk_id(t), "unk", true);

    const char *line = (const char *)text, *end = line + size;
    for (int k = 0; k < MAX_LINES; k++) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        size_t len = nl ? (size_t)(nl - line) : (size_t)(end - line);
        char *s = fuzz_memdup(line, len); /* ASan sees a read past the line */
        encode_decode(t, s, len);
        free(s);
        if (!nl) break;
        line = nl + 1;
    }

    int32_t raw[MAX_RAW_IDS];
    int n = 0;
    for (size_t i = 0; i + 1 < size && n < MAX_RAW_IDS; i += 2)
        raw[n++] = (int16_t)(text[i] | text[i + 1] << 8);
    decode(t, raw, n, false);
    decode(t, raw, n, true);
}
