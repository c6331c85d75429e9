#include "aspo/model/tiny_llama.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/weights.h"
#include "tensor/dtype.h"
#include "tensor/rng.h"
#include "tensor/safetensors.h"

enum { MAX_TENSORS = 1024 };

struct tiny_weights {
    st_write_entry e[MAX_TENSORS];
    int64_t shapes[MAX_TENSORS][4];
    char *names[MAX_TENSORS];
    float *data[MAX_TENSORS];
    int n;
};

tiny_weights *tiny_weights_new(void)
{
    return calloc(1, sizeof(tiny_weights));
}

aspo_status tiny_weights_add(tiny_weights *w, const char *name, int ndim, const int64_t *shape,
                             double std, float constant, uint64_t seed)
{
    if (w->n == MAX_TENSORS)
        return aspo_fail(ASPO_ERR_USAGE, "tiny model: more than %d tensors", MAX_TENSORS);
    ASPO_ASSERT(ndim >= 1 && ndim <= 4);
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) n *= shape[d];
    float *v = malloc(sizeof(float) * (size_t)(n ? n : 1));
    char *copy = strdup(name);
    if (!v || !copy) {
        free(v);
        free(copy);
        return aspo_fail(ASPO_ERR_OOM, "tiny model: no memory for %s", name);
    }
    uint64_t stream = (uint64_t)w->n << 40;
    /* Counter-based draws: each value depends on its index only, so threads change nothing
     * (a 7B-shaped bench model is a billion values). */
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) {
        if (std == 0) {
            v[i] = constant;
            continue;
        }
        double u1 = rng_uniform(seed, stream, 2 * (uint64_t)i) + 1e-12;
        double u2 = rng_uniform(seed, stream, 2 * (uint64_t)i + 1);
        v[i] = (float)(std * sqrt(-2 * log(u1)) * cos(2 * M_PI * u2));
    }
    int k = w->n++;
    w->names[k] = copy;
    w->data[k] = v;
    memcpy(w->shapes[k], shape, sizeof(int64_t) * (size_t)ndim);
    w->e[k] = (st_write_entry){.name = copy, .dt = DT_F32, .ndim = ndim, .shape = w->shapes[k],
                               .data = v};
    return ASPO_OK;
}

aspo_status tiny_weights_write(const tiny_weights *w, const char *path)
{
    return st_write(path, w->e, w->n, NULL, NULL, 0);
}

void tiny_weights_free(tiny_weights *w)
{
    if (!w) return;
    for (int i = 0; i < w->n; i++) {
        free(w->names[i]);
        free(w->data[i]);
    }
    free(w);
}

/* A matrix (rows, cols), or a vector when cols is 0. */
static aspo_status add(tiny_weights *w, const char *name, int64_t rows, int64_t cols, double std,
                       float constant, uint64_t seed)
{
    int64_t shape[2] = {rows, cols};
    return tiny_weights_add(w, name, cols ? 2 : 1, shape, std, constant, seed);
}

json_t *tiny_llama_config(const tiny_llama_spec *s)
{
    json_t *c = json_pack(
        "{s:[s], s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:b, s:I, s:I, s:s, s:s}",
        "architectures", "LlamaForCausalLM", "model_type", "llama",
        "hidden_size", (json_int_t)s->dim, "intermediate_size", (json_int_t)s->ffn,
        "num_hidden_layers", (json_int_t)s->layers, "num_attention_heads", (json_int_t)s->heads,
        "num_key_value_heads", (json_int_t)s->kv_heads, "vocab_size", (json_int_t)s->vocab,
        "max_position_embeddings", (json_int_t)s->max_positions, "rms_norm_eps", 1e-6,
        "rope_theta", 10000.0, "tie_word_embeddings", 0, "bos_token_id", (json_int_t)s->bos_id,
        "eos_token_id", (json_int_t)s->eos_id, "hidden_act", "silu", "torch_dtype", "float32");
    if (c && s->pad_id >= 0) json_object_set_new(c, "pad_token_id", json_integer(s->pad_id));
    return c;
}

aspo_status tiny_write_json(const char *dir, const char *file, json_t *obj)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    int bad = !obj || json_dump_file(obj, path, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(obj);
    return bad ? aspo_fail(ASPO_ERR_IO, "%s: cannot write", path) : ASPO_OK;
}

aspo_status tiny_weights_add_linear(tiny_weights *w, const char *name, int64_t rows,
                                    int64_t cols, uint64_t seed)
{
    char full[320];
    snprintf(full, sizeof full, "%s.weight", name);
    aspo_status s = cols ? tiny_weights_add(w, full, 2, (int64_t[]){rows, cols}, TINY_STD, 0, seed)
                         : tiny_weights_add(w, full, 1, (int64_t[]){rows}, 0, 1.0f, seed);
    snprintf(full, sizeof full, "%s.bias", name);
    if (!s) s = tiny_weights_add(w, full, 1, (int64_t[]){rows}, 0, 0.0f, seed);
    return s;
}

aspo_status tiny_llama_add_weights(tiny_weights *w, const char *prefix, const tiny_llama_spec *s,
                                   uint64_t seed)
{
    if (s->dim % s->heads || s->heads % s->kv_heads || (s->dim / s->heads) % 2)
        return aspo_fail(ASPO_ERR_USAGE,
                         "tiny llama: dim %lld, heads %lld, kv heads %lld do not fit (dim "
                         "divisible by heads, heads by kv heads, even head size)",
                         (long long)s->dim, (long long)s->heads, (long long)s->kv_heads);
    int64_t D = s->dim / s->heads, kv = s->kv_heads * D;
    const double std = 0.02; /* LlamaConfig.initializer_range */
    char name[256];
    snprintf(name, sizeof name, "%smodel.embed_tokens.weight", prefix);
    aspo_status st = add(w, name, s->vocab, s->dim, std, 0, seed);
    for (int64_t l = 0; l < s->layers && !st; l++) {
        struct { const char *part; int64_t rows, cols; double std; } parts[] = {
            {"self_attn.q_proj.weight", s->dim, s->dim, std},
            {"self_attn.k_proj.weight", kv, s->dim, std},
            {"self_attn.v_proj.weight", kv, s->dim, std},
            {"self_attn.o_proj.weight", s->dim, s->dim, std},
            {"mlp.gate_proj.weight", s->ffn, s->dim, std},
            {"mlp.up_proj.weight", s->ffn, s->dim, std},
            {"mlp.down_proj.weight", s->dim, s->ffn, std},
            {"input_layernorm.weight", s->dim, 0, 0},
            {"post_attention_layernorm.weight", s->dim, 0, 0},
        };
        for (size_t p = 0; p < sizeof parts / sizeof parts[0] && !st; p++) {
            snprintf(name, sizeof name, "%smodel.layers.%lld.%s", prefix, (long long)l,
                     parts[p].part);
            st = add(w, name, parts[p].rows, parts[p].cols, parts[p].std, 1.0f, seed);
        }
    }
    snprintf(name, sizeof name, "%smodel.norm.weight", prefix);
    if (!st) st = add(w, name, s->dim, 0, 0, 1.0f, seed);
    snprintf(name, sizeof name, "%slm_head.weight", prefix);
    if (!st) st = add(w, name, s->vocab, s->dim, std, 0, seed);
    return st;
}

aspo_status tiny_llama_write(const char *dir, const tiny_llama_spec *s, uint64_t seed)
{
    tiny_weights *w = tiny_weights_new();
    if (!w) return aspo_fail(ASPO_ERR_OOM, "tiny llama: no memory");
    aspo_status st = tiny_llama_add_weights(w, "", s, seed);
    if (!st) st = weights_make_dir(dir);
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (!st) st = tiny_weights_write(w, path);
    if (!st) st = tiny_write_json(dir, "config.json", tiny_llama_config(s));
    tiny_weights_free(w);
    return st;
}
