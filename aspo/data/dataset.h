/* Preference datasets: JSONL files (one JSON object per line) or one JSON list of entries
 * in SeVa's format (aspo/data/dataset_seva.c). dataset_load_jsonl tells them apart by the
 * file's first non-space byte: '[' is a JSON list, anything else JSONL.
 *
 * Text rows:         {"prompt": str, "chosen": str, "rejected": str}
 * Pre-tokenized rows: {"prompt_input_ids": [int], "chosen_input_ids": [int],
 *                      "rejected_input_ids": [int]}   (TRL's column names and meaning:
 *                      the prompt ids include BOS, the response ids include EOS; used
 *                      exactly as given)
 * Either kind may carry "id" (string or integer), "image" (a non-empty string: a path
 * relative to the trainer's --image-root, or absolute) and "ref_chosen_logps" /
 * "ref_rejected_logps" (numbers, both or neither). Other fields are ignored. Blank lines
 * are skipped. Every error names the file and the line (and column for bad JSON).
 * The file is read line by line, so its size is bounded only by the rows kept.
 *
 * SeVa's list (github Kevinz-code/SeVa, data/step3): [{"question": str, "chosen": str,
 * "reject": str, "image_id": str}, ...], optional "id" and the same reference fields.
 * question -> prompt, reject -> rejected, image_id -> image. Errors name the 1-based
 * entry ("pairs.json: entry 17: ...") instead of a line. */
#ifndef ASPO_DATASET_H
#define ASPO_DATASET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "tensor/error.h"

typedef struct preference_row {
    char *id;           /* NULL when the row has none; integers are kept as their digits */
    int64_t line;       /* 1-based line of the row in its file, or entry of a JSON list */
    bool in_list;       /* `line` counts entries of a JSON list (SeVa), not lines */
    const char *source; /* the file's path (owned by the dataset) */

    /* Text rows: UTF-8, NUL-terminated, lengths in bytes. NULL for pre-tokenized rows. */
    char *prompt, *chosen, *rejected;
    size_t prompt_len, chosen_len, rejected_len;

    /* Pre-tokenized rows: NULL for text rows. */
    int32_t *prompt_ids, *chosen_ids, *rejected_ids;
    int64_t n_prompt_ids, n_chosen_ids, n_rejected_ids;

    /* The row's image as the file names it ("image" in JSONL, "image_id" in SeVa's list),
     * relative to the trainer's --image-root; NULL for a text-only row. */
    char *image;

    bool has_ref_logps; /* ref_chosen_logps and ref_rejected_logps were given */
    double ref_chosen_logps, ref_rejected_logps;
    /* Optional per-token reference log-probs of the response tokens (EOS included), as
     * `aspo score --token-logps` writes them ("ref_chosen_token_logps",
     * "ref_rejected_token_logps"): ASPO needs them, DPO needs only the sums above. */
    float *ref_chosen_tokens, *ref_rejected_tokens;
    int64_t n_ref_chosen_tokens, n_ref_rejected_tokens;
} preference_row;

static inline bool preference_row_is_tokenized(const preference_row *r)
{
    return r->chosen_ids != NULL;
}

/* "line" or "entry": what row->line counts, for messages ("%s %s %lld"). */
/* "file:17" for a JSONL row, "file.json: entry 17" for a SeVa entry: where messages say a
 * row is. The text lives in one of a few per-thread buffers, valid for a few calls. */
const char *preference_row_where(const preference_row *r);

static inline const char *preference_row_unit(const preference_row *r)
{
    return r->in_list ? "entry" : "line";
}

typedef struct dataset_options {
    /* A bad line (malformed JSON, missing or mistyped field, empty response) or a bad
     * entry of a JSON list is counted in n_skipped and left out instead of failing the
     * load. A JSON list that is malformed as a whole still fails: it is one document. */
    bool skip_bad_lines;
} dataset_options;

typedef enum dataset_format {
    DATASET_JSONL,     /* one JSON object per line */
    DATASET_JSON_LIST, /* one JSON list of entries, SeVa's keys */
} dataset_format;

typedef struct preference_dataset {
    char *path;
    dataset_format format;
    preference_row *rows;
    int64_t n_rows;
    int64_t n_lines;      /* lines read, blank ones included; entries of a JSON list */
    int64_t n_skipped;    /* bad lines (entries) left out (only with skip_bad_lines) */
    char first_skip[512]; /* the error of the first skipped line, "" when none */
    int64_t capacity_;
} preference_dataset;

/* Reads `path`, JSONL or a JSON list (see the top), into *out (zeroed first). opt may be
 * NULL (defaults: fail on the first bad line). A file with no rows is an error. On failure
 * *out is left empty. */
aspo_status dataset_load_jsonl(const char *path, const dataset_options *opt,
                               preference_dataset *out);
void dataset_free(preference_dataset *ds);

/* Parses one JSONL line (without its newline) into *row, for tests and for callers that
 * hold rows in memory. `source` and `line` are only used in messages and stored in *row.
 * On failure the message (source:line: ...) is set via aspo_fail and *row is empty. */
aspo_status dataset_parse_line(const char *text, size_t len, const char *source, int64_t line,
                               preference_row *row);
void preference_row_free(preference_row *row);

/* ---- Shared by aspo/data/dataset.c and aspo/data/dataset_seva.c only. */

struct json_t;

/* The names of a format's text fields, for parsing and for messages. */
typedef struct dataset_keys {
    const char *prompt, *chosen, *rejected, *image;
    bool image_required;  /* SeVa's entries always name their image */
    bool allow_tokenized; /* prompt_input_ids etc. (JSONL only) */
} dataset_keys;

/* A row error, kept out of the thread's error until the load decides (skip or fail). */
typedef struct dataset_row_msg {
    char text[512];
} dataset_row_msg;

/* One JSON object -> *row. `index` is the line (or, with `in_list`, the entry). On failure
 * *row is empty but for source/line and m holds "source:line: ..." or
 * "source: entry N: ...". */
aspo_status dataset_row_from_object(struct json_t *obj, const dataset_keys *keys,
                                    const char *source, int64_t index, bool in_list,
                                    preference_row *row, dataset_row_msg *m);
/* Takes *row into ds (or frees it on failure: out of memory). */
aspo_status dataset_add_row(preference_dataset *ds, preference_row *row);
/* A bad row: counted when skipping (status ASPO_OK), else the thread's error. */
aspo_status dataset_bad_row(preference_dataset *ds, bool skip, aspo_status st,
                            const dataset_row_msg *m);
/* Reads the JSON list that begins with `head` (the file's first non-blank line, already
 * read, at line `head_line`, without a byte order mark) and goes on in f, into ds (its path
 * set, no rows yet). Leaves the no-rows check to the caller. */
aspo_status dataset_read_json_list(FILE *f, const char *head, size_t head_len,
                                   int64_t head_line, bool skip, preference_dataset *ds);

#endif
