/* InstructBLIP's vision encoder: its config, its parameters and its forward pass. */
#include "models/blip_vision.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "tensor/tensor_ops.h"

void blip_vision_defaults(blip_vision_config *c)
{
    clip_vision_defaults(&c->tower);
    c->tower.hidden_size = 1408;
    c->tower.intermediate_size = 6144;
    c->tower.num_layers = 39;
    c->tower.num_heads = 16;
    c->tower.image_size = 224;
    c->tower.patch_size = 14;
    c->tower.act = CLIP_GELU;
    c->tower.layer_norm_eps = 1e-6;
    c->qkv_bias = true;
}

aspo_status blip_vision_config_from_json(const json_t *obj, const char *where,
                                         blip_vision_config *c)
{
    blip_vision_defaults(c);
    aspo_status s = clip_tower_config_update(obj, where, true, &c->tower);
    if (s) return s;
    json_t *bias = json_object_get(obj, "qkv_bias");
    if (bias && !json_is_boolean(bias))
        return aspo_fail(ASPO_ERR_FORMAT, "%s: field \"qkv_bias\" must be true or false", where);
    if (bias) c->qkv_bias = json_is_true(bias);
    return ASPO_OK;
}

int64_t blip_vision_positions(const blip_vision_config *c)
{
    int64_t g = c->tower.image_size / c->tower.patch_size;
    return g * g + 1;
}

aspo_status blip_vision_declare(blip_vision *v, param_store *ps, const char *prefix,
                                const blip_vision_config *c, dtype dt)
{
    memset(v, 0, sizeof *v);
    v->cfg = *c;
    const clip_tower_config *t = &c->tower;
    int64_t C = t->hidden_size, I = t->intermediate_size, P = t->patch_size;
    float eps = (float)t->layer_norm_eps;
    char name[320];
#define NAME(...) (snprintf(name, sizeof name, __VA_ARGS__), name)
    v->class_embedding = param_declare(ps, NAME("%s.embeddings.class_embedding", prefix), dt,
                                       DIMS(1, 1, C), false);
    v->patch_weight = param_declare(ps, NAME("%s.embeddings.patch_embedding.weight", prefix), dt,
                                    DIMS(C, t->num_channels, P, P), false);
    v->patch_bias = param_declare(ps, NAME("%s.embeddings.patch_embedding.bias", prefix), dt,
                                  DIMS(C), false);
    v->position_embedding = param_declare(ps, NAME("%s.embeddings.position_embedding", prefix),
                                          dt, DIMS(1, blip_vision_positions(c), C), false);
    if (!v->class_embedding || !v->patch_weight || !v->patch_bias || !v->position_embedding)
        return aspo_error_status();
    v->layers = calloc((size_t)t->num_layers, sizeof *v->layers);
    if (!v->layers) return aspo_fail(ASPO_ERR_OOM, "no host memory for %s layers", prefix);
    aspo_status s = ASPO_OK;
    for (int64_t i = 0; i < t->num_layers && !s; i++) {
        blip_vision_layer *L = &v->layers[i];
        const struct { linear *l; const char *sub; int64_t in, out; bool bias; } lin[] = {
            {&L->qkv, "self_attn.qkv", C, 3 * C, c->qkv_bias},
            {&L->proj, "self_attn.projection", C, C, true},
            {&L->fc1, "mlp.fc1", C, I, true},
            {&L->fc2, "mlp.fc2", I, C, true},
        };
        for (size_t k = 0; k < sizeof lin / sizeof *lin && !s; k++)
            s = linear_declare(lin[k].l, ps, NAME("%s.encoder.layers.%lld.%s", prefix,
                                                  (long long)i, lin[k].sub),
                               lin[k].in, lin[k].out, lin[k].bias, dt, false);
        if (!s) s = layernorm_declare(&L->ln1, ps, NAME("%s.encoder.layers.%lld.layer_norm1",
                                                        prefix, (long long)i), C, eps, dt, false);
        if (!s) s = layernorm_declare(&L->ln2, ps, NAME("%s.encoder.layers.%lld.layer_norm2",
                                                        prefix, (long long)i), C, eps, dt, false);
    }
    if (!s) s = layernorm_declare(&v->post_ln, ps, NAME("%s.post_layernorm", prefix), C, eps, dt,
                                  false);
#undef NAME
    return s;
}

void blip_vision_free(blip_vision *v)
{
    free(v->layers);
    memset(v, 0, sizeof *v);
}

/* A parameter as f32 for adding to activations. */
static tensor *as_f32(tensor *t) { return t && t->dt != DT_F32 ? tensor_cast(t, DT_F32) : t; }

/* One pre-LN encoder layer (InstructBlipEncoderLayer), x (B,T,C) -> (B,T,C). */
static tensor *encoder_layer(const clip_tower_config *c, const blip_vision_layer *L, tensor *x)
{
    if (!x) return NULL;
    int64_t B = x->shape[0], T = x->shape[1], C = c->hidden_size, H = c->num_heads,
            D = c->head_dim;
    const int perm[] = {0, 2, 1, 3};
    tensor *h = layernorm_forward(&L->ln1, x);                                   /* (B,T,C)  */
    tensor *qkv = linear_forward(&L->qkv, h);                                     /* (B,T,3C) */
    tensor *heads[3];
    for (int i = 0; i < 3; i++) /* q, k, v: thirds of the last dim, each (B,H,T,D) */
        heads[i] = tensor_permute(tensor_reshape(tensor_contiguous(tensor_slice(qkv, 2, i * C, C)),
                                                 DIMS(B, T, H, D)), perm);
    tensor *a = tensor_attention(heads[0], heads[1], heads[2], NULL, false,
                                 1.0f / sqrtf((float)D));                        /* (B,H,T,D) */
    a = tensor_reshape(tensor_permute(a, perm), DIMS(B, T, C));
    x = tensor_add(x, linear_forward(&L->proj, a));
    h = layernorm_forward(&L->ln2, x);
    h = linear_forward(&L->fc2, clip_activation(c->act, linear_forward(&L->fc1, h)));
    return tensor_add(x, h);
}

tensor *blip_vision_forward(const blip_vision *v, tensor *pixels)
{
    if (!pixels) return NULL;
    const clip_tower_config *c = &v->cfg.tower;
    int64_t C = c->hidden_size, P = c->patch_size, S = c->image_size;
    char buf[96];
    if (pixels->ndim != 4 || pixels->dt != DT_F32 || pixels->shape[0] < 1 ||
        pixels->shape[1] != c->num_channels || pixels->shape[2] != S || pixels->shape[3] != S) {
        aspo_fail(ASPO_ERR_SHAPE, "blip vision: pixels %s must be (B,%lld,%lld,%lld) f32",
                  tensor_describe(pixels, buf, sizeof buf), (long long)c->num_channels,
                  (long long)S, (long long)S);
        return NULL;
    }
    int64_t B = pixels->shape[0], T = blip_vision_positions(&v->cfg);
    tensor *w = tensor_reshape(v->patch_weight, DIMS(C, c->num_channels * P * P));
    tensor *x = tensor_matmul(clip_unfold_patches(pixels, P), tensor_transpose(w, -1, -2));
    x = tensor_add(x, as_f32(v->patch_bias));                                   /* (B,N,C)   */
    tensor *cls = tensor_contiguous(tensor_expand(as_f32(v->class_embedding), DIMS(B, 1, C)));
    x = tensor_concat((tensor *[]){cls, x}, 2, 1);                              /* (B,1+N,C) */
    x = tensor_add(x, tensor_reshape(as_f32(v->position_embedding), DIMS(T, C)));
    for (int64_t l = 0; l < c->num_layers && x; l++) x = encoder_layer(c, &v->layers[l], x);
    return layernorm_forward(&v->post_ln, x);                                   /* (B,1+N,C) */
}
