/* Reading and writing safetensors files (https://github.com/huggingface/safetensors).
 *
 * Layout: an 8-byte little-endian header length N, N bytes of JSON header
 *   {"__metadata__": {str: str}, "name": {"dtype": "F32", "shape": [..],
 *    "data_offsets": [begin, end]}, ...}
 * then the data section; offsets are relative to its start.
 *
 * Files are memory-mapped read-only, so opening a multi-GB model costs no copy and
 * tensors are paged in on first touch. Every entry is validated at open time, so a
 * consumer may trust dtype, shape, nbytes and data without further checks. */
#ifndef ASPO_SAFETENSORS_H
#define ASPO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "dtype.h"
#include "error.h"

#define ST_MAX_DIMS 8
/* Headers beyond this are refused: real ones are a few MB at most, and the limit keeps
 * a corrupt length field from making jansson parse gigabytes. Same bound as the
 * reference implementation. */
#define ST_MAX_HEADER_BYTES 100000000ull

typedef struct st_entry {
    char *name;          /* tensor name as in the file */
    char dtype_name[12]; /* the file's dtype string, e.g. "BF16", "I64" */
    int dt;              /* DT_F32/DT_BF16/DT_F16/DT_I32, or -1 for a valid safetensors
                          * dtype aspo does not compute in (F64, I64, I16, I8, U8, BOOL,
                          * U16, U32, U64, F8_E4M3, F8_E5M2) */
    int ndim;            /* 0..8 */
    int64_t shape[ST_MAX_DIMS];
    const void *data;    /* points into the mmap, aligned to the element size; a tensor
                          * the file leaves misaligned (writers before safetensors 0.3.1,
                          * some third-party ones) is read from an aligned heap copy */
    size_t nbytes;
    int file_index;      /* which shard */
} st_entry;

struct st_mapping; /* private: one mapped file */

typedef struct st_model { /* one file or a sharded set */
    int n_files;
    struct st_mapping *files;
    int n_entries;
    st_entry *entries;   /* sorted by name for bsearch */
    char *metadata_json; /* the "__metadata__" object of the first file re-serialised
                          * (compact, keys sorted), or NULL */
} st_model;

/* path: a .safetensors file, a model.safetensors.index.json (any path ending in .json),
 * or a directory holding model.safetensors (preferred) or model.safetensors.index.json.
 * Only regular files are read (a FIFO is refused, not waited on). An index's shard names
 * must stay in its directory (relative, no ".." component); its JSON may not repeat a key.
 * On failure *out is left zeroed (st_close on it is a no-op) and the message names the
 * file and, where relevant, the tensor. */
aspo_status st_open(const char *path, st_model *out);
/* NULL if absent (no error set). */
const st_entry *st_find(const st_model *m, const char *name);
/* Path of shard file_index as opened, for messages; "?" when out of range. */
const char *st_file_path(const st_model *m, int file_index);
/* Unmaps everything; safe on a zeroed or already-closed model. */
void st_close(st_model *m);

/* Writer. data may be NULL only for empty tensors; its size is product(shape) *
 * dtype_size(dt). Tensors are laid out largest element first (then by name), as the
 * reference writer does, so every offset is aligned and the data section has no holes.
 * Writes "<path>.tmp", fsyncs it and rename(2)s it over path, so an existing file is
 * never left half-written.
 * metadata: NULL or a flat object of string->string pairs given as key/value arrays. */
typedef struct st_write_entry {
    const char *name;
    int dt;
    int ndim;
    const int64_t *shape;
    const void *data;
} st_write_entry;

aspo_status st_write(const char *path, const st_write_entry *entries, int n,
                     const char *const *meta_keys, const char *const *meta_values, int n_meta);

#endif
