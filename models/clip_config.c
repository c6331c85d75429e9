/* CLIP config.json, as transformers' CLIPConfig / CLIPVisionConfig / CLIPTextConfig read it. */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "clip.h"
#include "tensor/json_file.h"

/* An optional integer field: absent keeps *out; null gives -1 for token ids. */
static aspo_status get_int(const json_t *obj, const char *where, const char *key, int64_t *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v) return ASPO_OK;
    if (json_is_null(v)) {
        *out = -1;
        return ASPO_OK;
    }
    if (!json_is_integer(v))
        return aspo_fail(ASPO_ERR_FORMAT, "%s: field \"%s\" must be an integer", where, key);
    *out = (int64_t)json_integer_value(v);
    return ASPO_OK;
}

static aspo_status get_number(const json_t *obj, const char *where, const char *key,
                              double *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return ASPO_OK;
    if (!json_is_number(v))
        return aspo_fail(ASPO_ERR_FORMAT, "%s: field \"%s\" must be a number", where, key);
    *out = json_number_value(v);
    return ASPO_OK;
}

static aspo_status get_token(const json_t *obj, const char *where, const char *key, int *out)
{
    int64_t v = *out;
    aspo_status s = get_int(obj, where, key, &v);
    *out = (int)v;
    return s;
}

bool clip_act_from_name(const char *name, clip_act *act)
{
    if (!name) return false;
    if (!strcmp(name, "quick_gelu")) *act = CLIP_QUICK_GELU;
    else if (!strcmp(name, "gelu")) *act = CLIP_GELU;
    else if (!strcmp(name, "gelu_new") || !strcmp(name, "gelu_pytorch_tanh")) *act = CLIP_GELU_TANH;
    else return false;
    return true;
}

void clip_vision_defaults(clip_tower_config *c)
{
    *c = (clip_tower_config){.hidden_size = 768, .intermediate_size = 3072, .num_layers = 12,
                             .num_heads = 12, .layer_norm_eps = 1e-5, .act = CLIP_QUICK_GELU,
                             .image_size = 224, .patch_size = 32, .num_channels = 3,
                             .bos_token_id = -1, .eos_token_id = -1, .pad_token_id = -1};
}

void clip_text_defaults(clip_tower_config *c)
{
    *c = (clip_tower_config){.hidden_size = 512, .intermediate_size = 2048, .num_layers = 12,
                             .num_heads = 8, .layer_norm_eps = 1e-5, .act = CLIP_QUICK_GELU,
                             .vocab_size = 49408, .max_position_embeddings = 77,
                             .bos_token_id = 49406, .eos_token_id = 49407, .pad_token_id = 1};
}

aspo_status clip_tower_config_from_json(const json_t *obj, const char *where, bool vision,
                                        clip_tower_config *c)
{
    if (vision) clip_vision_defaults(c);
    else clip_text_defaults(c);
    if (!json_is_object(obj))
        return aspo_fail(ASPO_ERR_FORMAT, "%s: must be a JSON object", where);
    aspo_status s = ASPO_OK;
    const struct { const char *key; int64_t *v; } ints[] = {
        {"hidden_size", &c->hidden_size},   {"intermediate_size", &c->intermediate_size},
        {"num_hidden_layers", &c->num_layers}, {"num_attention_heads", &c->num_heads},
        {"image_size", &c->image_size},     {"patch_size", &c->patch_size},
        {"num_channels", &c->num_channels}, {"vocab_size", &c->vocab_size},
        {"max_position_embeddings", &c->max_position_embeddings},
    };
    for (size_t i = 0; i < sizeof ints / sizeof *ints && !s; i++)
        s = get_int(obj, where, ints[i].key, ints[i].v);
    if (!s) s = get_number(obj, where, "layer_norm_eps", &c->layer_norm_eps);
    if (!s) s = get_token(obj, where, "bos_token_id", &c->bos_token_id);
    if (!s) s = get_token(obj, where, "eos_token_id", &c->eos_token_id);
    if (!s) s = get_token(obj, where, "pad_token_id", &c->pad_token_id);
    if (s) return s;
    json_t *act = json_object_get(obj, "hidden_act");
    if (act && !json_is_null(act) && !clip_act_from_name(json_string_value(act), &c->act))
        return aspo_fail(ASPO_ERR_UNSUPPORTED, "%s: hidden_act %s is not supported (quick_gelu, "
                         "gelu, gelu_new, gelu_pytorch_tanh)", where,
                         json_is_string(act) ? json_string_value(act) : "(not a string)");
    if (c->hidden_size < 1 || c->num_heads < 1 || c->hidden_size % c->num_heads ||
        c->intermediate_size < 1 || c->num_layers < 0)
        return aspo_fail(ASPO_ERR_FORMAT, "%s: hidden_size %lld, num_attention_heads %lld, "
                         "intermediate_size %lld, num_hidden_layers %lld do not make a "
                         "transformer", where, (long long)c->hidden_size,
                         (long long)c->num_heads, (long long)c->intermediate_size,
                         (long long)c->num_layers);
    c->head_dim = c->hidden_size / c->num_heads;
    if (vision && (c->patch_size < 1 || c->image_size < c->patch_size ||
                   c->image_size % c->patch_size || c->num_channels < 1))
        return aspo_fail(ASPO_ERR_FORMAT, "%s: image_size %lld is not a multiple of patch_size "
                         "%lld", where, (long long)c->image_size, (long long)c->patch_size);
    if (!vision && (c->vocab_size < 1 || c->max_position_embeddings < 1))
        return aspo_fail(ASPO_ERR_FORMAT, "%s: vocab_size and max_position_embeddings must be "
                         "positive", where);
    return ASPO_OK;
}

static void config_defaults(clip_config *c)
{
    memset(c, 0, sizeof *c);
    c->projection_dim = 512;
    c->logit_scale_init_value = 2.6592;
}

aspo_status clip_vision_config_from_json(const json_t *obj, const char *where, clip_config *c)
{
    config_defaults(c);
    aspo_status s = clip_tower_config_from_json(obj, where, true, &c->vision);
    int64_t pd = c->projection_dim;
    if (!s) s = get_int(obj, where, "projection_dim", &pd);
    c->projection_dim = pd;
    if (!s && c->projection_dim < 1)
        s = aspo_fail(ASPO_ERR_FORMAT, "%s: projection_dim must be positive", where);
    return s;
}

aspo_status clip_config_load(const char *path, clip_config *c)
{
    config_defaults(c);
    json_t *root = json_file_load(path, "CLIP config");
    if (!root) return aspo_error_status();
    char where[4200];
    aspo_status s = ASPO_OK;
    json_t *vis = json_object_get(root, "vision_config");
    if (vis) {
        snprintf(where, sizeof where, "%s: vision_config", path);
        s = clip_tower_config_from_json(vis, where, true, &c->vision);
        json_t *txt = json_object_get(root, "text_config");
        if (!s && txt && !json_is_null(txt)) {
            c->has_text = true;
            snprintf(where, sizeof where, "%s: text_config", path);
            s = clip_tower_config_from_json(txt, where, false, &c->text);
        }
        int64_t pd = c->projection_dim;
        if (!s) s = get_int(root, path, "projection_dim", &pd);
        c->projection_dim = pd;
        if (!s) s = get_number(root, path, "logit_scale_init_value", &c->logit_scale_init_value);
    } else if (json_object_get(root, "patch_size") || json_object_get(root, "image_size") ||
               json_is_string(json_object_get(root, "model_type"))) {
        const char *mt = json_string_value(json_object_get(root, "model_type"));
        if (mt && strcmp(mt, "clip_vision_model"))
            s = aspo_fail(ASPO_ERR_FORMAT, "%s: model_type \"%s\" is neither a CLIPConfig (with "
                          "vision_config) nor clip_vision_model", path, mt);
        if (!s) s = clip_tower_config_from_json(root, path, true, &c->vision);
        int64_t pd = c->projection_dim;
        if (!s) s = get_int(root, path, "projection_dim", &pd);
        c->projection_dim = pd;
    } else {
        s = aspo_fail(ASPO_ERR_FORMAT, "%s: not a CLIP config (no vision_config and no "
                      "patch_size)", path);
    }
    json_decref(root);
    if (!s && c->projection_dim < 1)
        s = aspo_fail(ASPO_ERR_FORMAT, "%s: projection_dim must be positive", path);
    return s;
}
