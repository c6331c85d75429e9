/* Loading declared parameters from safetensors by name, and writing weights back out. */
#define _XOPEN_SOURCE 700 /* fsync, mkdir, strdup, nftw */
#include "weights.h"

#include <errno.h>
#include <ftw.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "tensor/file_open.h"
#include "tensor/json_file.h"

/* Conversions go through a host buffer of this many elements at a time. */
enum { CHUNK_ELEMENTS = 1 << 16 };

static const char *shape_text(int ndim, const int64_t *shape, char *buf, size_t size)
{
    size_t at = 0;
    at += (size_t)snprintf(buf + at, size - at, "(");
    for (int d = 0; d < ndim && at < size; d++)
        at += (size_t)snprintf(buf + at, size - at, d ? ",%" PRId64 : "%" PRId64, shape[d]);
    if (at < size) snprintf(buf + at, size - at, ndim == 1 ? ",)" : ")");
    return buf;
}

aspo_status weights_copy_entry(tensor *t, const st_model *st, const st_entry *e)
{
    const char *file = st_file_path(st, e->file_index);
    char want[96], got[96];
    bool same = e->ndim == t->ndim;
    for (int d = 0; same && d < t->ndim; d++) same = e->shape[d] == t->shape[d];
    if (!same)
        return aspo_fail(ASPO_ERR_SHAPE, "%s: tensor %s has shape %s, the model expects %s",
                         file, e->name, shape_text(e->ndim, e->shape, got, sizeof got),
                         shape_text(t->ndim, t->shape, want, sizeof want));
    if (e->dt < 0 || !dtype_is_float((dtype)e->dt))
        return aspo_fail(ASPO_ERR_UNSUPPORTED,
                         "%s: tensor %s is %s; aspo reads weights stored as F32, BF16 or F16",
                         file, e->name, e->dtype_name);
    dtype from = (dtype)e->dt, to = t->dt;
    if (from == to) return t->be->upload(t->be, t->data, e->data, tensor_nbytes(t));
    int64_t n = tensor_numel(t);
    size_t out_size = dtype_size(to);
    char *buf = malloc(CHUNK_ELEMENTS * out_size);
    if (!buf) return aspo_fail(ASPO_ERR_OOM, "%s: no host memory to convert %s", file, e->name);
    aspo_status s = ASPO_OK;
    for (int64_t at = 0; at < n && !s; at += CHUNK_ELEMENTS) {
        int64_t k = n - at < CHUNK_ELEMENTS ? n - at : CHUNK_ELEMENTS;
        for (int64_t i = 0; i < k; i++) dtype_store(buf, to, i, dtype_load(e->data, from, at + i));
        s = t->be->upload(t->be, t->data + (size_t)at * out_size, buf, (size_t)k * out_size);
    }
    free(buf);
    return s;
}

/* "a.safetensors" or "a.safetensors, b.safetensors, ..." for messages about a whole set. */
static const char *files_text(const st_model *st, char *buf, size_t size)
{
    if (st->n_files <= 1) return st_file_path(st, 0);
    snprintf(buf, size, "%s (and %d more shards)", st_file_path(st, 0), st->n_files - 1);
    return buf;
}

aspo_status weights_load_tensor(tensor *t, const st_model *st, const char *key)
{
    const st_entry *e = st_find(st, key);
    if (!e) {
        char files[512], want[96];
        return aspo_fail(ASPO_ERR_FORMAT, "%s: checkpoint has no tensor %s (the model needs it, "
                         "shape %s)", files_text(st, files, sizeof files), key,
                         shape_text(t->ndim, t->shape, want, sizeof want));
    }
    return weights_copy_entry(t, st, e);
}

aspo_status weights_load_store(param_store *ps, const st_model *st, const char *key_prefix,
                               weights_filter_fn want, void *ctx)
{
    if (!ps->block)
        return aspo_fail(ASPO_ERR_USAGE, "weights_load_store: allocate the store first");
    const char *prefix = key_prefix ? key_prefix : "";
    size_t plen = strlen(prefix);
    aspo_status s = ASPO_OK;
    for (int i = 0; i < ps->n && !s; i++) {
        tensor *t = ps->items[i];
        if (want && !want(t, ctx)) continue;
        size_t len = plen + strlen(t->name) + 1;
        char *key = malloc(len);
        if (!key) return aspo_fail(ASPO_ERR_OOM, "no host memory for the name of %s", t->name);
        snprintf(key, len, "%s%s", prefix, t->name);
        s = weights_load_tensor(t, st, key);
        free(key);
    }
    return s;
}

int weights_file_dtype(const st_model *st, const char *key)
{
    const st_entry *e = st_find(st, key);
    char files[512];
    if (!e) {
        aspo_fail(ASPO_ERR_FORMAT, "%s: checkpoint has no tensor %s",
                  files_text(st, files, sizeof files), key);
        return -1;
    }
    if (e->dt < 0 || !dtype_is_float((dtype)e->dt)) {
        aspo_fail(ASPO_ERR_UNSUPPORTED, "%s: tensor %s is %s; aspo reads F32, BF16 or F16 "
                  "weights", st_file_path(st, e->file_index), key, e->dtype_name);
        return -1;
    }
    return e->dt;
}

int weights_config_dtype(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_t *root = json_file_load(path, "model config");
    if (!root) return -1;
    const char *name = json_string_value(json_object_get(root, "torch_dtype"));
    int dt = !name ? -1
             : !strcmp(name, "float32") ? DT_F32
             : !strcmp(name, "bfloat16") ? DT_BF16
             : !strcmp(name, "float16") ? DT_F16 : -1;
    if (dt < 0)
        aspo_fail(ASPO_ERR_USAGE, "%s: no checkpoint is read and the file gives no torch_dtype "
                  "(float32, bfloat16 or float16) %s%s%s; give the storage dtype (--dtype)",
                  path, name ? "(it says \"" : "", name ? name : "", name ? "\")" : "");
    json_decref(root);
    return dt;
}

aspo_status weights_read(const tensor *t, dtype dt, void *out)
{
    if (!tensor_is_contiguous(t))
        return aspo_fail(ASPO_ERR_USAGE, "weights_read: %s is not contiguous",
                         t->name ? t->name : "tensor");
    aspo_status s = t->be->synchronize(t->be);
    if (s) return s;
    if (t->dt == dt) return t->be->download(t->be, out, t->data, tensor_nbytes(t));
    int64_t n = tensor_numel(t);
    size_t in_size = dtype_size(t->dt);
    char *buf = malloc(CHUNK_ELEMENTS * in_size);
    if (!buf) return aspo_fail(ASPO_ERR_OOM, "no host memory to read %s", t->name);
    for (int64_t at = 0; at < n && !s; at += CHUNK_ELEMENTS) {
        int64_t k = n - at < CHUNK_ELEMENTS ? n - at : CHUNK_ELEMENTS;
        s = t->be->download(t->be, buf, t->data + (size_t)at * in_size, (size_t)k * in_size);
        for (int64_t i = 0; i < k && !s; i++) dtype_store(out, dt, at + i, dtype_load(buf, t->dt, i));
    }
    free(buf);
    return s;
}

/* ---- writing ---- */

aspo_status weights_make_dir(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (S_ISDIR(st.st_mode)) return ASPO_OK;
        return aspo_fail(ASPO_ERR_IO, "%s exists and is not a directory", dir);
    }
    /* Parents first, as mkdir -p. */
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", dir);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(buf, 0777) != 0 && errno != EEXIST) break;
            *p = '/';
        }
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return aspo_fail(ASPO_ERR_IO, "cannot create directory %s: %s", dir, strerror(errno));
    return ASPO_OK;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

void weights_remove_dir(const char *dir)
{
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

aspo_status weights_write_file(const char *path, const char *data, size_t size)
{
    size_t len = strlen(path) + 5;
    char *tmp = malloc(len);
    if (!tmp) return aspo_fail(ASPO_ERR_OOM, "%s: out of memory", path);
    snprintf(tmp, len, "%s.tmp", path);
    aspo_status s = ASPO_OK;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) {
        s = aspo_fail(ASPO_ERR_IO, "%s: cannot create %s: %s", path, tmp, strerror(errno));
        free(tmp);
        return s;
    }
    for (size_t at = 0; at < size && !s;) {
        ssize_t w = write(fd, data + at, size - at);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) s = aspo_fail(ASPO_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
        else at += (size_t)w;
    }
    if (!s && fsync(fd) != 0) s = aspo_fail(ASPO_ERR_IO, "%s: fsync failed: %s", tmp, strerror(errno));
    if (close(fd) != 0 && !s) s = aspo_fail(ASPO_ERR_IO, "%s: close failed: %s", tmp, strerror(errno));
    if (!s && rename(tmp, path) != 0)
        s = aspo_fail(ASPO_ERR_IO, "%s: cannot rename %s over it: %s", path, tmp, strerror(errno));
    if (s) unlink(tmp);
    else file_sync_parent(path);
    free(tmp);
    return s;
}

static size_t item_bytes(const weights_item *it)
{
    size_t n = dtype_size(it->dt);
    for (int d = 0; d < it->ndim; d++) n *= (size_t)it->shape[d];
    return n;
}

/* Writes items [first, last) into path, each filled just before. */
static aspo_status write_shard(const char *path, const weights_item *items, int first, int last,
                               weights_fill_fn fill, void *ctx)
{
    int n = last - first;
    st_write_entry *entries = calloc((size_t)n + 1, sizeof *entries);
    void **bufs = calloc((size_t)n + 1, sizeof *bufs);
    aspo_status s = entries && bufs ? ASPO_OK : aspo_fail(ASPO_ERR_OOM, "%s: out of memory", path);
    for (int k = 0; k < n && !s; k++) {
        const weights_item *it = &items[first + k];
        size_t bytes = item_bytes(it);
        if (!(bufs[k] = malloc(bytes ? bytes : 1))) {
            s = aspo_fail(ASPO_ERR_OOM, "%s: no host memory for %s (%zu bytes)", path, it->name,
                          bytes);
            break;
        }
        s = fill(ctx, first + k, bufs[k]);
        entries[k] = (st_write_entry){it->name, (int)it->dt, it->ndim, it->shape, bufs[k]};
    }
    const char *keys[] = {"format"}, *values[] = {"pt"};
    if (!s) s = st_write(path, entries, n, keys, values, 1);
    for (int k = 0; bufs && k < n; k++) free(bufs[k]);
    free(bufs);
    free(entries);
    return s;
}

static char *join_path(const char *dir, const char *name)
{
    size_t len = strlen(dir) + strlen(name) + 2;
    char *p = malloc(len);
    if (p) snprintf(p, len, "%s/%s", dir, name);
    else aspo_fail(ASPO_ERR_OOM, "out of memory for a path in %s", dir);
    return p;
}

/* Removes dir/name if it exists (the other layout's file). */
static aspo_status remove_stale(const char *dir, const char *name)
{
    char *p = join_path(dir, name);
    if (!p) return aspo_error_status();
    aspo_status s = ASPO_OK;
    if (unlink(p) != 0 && errno != ENOENT)
        s = aspo_fail(ASPO_ERR_IO, "cannot remove stale %s: %s", p, strerror(errno));
    free(p);
    return s;
}

aspo_status weights_save(const char *dir, const char *stem, const weights_item *items, int n,
                         size_t max_shard_bytes, weights_fill_fn fill, void *ctx)
{
    aspo_status s = weights_make_dir(dir);
    if (s) return s;
    /* Shard boundaries: greedy in order; an item larger than the limit gets its own. */
    int *shard_of = malloc(((size_t)n + 1) * sizeof *shard_of);
    if (!shard_of) return aspo_fail(ASPO_ERR_OOM, "%s: out of memory", dir);
    int shards = 0;
    size_t in_shard = 0, total = 0;
    for (int i = 0; i < n; i++) {
        size_t b = item_bytes(&items[i]);
        if (shards == 0 || (in_shard > 0 && in_shard + b > max_shard_bytes)) {
            shards++;
            in_shard = 0;
        }
        in_shard += b;
        total += b;
        shard_of[i] = shards - 1;
    }
    if (shards == 0) shards = 1;
    char name[512];
    json_t *index = NULL, *map = NULL;
    if (shards == 1) {
        snprintf(name, sizeof name, "%s.safetensors", stem);
        char *path = join_path(dir, name);
        s = path ? write_shard(path, items, 0, n, fill, ctx) : aspo_error_status();
        free(path);
        snprintf(name, sizeof name, "%s.safetensors.index.json", stem);
        if (!s) s = remove_stale(dir, name);
        free(shard_of);
        return s;
    }
    index = json_object();
    map = json_object();
    if (!index || !map) s = aspo_fail(ASPO_ERR_OOM, "%s: out of memory", dir);
    for (int first = 0, k = 0; !s && k < shards; k++) {
        int last = first;
        while (last < n && shard_of[last] == k) last++;
        snprintf(name, sizeof name, "%s-%05d-of-%05d.safetensors", stem, k + 1, shards);
        char *path = join_path(dir, name);
        s = path ? write_shard(path, items, first, last, fill, ctx) : aspo_error_status();
        free(path);
        for (int i = first; i < last && !s; i++)
            if (json_object_set_new(map, items[i].name, json_string(name)))
                s = aspo_fail(ASPO_ERR_OOM, "%s: out of memory", dir);
        first = last;
    }
    char *text = NULL;
    if (!s) {
        json_t *meta = json_pack("{sI}", "total_size", (json_int_t)total);
        if (!meta || json_object_set_new(index, "metadata", meta) ||
            json_object_set(index, "weight_map", map) ||
            !(text = json_dumps(index, JSON_INDENT(2) | JSON_SORT_KEYS)))
            s = aspo_fail(ASPO_ERR_OOM, "%s: out of memory for the index", dir);
    }
    if (!s) {
        snprintf(name, sizeof name, "%s.safetensors.index.json", stem);
        char *path = join_path(dir, name);
        s = path ? weights_write_file(path, text, strlen(text)) : aspo_error_status();
        free(path);
    }
    snprintf(name, sizeof name, "%s.safetensors", stem);
    if (!s) s = remove_stale(dir, name);
    free(text);
    json_decref(map);
    json_decref(index);
    free(shard_of);
    return s;
}
