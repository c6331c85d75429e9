/* Preference datasets: the input as a file through dataset_load_jsonl (JSONL, or SeVa's JSON
 * list when it starts with '['), failing on the first bad line and skipping bad lines, and
 * each of its first lines through dataset_parse_line. Every field of every row is read to
 * its stated length, so a length that overstates the buffer is an ASan report. */
#include <stdlib.h>
#include <string.h>

#include "aspo/data/dataset.h"
#include "fuzz_common.h"

enum { MAX_INPUT = 1 << 16, MAX_LINES = 64 };

static volatile uint64_t sink;

static void touch_bytes(const char *p, size_t n)
{
    for (size_t i = 0; p && i < n; i++) sink += (unsigned char)p[i];
}

static void touch_ids(const int32_t *p, int64_t n)
{
    for (int64_t i = 0; p && i < n; i++) sink += (uint32_t)p[i];
}

static void touch_floats(const float *p, int64_t n)
{
    for (int64_t i = 0; p && i < n; i++) sink += (uint64_t)(p[i] != 0);
}

static void touch_row(const preference_row *r)
{
    touch_bytes(r->prompt, r->prompt_len);
    touch_bytes(r->chosen, r->chosen_len);
    touch_bytes(r->rejected, r->rejected_len);
    touch_ids(r->prompt_ids, r->n_prompt_ids);
    touch_ids(r->chosen_ids, r->n_chosen_ids);
    touch_ids(r->rejected_ids, r->n_rejected_ids);
    touch_floats(r->ref_chosen_tokens, r->n_ref_chosen_tokens);
    touch_floats(r->ref_rejected_tokens, r->n_ref_rejected_tokens);
    if (r->id) sink += strlen(r->id);
    if (r->image) sink += strlen(r->image);
    sink += strlen(preference_row_where(r)) + preference_row_is_tokenized(r);
}

static void load(const char *path, bool skip_bad_lines)
{
    dataset_options opt = {.skip_bad_lines = skip_bad_lines};
    preference_dataset ds;
    if (dataset_load_jsonl(path, &opt, &ds) == ASPO_OK) {
        for (int64_t i = 0; i < ds.n_rows; i++) touch_row(&ds.rows[i]);
        sink += strlen(ds.first_skip);
    }
    fuzz_error_done();
    dataset_free(&ds);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT) return 0;
    fuzz_reset();
    const char *path = fuzz_write("pairs.jsonl", data, size);
    load(path, false);
    load(path, true);

    const char *line = (const char *)data, *end = line + size;
    for (int k = 0; k < MAX_LINES && line < end; k++) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        size_t len = nl ? (size_t)(nl - line) : (size_t)(end - line);
        char *copy = fuzz_memdup(line, len); /* ASan sees a read past the line */
        preference_row row;
        if (dataset_parse_line(copy, len, "fuzz.jsonl", k + 1, &row) == ASPO_OK) touch_row(&row);
        fuzz_error_done();
        preference_row_free(&row);
        free(copy);
        if (!nl) break;
        line = nl + 1;
    }
    return 0;
}
