#include "json_file.h"

#include <math.h>
#include <stdio.h>

#include "file_open.h"
#include "json_guard.h"

json_t *json_file_load(const char *path, const char *what)
{
    FILE *f = file_open_regular(path, what, JSON_FILE_MAX_BYTES, NULL);
    if (!f) return NULL;
    json_error_t err;
    uint64_t mark = json_guard_mark();
    /* A key given twice is kept once by jansson, silently: which one a writer meant is
     * unknown. */
    json_t *root = json_loadf(f, JSON_REJECT_DUPLICATES, &err);
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
