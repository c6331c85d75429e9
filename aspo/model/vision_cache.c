/* The feature files of --vision-cache: names, reads that treat anything odd as a miss, and
 * writes that never leave half a file. */
#define _DEFAULT_SOURCE /* realpath, strdup */
#include "aspo/model/vision_cache.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "models/weights.h"
#include "tensor/file_open.h"

static const char MAGIC[8] = {'A', 'S', 'P', 'O', 'V', 'F', '0', '1'};

typedef struct cache_header {
    char magic[8];
    uint64_t key;
    int64_t N, Cv;
} cache_header;

uint64_t vision_cache_hash(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

uint64_t vision_cache_model_key(const char *family, const char *model_dir)
{
    char real[PATH_MAX];
    if (!realpath(model_dir, real)) snprintf(real, sizeof real, "%s", model_dir);
    uint64_t h = vision_cache_hash(VISION_CACHE_SEED, family, strlen(family));
    return vision_cache_hash(h, real, strlen(real));
}

aspo_status vision_cache_start(vision_cache *c, const char *dir, uint64_t key, int64_t N,
                               int64_t Cv)
{
    memset(c, 0, sizeof *c);
    if (!dir) return ASPO_OK;
    aspo_status s = weights_make_dir(dir);
    if (s) return s;
    c->key = key;
    c->N = N;
    c->Cv = Cv;
    if (!(c->dir = strdup(dir))) return aspo_fail(ASPO_ERR_OOM, "out of memory");
    return ASPO_OK;
}

void vision_cache_close(vision_cache *c)
{
    free(c->dir);
    memset(c, 0, sizeof *c);
}

bool vision_cache_file(const vision_cache *c, const char *path, const void *salt,
                       size_t salt_len, char *out, size_t size)
{
    struct stat st;
    char real[PATH_MAX];
    if (stat(path, &st) != 0 || !realpath(path, real)) return false;
    uint64_t h = vision_cache_hash(c->key, real, strlen(real));
    int64_t id[3] = {(int64_t)st.st_size, (int64_t)st.st_mtim.tv_sec, (int64_t)st.st_mtim.tv_nsec};
    h = vision_cache_hash(h, id, sizeof id);
    h = vision_cache_hash(h, salt, salt_len);
    return snprintf(out, size, "%s/%016" PRIx64 ".f32", c->dir, h) < (int)size;
}

/* Features that are not all finite (a damaged file with a whole header) are a miss too,
 * said once with the file's name: the image's features are computed again and the file
 * rewritten. */
bool vision_cache_get(const vision_cache *c, const char *file, float *out)
{
    FILE *f = file_open_regular(file, "vision cache file", 0, NULL);
    if (!f) {
        aspo_error_clear(); /* absent (or not a file): a miss */
        return false;
    }
    cache_header h;
    size_t n = (size_t)(c->N * c->Cv);
    bool ok = fread(&h, sizeof h, 1, f) == 1 && !memcmp(h.magic, MAGIC, 8) && h.key == c->key &&
              h.N == c->N && h.Cv == c->Cv && fread(out, sizeof(float), n, f) == n &&
              fgetc(f) == EOF;
    fclose(f);
    size_t bad = 0;
    for (size_t i = 0; ok && i < n; i++) bad += !isfinite(out[i]);
    if (bad)
        fprintf(stderr, "aspo: warning: --vision-cache: %s holds %zu non-finite values; its image's "
                "features are computed again\n", file, bad);
    return ok && !bad;
}

aspo_status vision_cache_put(const vision_cache *c, const char *file, const float *features)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", file);
    cache_header h = {.key = c->key, .N = c->N, .Cv = c->Cv};
    memcpy(h.magic, MAGIC, 8);
    size_t n = (size_t)(c->N * c->Cv);
    FILE *f = fopen(tmp, "wb");
    bool ok = f && fwrite(&h, sizeof h, 1, f) == 1 && fwrite(features, sizeof(float), n, f) == n;
    if (f && fclose(f) != 0) ok = false;
    if (ok && rename(tmp, file) == 0) return ASPO_OK;
    int err = errno;
    unlink(tmp);
    return aspo_fail(ASPO_ERR_IO, "--vision-cache: cannot write %s: %s", file, strerror(err));
}
