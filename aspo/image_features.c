/* A batch's vision features: the disk cache, then the tower for what it lacks. */
#define _DEFAULT_SOURCE /* realpath, strdup */
#include "aspo/image_features.h"

#include <errno.h>
#include <math.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aspo/image_rows.h"
#include "models/weights.h"
#include "tensor/file_open.h"
#include "tensor/runtime.h"
#include "tensor/tensor_ops.h"

static const char MAGIC[8] = {'A', 'S', 'P', 'O', 'V', 'F', '0', '1'};

typedef struct cache_header {
    char magic[8];
    uint64_t key;
    int64_t N, Cv;
} cache_header;

/* FNV-1a, 64 bit: a stable name for a key, not a security measure. */
static uint64_t fnv(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

aspo_status vision_cache_open(vision_cache *c, const char *dir, const llava_model *m,
                              const char *model_dir)
{
    memset(c, 0, sizeof *c);
    if (!dir) return ASPO_OK;
    aspo_status s = weights_make_dir(dir);
    if (s) return s;
    char real[PATH_MAX];
    if (!realpath(model_dir, real)) snprintf(real, sizeof real, "%s", model_dir);
    const llava_config *cfg = &m->cfg;
    uint64_t h = fnv(1469598103934665603ull, real, strlen(real));
    int32_t fields[] = {cfg->vision_feature_layer, cfg->keep_cls, cfg->pad_to_square,
                        cfg->image.crop_size, cfg->image.shortest_edge,
                        (int32_t)m->vision->storage_dt};
    h = fnv(h, fields, sizeof fields);
    h = fnv(h, cfg->image.mean, sizeof cfg->image.mean);
    h = fnv(h, cfg->image.std, sizeof cfg->image.std);
    c->key = h;
    c->N = cfg->image_positions;
    c->Cv = llava_vision_width(m);
    if (!(c->dir = strdup(dir))) return aspo_fail(ASPO_ERR_OOM, "out of memory");
    return ASPO_OK;
}

void vision_cache_close(vision_cache *c)
{
    free(c->dir);
    memset(c, 0, sizeof *c);
}

/* <dir>/<hash>.f32 for the image at path; false when the image cannot be stat'ed. */
static bool cache_path(const vision_cache *c, const char *path, char *out, size_t size)
{
    struct stat st;
    char real[PATH_MAX];
    if (stat(path, &st) != 0 || !realpath(path, real)) return false;
    uint64_t h = fnv(c->key, real, strlen(real));
    int64_t id[3] = {(int64_t)st.st_size, (int64_t)st.st_mtim.tv_sec, (int64_t)st.st_mtim.tv_nsec};
    h = fnv(h, id, sizeof id);
    return snprintf(out, size, "%s/%016" PRIx64 ".f32", c->dir, h) < (int)size;
}

/* The cached features when the file is there and whole; anything else is a miss. Features
 * that are not all finite (a damaged file with a whole header) are a miss too, said once
 * with the file's name: the image's features are computed again and the file rewritten. */
static bool cache_get(const vision_cache *c, const char *file, float *out)
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

/* Written as <file>.tmp and renamed: a killed run leaves no half file under the name. */
static aspo_status cache_put(const vision_cache *c, const char *file, const float *features)
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

aspo_status image_features_load(llava_model *m, vision_cache *cache, const char *root,
                                const image_limits *limits, const preference_row *const *rows,
                                const int *slot, int n, float *out)
{
    int64_t S = m->cfg.image.crop_size, N = m->cfg.image_positions, Cv = llava_vision_width(m);
    size_t per_image = (size_t)(3 * S * S), per_feature = (size_t)(N * Cv);
    char files[n][4300];
    int miss[n], n_miss = 0;
    for (int i = 0; i < n; i++) {
        files[i][0] = 0;
        if (slot[i] < 0) continue;
        char path[4096];
        aspo_status s = image_row_path(root, rows[i], path, sizeof path);
        if (s) return s;
        if (cache && cache->dir && cache_path(cache, path, files[i], sizeof files[i]) &&
            cache_get(cache, files[i], out + (size_t)slot[i] * per_feature)) {
            cache->hits++;
            continue;
        }
        miss[n_miss++] = i;
    }
    if (!n_miss) return ASPO_OK;
    if (cache) cache->misses += n_miss;
    /* One image per tower pass: the step arena keeps every layer's activations of a pass
     * (no tape, but no reuse either; about 1.7 GB for a ViT-L/14-336 image in f32), so
     * this bounds the memory to one image's, and an image's features do not depend on
     * which images share its batch. */
    float *pixels = malloc(sizeof(float) * per_image);
    if (!pixels) return aspo_fail(ASPO_ERR_OOM, "no host memory for an image");
    aspo_status s = ASPO_OK;
    for (int j = 0; j < n_miss && !s; j++) {
        int i = miss[j], zero = 0;
        float *dst = out + (size_t)slot[i] * per_feature;
        s = image_rows_pixels(m, root, limits, &rows[i], &zero, 1, pixels);
        tensor *f = NULL;
        if (!s && !(f = llava_vision_features(
                        m, tensor_from_host(DT_F32, DIMS(1, 3, S, S), pixels), NULL)))
            s = aspo_error_status();                                       /* (1,N,Cv) */
        if (!s) s = tensor_to_host_f32(f, dst);
        if (!s && cache && cache->dir && files[i][0]) s = cache_put(cache, files[i], dst);
        runtime_step_reset(); /* the tower's activations: the features are on the host now */
    }
    free(pixels);
    return s;
}
