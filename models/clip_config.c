/* CLIP config.json, as transformers' CLIPConfig / CLIPVisionConfig / CLIPTextConfig read it. */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "clip.h"
#include "tensor/json_file.h"

/* Bounds on the sizes, for the reason LLaMA's have them (llama.h): real CLIPs are far inside
 * (ViT-bigG: width 1664, 48 layers; 336-pixel images; 49408 tokens), and every product of
 * sizes stays far from wrapping 64 bits. Images above 2^14 pixels a side would make 2^28
 * patches at patch size 1; RGB has 3 channels, 16 leaves room for multispectral inputs. */
enum {
    CLIP_MAX_DIM = 1 << 20, /* widths, heads, positions, projection_dim */
    CLIP_MAX_LAYERS = 4096,
    CLIP_MAX_VOCAB = 1 << 24,
    CLIP_MAX_IMAGE = 1 << 14,
    CLIP_MAX_CHANNELS = 16,
};

/* An optional integer field: absent keeps *out. */
static aspo_status get_int(const json_t *obj, const char *where, const char *key, int64_t *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v) return ASPO_OK;
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

/* A text tower's token id: absent keeps *out, null or -1 = none; else a token of the
 * vocabulary. eos_token_id must be one: the text tower pools at the end-of-text token. */
static aspo_status get_token(const json_t *obj, const char *where, const char *key,
                             int64_t vocab, int *out)
{
    json_t *v = json_object_get(obj, key);
    bool eos = !strcmp(key, "eos_token_id");
    if (json_is_null(v) && eos)
        return aspo_fail(ASPO_ERR_FORMAT, "%s: \"eos_token_id\" is null; the text tower pools "
                         "at the end-of-text token, so it needs its id", where);
    int64_t id = json_is_null(v) ? -1 : *out;
    aspo_status s = get_int(obj, where, key, &id);
    if (!s && !(id == -1 && !eos))
        s = json_check_range(where, key, id, 0, vocab - 1);
    if (!s) *out = (int)id;
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

/* The tower's size fields (absent keeps the default), each checked against its bound as it
 * is read, before any arithmetic on it. A vision config's text fields are not read (and the
 * other way round): transformers may write them as null. */
static aspo_status read_tower_sizes(const json_t *obj, const char *where, bool vision,
                                    clip_tower_config *c)
{
    enum { V = 1, T = 2 };
    const struct { const char *key; int64_t *v; int64_t max; int towers; } f[] = {
        {"hidden_size", &c->hidden_size, CLIP_MAX_DIM, V | T},
        {"intermediate_size", &c->intermediate_size, CLIP_MAX_DIM, V | T},
        {"num_hidden_layers", &c->num_layers, CLIP_MAX_LAYERS, V | T},
        {"num_attention_heads", &c->num_heads, CLIP_MAX_DIM, V | T},
        {"image_size", &c->image_size, CLIP_MAX_IMAGE, V},
        {"patch_size", &c->patch_size, CLIP_MAX_IMAGE, V},
        {"num_channels", &c->num_channels, CLIP_MAX_CHANNELS, V},
        {"vocab_size", &c->vocab_size, CLIP_MAX_VOCAB, T},
        {"max_position_embeddings", &c->max_position_embeddings, CLIP_MAX_DIM, T},
    };
    aspo_status s = ASPO_OK;
    for (size_t i = 0; i < sizeof f / sizeof *f && !s; i++) {
        if (!(f[i].towers & (vision ? V : T))) continue;
        s = get_int(obj, where, f[i].key, f[i].v);
        if (!s) s = json_check_range(where, f[i].key, *f[i].v, 1, f[i].max);
    }
    return s;
}

/* What the sizes must satisfy together, and the norm's epsilon. */
static aspo_status check_tower_shape(const clip_tower_config *c, const char *where, bool vision)
{
    if (c->hidden_size % c->num_heads)
        return aspo_fail(ASPO_ERR_FORMAT, "%s: hidden_size %lld is not divisible by "
                         "num_attention_heads %lld", where, (long long)c->hidden_size,
                         (long long)c->num_heads);
    if (vision && c->image_size % c->patch_size)
        return aspo_fail(ASPO_ERR_FORMAT, "%s: image_size %lld is not a multiple of patch_size "
                         "%lld", where, (long long)c->image_size, (long long)c->patch_size);
    if (!(c->layer_norm_eps >= 0))
        return aspo_fail(ASPO_ERR_FORMAT, "%s: \"layer_norm_eps\" = %g must be >= 0", where,
                         c->layer_norm_eps);
    return ASPO_OK;
}

aspo_status clip_tower_config_from_json(const json_t *obj, const char *where, bool vision,
                                        clip_tower_config *c)
{
    if (vision) clip_vision_defaults(c);
    else clip_text_defaults(c);
    return clip_tower_config_update(obj, where, vision, c);
}

aspo_status clip_tower_config_update(const json_t *obj, const char *where, bool vision,
                                     clip_tower_config *c)
{
    if (!json_is_object(obj))
        return aspo_fail(ASPO_ERR_FORMAT, "%s: must be a JSON object", where);
    aspo_status s = read_tower_sizes(obj, where, vision, c);
    if (!s) s = get_number(obj, where, "layer_norm_eps", &c->layer_norm_eps);
    if (!s) s = check_tower_shape(c, where, vision);
    /* A vision tower has no tokens (transformers writes its ids as null). */
    if (!s && !vision) s = get_token(obj, where, "bos_token_id", c->vocab_size, &c->bos_token_id);
    if (!s && !vision) s = get_token(obj, where, "eos_token_id", c->vocab_size, &c->eos_token_id);
    if (!s && !vision) s = get_token(obj, where, "pad_token_id", c->vocab_size, &c->pad_token_id);
    if (s) return s;
    json_t *act = json_object_get(obj, "hidden_act");
    if (act && !json_is_null(act) && !clip_act_from_name(json_string_value(act), &c->act))
        return aspo_fail(ASPO_ERR_UNSUPPORTED, "%s: hidden_act %s is not supported (quick_gelu, "
                         "gelu, gelu_new, gelu_pytorch_tanh)", where,
                         json_is_string(act) ? json_string_value(act) : "(not a string)");
    c->head_dim = c->hidden_size / c->num_heads;
    return ASPO_OK;
}

/* projection_dim of obj (absent keeps *pd), within the bounds. */
static aspo_status get_projection_dim(const json_t *obj, const char *where, int64_t *pd)
{
    aspo_status s = get_int(obj, where, "projection_dim", pd);
    return s ? s : json_check_range(where, "projection_dim", *pd, 1, CLIP_MAX_DIM);
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
    return s ? s : get_projection_dim(obj, where, &c->projection_dim);
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
        if (!s) s = get_projection_dim(root, path, &c->projection_dim);
        if (!s) s = get_number(root, path, "logit_scale_init_value", &c->logit_scale_init_value);
    } else if (json_object_get(root, "patch_size") || json_object_get(root, "image_size") ||
               json_is_string(json_object_get(root, "model_type"))) {
        const char *mt = json_string_value(json_object_get(root, "model_type"));
        if (mt && strcmp(mt, "clip_vision_model"))
            s = aspo_fail(ASPO_ERR_FORMAT, "%s: model_type \"%s\" is neither a CLIPConfig (with "
                          "vision_config) nor clip_vision_model", path, mt);
        if (!s) s = clip_tower_config_from_json(root, path, true, &c->vision);
        if (!s) s = get_projection_dim(root, path, &c->projection_dim);
    } else {
        s = aspo_fail(ASPO_ERR_FORMAT, "%s: not a CLIP config (no vision_config and no "
                      "patch_size)", path);
    }
    json_decref(root);
    return s;
}
