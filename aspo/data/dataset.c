/* Preference rows from JSON objects, and JSONL files -> preference_dataset. SeVa's JSON
 * lists are read by dataset_seva.c with the same row parser. See dataset.h for the formats. */
#define _POSIX_C_SOURCE 200809L /* getline, strdup */

#include "aspo/data/dataset.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/file_open.h"
#include "tensor/json_guard.h"

/* Row errors are written into a caller's buffer first: with skip_bad_lines they are only
 * counted (the first one kept), so they must not become the thread's error. */
typedef dataset_row_msg row_msg;

typedef struct row_ctx {
    const char *source;
    int64_t line; /* or entry, with in_list */
    bool in_list;
    const dataset_keys *keys;
    row_msg *msg;
} row_ctx;

static const dataset_keys jsonl_keys = {
    .prompt = "prompt", .chosen = "chosen", .rejected = "rejected", .image = "image",
    .allow_tokenized = true,
};

/* "source:line: ..." for a JSONL line, "source: entry N: ..." for an entry of a list. */
static aspo_status row_fail(const row_ctx *c, aspo_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static aspo_status row_fail(const row_ctx *c, aspo_status st, const char *fmt, ...)
{
    row_msg *m = c->msg;
    int n = c->in_list ? snprintf(m->text, sizeof m->text, "%s: entry %" PRId64 ": ", c->source,
                                  c->line)
                       : snprintf(m->text, sizeof m->text, "%s:%" PRId64 ": ", c->source, c->line);
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
    free(row->image);
    free(row->prompt_ids);
    free(row->chosen_ids);
    free(row->rejected_ids);
    free(row->ref_chosen_tokens);
    free(row->ref_rejected_tokens);
    memset(row, 0, sizeof *row);
}

/* A required string field; `allow_empty` is false for responses. */
static aspo_status get_text(const row_ctx *c, json_t *obj, const char *key, bool allow_empty,
                            char **out, size_t *out_len)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return row_fail(c, ASPO_ERR_FORMAT, "missing field '%s'", key);
    if (!json_is_string(v))
        return row_fail(c, ASPO_ERR_FORMAT,
                        "field '%s' is %s, expected a string", key, json_kind(v));
    size_t n = json_string_length(v);
    if (n == 0 && !allow_empty)
        return row_fail(c, ASPO_ERR_FORMAT,
                        "field '%s' is empty; a response needs at least one character", key);
    char *s = malloc(n + 1);
    if (!s) return row_fail(c, ASPO_ERR_OOM, "out of memory");
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
        return row_fail(c, ASPO_ERR_FORMAT, "missing field '%s'", key);
    if (!json_is_array(v))
        return row_fail(c, ASPO_ERR_FORMAT,
                        "field '%s' is %s, expected an array of token ids", key, json_kind(v));
    size_t n = json_array_size(v);
    if (n == 0)
        return row_fail(c, ASPO_ERR_FORMAT,
                        "field '%s' is empty; %s", key,
                        strcmp(key, "prompt_input_ids") == 0
                            ? "it needs at least the BOS token"
                            : "a response needs at least one token (its EOS)");
    int32_t *ids = malloc(n * sizeof *ids);
    if (!ids) return row_fail(c, ASPO_ERR_OOM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(v, i);
        if (!json_is_integer(e)) {
            free(ids);
            return row_fail(c, ASPO_ERR_FORMAT,
                            "field '%s' element %zu is %s, expected an integer token id", key,
                            i, json_kind(e));
        }
        json_int_t id = json_integer_value(e);
        if (id < 0 || id > INT32_MAX) {
            free(ids);
            return row_fail(c, ASPO_ERR_FORMAT,
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
        return row_fail(c, ASPO_ERR_FORMAT,
                        "field '%s' is %s, expected an array of numbers", key, json_kind(v));
    size_t n = json_array_size(v);
    float *x = malloc(sizeof(float) * (n ? n : 1));
    if (!x) return row_fail(c, ASPO_ERR_OOM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(v, i);
        if (!json_is_number(e) || !isfinite(json_number_value(e))) {
            free(x);
            return row_fail(c, ASPO_ERR_FORMAT,
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

/* An image path: optional in JSONL (absent or null = a text-only row), required in SeVa's
 * entries. Relative paths are joined to --image-root by the trainer, absolute ones kept. */
static aspo_status get_image(const row_ctx *c, json_t *obj, char **out)
{
    const char *key = c->keys->image;
    json_t *v = c->keys->image_required ? json_object_get(obj, key) : get_optional(obj, key);
    if (!v)
        return c->keys->image_required ? row_fail(c, ASPO_ERR_FORMAT, "missing field '%s'", key)
                                       : ASPO_OK;
    if (!json_is_string(v))
        return row_fail(c, ASPO_ERR_FORMAT,
                        "field '%s' is %s, expected a string (the image's file path)", key,
                        json_kind(v));
    if (json_string_length(v) == 0)
        return row_fail(c, ASPO_ERR_FORMAT, "field '%s' is empty; name the image file%s", key,
                        c->keys->image_required ? "" : " or leave the field out");
    if (!(*out = strdup(json_string_value(v)))) return row_fail(c, ASPO_ERR_OOM, "out of memory");
    return ASPO_OK;
}

static aspo_status parse_object(const row_ctx *c, json_t *obj, preference_row *row)
{
    const dataset_keys *k = c->keys;
    const char *const text_keys[3] = {k->prompt, k->chosen, k->rejected};
    static const char *const id_keys[3] = {"prompt_input_ids", "chosen_input_ids",
                                           "rejected_input_ids"};
    const char *text_key = NULL, *id_key = NULL;
    for (int i = 0; i < 3; i++) {
        if (!text_key && json_object_get(obj, text_keys[i])) text_key = text_keys[i];
        if (k->allow_tokenized && !id_key && json_object_get(obj, id_keys[i]))
            id_key = id_keys[i];
    }
    if (text_key && id_key)
        return row_fail(c, ASPO_ERR_FORMAT,
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
        /* With neither kind present this reports the missing prompt. */
        if ((st = get_text(c, obj, k->prompt, true, &row->prompt, &row->prompt_len)) ||
            (st = get_text(c, obj, k->chosen, false, &row->chosen, &row->chosen_len)) ||
            (st = get_text(c, obj, k->rejected, false, &row->rejected, &row->rejected_len)))
            return st;
    }
    if ((st = get_image(c, obj, &row->image))) return st;

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
            return row_fail(c, ASPO_ERR_FORMAT,
                            "field 'id' is %s, expected a string or an integer", json_kind(id));
        }
        if (!(row->id = strdup(s)))
            return row_fail(c, ASPO_ERR_OOM, "out of memory");
    }

    json_t *rc = get_optional(obj, "ref_chosen_logps");
    json_t *rr = get_optional(obj, "ref_rejected_logps");
    if (rc && !json_is_number(rc))
        return row_fail(c, ASPO_ERR_FORMAT,
                        "field 'ref_chosen_logps' is %s, expected a number", json_kind(rc));
    if (rr && !json_is_number(rr))
        return row_fail(c, ASPO_ERR_FORMAT,
                        "field 'ref_rejected_logps' is %s, expected a number", json_kind(rr));
    if (!rc != !rr)
        return row_fail(c, ASPO_ERR_FORMAT,
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
        return row_fail(c, ASPO_ERR_FORMAT,
                        "per-token reference log-probs need both 'ref_chosen_token_logps' "
                        "and 'ref_rejected_token_logps', and the sums beside them");
    if (tc && ((st = get_floats(c, tc, "ref_chosen_token_logps", &row->ref_chosen_tokens,
                                &row->n_ref_chosen_tokens)) ||
               (st = get_floats(c, tr, "ref_rejected_token_logps", &row->ref_rejected_tokens,
                                &row->n_ref_rejected_tokens))))
        return st;
    return ASPO_OK;
}

aspo_status dataset_row_from_object(json_t *obj, const dataset_keys *keys, const char *source,
                                    int64_t index, bool in_list, preference_row *row,
                                    row_msg *m)
{
    memset(row, 0, sizeof *row);
    row_ctx c = {source, index, in_list, keys, m};
    aspo_status st = json_is_object(obj)
                         ? parse_object(&c, obj, row)
                         : row_fail(&c, ASPO_ERR_FORMAT, "the %s is %s; each %s must be one "
                                    "JSON object", in_list ? "entry" : "line", json_kind(obj),
                                    in_list ? "entry" : "line");
    if (st) preference_row_free(row);
    row->line = index;
    row->in_list = in_list;
    row->source = source;
    return st;
}

/* Parses one line; on failure *row is empty and m holds "source:line[:col]: ...".
 * *malformed says whether the line was not JSON at all. */
static aspo_status parse_line(const char *text, size_t len, const char *source, int64_t line,
                              preference_row *row, row_msg *m, bool *malformed)
{
    json_error_t err;
    uint64_t mark = json_guard_mark();
    /* Duplicate keys would make "which prompt?" ambiguous. */
    json_t *obj = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
    if (json_guard_check(mark, source)) { /* the object may have lost characters */
        json_decref(obj);
        memset(row, 0, sizeof *row);
        *malformed = false;
        snprintf(m->text, sizeof m->text, "%s:%" PRId64 ": out of memory reading the line",
                 source, line);
        return ASPO_ERR_OOM;
    }
    *malformed = !obj;
    if (!obj) {
        memset(row, 0, sizeof *row);
        row->line = line;
        row->source = source;
        snprintf(m->text, sizeof m->text, "%s:%" PRId64 ":%d: malformed JSON: %s", source, line,
                 err.column, err.text);
        return ASPO_ERR_FORMAT;
    }
    aspo_status st = dataset_row_from_object(obj, &jsonl_keys, source, line, false, row, m);
    json_decref(obj);
    return st;
}

aspo_status dataset_parse_line(const char *text, size_t len, const char *source, int64_t line,
                               preference_row *row)
{
    row_msg m;
    bool malformed;
    aspo_status st = parse_line(text, len, source ? source : "<row>", line, row, &m, &malformed);
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

aspo_status dataset_add_row(preference_dataset *ds, preference_row *row)
{
    if (ds->n_rows == ds->capacity_) {
        int64_t cap = ds->capacity_ ? 2 * ds->capacity_ : 64;
        preference_row *r = realloc(ds->rows, (size_t)cap * sizeof *r);
        if (!r) {
            preference_row_free(row);
            return aspo_fail(ASPO_ERR_OOM, "%s: out of memory for %" PRId64 " rows", ds->path,
                             cap);
        }
        ds->rows = r;
        ds->capacity_ = cap;
    }
    ds->rows[ds->n_rows++] = *row;
    return ASPO_OK;
}

aspo_status dataset_bad_row(preference_dataset *ds, bool skip, aspo_status st, const row_msg *m)
{
    if (st == ASPO_ERR_FORMAT && skip) {
        if (ds->n_skipped++ == 0) snprintf(ds->first_skip, sizeof ds->first_skip, "%s", m->text);
        return ASPO_OK;
    }
    return aspo_fail(st, "%s", m->text);
}

static const char *skip_space(const char *s, const char *end)
{
    while (s < end && (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')) s++;
    return s;
}

/* A file that is one pretty-printed JSON object fails on its first line as JSONL; say what
 * it is instead. Only called when the load already failed there; a file that cannot be
 * read again (a pipe) keeps the first error. */
static aspo_status explain_one_object(const char *path, aspo_status st)
{
    json_error_t err;
    /* The same flags as for a line: then the first line alone was not the object. */
    json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &err);
    if (doc && json_is_object(doc))
        st = aspo_fail_replace(ASPO_ERR_FORMAT,
                               "%s: the file is one JSON object over several lines; aspo reads "
                               "JSONL (one object per line) or a JSON list of entries "
                               "([{...}, ...], SeVa's format)",
                               path);
    json_decref(doc);
    return st;
}

aspo_status dataset_load_jsonl(const char *path, const dataset_options *opt,
                               preference_dataset *out)
{
    memset(out, 0, sizeof *out);
    if (!path) return aspo_fail(ASPO_ERR_USAGE, "dataset: no path given");
    bool skip = opt && opt->skip_bad_lines;
    /* Only a regular file: a FIFO would block forever. No size limit: the rows are read one
     * line at a time, and datasets of many gigabytes are fine. */
    FILE *f = file_open_regular(path, "dataset", 0, NULL);
    if (!f) return aspo_error_status();
    if (!(out->path = strdup(path))) {
        fclose(f);
        return aspo_fail(ASPO_ERR_OOM, "%s: out of memory", path);
    }

    aspo_status st = ASPO_OK;
    char *buf = NULL;
    size_t cap = 0;
    ssize_t got;
    bool first = true, first_malformed = false;
    while ((got = getline(&buf, &cap, f)) >= 0) {
        int64_t line = ++out->n_lines;
        const char *text = buf;
        size_t len = (size_t)got;
        if (line == 1 && len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) {
            text += 3; /* a UTF-8 byte order mark, as some editors write */
            len -= 3;
        }
        const char *start = skip_space(text, text + len);
        if (start == text + len) continue; /* blank */
        if (first && *start == '[') {
            /* The whole file is one JSON list: SeVa's format. */
            out->format = DATASET_JSON_LIST;
            st = dataset_read_json_list(f, text, len, line, skip, out);
            break;
        }

        preference_row row;
        row_msg m;
        bool malformed;
        st = parse_line(text, len, out->path, line, &row, &m, &malformed);
        if (first) first_malformed = malformed && *start == '{';
        first = false;
        if ((st = st ? dataset_bad_row(out, skip, st, &m) : dataset_add_row(out, &row))) break;
    }
    if (st == ASPO_OK && ferror(f))
        st = aspo_fail(ASPO_ERR_IO, "%s: read error after line %" PRId64 ": %s", path,
                       out->n_lines, strerror(errno));
    free(buf);
    fclose(f);

    const char *unit = out->format == DATASET_JSON_LIST ? "entries" : "non-blank lines";
    if (st == ASPO_OK && out->n_rows == 0) {
        if (out->n_skipped)
            st = aspo_fail(ASPO_ERR_FORMAT,
                           "%s: no usable rows: all %" PRId64 " %s were bad (first: %s)", path,
                           out->n_skipped, unit, out->first_skip);
        else if (out->format == DATASET_JSON_LIST)
            st = aspo_fail(ASPO_ERR_FORMAT, "%s: no rows (the JSON list is empty)", path);
        else
            st = aspo_fail(ASPO_ERR_FORMAT, "%s: no rows (the file has %" PRId64 " lines, "
                           "all blank)", path, out->n_lines);
    }
    if (st == ASPO_ERR_FORMAT && first_malformed && out->n_rows == 0)
        st = explain_one_object(path, st);
    if (st) dataset_free(out);
    return st;
}

const char *preference_row_where(const preference_row *r)
{
    static _Thread_local char buf[4][4200];
    static _Thread_local int next;
    char *b = buf[next++ % 4];
    const char *src = r->source ? r->source : "<row>";
    if (r->in_list) snprintf(b, sizeof buf[0], "%s: entry %lld", src, (long long)r->line);
    else snprintf(b, sizeof buf[0], "%s:%lld", src, (long long)r->line);
    return b;
}
