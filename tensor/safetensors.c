/* safetensors reader (mmap + jansson) and atomic writer. See safetensors.h.
 * Everything a file can get wrong returns ASPO_ERR_FORMAT (or _IO) with a message naming
 * the file and tensor; the asserts guard invariants no file contents can reach. */
#define _POSIX_C_SOURCE 200809L /* mmap, fsync, strdup, O_CLOEXEC */

#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file_open.h"
#include "json_file.h"
#include "json_guard.h"

struct st_mapping {
    char *path;
    void *base; /* NULL when not mapped */
    size_t size;
    void **copies; /* aligned heap copies of misaligned tensors, freed by st_close */
    int n_copies;
};

/* Every dtype the format defines. The first four are in enum dtype order so the writer
 * can index by dt. */
static const struct st_dtype_info {
    const char *name;
    size_t size;
    int dt;
} st_dtypes[] = {
    {"F32", 4, DT_F32}, {"BF16", 2, DT_BF16}, {"F16", 2, DT_F16}, {"I32", 4, DT_I32},
    {"F64", 8, -1},     {"I64", 8, -1},       {"I16", 2, -1},     {"I8", 1, -1},
    {"U8", 1, -1},      {"BOOL", 1, -1},      {"U16", 2, -1},     {"U32", 4, -1},
    {"U64", 8, -1},     {"F8_E4M3", 1, -1},   {"F8_E5M2", 1, -1},
};
#define N_ST_DTYPES ((int)(sizeof st_dtypes / sizeof st_dtypes[0]))

static const struct st_dtype_info *dtype_lookup(const char *name)
{
    for (int i = 0; i < N_ST_DTYPES; i++)
        if (strcmp(st_dtypes[i].name, name) == 0) return &st_dtypes[i];
    return NULL;
}

/* "<file>: tensor '<name>': <problem>" */
static aspo_status tensor_fail(aspo_status s, const char *path, const char *name, const char *fmt,
                               ...) __attribute__((format(printf, 4, 5)));
static aspo_status tensor_fail(aspo_status s, const char *path, const char *name, const char *fmt,
                               ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return aspo_fail(s, "%s: tensor '%s': %s", path, name, what);
}

static const char *json_type_name(json_type t)
{
    switch (t) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER: return "integer";
    case JSON_REAL: return "real";
    case JSON_TRUE:
    case JSON_FALSE: return "boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

/* Fetches obj[key] and checks its JSON type. */
static aspo_status need_field(const char *path, const char *name, json_t *obj, const char *key,
                              json_type type, json_t **out)
{
    *out = json_object_get(obj, key);
    if (!*out) return tensor_fail(ASPO_ERR_FORMAT, path, name, "missing \"%s\"", key);
    if (json_typeof(*out) != type)
        return tensor_fail(ASPO_ERR_FORMAT, path, name, "\"%s\" is a JSON %s, expected %s", key,
                           json_type_name(json_typeof(*out)), json_type_name(type));
    return ASPO_OK;
}

/* Element count of a shape, or -1 on overflow. A zero dim makes any shape empty. */
static int64_t shape_count(const int64_t *shape, int ndim)
{
    for (int i = 0; i < ndim; i++)
        if (shape[i] == 0) return 0;
    int64_t count = 1;
    for (int i = 0; i < ndim; i++) {
        if (count > INT64_MAX / shape[i]) return -1;
        count *= shape[i];
    }
    return count;
}

static void format_shape(char *buf, size_t cap, const int64_t *shape, int ndim)
{
    size_t used = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && used < cap; i++)
        used +=
            (size_t)snprintf(buf + used, cap - used, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (used < cap) snprintf(buf + used, cap - used, "]");
}

/* ---------------------------------------------------------------- reading */

static aspo_status map_file(struct st_mapping *f, const char *path)
{
    f->path = strdup(path);
    if (!f->path) return aspo_fail(ASPO_ERR_OOM, "%s: out of memory", path);
    /* O_NONBLOCK: a FIFO must not hang the open; it is refused below anyway. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return aspo_fail(ASPO_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    aspo_status s = ASPO_OK;
    if (fstat(fd, &st) != 0)
        s = aspo_fail(ASPO_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        s = aspo_fail(ASPO_ERR_IO, "%s: not a regular file", path);
    else if (st.st_size < 8)
        s = aspo_fail(ASPO_ERR_FORMAT,
                      "%s: file is %lld bytes, shorter than the 8-byte header length", path,
                      (long long)st.st_size);
    if (s == ASPO_OK) {
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED)
            s = aspo_fail(ASPO_ERR_IO, "%s: cannot mmap: %s", path, strerror(errno));
        else {
            f->base = p;
            f->size = (size_t)st.st_size;
        }
    }
    close(fd);
    return s;
}

/* Parses "shape" into e->shape/e->ndim. */
static aspo_status parse_shape(const char *path, const char *name, json_t *js, st_entry *e)
{
    size_t n = json_array_size(js);
    if (n > ST_MAX_DIMS)
        return tensor_fail(ASPO_ERR_FORMAT, path, name, "shape has %zu dims, more than %d", n,
                           ST_MAX_DIMS);
    for (size_t i = 0; i < n; i++) {
        json_t *d = json_array_get(js, i);
        if (!json_is_integer(d))
            return tensor_fail(ASPO_ERR_FORMAT, path, name,
                               "shape[%zu] is a JSON %s, expected integer", i,
                               json_type_name(json_typeof(d)));
        if (json_integer_value(d) < 0)
            return tensor_fail(ASPO_ERR_FORMAT, path, name, "negative dimension %lld in shape[%zu]",
                               (long long)json_integer_value(d), i);
        e->shape[i] = json_integer_value(d);
    }
    e->ndim = (int)n;
    return ASPO_OK;
}

/* Parses "data_offsets" into [*begin, *end) and checks them against the data section. */
static aspo_status parse_offsets(const char *path, const char *name, json_t *jo, size_t data_size,
                                 uint64_t *begin, uint64_t *end)
{
    json_t *jb = json_array_get(jo, 0), *je = json_array_get(jo, 1);
    if (json_array_size(jo) != 2 || !json_is_integer(jb) || !json_is_integer(je))
        return tensor_fail(ASPO_ERR_FORMAT, path, name,
                           "data_offsets must be an array of two integers [begin, end]");
    long long b = json_integer_value(jb), en = json_integer_value(je);
    if (b < 0 || en < 0)
        return tensor_fail(ASPO_ERR_FORMAT, path, name, "negative data_offsets [%lld, %lld]", b,
                           en);
    if (en < b)
        return tensor_fail(ASPO_ERR_FORMAT, path, name,
                           "data_offsets end %lld is before begin %lld", en, b);
    if ((uint64_t)en > data_size)
        return tensor_fail(
            ASPO_ERR_FORMAT, path, name,
            "data_offsets [%lld, %lld] run past the end of the data section (%zu bytes)", b, en,
            data_size);
    *begin = (uint64_t)b;
    *end = (uint64_t)en;
    return ASPO_OK;
}

/* Validates one header entry and fills *e (name last, so a failure leaks nothing). */
static aspo_status parse_entry(const char *path, const char *name, json_t *v,
                               const unsigned char *data, size_t data_size, st_entry *e)
{
    memset(e, 0, sizeof *e);
    if (!json_is_object(v))
        return tensor_fail(ASPO_ERR_FORMAT, path, name, "entry is a JSON %s, expected object",
                           json_type_name(json_typeof(v)));
    json_t *jd, *js, *jo;
    aspo_status s;
    if ((s = need_field(path, name, v, "dtype", JSON_STRING, &jd))) return s;
    if ((s = need_field(path, name, v, "shape", JSON_ARRAY, &js))) return s;
    if ((s = need_field(path, name, v, "data_offsets", JSON_ARRAY, &jo))) return s;

    const struct st_dtype_info *info = dtype_lookup(json_string_value(jd));
    if (!info)
        return tensor_fail(ASPO_ERR_FORMAT, path, name, "unknown dtype \"%.32s\"",
                           json_string_value(jd));
    if ((s = parse_shape(path, name, js, e))) return s;
    uint64_t begin = 0, end = 0;
    if ((s = parse_offsets(path, name, jo, data_size, &begin, &end))) return s;

    char shape[160];
    format_shape(shape, sizeof shape, e->shape, e->ndim);
    int64_t count = shape_count(e->shape, e->ndim);
    if (count < 0 || (uint64_t)count > (uint64_t)INT64_MAX / info->size)
        return tensor_fail(ASPO_ERR_FORMAT, path, name, "element count of shape %s overflows",
                           shape);
    uint64_t want = (uint64_t)count * info->size;
    if (end - begin != want)
        return tensor_fail(ASPO_ERR_FORMAT, path, name,
                           "shape/size mismatch: %s shape %s needs %llu bytes, "
                           "data_offsets [%llu, %llu] hold %llu",
                           info->name, shape, (unsigned long long)want, (unsigned long long)begin,
                           (unsigned long long)end, (unsigned long long)(end - begin));
    strcpy(e->dtype_name, info->name); /* at most 7 chars, checked by dtype_lookup */
    e->dt = info->dt;
    e->data = data + begin;
    e->nbytes = (size_t)want;
    e->name = strdup(name);
    if (!e->name) return aspo_fail(ASPO_ERR_OOM, "%s: out of memory", path);
    return ASPO_OK;
}

/* Checks "__metadata__" is a flat str->str object; keeps the first file's. */
static aspo_status take_metadata(st_model *m, int fi, json_t *meta)
{
    const char *path = m->files[fi].path, *key;
    json_t *v;
    if (!json_is_object(meta))
        return aspo_fail(ASPO_ERR_FORMAT, "%s: __metadata__ is a JSON %s, expected object", path,
                         json_type_name(json_typeof(meta)));
    json_object_foreach (meta, key, v) {
        if (!json_is_string(v))
            return aspo_fail(ASPO_ERR_FORMAT,
                             "%s: __metadata__ value of \"%s\" is a JSON %s, expected string", path,
                             key, json_type_name(json_typeof(v)));
    }
    if (fi != 0) return ASPO_OK;
    m->metadata_json = json_dumps(meta, JSON_COMPACT | JSON_SORT_KEYS);
    if (!m->metadata_json) return aspo_fail(ASPO_ERR_OOM, "%s: out of memory", path);
    return ASPO_OK;
}

static int cmp_by_data(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const st_entry *)a)->data,
              y = (uintptr_t)((const st_entry *)b)->data;
    return (x > y) - (x < y);
}

/* Element size of a dtype name already accepted by dtype_lookup. */
static size_t entry_elem_size(const st_entry *e)
{
    const struct st_dtype_info *info = dtype_lookup(e->dtype_name);
    ASPO_ASSERT(info);
    return info->size;
}

/* Consumers cast data to float*, int64_t* etc., which is UB when misaligned. Writers
 * since safetensors 0.3.1 pad the header so nothing is; older files and some third-party
 * writers (e.g. MLX) do not, and for those tensors we read a heap copy instead. */
static aspo_status align_entries(struct st_mapping *f, st_entry *e, int n)
{
    for (int i = 0; i < n; i++) {
        if (e[i].nbytes == 0 || (uintptr_t)e[i].data % entry_elem_size(&e[i]) == 0) continue;
        void **grown = realloc(f->copies, ((size_t)f->n_copies + 1) * sizeof *grown);
        if (!grown) return tensor_fail(ASPO_ERR_OOM, f->path, e[i].name, "out of memory");
        f->copies = grown;
        void *copy = malloc(e[i].nbytes); /* malloc aligns for every scalar type */
        if (!copy)
            return tensor_fail(ASPO_ERR_OOM, f->path, e[i].name,
                               "out of memory copying %zu misaligned bytes", e[i].nbytes);
        memcpy(copy, e[i].data, e[i].nbytes);
        f->copies[f->n_copies++] = copy;
        e[i].data = copy;
    }
    return ASPO_OK;
}

/* Two tensors sharing bytes would alias silently when one is written through. */
static aspo_status check_overlaps(const char *path, st_entry *e, int n, const unsigned char *data)
{
    qsort(e, (size_t)n, sizeof *e, cmp_by_data);
    const st_entry *prev = NULL; /* the non-empty entry reaching furthest so far */
    for (int i = 0; i < n; i++) {
        if (e[i].nbytes == 0) continue; /* empty ranges cannot overlap anything */
        const unsigned char *b = e[i].data;
        if (prev && b < (const unsigned char *)prev->data + prev->nbytes)
            return tensor_fail(ASPO_ERR_FORMAT, path, e[i].name,
                               "data_offsets [%zu, %zu] overlap tensor '%s' at [%zu, %zu]",
                               (size_t)(b - data), (size_t)(b - data) + e[i].nbytes, prev->name,
                               (size_t)((const unsigned char *)prev->data - data),
                               (size_t)((const unsigned char *)prev->data - data) + prev->nbytes);
        if (!prev || b + e[i].nbytes > (const unsigned char *)prev->data + prev->nbytes)
            prev = &e[i];
    }
    return ASPO_OK;
}

/* Parses the header of mapped file fi and appends its entries to m. */
static aspo_status parse_file(st_model *m, int fi)
{
    struct st_mapping *f = &m->files[fi];
    const unsigned char *b = f->base;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | b[i];
    if (n > ST_MAX_HEADER_BYTES)
        return aspo_fail(ASPO_ERR_FORMAT, "%s: header length %llu is absurdly large (limit %llu)",
                         f->path, (unsigned long long)n, ST_MAX_HEADER_BYTES);
    if (n > f->size - 8)
        return aspo_fail(ASPO_ERR_FORMAT,
                         "%s: header length %llu runs past the end of the file (%zu bytes)",
                         f->path, (unsigned long long)n, f->size);
    json_error_t jerr;
    uint64_t mark = json_guard_mark(); /* a name could lose a character */
    json_t *root = json_loadb((const char *)b + 8, (size_t)n, JSON_REJECT_DUPLICATES, &jerr);
    aspo_status oom = json_guard_check(mark, f->path);
    if (oom) {
        json_decref(root);
        return oom;
    }
    if (!root)
        return aspo_fail(ASPO_ERR_FORMAT, "%s: header is not valid JSON: %s (line %d, column %d)",
                         f->path, jerr.text, jerr.line, jerr.column);
    aspo_status s = ASPO_OK;
    size_t count = json_object_size(root);
    st_entry *grown = NULL;
    if (!json_is_object(root))
        s = aspo_fail(ASPO_ERR_FORMAT, "%s: header is a JSON %s, expected object", f->path,
                      json_type_name(json_typeof(root)));
    else if (count > (size_t)(INT_MAX - m->n_entries))
        s = aspo_fail(ASPO_ERR_FORMAT, "%s: too many tensors", f->path);
    else if (!(grown = realloc(m->entries, ((size_t)m->n_entries + count + 1) * sizeof *grown)))
        s = aspo_fail(ASPO_ERR_OOM, "%s: out of memory", f->path);
    if (s) {
        json_decref(root);
        return s;
    }
    m->entries = grown;
    const unsigned char *data = b + 8 + n;
    size_t data_size = f->size - 8 - (size_t)n;
    int first = m->n_entries;
    const char *key;
    json_t *v;
    json_object_foreach (root, key, v) {
        if (strcmp(key, "__metadata__") == 0) {
            s = take_metadata(m, fi, v);
        } else if (!*key) { /* no parameter has it, and st_write refuses it */
            s = aspo_fail(ASPO_ERR_FORMAT, "%s: a tensor with an empty name", f->path);
        } else {
            s = parse_entry(f->path, key, v, data, data_size, &m->entries[m->n_entries]);
            if (s == ASPO_OK) m->entries[m->n_entries++].file_index = fi;
        }
        if (s) break;
    }
    json_decref(root);
    if (s == ASPO_OK) s = check_overlaps(f->path, m->entries + first, m->n_entries - first, data);
    if (s == ASPO_OK) s = align_entries(f, m->entries + first, m->n_entries - first);
    return s;
}

static int cmp_by_name(const void *a, const void *b)
{
    return strcmp(((const st_entry *)a)->name, ((const st_entry *)b)->name);
}

/* Sorts for st_find; a name in two shards would make st_find pick one at random. */
static aspo_status finish(st_model *m)
{
    if (m->n_entries > 1) qsort(m->entries, (size_t)m->n_entries, sizeof *m->entries, cmp_by_name);
    for (int i = 1; i < m->n_entries; i++) {
        const st_entry *a = &m->entries[i - 1], *b = &m->entries[i];
        if (strcmp(a->name, b->name) == 0)
            return tensor_fail(ASPO_ERR_FORMAT, m->files[b->file_index].path, b->name,
                               "duplicate name: also in %s", m->files[a->file_index].path);
    }
    return ASPO_OK;
}

static aspo_status open_single(const char *path, st_model *m)
{
    m->files = calloc(1, sizeof *m->files);
    if (!m->files) return aspo_fail(ASPO_ERR_OOM, "%s: out of memory", path);
    m->n_files = 1;
    aspo_status s = map_file(&m->files[0], path);
    if (s == ASPO_OK) s = parse_file(m, 0);
    if (s == ASPO_OK) s = finish(m);
    return s;
}

/* "<dir>/<name>", or NULL when out of memory. */
static char *path_join(const char *dir, size_t dir_len, const char *name)
{
    size_t n = strlen(name);
    char *p = malloc(dir_len + n + 2);
    if (!p) return NULL;
    memcpy(p, dir, dir_len);
    p[dir_len] = '/';
    memcpy(p + dir_len + 1, name, n + 1);
    return p;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Whether a shard name stays inside the index's directory: relative, and no component is
 * "..". Lexical: a symlink inside the directory (the Hugging Face cache links every file)
 * is followed as any file is. */
static bool shard_name_inside(const char *name)
{
    if (!name[0] || name[0] == '/') return false;
    for (const char *p = name; *p;) {
        size_t len = strcspn(p, "/");
        if (len == 2 && p[0] == '.' && p[1] == '.') return false;
        p += len + strspn(p + len, "/");
    }
    return true;
}

/* Sorted distinct shard names of the weight_map, each validated. */
static aspo_status shard_names(const char *path, json_t *wm, const char ***out, int *n_out)
{
    size_t n = json_object_size(wm);
    const char **names = malloc((n + 1) * sizeof *names);
    if (!names) return aspo_fail(ASPO_ERR_OOM, "%s: out of memory", path);
    size_t k = 0;
    const char *key;
    json_t *v;
    json_object_foreach (wm, key, v) {
        const char *shard = json_string_value(v);
        aspo_status s = ASPO_OK;
        if (!shard)
            s = tensor_fail(ASPO_ERR_FORMAT, path, key, "weight_map value is not a string; it "
                            "must be a shard file name relative to the index");
        else if (!shard_name_inside(shard))
            s = tensor_fail(ASPO_ERR_FORMAT, path, key, "weight_map value \"%s\" leaves the "
                            "index's directory; it must be a shard file name relative to the "
                            "index, without \"..\"", shard);
        if (s) {
            free(names);
            return s;
        }
        names[k++] = shard;
    }
    qsort(names, k, sizeof *names, cmp_str);
    size_t u = 0;
    for (size_t i = 0; i < k; i++)
        if (u == 0 || strcmp(names[u - 1], names[i]) != 0) names[u++] = names[i];
    *out = names;
    *n_out = (int)u;
    return ASPO_OK;
}

/* Maps every shard once, then checks each weight_map tensor is in the shard it names. */
static aspo_status open_shards(const char *path, json_t *wm, st_model *m)
{
    const char **names = NULL;
    int n = 0;
    aspo_status s = shard_names(path, wm, &names, &n);
    if (s) return s;
    const char *slash = strrchr(path, '/');
    const char *dir = slash ? path : ".";
    size_t dir_len = slash ? (size_t)(slash - path) : 1;
    if (slash == path) dir_len = 0; /* index in "/": shards are "/<name>" */
    m->files = calloc((size_t)n, sizeof *m->files);
    if (!m->files) s = aspo_fail(ASPO_ERR_OOM, "%s: out of memory", path);
    for (int i = 0; s == ASPO_OK && i < n; i++) {
        char *shard = path_join(dir, dir_len, names[i]);
        m->n_files = i + 1;
        s = shard ? map_file(&m->files[i], shard)
                  : aspo_fail(ASPO_ERR_OOM, "%s: out of memory", path);
        if (s == ASPO_OK) s = parse_file(m, i);
        free(shard);
    }
    if (s == ASPO_OK) s = finish(m);
    const char *key;
    json_t *v;
    json_object_foreach (wm, key, v) {
        if (s) break;
        const char *want = json_string_value(v);
        const char **hit = bsearch(&want, names, (size_t)n, sizeof *names, cmp_str);
        ASPO_ASSERT(hit); /* every value went into names */
        const st_entry *e = st_find(m, key);
        if (!e)
            s = tensor_fail(ASPO_ERR_FORMAT, path, key,
                            "listed in weight_map for %s but absent from it",
                            m->files[hit - names].path);
        else if (e->file_index != (int)(hit - names))
            s = tensor_fail(ASPO_ERR_FORMAT, path, key, "weight_map says %s but it is in %s",
                            m->files[hit - names].path, m->files[e->file_index].path);
    }
    free(names);
    return s;
}

static aspo_status open_index(const char *path, st_model *m)
{
    json_t *root = json_file_load(path, "safetensors index"); /* regular files only */
    if (!root) return aspo_error_status();
    json_t *wm = json_object_get(root, "weight_map");
    aspo_status s;
    if (!json_is_object(wm))
        s = aspo_fail(ASPO_ERR_FORMAT, "%s: index has no \"weight_map\" object", path);
    else if (json_object_size(wm) == 0)
        s = aspo_fail(ASPO_ERR_FORMAT, "%s: index has an empty weight_map", path);
    else
        s = open_shards(path, wm, m);
    json_decref(root);
    return s;
}

static int is_regular(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static aspo_status open_dir(const char *path, st_model *m)
{
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/') len--;
    char *single = path_join(path, len, "model.safetensors");
    char *index = path_join(path, len, "model.safetensors.index.json");
    aspo_status s;
    if (!single || !index)
        s = aspo_fail(ASPO_ERR_OOM, "%s: out of memory", path);
    else if (is_regular(single))
        s = open_single(single, m);
    else if (is_regular(index))
        s = open_index(index, m);
    else
        s = aspo_fail(
            ASPO_ERR_IO,
            "%s: directory holds neither model.safetensors nor model.safetensors.index.json", path);
    free(single);
    free(index);
    return s;
}

aspo_status st_open(const char *path, st_model *out)
{
    ASPO_ASSERT(path && out);
    memset(out, 0, sizeof *out);
    struct stat st;
    if (stat(path, &st) != 0) return aspo_fail(ASPO_ERR_IO, "%s: %s", path, strerror(errno));
    size_t len = strlen(path);
    aspo_status s;
    if (S_ISDIR(st.st_mode))
        s = open_dir(path, out);
    else if (len >= 5 && strcmp(path + len - 5, ".json") == 0)
        s = open_index(path, out);
    else
        s = open_single(path, out);
    if (s) st_close(out);
    return s;
}

const st_entry *st_find(const st_model *m, const char *name)
{
    if (!m || m->n_entries == 0 || !name) return NULL;
    st_entry key = {.name = (char *)name};
    return bsearch(&key, m->entries, (size_t)m->n_entries, sizeof key, cmp_by_name);
}

const char *st_file_path(const st_model *m, int file_index)
{
    if (!m || file_index < 0 || file_index >= m->n_files || !m->files[file_index].path) return "?";
    return m->files[file_index].path;
}

void st_close(st_model *m)
{
    if (!m) return;
    for (int i = 0; i < m->n_files; i++) {
        struct st_mapping *f = &m->files[i];
        if (f->base) munmap(f->base, f->size);
        for (int k = 0; k < f->n_copies; k++) free(f->copies[k]);
        free(f->copies);
        free(f->path);
    }
    for (int i = 0; i < m->n_entries; i++) free(m->entries[i].name);
    free(m->files);
    free(m->entries);
    free(m->metadata_json); /* json_dumps allocates with malloc (default allocator) */
    memset(m, 0, sizeof *m);
}

/* ---------------------------------------------------------------- writing */

/* Write order: largest element first, then name. That keeps every offset aligned with
 * no padding, which the reference reader requires (it rejects holes in the data section). */
typedef struct write_slot {
    size_t elem;
    const char *name;
    int index;
} write_slot;

static int cmp_write_order(const void *a, const void *b)
{
    const write_slot *x = a, *y = b;
    if (x->elem != y->elem) return x->elem > y->elem ? -1 : 1;
    return strcmp(x->name, y->name);
}

static aspo_status check_write_entry(const char *path, const st_write_entry *w, uint64_t *bytes)
{
    if (!w->name || !w->name[0] || strcmp(w->name, "__metadata__") == 0)
        return aspo_fail(ASPO_ERR_USAGE, "%s: invalid tensor name", path);
    if (w->dt < 0 || w->dt >= DT_COUNT)
        return tensor_fail(ASPO_ERR_USAGE, path, w->name, "invalid dtype %d", w->dt);
    if (w->ndim < 0 || w->ndim > ST_MAX_DIMS || (w->ndim > 0 && !w->shape))
        return tensor_fail(ASPO_ERR_USAGE, path, w->name, "invalid ndim %d", w->ndim);
    for (int i = 0; i < w->ndim; i++)
        if (w->shape[i] < 0)
            return tensor_fail(ASPO_ERR_USAGE, path, w->name, "negative dimension %lld",
                               (long long)w->shape[i]);
    int64_t count = shape_count(w->shape, w->ndim);
    size_t es = dtype_size((dtype)w->dt);
    if (count < 0 || (uint64_t)count > (uint64_t)INT64_MAX / es)
        return tensor_fail(ASPO_ERR_USAGE, path, w->name, "element count overflows");
    *bytes = (uint64_t)count * es;
    if (*bytes > 0 && !w->data) return tensor_fail(ASPO_ERR_USAGE, path, w->name, "data is NULL");
    return ASPO_OK;
}

/* {"dtype": .., "shape": [..], "data_offsets": [begin, end]} */
static json_t *entry_json(const st_write_entry *w, uint64_t begin, uint64_t end)
{
    json_t *o = json_object(), *shape = json_array(), *offs = json_array();
    int bad = !o || !shape || !offs;
    for (int i = 0; !bad && i < w->ndim; i++)
        bad = json_array_append_new(shape, json_integer(w->shape[i]));
    bad = bad || json_array_append_new(offs, json_integer((json_int_t)begin)) ||
          json_array_append_new(offs, json_integer((json_int_t)end)) ||
          json_object_set_new(o, "dtype", json_string(st_dtypes[w->dt].name));
    bad = bad || json_object_set(o, "shape", shape) || json_object_set(o, "data_offsets", offs);
    json_decref(shape);
    json_decref(offs);
    if (bad) json_decref(o);
    return bad ? NULL : o;
}

static aspo_status add_metadata(const char *path, json_t *root, const char *const *keys,
                                const char *const *values, int n)
{
    if (n == 0) return ASPO_OK;
    if (!keys || !values) return aspo_fail(ASPO_ERR_USAGE, "%s: metadata arrays are NULL", path);
    json_t *meta = json_object();
    if (!meta || json_object_set_new(root, "__metadata__", meta))
        return aspo_fail(ASPO_ERR_OOM, "%s: out of memory", path);
    for (int i = 0; i < n; i++) {
        if (!keys[i] || !values[i] || json_object_get(meta, keys[i]))
            return aspo_fail(ASPO_ERR_USAGE, "%s: metadata key %d is NULL or repeated", path, i);
        /* json_string refuses invalid UTF-8, which a JSON header cannot carry */
        if (json_object_set_new(meta, keys[i], json_string(values[i])))
            return aspo_fail(ASPO_ERR_USAGE, "%s: metadata \"%s\" is not valid UTF-8", path,
                             keys[i]);
    }
    return ASPO_OK;
}

/* The header JSON, space-padded to a multiple of 8 so the data section starts aligned. */
static aspo_status build_header(const char *path, const st_write_entry *entries, int n,
                                const int *order, const uint64_t *bytes, json_t *root, char **out,
                                size_t *out_len)
{
    uint64_t off = 0, mark = json_guard_mark();
    for (int k = 0; k < n; k++) {
        const st_write_entry *w = &entries[order[k]];
        if (json_object_get(root, w->name))
            return tensor_fail(ASPO_ERR_USAGE, path, w->name, "name given twice");
        json_t *e = entry_json(w, off, off + bytes[order[k]]);
        if ((!e || json_object_set_new(root, w->name, e)) && !json_guard_check(mark, path))
            return tensor_fail(ASPO_ERR_USAGE, path, w->name, "name is not valid UTF-8");
        if (json_guard_check(mark, path)) return aspo_error_status(); /* out of memory */
        off += bytes[order[k]];
    }
    char *text = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
    aspo_status s = json_guard_check(mark, path);
    if (s || !text) {
        free(text);
        return s ? s : aspo_fail(ASPO_ERR_OOM, "%s: out of memory", path);
    }
    size_t len = strlen(text), padded = (len + 7) / 8 * 8;
    char *buf = realloc(text, padded);
    if (!buf) {
        free(text);
        return aspo_fail(ASPO_ERR_OOM, "%s: out of memory", path);
    }
    memset(buf + len, ' ', padded - len);
    *out = buf;
    *out_len = padded;
    return ASPO_OK;
}

static aspo_status write_all(int fd, const void *p, size_t n, const char *path)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n > (1u << 30) ? (1u << 30) : n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return aspo_fail(ASPO_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        c += w;
        n -= (size_t)w;
    }
    return ASPO_OK;
}

/* Writes the file to tmp, fsyncs, and renames it to path. */
static aspo_status write_file(const char *path, const char *tmp, const char *header,
                              size_t header_len, const st_write_entry *entries, int n,
                              const int *order, const uint64_t *bytes)
{
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return aspo_fail(ASPO_ERR_IO, "%s: cannot create %s: %s", path, tmp, strerror(errno));
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)header_len >> (8 * i));
    aspo_status s = write_all(fd, len8, 8, path);
    if (!s) s = write_all(fd, header, header_len, path);
    for (int k = 0; !s && k < n; k++)
        if (bytes[order[k]])
            s = write_all(fd, entries[order[k]].data, (size_t)bytes[order[k]], path);
    if (!s && fsync(fd) != 0)
        s = aspo_fail(ASPO_ERR_IO, "%s: fsync failed: %s", path, strerror(errno));
    if (close(fd) != 0 && !s)
        s = aspo_fail(ASPO_ERR_IO, "%s: close failed: %s", path, strerror(errno));
    if (!s && rename(tmp, path) != 0)
        s = aspo_fail(ASPO_ERR_IO, "%s: cannot rename %s over it: %s", path, tmp, strerror(errno));
    if (s)
        unlink(tmp);
    else
        file_sync_parent(path);
    return s;
}

aspo_status st_write(const char *path, const st_write_entry *entries, int n,
                     const char *const *meta_keys, const char *const *meta_values, int n_meta)
{
    if (!path || n < 0 || (n > 0 && !entries) || n_meta < 0)
        return aspo_fail(ASPO_ERR_USAGE, "%s: invalid st_write arguments", path ? path : "(null)");
    int *order = malloc(((size_t)n + 1) * sizeof *order);
    write_slot *slots = malloc(((size_t)n + 1) * sizeof *slots);
    uint64_t *bytes = malloc(((size_t)n + 1) * sizeof *bytes);
    char *tmp = malloc(strlen(path) + 5), *header = NULL;
    uint64_t mark = json_guard_mark();
    json_t *root = json_object();
    size_t header_len = 0;
    aspo_status s = ASPO_OK;
    if (!order || !slots || !bytes || !tmp || !root)
        s = aspo_fail(ASPO_ERR_OOM, "%s: out of memory", path);
    for (int i = 0; !s && i < n; i++) {
        s = check_write_entry(path, &entries[i], &bytes[i]);
        if (!s) slots[i] = (write_slot){dtype_size((dtype)entries[i].dt), entries[i].name, i};
    }
    if (!s) {
        qsort(slots, (size_t)n, sizeof *slots, cmp_write_order);
        for (int k = 0; k < n; k++) order[k] = slots[k].index;
        s = add_metadata(path, root, meta_keys, meta_values, n_meta);
    }
    if (!s) s = build_header(path, entries, n, order, bytes, root, &header, &header_len);
    if (!s) s = json_guard_check(mark, path);
    if (!s) {
        strcpy(tmp, path);
        strcat(tmp, ".tmp");
        s = write_file(path, tmp, header, header_len, entries, n, order, bytes);
    }
    json_decref(root);
    free(header);
    free(tmp);
    free(bytes);
    free(slots);
    free(order);
    return s;
}
