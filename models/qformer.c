/* InstructBLIP's Q-Former: its config, its parameters and its forward pass. */
#include "models/qformer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "tensor/json_file.h"
#include "tensor/runtime.h"
#include "tensor/tensor_ops.h"

/* Bounds as CLIP's and LLaMA's (every product of sizes far from wrapping 64 bits); the
 * released Q-Former is BERT-base: 768 wide, 12 layers, 30522 (+1) tokens, 512 positions. */
enum { QFORMER_MAX_DIM = 1 << 20, QFORMER_MAX_LAYERS = 4096, QFORMER_MAX_VOCAB = 1 << 24 };

void qformer_defaults(qformer_config *c)
{
    *c = (qformer_config){.vocab_size = 30522, .hidden_size = 768, .intermediate_size = 3072,
                          .num_layers = 12, .num_heads = 12, .max_position_embeddings = 512,
                          .cross_attention_frequency = 2, .encoder_hidden_size = 1408,
                          .pad_token_id = 0, .layer_norm_eps = 1e-12, .act = CLIP_GELU};
}

aspo_status qformer_config_from_json(const json_t *obj, const char *where,
                                     int64_t encoder_hidden_size, qformer_config *c)
{
    qformer_defaults(c);
    if (!json_is_object(obj))
        return aspo_fail(ASPO_ERR_FORMAT, "%s: must be a JSON object", where);
    const struct { const char *key; int64_t *v; int64_t max; } f[] = {
        {"vocab_size", &c->vocab_size, QFORMER_MAX_VOCAB},
        {"hidden_size", &c->hidden_size, QFORMER_MAX_DIM},
        {"intermediate_size", &c->intermediate_size, QFORMER_MAX_DIM},
        {"num_hidden_layers", &c->num_layers, QFORMER_MAX_LAYERS},
        {"num_attention_heads", &c->num_heads, QFORMER_MAX_DIM},
        {"max_position_embeddings", &c->max_position_embeddings, QFORMER_MAX_DIM},
        {"cross_attention_frequency", &c->cross_attention_frequency, QFORMER_MAX_LAYERS},
    };
    aspo_status s = ASPO_OK;
    for (size_t i = 0; i < sizeof f / sizeof *f && !s; i++)
        s = json_read_int(obj, where, f[i].key, 1, f[i].max, f[i].v);
    if (!s) s = json_read_int(obj, where, "pad_token_id", 0, c->vocab_size - 1, &c->pad_token_id);
    if (!s) s = json_read_number(obj, where, "layer_norm_eps", &c->layer_norm_eps);
    if (s) return s;
    if (c->hidden_size % c->num_heads)
        return aspo_fail(ASPO_ERR_FORMAT, "%s: hidden_size %lld is not divisible by "
                         "num_attention_heads %lld", where, (long long)c->hidden_size,
                         (long long)c->num_heads);
    if (!(c->layer_norm_eps >= 0))
        return aspo_fail(ASPO_ERR_FORMAT, "%s: \"layer_norm_eps\" = %g must be >= 0", where,
                         c->layer_norm_eps);
    json_t *pe = json_object_get(obj, "position_embedding_type");
    if (pe && !json_is_null(pe) &&
        (!json_is_string(pe) || strcmp(json_string_value(pe), "absolute")))
        return aspo_fail(ASPO_ERR_UNSUPPORTED, "%s: position_embedding_type %s is not supported "
                         "(absolute)", where,
                         json_is_string(pe) ? json_string_value(pe) : "(not a string)");
    json_t *act = json_object_get(obj, "hidden_act");
    if (act && !json_is_null(act) && !clip_act_from_name(json_string_value(act), &c->act))
        return aspo_fail(ASPO_ERR_UNSUPPORTED, "%s: hidden_act %s is not supported (gelu, "
                         "gelu_new, gelu_pytorch_tanh, quick_gelu)", where,
                         json_is_string(act) ? json_string_value(act) : "(not a string)");
    c->encoder_hidden_size = encoder_hidden_size;
    c->head_dim = c->hidden_size / c->num_heads;
    return ASPO_OK;
}

/* ---- declaring ---- */

static aspo_status declare_attention(qformer_attention *a, param_store *ps, const char *name,
                                     int64_t C, int64_t kv_in, float eps, dtype dt)
{
    char sub[400];
    const struct { linear *l; const char *suffix; int64_t in; } lin[] = {
        {&a->query, "attention.query", C}, {&a->key, "attention.key", kv_in},
        {&a->value, "attention.value", kv_in}, {&a->dense, "output.dense", C},
    };
    aspo_status s = ASPO_OK;
    for (size_t k = 0; k < sizeof lin / sizeof *lin && !s; k++) {
        snprintf(sub, sizeof sub, "%s.%s", name, lin[k].suffix);
        s = linear_declare(lin[k].l, ps, sub, lin[k].in, C, true, dt, false);
    }
    snprintf(sub, sizeof sub, "%s.output.LayerNorm", name);
    return s ? s : layernorm_declare(&a->ln, ps, sub, C, eps, dt, false);
}

static aspo_status declare_ffn(qformer_ffn *f, param_store *ps, const char *layer,
                               const char *suffix, int64_t C, int64_t I, float eps, dtype dt)
{
    char name[400];
    snprintf(name, sizeof name, "%s.intermediate%s.dense", layer, suffix);
    aspo_status s = linear_declare(&f->up, ps, name, C, I, true, dt, false);
    snprintf(name, sizeof name, "%s.output%s.dense", layer, suffix);
    if (!s) s = linear_declare(&f->down, ps, name, I, C, true, dt, false);
    snprintf(name, sizeof name, "%s.output%s.LayerNorm", layer, suffix);
    return s ? s : layernorm_declare(&f->ln, ps, name, C, eps, dt, false);
}

aspo_status qformer_declare(qformer *q, param_store *ps, const char *prefix,
                            const qformer_config *c, dtype dt)
{
    memset(q, 0, sizeof *q);
    q->cfg = *c;
    int64_t C = c->hidden_size, I = c->intermediate_size;
    float eps = (float)c->layer_norm_eps;
    char name[320], sub[360];
    snprintf(name, sizeof name, "%s.embeddings.word_embeddings", prefix);
    aspo_status s = embedding_declare(&q->words, ps, name, c->vocab_size, C, dt, false);
    snprintf(name, sizeof name, "%s.embeddings.position_embeddings", prefix);
    if (!s) s = embedding_declare(&q->positions, ps, name, c->max_position_embeddings, C, dt,
                                  false);
    snprintf(name, sizeof name, "%s.embeddings.layernorm", prefix);
    if (!s) s = layernorm_declare(&q->embed_ln, ps, name, C, eps, dt, false);
    if (s) return s;
    if (!(q->layers = calloc((size_t)c->num_layers, sizeof *q->layers)))
        return aspo_fail(ASPO_ERR_OOM, "no host memory for %s layers", prefix);
    for (int64_t i = 0; i < c->num_layers && !s; i++) {
        qformer_layer *L = &q->layers[i];
        snprintf(name, sizeof name, "%s.encoder.layer.%lld", prefix, (long long)i);
        snprintf(sub, sizeof sub, "%s.attention", name);
        s = declare_attention(&L->self, ps, sub, C, C, eps, dt);
        L->has_cross = i % c->cross_attention_frequency == 0;
        snprintf(sub, sizeof sub, "%s.crossattention", name);
        if (!s && L->has_cross)
            s = declare_attention(&L->cross, ps, sub, C, c->encoder_hidden_size, eps, dt);
        if (!s) s = declare_ffn(&L->text, ps, name, "", C, I, eps, dt);
        if (!s) s = declare_ffn(&L->query, ps, name, "_query", C, I, eps, dt);
    }
    return s;
}

void qformer_free(qformer *q)
{
    free(q->layers);
    memset(q, 0, sizeof *q);
}

/* ---- forward ---- */

/* BERT's attention block: LayerNorm(dense(attention(x -> kv)) + x), x (B,T,C), kv (B,S,Ckv)
 * (x itself for self-attention), key_mask (B,S) or NULL. */
static tensor *attention_block(const qformer_config *c, const qformer_attention *a, tensor *x,
                               tensor *kv, tensor *key_mask)
{
    if (!x || !kv) return NULL;
    int64_t B = x->shape[0], T = x->shape[1], S = kv->shape[1], H = c->num_heads,
            D = c->head_dim;
    const int perm[] = {0, 2, 1, 3};
    tensor *q = tensor_permute(tensor_reshape(linear_forward(&a->query, x), DIMS(B, T, H, D)),
                               perm);                                           /* (B,H,T,D) */
    tensor *k = tensor_permute(tensor_reshape(linear_forward(&a->key, kv), DIMS(B, S, H, D)),
                               perm);                                           /* (B,H,S,D) */
    tensor *v = tensor_permute(tensor_reshape(linear_forward(&a->value, kv), DIMS(B, S, H, D)),
                               perm);
    tensor *o = tensor_attention(q, k, v, key_mask, false, 1.0f / sqrtf((float)D)); /* (B,H,T,D) */
    o = tensor_reshape(tensor_permute(o, perm), DIMS(B, T, H * D));
    return layernorm_forward(&a->ln, tensor_add(linear_forward(&a->dense, o), x));
}

/* BERT's feed-forward block: LayerNorm(down(act(up(x))) + x). */
static tensor *ffn_block(const qformer_config *c, const qformer_ffn *f, tensor *x)
{
    tensor *h = linear_forward(&f->down, clip_activation(c->act, linear_forward(&f->up, x)));
    return layernorm_forward(&f->ln, tensor_add(h, x));
}

/* The layer's input embeddings: LayerNorm([queries; words(ids) + positions(0..L-1)]). */
static tensor *embed(const qformer *q, tensor *queries, tensor *ids, int64_t B)
{
    int64_t Q = queries->shape[1], C = q->cfg.hidden_size;
    tensor *x = tensor_contiguous(tensor_expand(queries->dt == DT_F32
                                                    ? queries
                                                    : tensor_cast(queries, DT_F32),
                                                DIMS(B, Q, C)));                /* (B,Q,C) */
    if (ids) {
        int64_t L = ids->shape[1];
        int32_t pos[L];
        for (int64_t t = 0; t < L; t++) pos[t] = (int32_t)t;
        tensor *p = embedding_forward(&q->positions, tensor_from_host(DT_I32, DIMS(L), pos));
        tensor *w = tensor_add(embedding_forward(&q->words, ids), p);           /* (B,L,C) */
        x = tensor_concat((tensor *[]){x, w}, 2, 1);                            /* (B,Q+L,C) */
    }
    return layernorm_forward(&q->embed_ln, x);
}

tensor *qformer_mask_with_queries(tensor *mask, int64_t Q)
{
    int64_t B = mask->shape[0];
    float *ones = arena_alloc(&runtime_current()->host, sizeof(float) * (size_t)(B * Q));
    if (!ones) return NULL;
    for (int64_t i = 0; i < B * Q; i++) ones[i] = 1.0f;
    tensor *m = mask->dt == DT_F32 ? mask : tensor_cast(mask, DT_F32);
    return tensor_concat((tensor *[]){tensor_from_host(DT_F32, DIMS(B, Q), ones), m}, 2, 1);
}

tensor *qformer_forward(const qformer *q, tensor *queries, tensor *ids, tensor *mask,
                        tensor *image)
{
    if (!queries || !image) return NULL;
    const qformer_config *c = &q->cfg;
    int64_t B = image->shape[0], Q = queries->shape[1], C = c->hidden_size;
    int64_t L = ids ? ids->shape[1] : 0;
    if (image->ndim != 3 || image->shape[2] != c->encoder_hidden_size || queries->ndim != 3 ||
        queries->shape[0] != 1 || queries->shape[2] != C || (ids && (ids->ndim != 2 ||
        ids->shape[0] != B || ids->dt != DT_I32))) {
        aspo_fail(ASPO_ERR_SHAPE, "qformer: want image (B,N,%lld), queries (1,Q,%lld) and ids "
                  "(B,L) i32", (long long)c->encoder_hidden_size, (long long)C);
        return NULL;
    }
    if (L > c->max_position_embeddings) {
        aspo_fail(ASPO_ERR_USAGE, "qformer: an instruction of %lld tokens is longer than the "
                  "Q-Former's %lld positions (max_position_embeddings)", (long long)L,
                  (long long)c->max_position_embeddings);
        return NULL;
    }
    tensor *key_mask = mask ? qformer_mask_with_queries(mask, Q) : NULL; /* (B,Q+L) */
    if (mask && !key_mask) return NULL;
    tensor *x = embed(q, queries, ids, B); /* (B,Q+L,C) */
    for (int64_t l = 0; l < c->num_layers && x; l++) {
        const qformer_layer *Ly = &q->layers[l];
        x = attention_block(c, &Ly->self, x, x, key_mask);
        if (!x) return NULL;
        tensor *qx = tensor_contiguous(tensor_slice(x, 1, 0, Q));               /* (B,Q,C) */
        if (Ly->has_cross) qx = attention_block(c, &Ly->cross, qx, image, NULL);
        qx = ffn_block(c, &Ly->query, qx);
        if (L) {
            tensor *tx = ffn_block(c, &Ly->text, tensor_contiguous(tensor_slice(x, 1, Q, L)));
            x = tensor_concat((tensor *[]){qx, tx}, 2, 1);                      /* (B,Q+L,C) */
        } else {
            x = qx;
        }
    }
    return x;
}
