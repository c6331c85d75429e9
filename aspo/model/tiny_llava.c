#include "aspo/model/tiny_llava.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "models/weights.h"

static const double STD = TINY_STD; /* every matrix */

/* vision_tower.vision_model.*: CLIPVisionModel's names (the conv patch embedding has no
 * bias; the class token has one position more than the patches). */
static aspo_status add_vision(tiny_weights *w, const tiny_llava_spec *s, uint64_t seed)
{
    const char *tower = "vision_tower.vision_model";
    int64_t C = s->vision_dim, P = s->patch_size, g = s->image_size / P;
    char name[256];
    snprintf(name, sizeof name, "%s.embeddings.patch_embedding.weight", tower);
    aspo_status st = tiny_weights_add(w, name, 4, (int64_t[]){C, 3, P, P}, STD, 0, seed);
    snprintf(name, sizeof name, "%s.embeddings.class_embedding", tower);
    if (!st) st = tiny_weights_add(w, name, 1, (int64_t[]){C}, STD, 0, seed);
    snprintf(name, sizeof name, "%s.embeddings.position_embedding.weight", tower);
    if (!st) st = tiny_weights_add(w, name, 2, (int64_t[]){g * g + 1, C}, STD, 0, seed);
    snprintf(name, sizeof name, "%s.pre_layrnorm", tower);
    if (!st) st = tiny_weights_add_linear(w, name, C, 0, seed);
    for (int64_t l = 0; l < s->vision_layers && !st; l++) {
        struct { const char *part; int64_t rows, cols; } linears[] = {
            {"self_attn.q_proj", C, C},   {"self_attn.k_proj", C, C},
            {"self_attn.v_proj", C, C},   {"self_attn.out_proj", C, C},
            {"mlp.fc1", s->vision_ffn, C}, {"mlp.fc2", C, s->vision_ffn},
        };
        for (size_t p = 0; p < sizeof linears / sizeof linears[0] && !st; p++) {
            snprintf(name, sizeof name, "%s.encoder.layers.%lld.%s", tower, (long long)l,
                     linears[p].part);
            st = tiny_weights_add_linear(w, name, linears[p].rows, linears[p].cols, seed);
        }
        for (int n = 1; n <= 2 && !st; n++) {
            snprintf(name, sizeof name, "%s.encoder.layers.%lld.layer_norm%d", tower,
                     (long long)l, n);
            st = tiny_weights_add_linear(w, name, C, 0, seed);
        }
    }
    snprintf(name, sizeof name, "%s.post_layernorm", tower);
    if (!st) st = tiny_weights_add_linear(w, name, C, 0, seed);
    return st;
}

static json_t *llava_config(const tiny_llava_spec *s)
{
    json_t *vision = json_pack(
        "{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:s, s:f}", "model_type", "clip_vision_model",
        "hidden_size", (json_int_t)s->vision_dim, "intermediate_size", (json_int_t)s->vision_ffn,
        "num_hidden_layers", (json_int_t)s->vision_layers,
        "num_attention_heads", (json_int_t)s->vision_heads,
        "image_size", (json_int_t)s->image_size, "patch_size", (json_int_t)s->patch_size,
        "num_channels", (json_int_t)3, "hidden_act", "quick_gelu", "layer_norm_eps", 1e-5);
    json_t *text = tiny_llama_config(&s->text);
    if (!vision || !text) {
        json_decref(vision);
        json_decref(text);
        return NULL;
    }
    /* "o" steals the two references, also when json_pack fails. */
    return json_pack("{s:[s], s:s, s:I, s:I, s:s, s:I, s:s, s:o, s:o, s:s}",
                     "architectures", "LlavaForConditionalGeneration", "model_type", "llava",
                     "ignore_index", (json_int_t)-100,
                     "image_token_index", (json_int_t)s->image_token,
                     "projector_hidden_act", "gelu", "vision_feature_layer", (json_int_t)-2,
                     "vision_feature_select_strategy", "default", "text_config", text,
                     "vision_config", vision, "torch_dtype", "float32");
}

/* CLIPImageProcessor as llava-hf ships it, at the tower's image size. */
static json_t *preprocessor_config(const tiny_llava_spec *s)
{
    json_int_t S = (json_int_t)s->image_size;
    return json_pack("{s:{s:I, s:I}, s:b, s:b, s:b, s:b, s:b, s:[f,f,f], s:[f,f,f], s:s, s:I, "
                     "s:f, s:{s:I}}",
                     "crop_size", "height", S, "width", S, "do_center_crop", 1,
                     "do_convert_rgb", 1, "do_normalize", 1, "do_rescale", 1, "do_resize", 1,
                     "image_mean", 0.48145466, 0.4578275, 0.40821073,
                     "image_std", 0.26862954, 0.26130258, 0.27577711,
                     "image_processor_type", "CLIPImageProcessor", "resample", (json_int_t)3,
                     "rescale_factor", 1.0 / 255.0, "size", "shortest_edge", S);
}

static aspo_status check_spec(const tiny_llava_spec *s)
{
    if (s->vision_dim < 1 || s->vision_heads < 1 || s->vision_dim % s->vision_heads ||
        s->vision_layers < 1 || s->vision_ffn < 1)
        return aspo_fail(ASPO_ERR_USAGE,
                         "tiny llava: vision dim %lld, heads %lld, layers %lld, ffn %lld do not "
                         "fit (dim divisible by heads, at least one layer)", (long long)s->vision_dim, (long long)s->vision_heads,
                         (long long)s->vision_layers, (long long)s->vision_ffn);
    if (s->patch_size < 1 || s->image_size < s->patch_size || s->image_size % s->patch_size)
        return aspo_fail(ASPO_ERR_USAGE,
                         "tiny llava: image size %lld is not a positive multiple of patch size "
                         "%lld", (long long)s->image_size, (long long)s->patch_size);
    if (s->image_token < 0 || s->image_token >= s->text.vocab)
        return aspo_fail(ASPO_ERR_USAGE, "tiny llava: image token %d is outside the vocabulary "
                         "of %lld", (int)s->image_token, (long long)s->text.vocab);
    return ASPO_OK;
}

aspo_status tiny_llava_write(const char *dir, const tiny_llava_spec *s, uint64_t seed)
{
    aspo_status st = check_spec(s);
    if (st) return st;
    tiny_weights *w = tiny_weights_new();
    if (!w) return aspo_fail(ASPO_ERR_OOM, "tiny llava: no memory");
    st = tiny_llama_add_weights(w, "language_model.", &s->text, seed);
    if (!st) st = add_vision(w, s, seed);
    if (!st) st = tiny_weights_add_linear(w, "multi_modal_projector.linear_1", s->text.dim, s->vision_dim, seed);
    if (!st) st = tiny_weights_add_linear(w, "multi_modal_projector.linear_2", s->text.dim, s->text.dim, seed);
    if (!st) st = weights_make_dir(dir);
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (!st) st = tiny_weights_write(w, path);
    tiny_weights_free(w);
    if (!st) st = tiny_write_json(dir, "config.json", llava_config(s));
    if (!st) st = tiny_write_json(dir, "preprocessor_config.json", preprocessor_config(s));
    return st;
}
