/* What the fuzz targets share: a scratch directory per process where an input's parts become
 * the files a loader reads, and the splitting of one input into those parts.
 *
 * A target whose loader reads several files (a tokenizer and its configs, a LLaVA config and
 * its preprocessor_config.json) takes them as one input cut by scissors lines, FUZZ_SEPARATOR;
 * the seed corpora are written that way, so mutations keep the cut most of the time. */
#ifndef ASPO_FUZZ_COMMON_H
#define ASPO_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#define FUZZ_SEPARATOR "\n--8<--\n"

typedef struct fuzz_part {
    const uint8_t *data;
    size_t size;
} fuzz_part;

/* Cuts data at each FUZZ_SEPARATOR into at most max parts (the last one keeps the rest,
 * separators included); parts not present are empty. Returns how many were present, >= 1. */
int fuzz_split(const uint8_t *data, size_t size, fuzz_part *parts, int max);

/* Empties the scratch directory (made under $TMPDIR, else /tmp, on first use and removed at
 * exit) and clears the thread's aspo error: call first for every input. Returns its path. */
const char *fuzz_reset(void);

/* "<scratch>/<name>" in a static buffer (valid until the next call). */
const char *fuzz_path(const char *name);

/* <scratch>/<name> holding data (folders in name are made); returns fuzz_path(name), so the
 * path lasts until the next fuzz_path or fuzz_write. A failure here is the harness's, not
 * the loader's: it aborts with the reason. */
const char *fuzz_write(const char *name, const void *data, size_t size);

/* data as a NUL-terminated malloc'd string; aborts when out of memory. */
char *fuzz_strndup(const void *data, size_t size);
/* A malloc'd copy of exactly size bytes, no terminator: a loader that reads past the length
 * it was given is an ASan report. Aborts when out of memory. */
char *fuzz_memdup(const void *data, size_t size);

/* Forgets the error the last loader call left, reading its message first (a message must
 * be a terminated string whatever the input was). With FUZZ_VERBOSE set in the environment
 * the message goes to stderr: what each loader said about an input, for triage. */
void fuzz_error_done(void);

/* Stops the run with a message: for a property of the code the input broke (a written file
 * that reads back different), which libFuzzer then keeps as a crash. */
void fuzz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
