/* JSONL preference files -> preference_dataset. See dataset.h for the row format. */
#define _POSIX_C_SOURCE 200809L /* getline, strdup */

#include "dataset.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Row errors are written into a caller's buffer first: with skip_bad_lines they are only
 * counted (the first one kept), so they must not become the thread's error. */
typedef struct row_msg {
    char text[512];
} row_msg;

static aspo_status row_fail(row_msg *m, aspo_status st, const char *source, int64_t line,
                            const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static aspo_status row_fail(row_msg *m, aspo_status st, const char *source, int64_t line,
                            const char *fmt, ...)
{
    int n = snprintf(m->text, sizeof m->text, "%s:%" PRId64 ": ", source, line);
    if (n < 0 || (size_t)n >= sizeof m->text) return st;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->text + n, sizeof m->text - (size_t)n, fmt, ap);
    va_end(ap);
    return st;
}

static const char *json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a real number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "an unknown JSON value";
}

void preference_row_free(preference_row *row)
{
    if (!row) return;
    free(row->id);
    free(row->prompt);
    free(row->chosen);
    free(row->rejected);
    free(row->prompt_ids);
    free(row->chosen_ids);
    free(row->rejected_ids);
    free(row->ref_chosen_tokens);
    free(row->ref_rejected_tokens);
    memset(row, 0, sizeof *row);
}

typedef struct row_ctx {
    const char *source;
    int64_t line;
    row_msg *msg;
} row_ctx;

/* A required string field; `allow_empty` is false for responses. */
static aspo_status get_text(const row_ctx *c, json_t *obj, const char *key, bool allow_empty,
                            char **out, size_t *out_len)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return row_fail(c->msg, ASPO_ERR_FORMAT, c->source, c->line, "missing field '%s'", key);
    if (!json_is_string(v))
        return row_fail(c->msg, ASPO_ERR_FORMAT, c->source, c->line,
                        "field '%s' is %s, expected a string", key, json_kind(v));
    size_t n = json_string_length(v);
    if (n == 0 && !allow_empty)
        return row_fail(c->msg, ASPO_ERR_FORMAT, c->source, c->line,
                        "field '%s' is empty; a response needs at least one character", key);
    char *s = malloc(n + 1);
    if (!s) return row_fail(c->msg, ASPO_ERR_OOM, c->source, c->line, "out of memory");
    memcpy(s, json_string_value(v), n + 1); /* jansson rejects \u0000, so no inner NUL */
    *out = s;
    *out_len = n;
    return ASPO_OK;
}

/* A required, non-empty array of token ids (integers in [0, INT32_MAX]). */
static aspo_status get_ids(const row_ctx *c, json_t *obj, const char *key, int32_t **out,
                           int64_t *out_n)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return row_fail(c->msg, ASPO_ERR_FORMAT, c->source, c->line, "missing field '%s'", key);
    if (!json_is_array(v))
        return row_fail(c->msg, ASPO_ERR_FORMAT, c->source, c->line,
                        "field '%s' is %s, expected an array of token ids", key, json_kind(v));
    size_t n = json_array_size(v);
    if (n == 0)
        return row_fail(c->msg, ASPO_ERR_FORMAT, c->source, c->line,
                        "field '%s' is empty; %s", key,
                        strcmp(key, "prompt_input_ids") == 0
                            ? "it needs at least the BOS token"
                            : "a response needs at least one token (its EOS)");
    int32_t *ids = malloc(n * sizeof *ids);
    if (!ids) return row_fail(c->msg, ASPO_ERR_OOM, c->source, c->line, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(v, i);
        if (!json_is_integer(e)) {
            free(ids);
            return row_fail(c->msg, ASPO_ERR_FORMAT, c->source, c->line,
                            "field '%s' element %zu is %s, expected an integer token id", key,
                            i, json_kind(e));
        }
        json_int_t id = json_integer_value(e);
        if (id < 0 || id > INT32_MAX) {
            free(ids);
            return row_fail(c->msg, ASPO_ERR_FORMAT, c->source, c->line,
                            "field '%s' element %zu is %" JSON_INTEGER_FORMAT
                            ", outside the token id range [0, %d]",
                            key, i, id, INT32_MAX);
        }
        ids[i] = (int32_t)id;
    }
    *out = ids;
    *out_n = (int64_t)n;
    return ASPO_OK;
}

/* An array of finite numbers (per-token log-probs). */
static aspo_status get_floats(const row_ctx *c, json_t *v, const char *key, float **out,
                              int64_t *out_n)
{
    if (!json_is_array(v))
        return row_fail(c->msg, ASPO_ERR_FORMAT, c->source, c->line,
                        "field '%s' is %s, expected an array of numbers", key, json_kind(v));
    size_t n = json_array_size(v);
    float *x = malloc(sizeof(float) * (n ? n : 1));
    if (!x) return row_fail(c->msg, ASPO_ERR_OOM, c->source, c->line, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(v, i);
        if (!json_is_number(e) || !isfinite(json_number_value(e))) {
            free(x);
            return row_fail(c->msg, ASPO_ERR_FORMAT, c->source, c->line,
                            "field '%s' element %zu is not a finite number", key, i);
        }
        x[i] = (float)json_number_value(e);
    }
    *out = x;
    *out_n = (int64_t)n;
    return ASPO_OK;
}

/* Optional fields: absent or null means "not given". */
static json_t *get_optional(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return v && !json_is_null(v) ? v : NULL;
}

static aspo_status parse_object(const row_ctx *c, json_t *obj, preference_row *row)
{
    static const char *const text_keys[3] = {"prompt", "chosen", "rejected"};
    static const char *const id_keys[3] = {"prompt_input_ids", "chosen_input_ids",
                                           "rejected_input_ids"};
    const char *text_key = NULL, *id_key = NULL;
    for (int i = 0; i < 3; i++) {
        if (!text_key && json_object_get(obj, text_keys[i])) text_key = text_keys[i];
        if (!id_key && json_object_get(obj, id_keys[i])) id_key = id_keys[i];
    }
    if (text_key && id_key)
        return row_fail(c->msg, ASPO_ERR_FORMAT, c->source, c->line,
                        "row has both text ('%s') and pre-tokenized ('%s') fields; give "
                        "prompt/chosen/rejected or prompt_input_ids/chosen_input_ids/"
                        "rejected_input_ids, not both",
                        text_key, id_key);

    aspo_status st;
    if (id_key) {
        if ((st = get_ids(c, obj, "prompt_input_ids", &row->prompt_ids, &row->n_prompt_ids)) ||
            (st = get_ids(c, obj, "chosen_input_ids", &row->chosen_ids, &row->n_chosen_ids)) ||
            (st = get_ids(c, obj, "rejected_input_ids", &row->rejected_ids,
                          &row->n_rejected_ids)))
            return st;
    } else {
        /* With neither kind present this reports the missing 'prompt'. */
        if ((st = get_text(c, obj, "prompt", true, &row->prompt, &row->prompt_len)) ||
            (st = get_text(c, obj, "chosen", false, &row->chosen, &row->chosen_len)) ||
            (st = get_text(c, obj, "rejected", false, &row->rejected, &row->rejected_len)))
            return st;
    }

    json_t *id = get_optional(obj, "id");
    if (id) {
        char digits[32];
        const char *s;
        if (json_is_string(id)) {
            s = json_string_value(id);
        } else if (json_is_integer(id)) {
            snprintf(digits, sizeof digits, "%" JSON_INTEGER_FORMAT, json_integer_value(id));
            s = digits;
        } else {
            return row_fail(c->msg, ASPO_ERR_FORMAT, c->source, c->line,
                            "field 'id' is %s, expected a string or an integer", json_kind(id));
        }
        if (!(row->id = strdup(s)))
            return row_fail(c->msg, ASPO_ERR_OOM, c->source, c->line, "out of memory");
    }

    json_t *rc = get_optional(obj, "ref_chosen_logps");
    json_t *rr = get_optional(obj, "ref_rejected_logps");
    if (rc && !json_is_number(rc))
        return row_fail(c->msg, ASPO_ERR_FORMAT, c->source, c->line,
                        "field 'ref_chosen_logps' is %s, expected a number", json_kind(rc));
    if (rr && !json_is_number(rr))
        return row_fail(c->msg, ASPO_ERR_FORMAT, c->source, c->line,
                        "field 'ref_rejected_logps' is %s, expected a number", json_kind(rr));
    if (!rc != !rr)
        return row_fail(c->msg, ASPO_ERR_FORMAT, c->source, c->line,
                        "field '%s' is given without '%s'; give both reference log-probs or "
                        "neither",
                        rc ? "ref_chosen_logps" : "ref_rejected_logps",
                        rc ? "ref_rejected_logps" : "ref_chosen_logps");
    if (rc) {
        row->has_ref_logps = true;
        row->ref_chosen_logps = json_number_value(rc);
        row->ref_rejected_logps = json_number_value(rr);
    }
    json_t *tc = get_optional(obj, "ref_chosen_token_logps");
    json_t *tr = get_optional(obj, "ref_rejected_token_logps");
    if ((tc || tr) && !(tc && tr && rc))
        return row_fail(c->msg, ASPO_ERR_FORMAT, c->source, c->line,
                        "per-token reference log-probs need both 'ref_chosen_token_logps' "
                        "and 'ref_rejected_token_logps', and the sums beside them");
    if (tc && ((st = get_floats(c, tc, "ref_chosen_token_logps", &row->ref_chosen_tokens,
                                &row->n_ref_chosen_tokens)) ||
               (st = get_floats(c, tr, "ref_rejected_token_logps", &row->ref_rejected_tokens,
                                &row->n_ref_rejected_tokens))))
        return st;
    return ASPO_OK;
}

/* Parses one line; on failure *row is empty and m holds "source:line[:col]: ...". */
static aspo_status parse_line(const char *text, size_t len, const char *source, int64_t line,
                              preference_row *row, row_msg *m)
{
    memset(row, 0, sizeof *row);
    row->line = line;
    row->source = source;
    json_error_t err;
    /* Duplicate keys would make "which prompt?" ambiguous. */
    json_t *obj = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
    if (!obj) {
        snprintf(m->text, sizeof m->text, "%s:%" PRId64 ":%d: malformed JSON: %s", source, line,
                 err.column, err.text);
        return ASPO_ERR_FORMAT;
    }
    aspo_status st;
    if (!json_is_object(obj)) {
        st = row_fail(m, ASPO_ERR_FORMAT, source, line,
                      "the line is %s; each line must be one JSON object", json_kind(obj));
    } else {
        row_ctx c = {source, line, m};
        st = parse_object(&c, obj, row);
    }
    json_decref(obj);
    if (st) {
        preference_row_free(row);
        row->line = line;
        row->source = source;
    }
    return st;
}

aspo_status dataset_parse_line(const char *text, size_t len, const char *source, int64_t line,
                               preference_row *row)
{
    row_msg m;
    aspo_status st = parse_line(text, len, source ? source : "<row>", line, row, &m);
    return st ? aspo_fail(st, "%s", m.text) : ASPO_OK;
}

void dataset_free(preference_dataset *ds)
{
    if (!ds) return;
    for (int64_t i = 0; i < ds->n_rows; i++) preference_row_free(&ds->rows[i]);
    free(ds->rows);
    free(ds->path);
    memset(ds, 0, sizeof *ds);
}

static bool is_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') return false;
    return true;
}

static aspo_status push_row(preference_dataset *ds, preference_row *row)
{
    if (ds->n_rows == ds->capacity_) {
        int64_t cap = ds->capacity_ ? 2 * ds->capacity_ : 64;
        preference_row *r = realloc(ds->rows, (size_t)cap * sizeof *r);
        if (!r)
            return aspo_fail(ASPO_ERR_OOM, "%s: out of memory for %" PRId64 " rows", ds->path,
                             cap);
        ds->rows = r;
        ds->capacity_ = cap;
    }
    ds->rows[ds->n_rows++] = *row;
    return ASPO_OK;
}

aspo_status dataset_load_jsonl(const char *path, const dataset_options *opt,
                               preference_dataset *out)
{
    memset(out, 0, sizeof *out);
    if (!path) return aspo_fail(ASPO_ERR_USAGE, "dataset: no path given");
    bool skip = opt && opt->skip_bad_lines;
    FILE *f = fopen(path, "rb");
    if (!f) return aspo_fail(ASPO_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (!(out->path = strdup(path))) {
        fclose(f);
        return aspo_fail(ASPO_ERR_OOM, "%s: out of memory", path);
    }

    aspo_status st = ASPO_OK;
    char *buf = NULL;
    size_t cap = 0;
    ssize_t got;
    while ((got = getline(&buf, &cap, f)) >= 0) {
        int64_t line = ++out->n_lines;
        const char *text = buf;
        size_t len = (size_t)got;
        if (line == 1 && len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) {
            text += 3; /* a UTF-8 byte order mark, as some editors write */
            len -= 3;
        }
        if (is_blank(text, len)) continue;

        preference_row row;
        row_msg m;
        st = parse_line(text, len, out->path, line, &row, &m);
        if (st == ASPO_OK) {
            if ((st = push_row(out, &row))) {
                preference_row_free(&row);
                break;
            }
            continue;
        }
        if (st == ASPO_ERR_FORMAT && skip) {
            if (out->n_skipped++ == 0)
                snprintf(out->first_skip, sizeof out->first_skip, "%s", m.text);
            st = ASPO_OK;
            continue;
        }
        aspo_fail(st, "%s", m.text);
        break;
    }
    if (st == ASPO_OK && ferror(f))
        st = aspo_fail(ASPO_ERR_IO, "%s: read error after line %" PRId64 ": %s", path,
                       out->n_lines, strerror(errno));
    free(buf);
    fclose(f);

    if (st == ASPO_OK && out->n_rows == 0) {
        if (out->n_skipped)
            st = aspo_fail(ASPO_ERR_FORMAT,
                           "%s: no usable rows: all %" PRId64 " non-blank lines were bad "
                           "(first: %s)",
                           path, out->n_skipped, out->first_skip);
        else
            st = aspo_fail(ASPO_ERR_FORMAT, "%s: no rows (the file has %" PRId64 " lines, "
                           "all blank)", path, out->n_lines);
    }
    if (st) dataset_free(out);
    return st;
}
