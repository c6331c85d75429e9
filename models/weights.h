/* Model weights in and out of safetensors, by name, with dtype conversion. Generic: a model
 * declares its parameters under the checkpoint's names (LLaMA, CLIP and LLaVA alike), then
 * loads them here; writers produce single files or Hugging Face-style shards. */
#ifndef ASPO_MODELS_WEIGHTS_H
#define ASPO_MODELS_WEIGHTS_H

#include <stdbool.h>
#include <stddef.h>

#include "tensor/params.h"
#include "tensor/safetensors.h"

/* Copies entry e of st into parameter t, converting f32/bf16/f16 to t's dtype (round to
 * nearest even). Errors name the file and the tensor: a shape that differs from t's, a
 * dtype aspo does not read. */
aspo_status weights_copy_entry(tensor *t, const st_model *st, const st_entry *e);

/* Finds `key` in st and copies it into t; a missing tensor is an error naming the file(s),
 * the key and the shape the model expects. */
aspo_status weights_load_tensor(tensor *t, const st_model *st, const char *key);

/* Which parameters weights_load_store fills; NULL = all. */
typedef bool (*weights_filter_fn)(const tensor *param, void *ctx);

/* Loads every parameter of ps that `want` accepts from the entry named key_prefix + the
 * parameter's name (key_prefix NULL or "" = the name itself). Tensors of the file that no
 * parameter asks for are ignored (e.g. rotary_emb.inv_freq of old checkpoints). */
aspo_status weights_load_store(param_store *ps, const st_model *st, const char *key_prefix,
                               weights_filter_fn want, void *ctx);

/* The dtype of `key` in st (DT_F32/DT_BF16/DT_F16), or -1 with an error when it is missing
 * or not a float tensor aspo reads; used for "storage dtype = the file's". */
int weights_file_dtype(const st_model *st, const char *key);

/* The torch_dtype of dir/config.json ("float32", "bfloat16", "float16") as DT_*: the
 * storage dtype "auto" means when no checkpoint is read (memory plans). -1 with an error
 * asking for an explicit dtype when the file has none, or another one. */
int weights_config_dtype(const char *dir);

/* Parameter t's values on the host converted to dt; out holds numel * dtype_size(dt) bytes. */
aspo_status weights_read(const tensor *t, dtype dt, void *out);

/* ---- writing ---- */

typedef struct weights_item {
    const char *name; /* key in the file */
    dtype dt;
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
} weights_item;

/* Fills host (numel * dtype_size(dt) bytes) with the values of item i. */
typedef aspo_status (*weights_fill_fn)(void *ctx, int i, void *host);

/* Writes items into dir as <stem>.safetensors, or, when their bytes exceed max_shard_bytes,
 * as <stem>-0000k-of-0000n.safetensors plus <stem>.safetensors.index.json (transformers'
 * save_pretrained layout, metadata {"format": "pt"}). Items are grouped in order; only one
 * shard's data is in host memory at a time. Each file is written under a temporary name
 * and renamed; the file of the other layout, if present, is removed (transformers would
 * prefer a stale model.safetensors over a new index). */
aspo_status weights_save(const char *dir, const char *stem, const weights_item *items, int n,
                         size_t max_shard_bytes, weights_fill_fn fill, void *ctx);

/* Writes data to path via "<path>.tmp", fsync and rename: never a half-written file. */
aspo_status weights_write_file(const char *path, const char *data, size_t size);
/* Creates dir (one level) unless it exists as a directory. */
aspo_status weights_make_dir(const char *dir);
/* Removes dir and everything below it (links are removed, not followed); best effort. */
void weights_remove_dir(const char *dir);

#endif
