/* Preference datasets from JSONL files: one JSON object per line.
 *
 * Text rows:         {"prompt": str, "chosen": str, "rejected": str}
 * Pre-tokenized rows: {"prompt_input_ids": [int], "chosen_input_ids": [int],
 *                      "rejected_input_ids": [int]}   (TRL's column names and meaning:
 *                      the prompt ids include BOS, the response ids include EOS; used
 *                      exactly as given)
 * Either kind may carry "id" (string or integer) and "ref_chosen_logps" /
 * "ref_rejected_logps" (numbers, both or neither). Other fields are ignored. Blank lines
 * are skipped. Every error names the file and the line (and column for bad JSON).
 * The file is read line by line, so its size is bounded only by the rows kept. */
#ifndef ASPO_DATASET_H
#define ASPO_DATASET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tensor/error.h"

typedef struct preference_row {
    char *id;           /* NULL when the row has none; integers are kept as their digits */
    int64_t line;       /* 1-based line of the row in its file */
    const char *source; /* the file's path (owned by the dataset) */

    /* Text rows: UTF-8, NUL-terminated, lengths in bytes. NULL for pre-tokenized rows. */
    char *prompt, *chosen, *rejected;
    size_t prompt_len, chosen_len, rejected_len;

    /* Pre-tokenized rows: NULL for text rows. */
    int32_t *prompt_ids, *chosen_ids, *rejected_ids;
    int64_t n_prompt_ids, n_chosen_ids, n_rejected_ids;

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

typedef struct dataset_options {
    /* A bad line (malformed JSON, missing or mistyped field, empty response) is counted
     * in n_skipped and left out instead of failing the load. */
    bool skip_bad_lines;
} dataset_options;

typedef struct preference_dataset {
    char *path;
    preference_row *rows;
    int64_t n_rows;
    int64_t n_lines;      /* lines read, blank ones included */
    int64_t n_skipped;    /* bad lines left out (only with skip_bad_lines) */
    char first_skip[512]; /* the error of the first skipped line, "" when none */
    int64_t capacity_;
} preference_dataset;

/* Reads `path` into *out (zeroed first). opt may be NULL (defaults: fail on the first bad
 * line). A file with no rows is an error. On failure *out is left empty. */
aspo_status dataset_load_jsonl(const char *path, const dataset_options *opt,
                               preference_dataset *out);
void dataset_free(preference_dataset *ds);

/* Parses one JSONL line (without its newline) into *row, for tests and for callers that
 * hold rows in memory. `source` and `line` are only used in messages and stored in *row.
 * On failure the message (source:line: ...) is set via aspo_fail and *row is empty. */
aspo_status dataset_parse_line(const char *text, size_t len, const char *source, int64_t line,
                               preference_row *row);
void preference_row_free(preference_row *row);

#endif
