/* Opening the user's input files for reading: only a regular file is read (a FIFO, a device
 * such as /dev/zero or a directory would block forever or be read until memory runs out),
 * and its size is checked against the caller's limit before anything is read. And the
 * other end: making a written file's rename durable. */
#ifndef ASPO_FILE_OPEN_H
#define ASPO_FILE_OPEN_H

#include <stdint.h>
#include <stdio.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* path opened for reading ("rb") when it is a regular file of at most max_bytes (0: no
 * limit); *bytes (when given) gets its size. NULL otherwise, with an error that names
 * `what` (the file's role: "dataset", "image") and the path: ASPO_ERR_IO when it cannot be
 * opened or is not a regular file, ASPO_ERR_FORMAT when it is larger than the limit. */
FILE *file_open_regular(const char *path, const char *what, uint64_t max_bytes,
                        uint64_t *bytes);

/* After a rename into path's directory: fsyncs the directory, so that the rename survives a
 * power loss. Best effort: some filesystems refuse fsync on a directory. */
void file_sync_parent(const char *path);

#ifdef __cplusplus
}
#endif

#endif
