#include "json_file.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <sys/stat.h>

#include "file_open.h"
#include "json_guard.h"

json_t *json_file_load(const char *path, const char *what)
{
    return json_file_load_with(path, what, JSON_FILE_MAX_BYTES, 0);
}

aspo_status json_file_load_object_if_present(const char *path, const char *what,
                                             uint64_t max_bytes, size_t flags, json_t **obj)
{
    *obj = NULL;
    struct stat st;
    if (stat(path, &st) != 0 && errno == ENOENT) return ASPO_OK;
    if (!(*obj = json_file_load_with(path, what, max_bytes, flags))) return aspo_error_status();
    if (json_is_object(*obj)) return ASPO_OK;
    json_decref(*obj);
    *obj = NULL;
    return aspo_fail(ASPO_ERR_FORMAT, "%s: the %s must be a JSON object (expected a JSON "
                     "object, found another value)", path, what);
}

json_t *json_file_load_with(const char *path, const char *what, uint64_t max_bytes,
                            size_t flags)
{
    FILE *f = file_open_regular(path, what, max_bytes, NULL);
    if (!f) return NULL;
    json_error_t err;
    uint64_t mark = json_guard_mark();
    /* A key given twice is kept once by jansson, silently: which one a writer meant is
     * unknown. */
    json_t *root = json_loadf(f, flags | JSON_REJECT_DUPLICATES, &err);
    fclose(f);
    if (json_guard_check(mark, path)) {
        json_decref(root);
        return NULL;
    }
    if (!root && json_error_code(&err) == json_error_duplicate_key)
        aspo_fail(ASPO_ERR_FORMAT, "%s: the %s gives a key twice in one object, line %d, "
                  "column %d: %s; keep the one value meant", path, what, err.line, err.column,
                  err.text);
    else if (!root)
        aspo_fail(ASPO_ERR_FORMAT, "%s: the %s is not valid JSON: line %d, column %d: %s", path,
                  what, err.line, err.column, err.text);
    return root;
}

aspo_status json_check_range(const char *where, const char *key, int64_t value, int64_t lo,
                             int64_t hi)
{
    if (value >= lo && value <= hi) return ASPO_OK;
    return aspo_fail(ASPO_ERR_FORMAT, "%s: \"%s\" = %lld is outside [%lld, %lld]; the file is "
                     "damaged or not the config it should be", where, key, (long long)value,
                     (long long)lo, (long long)hi);
}

aspo_status json_read_int(const json_t *obj, const char *where, const char *key, int64_t lo,
                          int64_t hi, int64_t *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return ASPO_OK;
    if (!json_is_integer(v))
        return aspo_fail(ASPO_ERR_FORMAT, "%s: field \"%s\" must be an integer", where, key);
    aspo_status s = json_check_range(where, key, (int64_t)json_integer_value(v), lo, hi);
    if (!s) *out = (int64_t)json_integer_value(v);
    return s;
}

aspo_status json_read_number(const json_t *obj, const char *where, const char *key,
                             double *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return ASPO_OK;
    if (!json_is_number(v) || !isfinite(json_number_value(v)))
        return aspo_fail(ASPO_ERR_FORMAT, "%s: field \"%s\" must be a finite number", where,
                         key);
    *out = json_number_value(v);
    return ASPO_OK;
}
