/* LLaVA configs as transformers' LlavaConfig (llava-hf) and the original LLaVA code
 * (llava_llama: LlavaConfig + its CLIPVisionTower / build_vision_projector) read them, plus
 * which preprocessor_config.json (CLIPImageProcessor) gives the image processing. */
#define _POSIX_C_SOURCE 200809L /* stat */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "llava_internal.h"
#include "models/image_processor_config.h"
#include "tensor/json_file.h"

/* A string field, or NULL when absent, null or not a string. */
static const char *str_field(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

/* An optional integer field: absent or null keeps *out. */
static aspo_status int_field(const json_t *obj, const char *where, const char *key, int64_t *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return ASPO_OK;
    if (!json_is_integer(v))
        return aspo_fail(ASPO_ERR_FORMAT, "%s: field \"%s\" must be an integer", where, key);
    *out = (int64_t)json_integer_value(v);
    return ASPO_OK;
}

/* An optional string field: absent or null keeps *out. */
static aspo_status string_field(const json_t *obj, const char *where, const char *key,
                                const char **out)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return ASPO_OK;
    if (!json_is_string(v))
        return aspo_fail(ASPO_ERR_FORMAT, "%s: field \"%s\" must be a string", where, key);
    *out = json_string_value(v);
    return ASPO_OK;
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

aspo_status llava_detect(const char *dir, bool *is_llava)
{
    *is_llava = false;
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_t *root = json_file_load(path, "model config");
    if (!root) return aspo_error_status();
    const char *type = str_field(root, "model_type");
    bool yes = type && (!strcmp(type, "llava") || !strcmp(type, "llava_llama"));
    json_t *arch = json_object_get(root, "architectures"), *v;
    size_t i;
    if (json_is_array(arch))
        json_array_foreach(arch, i, v) yes = yes || (json_is_string(v) &&
                                                     strstr(json_string_value(v), "Llava"));
    json_decref(root);
    *is_llava = yes;
    return ASPO_OK;
}

/* ---- the language model's config ---- */

/* p->text_config with LlamaConfig's defaults filled in, read as llama_open will read it, so
 * that its errors come first and the vocabulary is known here. */
static aspo_status check_text_config(llava_parsed *p, llama_config *text)
{
    aspo_status s = llama_config_fill_defaults(p->text_config, p->text_where);
    return s ? s : llama_config_from_json(p->text_config, p->text_where, text);
}

static aspo_status text_config_hf(const json_t *root, const char *path, llava_parsed *p,
                                  llama_config *text)
{
    snprintf(p->text_where, sizeof p->text_where, "%s: text_config", path);
    json_t *tc = json_object_get(root, "text_config");
    /* LlavaConfig would build a 7B LLaMA: a file without one is more likely broken. */
    if (!tc || json_is_null(tc))
        return aspo_fail(ASPO_ERR_FORMAT, "%s: no \"text_config\"; a llava-hf config.json "
                         "describes its language model there (aspo does not assume "
                         "LlavaConfig's LLaMA-7B default)", path);
    if (!json_is_object(tc))
        return aspo_fail(ASPO_ERR_FORMAT, "%s: field \"text_config\" must be an object", path);
    const char *type = str_field(tc, "model_type");
    if (type && strcmp(type, "llama") != 0)
        return aspo_fail(ASPO_ERR_UNSUPPORTED, "%s: model_type \"%s\"; aspo's LLaVA language "
                         "model is LLaMA (\"llama\")", p->text_where, type);
    p->text_config = json_deep_copy(tc);
    if (!p->text_config) return aspo_fail(ASPO_ERR_OOM, "%s: out of memory", path);
    return check_text_config(p, text);
}

/* ---- the vision tower's config ---- */

/* LlavaConfig's default vision_config: CLIP ViT-L/14-336. */
static json_t *default_vision_config(void)
{
    return json_pack("{s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:i}", "model_type",
                     "clip_vision_model", "hidden_size", 1024, "intermediate_size", 4096,
                     "patch_size", 14, "image_size", 336, "num_hidden_layers", 24,
                     "num_attention_heads", 16, "projection_dim", 768);
}

static aspo_status vision_config_hf(const json_t *root, const char *path, llava_parsed *p)
{
    snprintf(p->vision_where, sizeof p->vision_where, "%s: vision_config", path);
    json_t *vc = json_object_get(root, "vision_config");
    if (vc && !json_is_null(vc) && !json_is_object(vc))
        return aspo_fail(ASPO_ERR_FORMAT, "%s: field \"vision_config\" must be an object", path);
    const char *type = json_is_object(vc) ? str_field(vc, "model_type") : NULL;
    if (type && strcmp(type, "clip_vision_model") != 0)
        return aspo_fail(ASPO_ERR_UNSUPPORTED, "%s: model_type \"%s\"; aspo's LLaVA vision tower "
                         "is CLIP (\"clip_vision_model\")", p->vision_where, type);
    p->vision_config = json_is_object(vc) ? json_deep_copy(vc) : default_vision_config();
    if (!p->vision_config) return aspo_fail(ASPO_ERR_OOM, "%s: out of memory", path);
    return clip_vision_config_from_json(p->vision_config, p->vision_where, &p->tower);
}

/* llava-hf: LlavaConfig's fields and defaults. */
static aspo_status read_hf(const json_t *root, const char *path, llava_config *cfg,
                           llava_parsed *p)
{
    cfg->hf_layout = true;
    int64_t token = 32000, layer = -2; /* LlavaConfig's defaults */
    const char *strategy = "default", *act = "gelu";
    aspo_status s = int_field(root, path, "image_token_index", &token);
    if (!s) s = int_field(root, path, "vision_feature_layer", &layer);
    if (!s) s = string_field(root, path, "vision_feature_select_strategy", &strategy);
    if (!s) s = string_field(root, path, "projector_hidden_act", &act);
    if (s) return s;
    if (strcmp(strategy, "default") != 0 && strcmp(strategy, "full") != 0)
        return aspo_fail(ASPO_ERR_UNSUPPORTED, "%s: vision_feature_select_strategy \"%s\" is "
                         "neither \"default\" (drop the class token) nor \"full\"", path,
                         strategy);
    if (!clip_act_from_name(act, &cfg->projector_act))
        return aspo_fail(ASPO_ERR_UNSUPPORTED, "%s: projector_hidden_act \"%s\" is not supported "
                         "(gelu, gelu_new, gelu_pytorch_tanh, quick_gelu)", path, act);
    if (layer < -1000 || layer > 1000)
        return aspo_fail(ASPO_ERR_FORMAT, "%s: vision_feature_layer %lld is out of range", path,
                         (long long)layer);
    cfg->vision_feature_layer = (int)layer;
    cfg->keep_cls = strcmp(strategy, "full") == 0;
    llama_config text;
    if ((s = text_config_hf(root, path, p, &text))) return s;
    if (token < 0 || token >= text.vocab_size)
        return aspo_fail(ASPO_ERR_FORMAT, "%s: \"image_token_index\" = %lld is not a token id of "
                         "text_config's vocabulary (0..%lld)%s", path, (long long)token,
                         (long long)text.vocab_size - 1, json_object_get(root, "image_token_index")
                         ? "" : "; that is LlavaConfig's default: set it in the config");
    cfg->image_token_index = (int32_t)token;
    return vision_config_hf(root, path, p);
}

/* The original layout's tower directory: the option, else mm_vision_tower (relative to the
 * model directory unless absolute). */
static aspo_status tower_dir(const json_t *root, const char *path, const char *dir,
                             const llava_options *opt, llava_config *cfg)
{
    const char *name = opt->vision_tower_dir;
    if (!name) {
        aspo_status s = string_field(root, path, "mm_vision_tower", &name);
        if (s) return s;
        if (!name)
            name = str_field(root, "vision_tower"); /* some early checkpoints */
        if (!name)
            return aspo_fail(ASPO_ERR_FORMAT, "%s: the checkpoint names no vision tower "
                             "(\"mm_vision_tower\" is missing); give the CLIP directory as the "
                             "vision tower option", path);
    }
    int n = name[0] == '/' || opt->vision_tower_dir
                ? snprintf(cfg->vision_tower_dir, sizeof cfg->vision_tower_dir, "%s", name)
                : snprintf(cfg->vision_tower_dir, sizeof cfg->vision_tower_dir, "%s/%s", dir,
                           name);
    if (n < 0 || (size_t)n >= sizeof cfg->vision_tower_dir)
        return aspo_fail(ASPO_ERR_USAGE, "%s: vision tower path too long", path);
    if (!is_dir(cfg->vision_tower_dir))
        return aspo_fail(ASPO_ERR_IO, "%s: vision tower \"%s\" is not a directory (looked for "
                         "%s); download that CLIP model and give its directory as the vision "
                         "tower option", opt->vision_tower_dir ? "vision tower option" : path,
                         name, cfg->vision_tower_dir);
    return ASPO_OK;
}

/* The original layout: a LLaMA config plus LLaVA's mm_* fields. */
static aspo_status read_original(const json_t *root, const char *path, const char *dir,
                                 const llava_options *opt, llava_config *cfg, llava_parsed *p)
{
    cfg->hf_layout = false;
    cfg->image_token_index = LLAVA_IMAGE_TOKEN_ORIGINAL;
    cfg->projector_act = CLIP_GELU; /* mlp2x_gelu: nn.GELU() */
    const char *type = "linear", *feature = "patch"; /* LLaVA's defaults */
    int64_t layer = 0, mm_hidden = -1;
    aspo_status s = string_field(root, path, "mm_projector_type", &type);
    if (!s) s = string_field(root, path, "mm_vision_select_feature", &feature);
    if (!s) s = int_field(root, path, "mm_hidden_size", &mm_hidden);
    if (!s && !json_is_integer(json_object_get(root, "mm_vision_select_layer")))
        s = aspo_fail(ASPO_ERR_FORMAT, "%s: field \"mm_vision_select_layer\" must be an integer",
                      path);
    if (s) return s;
    layer = json_integer_value(json_object_get(root, "mm_vision_select_layer"));
    if (strcmp(type, "mlp2x_gelu") != 0)
        return aspo_fail(ASPO_ERR_UNSUPPORTED, "%s: mm_projector_type \"%s\" is not supported "
                         "(aspo reads LLaVA-1.5's \"mlp2x_gelu\")", path, type);
    if (strcmp(feature, "patch") != 0 && strcmp(feature, "cls_patch") != 0)
        return aspo_fail(ASPO_ERR_UNSUPPORTED, "%s: mm_vision_select_feature \"%s\" is neither "
                         "\"patch\" nor \"cls_patch\"", path, feature);
    if (layer < -1000 || layer > 1000)
        return aspo_fail(ASPO_ERR_FORMAT, "%s: mm_vision_select_layer %lld is out of range", path,
                         (long long)layer);
    cfg->vision_feature_layer = (int)layer;
    cfg->keep_cls = strcmp(feature, "cls_patch") == 0;
    snprintf(p->text_where, sizeof p->text_where, "%s", path);
    if (!(p->text_config = json_deep_copy(root)))
        return aspo_fail(ASPO_ERR_OOM, "%s: out of memory", path);
    llama_config text;
    if ((s = check_text_config(p, &text)) || (s = tower_dir(root, path, dir, opt, cfg)))
        return s;
    char tower_cfg[4200];
    snprintf(tower_cfg, sizeof tower_cfg, "%s/config.json", cfg->vision_tower_dir);
    snprintf(p->vision_where, sizeof p->vision_where, "%s", tower_cfg);
    if ((s = clip_config_load(tower_cfg, &p->tower))) return s;
    if (mm_hidden >= 0 && mm_hidden != p->tower.vision.hidden_size)
        return aspo_fail(ASPO_ERR_FORMAT, "%s: mm_hidden_size %lld but the vision tower %s has "
                         "hidden_size %lld", path, (long long)mm_hidden, cfg->vision_tower_dir,
                         (long long)p->tower.vision.hidden_size);
    return ASPO_OK;
}

/* ---- image processing ---- */

/* preprocessor_config.json of the model directory, else (original layout) of the tower's,
 * else CLIP's mean and std at the tower's image size (CLIP-336's for LLaVA-1.5). */
static aspo_status image_settings(const json_t *root, const char *path, const char *dir,
                                  const llava_parsed *p, llava_config *cfg)
{
    int64_t S = p->tower.vision.image_size;
    cfg->image = clip_config_default((int)S);
    char pre[4200];
    snprintf(pre, sizeof pre, "%s/preprocessor_config.json", dir);
    struct stat st;
    if (stat(pre, &st) != 0 && !cfg->hf_layout)
        snprintf(pre, sizeof pre, "%s/preprocessor_config.json", cfg->vision_tower_dir);
    aspo_status s = stat(pre, &st) == 0
                        ? image_processor_config_read(pre, IMAGE_PROCESSOR_CLIP, &cfg->image)
                        : ASPO_OK;
    if (s) return s;
    if (cfg->image.crop_size != S)
        return aspo_fail(ASPO_ERR_FORMAT, "%s: crop_size %d but the vision tower takes %lldx%lld "
                         "images", pre, cfg->image.crop_size, (long long)S, (long long)S);
    if (cfg->image.shortest_edge && cfg->image.shortest_edge < cfg->image.crop_size)
        return aspo_fail(ASPO_ERR_UNSUPPORTED, "%s: shortest_edge %d is below crop_size %d "
                         "(padding the crop is not supported)", pre, cfg->image.shortest_edge,
                         cfg->image.crop_size);
    /* LLaVA-1.5 pads to a square ("pad"); "anyres" is LLaVA-1.6's tiling. */
    const char *aspect = "pad";
    if ((s = string_field(root, path, "image_aspect_ratio", &aspect))) return s;
    if (strncmp(aspect, "anyres", 6) == 0)
        return aspo_fail(ASPO_ERR_UNSUPPORTED, "%s: image_aspect_ratio \"%s\" (LLaVA-1.6 tiling) "
                         "is not supported; aspo reads LLaVA-1.5 (\"pad\")", path, aspect);
    cfg->pad_to_square = strcmp(aspect, "pad") == 0;
    return ASPO_OK;
}

/* ---- the whole config ---- */

void llava_parsed_free(llava_parsed *p)
{
    json_decref(p->text_config);
    json_decref(p->vision_config);
    memset(p, 0, sizeof *p);
}

aspo_status llava_config_parse(const char *dir, const llava_options *opt, llava_config *cfg,
                               llava_parsed *p)
{
    memset(cfg, 0, sizeof *cfg);
    memset(p, 0, sizeof *p);
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_t *root = json_file_load(path, "model config");
    if (!root) return aspo_error_status();
    aspo_status s = ASPO_OK;
    const char *type = str_field(root, "model_type");
    json_t *arch = json_object_get(root, "architectures");
    bool original_arch = json_is_string(json_array_get(arch, 0)) &&
                         !strcmp(json_string_value(json_array_get(arch, 0)),
                                 "LlavaLlamaForCausalLM");
    if (!json_is_object(root))
        s = aspo_fail(ASPO_ERR_FORMAT, "%s: not a JSON object", path);
    else if (type && !strcmp(type, "llava"))
        s = read_hf(root, path, cfg, p);
    else if ((type && !strcmp(type, "llava_llama")) || (!type && original_arch))
        s = read_original(root, path, dir, opt, cfg, p);
    else
        s = aspo_fail(ASPO_ERR_UNSUPPORTED, "%s: model_type \"%s\" is not a LLaVA-1.5 model aspo "
                      "reads (\"llava\": llava-hf, \"llava_llama\": the original layout)", path,
                      type ? type : "(none)");
    const clip_tower_config *v = &p->tower.vision;
    int n_hidden = (int)v->num_layers + 1;
    if (!s && (cfg->vision_feature_layer < -n_hidden || cfg->vision_feature_layer >= n_hidden))
        s = aspo_fail(ASPO_ERR_FORMAT, "%s: %s %d does not exist (the vision tower has %d hidden "
                      "states: 0..%d or -%d..-1)", path,
                      cfg->hf_layout ? "vision_feature_layer" : "mm_vision_select_layer",
                      cfg->vision_feature_layer, n_hidden, n_hidden - 1, n_hidden);
    if (!s) {
        int64_t g = v->image_size / v->patch_size;
        cfg->image_positions = g * g + (cfg->keep_cls ? 1 : 0);
        s = image_settings(root, path, dir, p, cfg);
    }
    json_decref(root);
    if (s) llava_parsed_free(p);
    return s;
}
