/* CLIP: declaring the towers from config.json, loading HF weights, and the forward passes
 * as transformers' CLIPModel (get_image_features, get_text_features, logits). */
#define _POSIX_C_SOURCE 200809L /* strdup */
#include "clip.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/weights.h"
#include "tensor/runtime.h"
#include "tensor/tensor_ops.h"

/* ---- declaring ---- */

static aspo_status declare_layers(clip_model *m, const clip_tower_config *c, const char *tower,
                                  clip_layer **out)
{
    int64_t C = c->hidden_size, I = c->intermediate_size;
    dtype dt = m->storage_dt;
    float eps = (float)c->layer_norm_eps;
    clip_layer *layers = calloc((size_t)(c->num_layers > 0 ? c->num_layers : 1), sizeof *layers);
    if (!layers) return aspo_fail(ASPO_ERR_OOM, "no host memory for %s layers", tower);
    *out = layers;
    aspo_status s = ASPO_OK;
    char name[256];
    for (int64_t i = 0; i < c->num_layers && !s; i++) {
        clip_layer *L = &layers[i];
        const struct { linear *l; const char *sub; int64_t in, out; } lin[] = {
            {&L->q, "self_attn.q_proj", C, C},   {&L->k, "self_attn.k_proj", C, C},
            {&L->v, "self_attn.v_proj", C, C},   {&L->o, "self_attn.out_proj", C, C},
            {&L->fc1, "mlp.fc1", C, I},          {&L->fc2, "mlp.fc2", I, C},
        };
        for (size_t k = 0; k < sizeof lin / sizeof *lin && !s; k++) {
            snprintf(name, sizeof name, "%s.encoder.layers.%lld.%s", tower, (long long)i,
                     lin[k].sub);
            s = linear_declare(lin[k].l, &m->ps, name, lin[k].in, lin[k].out, true, dt, false);
        }
        snprintf(name, sizeof name, "%s.encoder.layers.%lld.layer_norm1", tower, (long long)i);
        if (!s) s = layernorm_declare(&L->ln1, &m->ps, name, C, eps, dt, false);
        snprintf(name, sizeof name, "%s.encoder.layers.%lld.layer_norm2", tower, (long long)i);
        if (!s) s = layernorm_declare(&L->ln2, &m->ps, name, C, eps, dt, false);
    }
    return s;
}

static aspo_status declare_vision(clip_model *m, const st_model *st, const char *key_prefix)
{
    const clip_tower_config *c = &m->cfg.vision;
    int64_t C = c->hidden_size, P = c->patch_size, g = c->image_size / P;
    dtype dt = m->storage_dt;
    float eps = (float)c->layer_norm_eps;
    m->patch_weight = param_declare(&m->ps, "vision_model.embeddings.patch_embedding.weight", dt,
                                    DIMS(C, c->num_channels, P, P), false);
    m->class_embedding = param_declare(&m->ps, "vision_model.embeddings.class_embedding", dt,
                                       DIMS(C), false);
    if (!m->patch_weight || !m->class_embedding) return aspo_error_status();
    aspo_status s = embedding_declare(&m->vision_pos, &m->ps,
                                      "vision_model.embeddings.position_embedding", g * g + 1, C,
                                      dt, false);
    if (!s) s = layernorm_declare(&m->pre_ln, &m->ps, "vision_model.pre_layrnorm", C, eps, dt,
                                  false);
    if (!s) s = declare_layers(m, c, "vision_model", &m->vision_layers);
    if (!s) s = layernorm_declare(&m->post_ln, &m->ps, "vision_model.post_layernorm", C, eps, dt,
                                  false);
    char key[512];
    snprintf(key, sizeof key, "%svisual_projection.weight", key_prefix);
    const st_entry *proj = st_find(st, key);
    /* Without a checkpoint (a plan from config.json) a CLIPModel config has it. */
    m->has_visual_projection = st->n_files ? proj != NULL : m->cfg.has_text;
    /* A bare CLIPVisionConfig carries its own default projection_dim (512) whatever the
     * CLIPModel used: there the file's (E,C) says it. */
    int64_t E = !m->cfg.has_text && proj && proj->ndim == 2 ? proj->shape[0]
                                                           : m->cfg.projection_dim;
    if (!s && m->has_visual_projection)
        s = linear_declare(&m->visual_projection, &m->ps, "visual_projection", C, E, false, dt,
                           false);
    return s;
}

static aspo_status declare_text(clip_model *m)
{
    const clip_tower_config *c = &m->cfg.text;
    int64_t C = c->hidden_size;
    dtype dt = m->storage_dt;
    aspo_status s = embedding_declare(&m->token_embedding, &m->ps,
                                      "text_model.embeddings.token_embedding", c->vocab_size, C,
                                      dt, false);
    if (!s) s = embedding_declare(&m->text_pos, &m->ps, "text_model.embeddings.position_embedding",
                                  c->max_position_embeddings, C, dt, false);
    if (!s) s = declare_layers(m, c, "text_model", &m->text_layers);
    if (!s) s = layernorm_declare(&m->final_ln, &m->ps, "text_model.final_layer_norm", C,
                                  (float)c->layer_norm_eps, dt, false);
    if (!s) s = linear_declare(&m->text_projection, &m->ps, "text_projection", C,
                               m->cfg.projection_dim, false, dt, false);
    return s;
}

/* After the config: declare, allocate and load from dir's checkpoint, whose keys are
 * key_prefix + the parameter names. */
static aspo_status open_weights(clip_model *m, const char *dir, const char *key_prefix,
                                const clip_open_options *o, st_model *st)
{
    aspo_status s = ASPO_OK;
    if (!o->skip_weights && (s = st_open(dir, st))) return s;
    if (o->skip_weights && st_open(dir, st)) aspo_error_clear(); /* a plan: header if any */
    if (!(m->dir = strdup(dir))) return aspo_fail(ASPO_ERR_OOM, "out of memory");
    int storage_dtype = o->storage_dtype;
    if (storage_dtype >= 0 && !dtype_is_float((dtype)storage_dtype))
        return aspo_fail(ASPO_ERR_USAGE, "storage dtype %s: CLIP weights are f32, bf16 or f16",
                         dtype_name((dtype)storage_dtype));
    char key[512];
    snprintf(key, sizeof key, "%svision_model.embeddings.patch_embedding.weight", key_prefix);
    if (st->n_files && !st_find(st, key))
        return aspo_fail(ASPO_ERR_FORMAT, "%s: the checkpoint has no vision tower weights (no "
                         "%s)", dir, key);
    int dt = storage_dtype >= 0 ? storage_dtype
             : st->n_files      ? weights_file_dtype(st, key)
                                : weights_config_dtype(dir);
    if (dt < 0) return aspo_error_status();
    m->storage_dt = (dtype)dt;
    param_store_init(&m->ps, runtime_backend());
    if ((s = declare_vision(m, st, key_prefix))) return s;
    if (m->cfg.has_text && (s = declare_text(m))) return s;
    /* logit_scale is a 0-d tensor in the file; kept f32 whatever the storage dtype, since
     * exp() of a bf16-rounded value moves every logit. */
    snprintf(key, sizeof key, "%slogit_scale", key_prefix);
    if (m->cfg.has_text && (st_find(st, key) || !st->n_files) &&
        !(m->logit_scale = param_declare(&m->ps, "logit_scale", DT_F32, 0,
                                         (const int64_t[]){1} /* unread for 0-d */, false)))
        return aspo_error_status();
    if ((s = param_store_allocate(&m->ps))) return s;
    if (o->skip_weights) return ASPO_OK; /* a plan: shapes and bytes only */
    return weights_load_store(&m->ps, st, key_prefix, NULL, NULL);
}

aspo_status clip_open_with(const char *dir, const clip_open_options *o, clip_model *m)
{
    memset(m, 0, sizeof *m);
    st_model st = {0};
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    aspo_status s = clip_config_load(path, &m->cfg);
    if (!s) s = open_weights(m, dir, "", o, &st);
    st_close(&st);
    if (s) clip_close(m);
    return s;
}

aspo_status clip_open(const char *dir, int storage_dtype, clip_model *m)
{
    return clip_open_with(dir, &(clip_open_options){.storage_dtype = storage_dtype}, m);
}

aspo_status clip_open_vision_with(const struct json_t *vision_config, const char *where,
                                  const char *dir, const char *key_prefix,
                                  const clip_open_options *o, clip_model *m)
{
    memset(m, 0, sizeof *m);
    st_model st = {0};
    aspo_status s = clip_vision_config_from_json(vision_config, where, &m->cfg);
    if (!s) s = open_weights(m, dir, key_prefix ? key_prefix : "", o, &st);
    st_close(&st);
    if (s) clip_close(m);
    return s;
}

aspo_status clip_open_vision(const struct json_t *vision_config, const char *where,
                             const char *dir, const char *key_prefix, int storage_dtype,
                             clip_model *m)
{
    return clip_open_vision_with(vision_config, where, dir, key_prefix,
                                 &(clip_open_options){.storage_dtype = storage_dtype}, m);
}

void clip_close(clip_model *m)
{
    free(m->dir);
    param_store_free(&m->ps);
    free(m->vision_layers);
    free(m->text_layers);
    memset(m, 0, sizeof *m);
}

int clip_vision_num_hidden(const clip_model *m) { return (int)m->cfg.vision.num_layers + 1; }

/* ---- encoder ---- */

tensor *clip_activation(clip_act act, tensor *x)
{
    switch (act) {
    case CLIP_GELU: return tensor_gelu(x);
    case CLIP_GELU_TANH: return tensor_gelu_tanh(x);
    default: return tensor_quick_gelu(x);
    }
}

/* A parameter as f32 for adding to activations (a no-op copy when already f32 is avoided). */
static tensor *as_f32(tensor *t) { return t && t->dt != DT_F32 ? tensor_cast(t, DT_F32) : t; }

/* One pre-LN encoder layer (CLIPEncoderLayer), x (B,T,C) -> (B,T,C). */
static tensor *encoder_layer(const clip_tower_config *c, const clip_layer *L, tensor *x,
                             tensor *key_mask, bool causal)
{
    if (!x) return NULL;
    int64_t B = x->shape[0], T = x->shape[1], H = c->num_heads, D = c->head_dim;
    const int perm[] = {0, 2, 1, 3};
    tensor *h = layernorm_forward(&L->ln1, x);                                     /* (B,T,C)   */
    tensor *q = tensor_permute(tensor_reshape(linear_forward(&L->q, h), DIMS(B, T, H, D)), perm);
    tensor *k = tensor_permute(tensor_reshape(linear_forward(&L->k, h), DIMS(B, T, H, D)), perm);
    tensor *v = tensor_permute(tensor_reshape(linear_forward(&L->v, h), DIMS(B, T, H, D)), perm);
    tensor *a = tensor_attention(q, k, v, key_mask, causal, 1.0f / sqrtf((float)D)); /* (B,H,T,D) */
    a = tensor_reshape(tensor_permute(a, perm), DIMS(B, T, H * D));
    x = tensor_add(x, linear_forward(&L->o, a));
    h = layernorm_forward(&L->ln2, x);
    h = linear_forward(&L->fc2, clip_activation(c->act, linear_forward(&L->fc1, h)));    /* (B,T,C)   */
    return tensor_add(x, h);
}

/* ---- vision ---- */

/* On the host, since the 6-D reshape the unfold needs exceeds the tensors' 4 dims. */
tensor *clip_unfold_patches(tensor *pixels, int64_t P)
{
    int64_t B = pixels->shape[0], ch = pixels->shape[1], H = pixels->shape[2],
            W = pixels->shape[3], gh = H / P, gw = W / P, K = ch * P * P;
    size_t n = (size_t)(B * ch * H * W);
    float *src = malloc(n * sizeof *src), *dst = malloc(n * sizeof *dst);
    tensor *out = NULL;
    if (!src || !dst) {
        aspo_fail(ASPO_ERR_OOM, "clip: no host memory to unfold %lld images", (long long)B);
    } else if (!tensor_to_host_f32(pixels, src)) {
        for (int64_t b = 0; b < B; b++)
            for (int64_t py = 0; py < gh; py++)
                for (int64_t px = 0; px < gw; px++) {
                    float *row = dst + ((b * gh + py) * gw + px) * K;
                    for (int64_t c = 0; c < ch; c++)
                        for (int64_t y = 0; y < P; y++)
                            for (int64_t x = 0; x < P; x++)
                                row[(c * P + y) * P + x] =
                                    src[((b * ch + c) * H + py * P + y) * W + px * P + x];
                }
        out = tensor_from_host(DT_F32, DIMS(B, gh * gw, K), dst);
    }
    free(src);
    free(dst);
    return out;
}

/* Checks pixels and want_layer (Python-style index into hidden_states; resolved into
 * *want) and returns hidden_states[0]: patch embedding, class token, positions,
 * pre_layrnorm (B,1+N,C). */
static tensor *vision_embeddings(clip_model *m, tensor *pixels, int want_layer, bool need_want,
                                 int *want)
{
    const clip_tower_config *c = &m->cfg.vision;
    int64_t C = c->hidden_size, P = c->patch_size, S = c->image_size;
    char buf[96];
    if (pixels->ndim != 4 || pixels->dt != DT_F32 || pixels->shape[0] < 1 ||
        pixels->shape[1] != c->num_channels || pixels->shape[2] != S || pixels->shape[3] != S) {
        aspo_fail(ASPO_ERR_SHAPE, "clip: pixels %s must be (B,%lld,%lld,%lld) f32",
                  tensor_describe(pixels, buf, sizeof buf), (long long)c->num_channels,
                  (long long)S, (long long)S);
        return NULL;
    }
    int n_hidden = clip_vision_num_hidden(m);
    *want = want_layer < 0 ? want_layer + n_hidden : want_layer;
    if (need_want && (*want < 0 || *want >= n_hidden)) {
        aspo_fail(ASPO_ERR_USAGE, "clip: hidden state %d does not exist (the vision tower has "
                  "%d: 0..%d or -%d..-1)", want_layer, n_hidden, n_hidden - 1, n_hidden);
        return NULL;
    }
    int64_t B = pixels->shape[0];
    tensor *w = tensor_reshape(m->patch_weight, DIMS(C, c->num_channels * P * P));
    tensor *x = tensor_matmul(clip_unfold_patches(pixels, P), tensor_transpose(w, -1, -2)); /* (B,N,C) */
    tensor *cls = tensor_contiguous(tensor_expand(
        tensor_reshape(as_f32(m->class_embedding), DIMS(1, 1, C)), DIMS(B, 1, C)));
    x = tensor_concat((tensor *[]){cls, x}, 2, 1);                             /* (B,1+N,C) */
    x = tensor_add(x, as_f32(m->vision_pos.weight));                            /* + (1+N,C) */
    return layernorm_forward(&m->pre_ln, x);                  /* hidden_states[0] */
}

tensor *clip_vision_forward(clip_model *m, tensor *pixels, int want_layer,
                            tensor **hidden_of_layer)
{
    if (hidden_of_layer) *hidden_of_layer = NULL;
    if (!pixels) return NULL;
    const clip_tower_config *c = &m->cfg.vision;
    int want = 0;
    tensor *x = vision_embeddings(m, pixels, want_layer, hidden_of_layer != NULL, &want);
    if (hidden_of_layer && want == 0) *hidden_of_layer = x;
    for (int64_t l = 0; l < c->num_layers && x; l++) {
        x = encoder_layer(c, &m->vision_layers[l], x, NULL, false);
        if (hidden_of_layer && want == l + 1) *hidden_of_layer = x;
    }
    if (!x) return NULL;
    /* pooler_output: post_layernorm of the class token. */
    int64_t B = x->shape[0], C = c->hidden_size;
    tensor *pooled = layernorm_forward(&m->post_ln, tensor_reshape(tensor_slice(x, 1, 0, 1),
                                                                   DIMS(B, C)));  /* (B,C) */
    if (!pooled) {
        if (hidden_of_layer) *hidden_of_layer = NULL;
        return NULL;
    }
    return m->has_visual_projection ? linear_forward(&m->visual_projection, pooled) : pooled;
}

tensor *clip_vision_hidden(clip_model *m, tensor *pixels, int want_layer)
{
    if (!pixels) return NULL;
    int want = 0;
    tensor *x = vision_embeddings(m, pixels, want_layer, true, &want);
    for (int64_t l = 0; l < want && x; l++)
        x = encoder_layer(&m->cfg.vision, &m->vision_layers[l], x, NULL, false);
    return x;
}

/* ---- text ---- */

/* Row b's pooling position: transformers' rule (first eos id, or argmax for eos id 2). */
static aspo_status pool_positions(const clip_tower_config *c, const int32_t *ids, int64_t B,
                                  int64_t T, int32_t *rows)
{
    for (int64_t b = 0; b < B; b++) {
        const int32_t *r = ids + b * T;
        int64_t at = -1;
        for (int64_t t = 0; t < T; t++) {
            if (r[t] < 0 || r[t] >= c->vocab_size)
                return aspo_fail(ASPO_ERR_USAGE, "clip: ids[%lld][%lld] = %d is outside the "
                                 "vocabulary (%lld)", (long long)b, (long long)t, r[t],
                                 (long long)c->vocab_size);
            if (c->eos_token_id == 2) { /* legacy configs: the end token has the largest id */
                if (at < 0 || r[t] > r[at]) at = t;
            } else if (at < 0 && r[t] == c->eos_token_id) {
                at = t;
            }
        }
        if (at < 0)
            return aspo_fail(ASPO_ERR_USAGE, "clip: ids row %lld has no end token %d",
                             (long long)b, c->eos_token_id);
        rows[b] = (int32_t)(b * T + at);
    }
    return ASPO_OK;
}

tensor *clip_text_forward(clip_model *m, tensor *ids, tensor *key_mask)
{
    if (!ids) return NULL;
    char buf[96];
    if (!m->cfg.has_text) {
        aspo_fail(ASPO_ERR_USAGE, "clip: this model has no text tower (a bare vision config)");
        return NULL;
    }
    const clip_tower_config *c = &m->cfg.text;
    if (ids->ndim != 2 || ids->dt != DT_I32 || ids->shape[0] < 1 || ids->shape[1] < 1 ||
        ids->shape[1] > c->max_position_embeddings) {
        aspo_fail(ASPO_ERR_SHAPE, "clip: ids %s must be (B,T) i32 with T <= %lld",
                  tensor_describe(ids, buf, sizeof buf), (long long)c->max_position_embeddings);
        return NULL;
    }
    int64_t B = ids->shape[0], T = ids->shape[1], C = c->hidden_size;
    int32_t *host = malloc(sizeof(int32_t) * (size_t)(B * T + B));
    if (!host) {
        aspo_fail(ASPO_ERR_OOM, "clip: no host memory for ids");
        return NULL;
    }
    tensor *rows = NULL;
    if (!tensor_to_host(ids, host) && !pool_positions(c, host, B, T, host + B * T))
        rows = tensor_from_host(DT_I32, DIMS(B), host + B * T);
    free(host);
    if (!rows) return NULL;
    tensor *x = tensor_add(embedding_forward(&m->token_embedding, ids),
                           as_f32(tensor_slice(m->text_pos.weight, 0, 0, T)));  /* (B,T,C) */
    for (int64_t l = 0; l < c->num_layers && x; l++)
        x = encoder_layer(c, &m->text_layers[l], x, key_mask, true);
    x = layernorm_forward(&m->final_ln, x);
    /* Gather row b*T + pos_b of (B*T,C): the embedding op is a differentiable row gather. */
    tensor *pooled = tensor_embedding(tensor_reshape(x, DIMS(B * T, C)), rows); /* (B,C) */
    return linear_forward(&m->text_projection, pooled);                          /* (B,E) */
}

tensor *clip_logits(tensor *image_embeds, tensor *text_embeds, tensor *logit_scale)
{
    if (!image_embeds || !text_embeds || !logit_scale) return NULL;
    /* x / ||x|| as CLIPModel; the eps only guards an all-zero row. */
    tensor *img = tensor_l2_normalize(image_embeds, 1e-12f);                  /* (Bi,E) */
    tensor *txt = tensor_l2_normalize(text_embeds, 1e-12f);                   /* (Bt,E) */
    tensor *scale = tensor_exp(tensor_reshape(as_f32(logit_scale), DIMS(1, 1)));
    return tensor_mul(tensor_matmul(img, tensor_transpose(txt, -1, -2)), scale); /* (Bi,Bt) */
}
