/* SeVa's preference pairs (github Kevinz-code/SeVa, data/step3/make_pair_*.py): one JSON
 * list [{"question", "chosen", "reject", "image_id"}, ...] -> preference rows. The list is
 * one document, so jansson reads all of it; each entry then goes through the same row
 * parser as a JSONL line, with SeVa's key names. */
#include "aspo/data/dataset.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <string.h>

#include "tensor/json_guard.h"

static const dataset_keys seva_keys = {
    .prompt = "question", .chosen = "chosen", .rejected = "reject", .image = "image_id",
    .image_required = true, /* SeVa's script writes it for every pair */
};

/* jansson's input: the first line, which the caller has already read, then the stream. */
typedef struct list_input {
    const char *head;
    size_t head_len, head_done;
    FILE *f;
    bool read_error;
} list_input;

static size_t feed(void *buffer, size_t size, void *data)
{
    list_input *in = data;
    if (in->head_done < in->head_len) {
        size_t n = in->head_len - in->head_done < size ? in->head_len - in->head_done : size;
        memcpy(buffer, in->head + in->head_done, n);
        in->head_done += n;
        return n;
    }
    size_t n = fread(buffer, 1, size, in->f);
    if (n == 0 && ferror(in->f)) {
        in->read_error = true;
        return (size_t)-1;
    }
    return n;
}

aspo_status dataset_read_json_list(FILE *f, const char *head, size_t head_len,
                                   int64_t head_line, bool skip, preference_dataset *ds)
{
    list_input in = {head, head_len, 0, f, false};
    json_error_t err;
    /* Duplicate keys would make "which question?" ambiguous. */
    uint64_t mark = json_guard_mark();
    json_t *list = json_load_callback(feed, &in, JSON_REJECT_DUPLICATES, &err);
    aspo_status oom = json_guard_check(mark, ds->path);
    if (oom) {
        json_decref(list);
        return oom;
    }
    if (!list) {
        if (in.read_error)
            return aspo_fail(ASPO_ERR_IO, "%s: read error: %s", ds->path, strerror(errno));
        /* jansson counts lines from the first non-blank one. */
        return aspo_fail(ASPO_ERR_FORMAT,
                         "%s:%" PRId64 ":%d: malformed JSON: %s (the file is read as one JSON "
                         "list, so a syntax error anywhere fails all of it, even with "
                         "skip_bad_lines)",
                         ds->path, head_line + err.line - 1, err.column, err.text);
    }
    /* The caller saw '[' first, and jansson parsed the whole document from there. */
    ASPO_ASSERT(json_is_array(list));

    aspo_status st = ASPO_OK;
    size_t n = json_array_size(list);
    ds->n_lines = 0; /* counts entries from here on */
    for (size_t i = 0; i < n && !st; i++) {
        int64_t entry = (int64_t)i + 1;
        ds->n_lines = entry;
        preference_row row;
        dataset_row_msg m;
        st = dataset_row_from_object(json_array_get(list, i), &seva_keys, ds->path, entry, true,
                                     &row, &m);
        st = st ? dataset_bad_row(ds, skip, st, &m) : dataset_add_row(ds, &row);
    }
    json_decref(list);
    return st;
}
