/* Reading a JSON file with a message a user can act on: a file that cannot be opened, or is
 * not a regular file, says so; malformed JSON names the line and column; a key given twice
 * in one object is refused (jansson would keep the last one silently). */
#ifndef ASPO_JSON_FILE_H
#define ASPO_JSON_FILE_H

#include <stdint.h>

#include <jansson.h>

#include "error.h"

/* Files above this are refused before parsing. The largest JSON read through here is a
 * tokenizer.json (tens of MB for the largest vocabularies); configs are kilobytes. jansson's
 * tree costs several times the text, so the bound also keeps a wrong path (a checkpoint, a
 * dataset) from taking gigabytes of memory before it fails. */
#define JSON_FILE_MAX_BYTES ((uint64_t)64 << 20)

/* `what` names the file's role in messages ("model config"). NULL on failure, with
 * ASPO_ERR_IO (cannot open, not a regular file), ASPO_ERR_FORMAT (over
 * JSON_FILE_MAX_BYTES, not JSON, a duplicate key) or ASPO_ERR_OOM set. */
json_t *json_file_load(const char *path, const char *what);
/* The same with the caller's size limit and jansson decoding flags (JSON_REJECT_DUPLICATES
 * is always on): JSON_DECODE_INT_AS_REAL for Hugging Face tokenizer configs, which write
 * model_max_length's "no limit" as the integer 1e30, beyond jansson's integers. */
json_t *json_file_load_with(const char *path, const char *what, uint64_t max_bytes,
                            size_t flags);
/* An optional file that must hold an object: absent leaves *obj NULL and is ASPO_OK;
 * anything else as json_file_load_with, or ASPO_ERR_FORMAT when it is not an object. */
aspo_status json_file_load_object_if_present(const char *path, const char *what,
                                             uint64_t max_bytes, size_t flags, json_t **obj);

/* For config fields: ASPO_OK when lo <= value <= hi, else ASPO_ERR_FORMAT naming `where`
 * (the file, and the object inside it), the key and the value. */
aspo_status json_check_range(const char *where, const char *key, int64_t value, int64_t lo,
                             int64_t hi);

/* An optional config field: absent or null keeps *out; present, it must be an integer in
 * lo..hi (json_read_int) or a finite number (json_read_number), else ASPO_ERR_FORMAT naming
 * where, the key and the value. */
aspo_status json_read_int(const json_t *obj, const char *where, const char *key, int64_t lo,
                          int64_t hi, int64_t *out);
aspo_status json_read_number(const json_t *obj, const char *where, const char *key,
                             double *out);

#endif
