/* Errors: a status code plus a thread-local message that names file, line or tensor.
 * Anything user input can cause returns a status; ASPO_ASSERT is for invariants only. */
#ifndef ASPO_ERROR_H
#define ASPO_ERROR_H

#include <stdio.h>
#include <stdlib.h>

#ifdef __cplusplus
extern "C" { /* the CUDA/HIP kernels include this header too */
#endif

typedef enum aspo_status {
    ASPO_OK = 0,
    ASPO_ERR_USAGE,       /* bad argument or option from the user */
    ASPO_ERR_IO,          /* a file could not be opened, read or written */
    ASPO_ERR_FORMAT,      /* a file's contents are malformed */
    ASPO_ERR_SHAPE,       /* tensor shapes or dtypes do not fit the operation */
    ASPO_ERR_OOM,         /* an arena or device ran out of memory */
    ASPO_ERR_UNSUPPORTED, /* an op, dtype or feature the backend does not provide */
    ASPO_ERR_NUMERIC,     /* NaN or Inf where a finite value is required */
    ASPO_ERR_NO_DEVICE,   /* the backend is built in, but this machine has no device for it */
    ASPO_ERR_STOPPED,     /* a signal stopped the run after a step; its checkpoint is written */
} aspo_status;

/* Records the message (printf-style) and returns `status`, so callers write
 * `return aspo_fail(ASPO_ERR_FORMAT, "%s: ...", path);`. The first error of a chain wins
 * until aspo_error_clear(): later failures caused by it do not overwrite the cause. */
aspo_status aspo_fail(aspo_status status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Like aspo_fail but always replaces the stored message. */
aspo_status aspo_fail_replace(aspo_status status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Puts a prefix before the stored message ("while loading X: <message>"), keeping the
 * status unless `status` is not ASPO_OK. Safe to call with the current message unknown. */
aspo_status aspo_fail_prefix(aspo_status status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
const char *aspo_error_message(void);
aspo_status aspo_error_status(void);
void aspo_error_clear(void);
const char *aspo_status_name(aspo_status status);

#define ASPO_ASSERT(cond)                                                              \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "%s:%d: internal error: assertion `%s` failed\n", __FILE__, \
                    __LINE__, #cond);                                                  \
            abort();                                                                   \
        }                                                                              \
    } while (0)

#ifdef __cplusplus
}
#endif

#endif
