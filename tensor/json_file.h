/* Reading a JSON file with a message a user can act on: a file that cannot be opened says
 * so (with the system's reason); malformed JSON names the line and column. */
#ifndef ASPO_JSON_FILE_H
#define ASPO_JSON_FILE_H

#include <jansson.h>

#include "error.h"

/* `what` names the file's role in messages ("model config"). NULL on failure, with
 * ASPO_ERR_IO (cannot open) or ASPO_ERR_FORMAT (not JSON) set. */
json_t *json_file_load(const char *path, const char *what);

#endif
