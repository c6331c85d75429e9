#include "aspo/tiny_llama.h"

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

typedef struct weight_list {
    st_write_entry e[MAX_TENSORS];
    int64_t shapes[MAX_TENSORS][2];
    char *names[MAX_TENSORS];
    float *data[MAX_TENSORS];
    int n;
} weight_list;

/* Normal(0, std) by Box-Muller over Philox, or a constant when std is 0. */
static aspo_status add(weight_list *w, const char *name, int64_t rows, int64_t cols, double std,
                       float constant, uint64_t seed)
{
    if (w->n == MAX_TENSORS) return aspo_fail(ASPO_ERR_USAGE, "tiny llama: too many tensors");
    int64_t n = rows * (cols ? cols : 1);
    float *v = malloc(sizeof(float) * (size_t)(n ? n : 1));
    char *copy = strdup(name);
    if (!v || !copy) {
        free(v);
        free(copy);
        return aspo_fail(ASPO_ERR_OOM, "tiny llama: no memory for %s", name);
    }
    uint64_t stream = (uint64_t)w->n << 40;
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
    w->shapes[k][0] = rows;
    w->shapes[k][1] = cols;
    w->e[k] = (st_write_entry){.name = copy, .dt = DT_F32, .ndim = cols ? 2 : 1,
                               .shape = w->shapes[k], .data = v};
    return ASPO_OK;
}

static aspo_status write_config(const char *dir, const tiny_llama_spec *s)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
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
    int bad = !c || json_dump_file(c, path, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(c);
    return bad ? aspo_fail(ASPO_ERR_IO, "%s: cannot write", path) : ASPO_OK;
}

aspo_status tiny_llama_write(const char *dir, const tiny_llama_spec *s, uint64_t seed)
{
    if (s->dim % s->heads || s->heads % s->kv_heads || (s->dim / s->heads) % 2)
        return aspo_fail(ASPO_ERR_USAGE,
                         "tiny llama: dim %lld, heads %lld, kv heads %lld do not fit (dim "
                         "divisible by heads, heads by kv heads, even head size)",
                         (long long)s->dim, (long long)s->heads, (long long)s->kv_heads);
    aspo_status made = weights_make_dir(dir);
    if (made) return made;
    weight_list *w = calloc(1, sizeof *w);
    if (!w) return aspo_fail(ASPO_ERR_OOM, "tiny llama: no memory");
    int64_t D = s->dim / s->heads, kv = s->kv_heads * D;
    const double std = 0.02; /* LlamaConfig.initializer_range */
    aspo_status st = add(w, "model.embed_tokens.weight", s->vocab, s->dim, std, 0, seed);
    char name[256];
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
            snprintf(name, sizeof name, "model.layers.%lld.%s", (long long)l, parts[p].part);
            st = add(w, name, parts[p].rows, parts[p].cols, parts[p].std, 1.0f, seed);
        }
    }
    if (!st) st = add(w, "model.norm.weight", s->dim, 0, 0, 1.0f, seed);
    if (!st) st = add(w, "lm_head.weight", s->vocab, s->dim, std, 0, seed);
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (!st) st = st_write(path, w->e, w->n, NULL, NULL, 0);
    if (!st) st = write_config(dir, s);
    for (int i = 0; i < w->n; i++) {
        free(w->names[i]);
        free(w->data[i]);
    }
    free(w);
    return st;
}
