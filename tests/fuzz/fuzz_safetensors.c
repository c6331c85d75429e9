/* safetensors: open (one file, or shards through model.safetensors.index.json), read every
 * tensor as f32 as the weight loaders do, write the ones aspo computes in back with st_write
 * and check the file reads back the same: names, dtypes, shapes, bytes and __metadata__.
 *
 * Input: a .safetensors file; or, with scissors lines (fuzz_common.h), shard 1, shard 2 and
 * an index, written as model-0000{1,2}-of-00002.safetensors and model.safetensors.index.json
 * and opened as a model directory. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "backends/registry.h"
#include "fuzz_common.h"
#include "models/weights.h"
#include "tensor/runtime.h"
#include "tensor/safetensors.h"
#include "tensor/tensor.h"

enum { MAX_INPUT = 1 << 18 };

/* The CPU runtime that weights_copy_entry's tensors live in, reset after every input. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    if (runtime_init(backend_cpu(), (size_t)256 << 20) != ASPO_OK)
        fuzz_fail("runtime_init: %s", aspo_error_message());
    return 0;
}

/* Every element as f32 twice: through weights_copy_entry into an f32 tensor, as the model
 * loaders read weights, and through dtype_load; the two must agree bit for bit. A tensor
 * aspo cannot hold (over 4 dimensions) or read (not a float) is an error, not a finding. */
static void read_as_f32(const st_model *m, const st_entry *e)
{
    tensor *t = tensor_empty(DT_F32, e->ndim, e->shape);
    if (!t || weights_copy_entry(t, m, e) != ASPO_OK) {
        if (t && e->dt >= 0 && dtype_is_float((dtype)e->dt))
            fuzz_fail("weights_copy_entry refused tensor '%s': %s", e->name,
                      aspo_error_message());
        fuzz_error_done();
        return;
    }
    int64_t n = tensor_numel(t);
    float *got = malloc((size_t)(n ? n : 1) * sizeof *got);
    if (!got) fuzz_fail("out of memory for %lld elements", (long long)n);
    if (tensor_to_host_f32(t, got) != ASPO_OK)
        fuzz_fail("tensor_to_host_f32 failed: %s", aspo_error_message());
    for (int64_t i = 0; i < n; i++) {
        float want = dtype_load(e->data, (dtype)e->dt, i);
        if (memcmp(&got[i], &want, sizeof want) != 0)
            fuzz_fail("tensor '%s' element %lld: weights_copy_entry gave %g, dtype_load %g",
                      e->name, (long long)i, got[i], want);
    }
    free(got);
}

/* __metadata__ as st_open re-serialised it, back to st_write's key and value arrays. */
static json_t *metadata_arrays(const st_model *m, const char ***keys, const char ***values,
                               int *n)
{
    *keys = *values = NULL;
    *n = 0;
    if (!m->metadata_json) return NULL;
    json_t *meta = json_loads(m->metadata_json, 0, NULL);
    if (!json_is_object(meta)) fuzz_fail("__metadata__ re-serialised as %s", m->metadata_json);
    size_t count = json_object_size(meta);
    *keys = malloc((count + 1) * sizeof **keys);
    *values = malloc((count + 1) * sizeof **values);
    if (!*keys || !*values) fuzz_fail("out of memory");
    const char *key;
    json_t *v;
    json_object_foreach (meta, key, v) {
        (*keys)[*n] = key;
        (*values)[(*n)++] = json_string_value(v);
    }
    return meta;
}

/* Writes the tensors aspo computes in (dt >= 0) and the metadata to out.safetensors, and
 * checks that it reads back equal. */
static void write_and_reopen(const st_model *m)
{
    st_write_entry *w = malloc(((size_t)m->n_entries + 1) * sizeof *w);
    if (!w) fuzz_fail("out of memory");
    int n = 0;
    for (int i = 0; i < m->n_entries; i++) {
        const st_entry *e = &m->entries[i];
        if (e->dt >= 0)
            w[n++] = (st_write_entry){e->name, e->dt, e->ndim, e->shape, e->data};
    }
    const char **keys, **values;
    int n_meta;
    json_t *meta = metadata_arrays(m, &keys, &values, &n_meta);
    const char *path = fuzz_path("out.safetensors");
    if (st_write(path, w, n, keys, values, n_meta) != ASPO_OK)
        fuzz_fail("st_write refused what st_open read: %s", aspo_error_message());
    st_model back;
    if (st_open(path, &back) != ASPO_OK)
        fuzz_fail("st_open refused what st_write wrote: %s", aspo_error_message());
    if (back.n_entries != n)
        fuzz_fail("wrote %d tensors, read back %d", n, back.n_entries);
    for (int i = 0; i < n; i++) {
        const st_entry *b = st_find(&back, w[i].name), *e = st_find(m, w[i].name);
        if (!b || b->dt != e->dt || b->ndim != e->ndim || b->nbytes != e->nbytes ||
            memcmp(b->shape, e->shape, (size_t)e->ndim * sizeof *e->shape) != 0 ||
            (e->nbytes && memcmp(b->data, e->data, e->nbytes) != 0))
            fuzz_fail("tensor '%s' reads back different", w[i].name);
    }
    if ((m->metadata_json == NULL) != (back.metadata_json == NULL) ||
        (m->metadata_json && strcmp(m->metadata_json, back.metadata_json) != 0))
        fuzz_fail("__metadata__ %s reads back as %s",
                  m->metadata_json ? m->metadata_json : "(none)",
                  back.metadata_json ? back.metadata_json : "(none)");
    st_close(&back);
    json_decref(meta);
    free(keys), free(values), free(w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT) return 0;
    const char *path = fuzz_reset(); /* shards: opened as a model directory */
    fuzz_part part[3];
    if (fuzz_split(data, size, part, 3) == 3) {
        fuzz_write("model-00001-of-00002.safetensors", part[0].data, part[0].size);
        fuzz_write("model-00002-of-00002.safetensors", part[1].data, part[1].size);
        fuzz_write("model.safetensors.index.json", part[2].data, part[2].size);
    } else {
        path = fuzz_write("in.safetensors", data, size);
    }
    st_model m;
    if (st_open(path, &m) != ASPO_OK) {
        fuzz_error_done();
        st_close(&m); /* a no-op on the zeroed model, as the header promises */
        return 0;
    }
    for (int i = 0; i < m.n_entries; i++) {
        read_as_f32(&m, &m.entries[i]);
        if (st_find(&m, m.entries[i].name) != &m.entries[i])
            fuzz_fail("st_find misses tensor '%s'", m.entries[i].name);
        (void)st_file_path(&m, m.entries[i].file_index);
    }
    write_and_reopen(&m);
    st_close(&m);
    st_close(&m); /* safe twice */
    runtime_step_reset();
    return 0;
}
