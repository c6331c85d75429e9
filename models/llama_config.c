/* LLaMA config.json, as transformers' LlamaConfig reads it. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "llama.h"
#include "tensor/json_file.h"

/* An integer field: required ones fail when missing; optional ones keep *out. */
static aspo_status get_int(const json_t *obj, const char *where, const char *key, bool required,
                           int64_t *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v || (json_is_null(v) && !required)) {
        if (required)
            return aspo_fail(ASPO_ERR_FORMAT, "%s: missing required field \"%s\"", where, key);
        return ASPO_OK;
    }
    if (!json_is_integer(v))
        return aspo_fail(ASPO_ERR_FORMAT, "%s: field \"%s\" must be an integer", where, key);
    *out = (int64_t)json_integer_value(v);
    return ASPO_OK;
}

static aspo_status get_number(const json_t *obj, const char *where, const char *key,
                              bool required, double *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v || (json_is_null(v) && !required)) {
        if (required)
            return aspo_fail(ASPO_ERR_FORMAT, "%s: missing required field \"%s\"", where, key);
        return ASPO_OK;
    }
    if (!json_is_number(v))
        return aspo_fail(ASPO_ERR_FORMAT, "%s: field \"%s\" must be a number", where, key);
    *out = json_number_value(v);
    return ASPO_OK;
}

static aspo_status get_bool(const json_t *obj, const char *where, const char *key, bool *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return ASPO_OK;
    if (!json_is_boolean(v))
        return aspo_fail(ASPO_ERR_FORMAT, "%s: field \"%s\" must be true or false", where, key);
    *out = json_is_true(v);
    return ASPO_OK;
}

/* id must be a token of the vocabulary; `given`: the config sets it (else it is LlamaConfig's
 * default, which a small vocabulary may not hold). */
static aspo_status check_token(const char *where, const char *key, int64_t id, int64_t vocab,
                               bool given)
{
    if (id >= 0 && id < vocab) return ASPO_OK;
    return aspo_fail(ASPO_ERR_FORMAT, "%s: \"%s\" = %lld is not a token id of the vocabulary "
                     "(0..%lld)%s", where, key, (long long)id, (long long)vocab - 1,
                     given ? "" : "; that is LlamaConfig's default: set it in the config");
}

/* A token id: absent keeps *out (the default, still checked), null = -1 (none). pad_token_id
 * -1 is none too: converted LLaMA configs of 2023 write it. */
static aspo_status get_token(const json_t *obj, const char *where, const char *key,
                             int64_t vocab, int *out)
{
    json_t *v = json_object_get(obj, key);
    int64_t id = json_is_null(v) ? -1 : *out;
    aspo_status s = get_int(obj, where, key, false, &id);
    bool none = json_is_null(v) || (id == -1 && !strcmp(key, "pad_token_id"));
    if (!s && !none) s = check_token(where, key, id, vocab, v != NULL);
    if (!s) *out = (int)id;
    return s;
}

/* eos_token_id: an integer, a list of them (Llama 3.1) or null. */
static aspo_status get_eos(const json_t *obj, const char *where, llama_config *c)
{
    json_t *v = json_object_get(obj, "eos_token_id");
    if (!v) return check_token(where, "eos_token_id", c->eos_token_ids[0], c->vocab_size, false);
    c->n_eos = 0;
    if (json_is_null(v)) return ASPO_OK;
    size_t n = json_is_array(v) ? json_array_size(v) : 1;
    if (n > LLAMA_MAX_EOS)
        return aspo_fail(ASPO_ERR_FORMAT, "%s: \"eos_token_id\" lists %zu ids; aspo keeps at most "
                         "%d", where, n, LLAMA_MAX_EOS);
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_is_array(v) ? json_array_get(v, i) : v;
        if (!json_is_integer(e))
            return aspo_fail(ASPO_ERR_FORMAT, "%s: field \"eos_token_id\" must be an integer or a "
                             "list of integers", where);
        aspo_status s = check_token(where, "eos_token_id", json_integer_value(e), c->vocab_size,
                                    true);
        if (s) return s;
        c->eos_token_ids[c->n_eos++] = (int)json_integer_value(e);
    }
    return ASPO_OK;
}

/* rope_scaling: null, or {"type" or "rope_type": "default" | "linear", "factor": f}. */
static aspo_status get_rope_scaling(const json_t *obj, const char *where, llama_config *c)
{
    json_t *v = json_object_get(obj, "rope_scaling");
    if (!v || json_is_null(v)) return ASPO_OK;
    if (!json_is_object(v))
        return aspo_fail(ASPO_ERR_FORMAT, "%s: field \"rope_scaling\" must be an object or null",
                         where);
    json_t *type = json_object_get(v, "rope_type");
    if (!type) type = json_object_get(v, "type");
    if (!json_is_string(type))
        return aspo_fail(ASPO_ERR_FORMAT, "%s: \"rope_scaling\" has no \"type\" or \"rope_type\"",
                         where);
    const char *name = json_string_value(type);
    if (strcmp(name, "default") == 0) return ASPO_OK;
    if (strcmp(name, "linear") != 0)
        return aspo_fail(ASPO_ERR_UNSUPPORTED, "%s: rope_scaling type \"%s\" is not supported "
                         "(aspo has none and linear)", where, name);
    double factor = 0;
    aspo_status s = get_number(v, where, "factor", true, &factor);
    if (s) return s;
    if (!(factor >= 1.0) || isinf(factor))
        return aspo_fail(ASPO_ERR_FORMAT, "%s: rope_scaling factor %g must be >= 1", where, factor);
    c->rope_linear_factor = factor;
    return ASPO_OK;
}

/* Fields that change the math in ways aspo does not implement. */
static aspo_status check_supported(const json_t *obj, const char *where)
{
    json_t *model_type = json_object_get(obj, "model_type");
    if (json_is_string(model_type) && strcmp(json_string_value(model_type), "llama") != 0)
        return aspo_fail(ASPO_ERR_UNSUPPORTED, "%s: model_type \"%s\"; this loader reads "
                         "\"llama\"", where, json_string_value(model_type));
    json_t *act = json_object_get(obj, "hidden_act");
    if (act && !(json_is_string(act) && strcmp(json_string_value(act), "silu") == 0))
        return aspo_fail(ASPO_ERR_UNSUPPORTED, "%s: hidden_act must be \"silu\"", where);
    double dropout = 0;
    aspo_status s = get_number(obj, where, "attention_dropout", false, &dropout);
    if (!s && dropout != 0)
        s = aspo_fail(ASPO_ERR_UNSUPPORTED, "%s: attention_dropout %g; aspo's attention has no "
                      "dropout (LLaMA checkpoints use 0)", where, dropout);
    return s;
}

/* The sizes, each checked before any arithmetic on it (a zero or negative heads count
 * divided hidden_size); head_dim is derived here when the config leaves it out. */
static aspo_status check_sizes(llama_config *c, const char *where, bool head_dim_given)
{
    const struct { const char *key; int64_t v, max; } f[] = {
        {"hidden_size", c->hidden_size, LLAMA_MAX_DIM},
        {"intermediate_size", c->intermediate_size, LLAMA_MAX_DIM},
        {"num_hidden_layers", c->num_layers, LLAMA_MAX_LAYERS},
        {"num_attention_heads", c->num_heads, LLAMA_MAX_DIM},
        {"num_key_value_heads", c->num_kv_heads, LLAMA_MAX_DIM},
        {"vocab_size", c->vocab_size, LLAMA_MAX_VOCAB},
        {"max_position_embeddings", c->max_position_embeddings, INT32_MAX}, /* int32 positions */
        {"head_dim", head_dim_given ? c->head_dim : 1, LLAMA_MAX_DIM},
    };
    aspo_status s = ASPO_OK;
    for (size_t i = 0; i < sizeof f / sizeof *f && !s; i++)
        s = json_check_range(where, f[i].key, f[i].v, 1, f[i].max);
    if (s) return s;
    /* Without head_dim, transformers requires hidden_size = heads * head size. */
    if (!head_dim_given && c->hidden_size % c->num_heads != 0)
        return aspo_fail(ASPO_ERR_FORMAT, "%s: hidden_size %lld is not divisible by "
                         "num_attention_heads %lld (or give head_dim)", where,
                         (long long)c->hidden_size, (long long)c->num_heads);
    if (!head_dim_given) c->head_dim = c->hidden_size / c->num_heads;
    if (c->num_heads * c->head_dim > LLAMA_MAX_DIM) /* both <= 2^20: no overflow */
        return aspo_fail(ASPO_ERR_FORMAT, "%s: num_attention_heads %lld x head_dim %lld = %lld, "
                         "the attention's width, is over %d", where, (long long)c->num_heads,
                         (long long)c->head_dim, (long long)(c->num_heads * c->head_dim),
                         LLAMA_MAX_DIM);
    if (c->num_heads % c->num_kv_heads != 0)
        return aspo_fail(ASPO_ERR_FORMAT, "%s: num_attention_heads %lld is not a multiple of "
                         "num_key_value_heads %lld", where, (long long)c->num_heads,
                         (long long)c->num_kv_heads);
    if (c->head_dim % 2 != 0)
        return aspo_fail(ASPO_ERR_FORMAT, "%s: head size %lld is odd; rotary embeddings need it "
                         "even", where, (long long)c->head_dim);
    return ASPO_OK;
}

static aspo_status check_numbers(const llama_config *c, const char *where)
{
    if (!(c->rms_norm_eps >= 0) || isinf(c->rms_norm_eps))
        return aspo_fail(ASPO_ERR_FORMAT, "%s: rms_norm_eps %g must be >= 0", where,
                         c->rms_norm_eps);
    if (!(c->rope_theta > 0) || isinf(c->rope_theta))
        return aspo_fail(ASPO_ERR_FORMAT, "%s: rope_theta %g must be > 0", where, c->rope_theta);
    return ASPO_OK;
}

/* The size fields as given (kv heads default to the heads); nothing is derived yet. */
static aspo_status read_sizes(const json_t *obj, const char *where, llama_config *c)
{
    aspo_status s = ASPO_OK;
    if (!s) s = get_int(obj, where, "hidden_size", true, &c->hidden_size);
    if (!s) s = get_int(obj, where, "intermediate_size", true, &c->intermediate_size);
    if (!s) s = get_int(obj, where, "num_hidden_layers", true, &c->num_layers);
    if (!s) s = get_int(obj, where, "num_attention_heads", true, &c->num_heads);
    if (!s) s = get_int(obj, where, "vocab_size", true, &c->vocab_size);
    if (!s) s = get_number(obj, where, "rms_norm_eps", true, &c->rms_norm_eps);
    if (s) return s;
    c->num_kv_heads = c->num_heads;
    if (!s) s = get_int(obj, where, "num_key_value_heads", false, &c->num_kv_heads);
    if (!s) s = get_int(obj, where, "head_dim", false, &c->head_dim);
    if (!s) s = get_int(obj, where, "max_position_embeddings", false,
                        &c->max_position_embeddings);
    return s;
}

aspo_status llama_config_from_json(const struct json_t *obj_in, const char *where,
                                   llama_config *c)
{
    const json_t *obj = obj_in;
    *c = (llama_config){.rope_theta = 10000.0, .rope_linear_factor = 1.0,
                        .max_position_embeddings = 2048, .bos_token_id = 1, .pad_token_id = -1,
                        .eos_token_ids = {2}, .n_eos = 1, .torch_dtype = -1};
    if (!json_is_object(obj))
        return aspo_fail(ASPO_ERR_FORMAT, "%s: the config is not a JSON object", where);
    json_t *head_dim = json_object_get(obj, "head_dim");
    aspo_status s = read_sizes(obj, where, c);
    if (!s) s = check_supported(obj, where);
    if (!s) s = check_sizes(c, where, head_dim && !json_is_null(head_dim));
    if (!s) s = get_number(obj, where, "rope_theta", false, &c->rope_theta);
    if (!s) s = get_bool(obj, where, "tie_word_embeddings", &c->tie_word_embeddings);
    if (!s) s = get_bool(obj, where, "attention_bias", &c->attention_bias);
    if (!s) s = get_bool(obj, where, "mlp_bias", &c->mlp_bias);
    if (!s) s = get_token(obj, where, "bos_token_id", c->vocab_size, &c->bos_token_id);
    if (!s) s = get_token(obj, where, "pad_token_id", c->vocab_size, &c->pad_token_id);
    if (!s) s = get_eos(obj, where, c);
    if (!s) s = get_rope_scaling(obj, where, c);
    if (s) return s;
    json_t *dt = json_object_get(obj, "torch_dtype");
    if (json_is_string(dt)) {
        const char *n = json_string_value(dt);
        c->torch_dtype = !strcmp(n, "float32") ? DT_F32 : !strcmp(n, "bfloat16") ? DT_BF16
                         : !strcmp(n, "float16") ? DT_F16 : -1;
    }
    return check_numbers(c, where);
}

aspo_status llama_config_load(const char *path, llama_config *c)
{
    json_t *root = json_file_load(path, "model config");
    if (!root) {
        *c = (llama_config){0};
        return aspo_error_status();
    }
    aspo_status s = llama_config_from_json(root, path, c);
    json_decref(root);
    return s;
}

aspo_status llama_config_fill_defaults(json_t *tc, const char *where)
{
    static const struct { const char *key; long long v; } ints[] = {
        {"vocab_size", 32000},       {"hidden_size", 4096},       {"intermediate_size", 11008},
        {"num_hidden_layers", 32},   {"num_attention_heads", 32},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++)
        if (!json_object_get(tc, ints[i].key))
            bad |= json_object_set_new(tc, ints[i].key, json_integer(ints[i].v));
    if (!json_object_get(tc, "rms_norm_eps"))
        bad |= json_object_set_new(tc, "rms_norm_eps", json_real(1e-6));
    /* llama_config_from_json reads model_type "llama" only; the container's type is ours. */
    bad |= json_object_set_new(tc, "model_type", json_string("llama"));
    return bad ? aspo_fail(ASPO_ERR_OOM, "%s: out of memory", where) : ASPO_OK;
}
