#define _GNU_SOURCE /* memmem, nftw, mkdtemp */

#include "fuzz_common.h"

#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tensor/error.h"

static char scratch[4096];

void fuzz_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    abort();
}

int fuzz_split(const uint8_t *data, size_t size, fuzz_part *parts, int max)
{
    const size_t sep_len = strlen(FUZZ_SEPARATOR);
    for (int i = 0; i < max; i++) parts[i] = (fuzz_part){(const uint8_t *)"", 0};
    int n = 0;
    while (n < max - 1) {
        const uint8_t *cut = memmem(data, size, FUZZ_SEPARATOR, sep_len);
        if (!cut) break;
        parts[n++] = (fuzz_part){data, (size_t)(cut - data)};
        size -= (size_t)(cut - data) + sep_len;
        data = cut + sep_len;
    }
    parts[n++] = (fuzz_part){data, size};
    return n;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

static void remove_scratch(void)
{
    if (scratch[0]) nftw(scratch, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *fuzz_reset(void)
{
    if (!scratch[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(scratch, sizeof scratch, "%s/aspo-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(scratch)) fuzz_fail("cannot make %s: %s", scratch, strerror(errno));
        atexit(remove_scratch);
    } else {
        remove_scratch();
        if (mkdir(scratch, 0700) != 0) fuzz_fail("cannot make %s: %s", scratch, strerror(errno));
    }
    aspo_error_clear();
    return scratch;
}

const char *fuzz_path(const char *name)
{
    static char path[8192];
    snprintf(path, sizeof path, "%s/%s", scratch, name);
    return path;
}

const char *fuzz_write(const char *name, const void *data, size_t size)
{
    const char *path = fuzz_path(name);
    for (char *slash = strchr((char *)path + strlen(scratch) + 1, '/'); slash;
         slash = strchr(slash + 1, '/')) {
        *slash = 0;
        int made = mkdir(path, 0700) == 0 || errno == EEXIST;
        *slash = '/';
        if (!made) fuzz_fail("cannot make the folder of %s: %s", path, strerror(errno));
    }
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0)
        fuzz_fail("cannot write %s: %s", path, strerror(errno));
    return path;
}

char *fuzz_strndup(const void *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s) fuzz_fail("out of memory");
    memcpy(s, data, size);
    s[size] = 0;
    return s;
}

char *fuzz_memdup(const void *data, size_t size)
{
    char *s = malloc(size ? size : 1);
    if (!s) fuzz_fail("out of memory");
    memcpy(s, data, size);
    return s;
}

void fuzz_error_done(void)
{
    static int verbose = -1;
    if (verbose < 0) verbose = getenv("FUZZ_VERBOSE") != NULL;
    volatile size_t n = strlen(aspo_error_message());
    (void)n;
    if (verbose && aspo_error_status() != ASPO_OK)
        fprintf(stderr, "fuzz: %s: %s\n", aspo_status_name(aspo_error_status()),
                aspo_error_message());
    aspo_error_clear();
}
