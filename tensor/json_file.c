#include "json_file.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

json_t *json_file_load(const char *path, const char *what)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        aspo_fail(ASPO_ERR_IO, "%s: cannot open the %s: %s", path, what, strerror(errno));
        return NULL;
    }
    json_error_t err;
    json_t *root = json_loadf(f, 0, &err);
    fclose(f);
    if (!root)
        aspo_fail(ASPO_ERR_FORMAT, "%s: the %s is not valid JSON: line %d, column %d: %s", path,
                  what, err.line, err.column, err.text);
    return root;
}
