/* InstructBLIP: config.json, opening the checkpoint, and the forward pass that feeds the
 * Q-Former's query outputs to the LLaMA before the text. */
#define _POSIX_C_SOURCE 200809L /* access */
#include "models/instructblip.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "models/image_merge.h"
#include "models/image_processor_config.h"
#include "tensor/json_file.h"
#include "tensor/runtime.h"
#include "tensor/tensor_ops.h"

/* config.json of dir parsed: root (the caller decrefs it) and path. */
static json_t *load_root(const char *dir, char *path, size_t size)
{
    snprintf(path, size, "%s/config.json", dir);
    return json_file_load(path, "model config");
}

aspo_status instructblip_detect(const char *dir, bool *yes)
{
    *yes = false;
    char path[4096];
    json_t *root = load_root(dir, path, sizeof path);
    if (!root) return aspo_error_status();
    const char *type = json_string_value(json_object_get(root, "model_type"));
    *yes = type && !strcmp(type, "instructblip");
    json_decref(root);
    return ASPO_OK;
}

/* ---- config ---- */

/* dir/preprocessor_config.json over BlipImageProcessor's defaults at the encoder's size. */
static aspo_status image_settings(const char *dir, instructblip_config *c)
{
    int64_t S = c->vision.tower.image_size;
    c->image = clip_config_default((int)S);
    c->image.shortest_edge = 0; /* BLIP resizes to the square, it does not crop */
    char pre[4200];
    snprintf(pre, sizeof pre, "%s/preprocessor_config.json", dir);
    if (access(pre, F_OK) != 0) return ASPO_OK;
    aspo_status s = image_processor_config_read(pre, IMAGE_PROCESSOR_BLIP, &c->image);
    if (!s && c->image.crop_size != S)
        s = aspo_fail(ASPO_ERR_FORMAT, "%s: size %d but the vision encoder takes %lldx%lld images "
                      "(vision_config.image_size)", pre, c->image.crop_size, (long long)S,
                      (long long)S);
    return s;
}

/* The three sub-configs of root (path's), text_config completed with LlamaConfig's
 * defaults and left in *text for llama_open_with (the caller decrefs it). */
static aspo_status read_config(const json_t *root, const char *path, const char *dir,
                               instructblip_config *c, json_t **text, char *text_where,
                               size_t where_size)
{
    char where[4200];
    snprintf(where, sizeof where, "%s: vision_config", path);
    json_t *vc = json_object_get(root, "vision_config");
    /* InstructBlipConfig would build a ViT-g and an OPT: a file without its parts is more
     * likely broken than meant. */
    static const char *const parts[] = {"vision_config", "qformer_config", "text_config"};
    for (size_t i = 0; i < 3; i++)
        if (!json_is_object(json_object_get(root, parts[i])))
            return aspo_fail(ASPO_ERR_FORMAT, "%s: no \"%s\" object; an InstructBLIP config.json "
                             "describes each of its three models", path, parts[i]);
    aspo_status s = blip_vision_config_from_json(vc, where, &c->vision);
    snprintf(where, sizeof where, "%s: qformer_config", path);
    if (!s) s = qformer_config_from_json(json_object_get(root, "qformer_config"), where,
                                         c->vision.tower.hidden_size, &c->qformer);
    c->num_query_tokens = 32;
    if (!s) s = json_read_int(root, path, "num_query_tokens", 1, 1 << 20, &c->num_query_tokens);
    int64_t image_token = -1; /* absent: the text vocabulary's size, set by the callers */
    if (!s) s = json_read_int(root, path, "image_token_index", 0, INT32_MAX, &image_token);
    c->image_token = (int32_t)image_token;
    if (!s) s = image_settings(dir, c);
    if (s) return s;
    json_t *tc = json_object_get(root, "text_config");
    const char *type = json_string_value(json_object_get(tc, "model_type"));
    if (!type || strcmp(type, "llama"))
        return aspo_fail(ASPO_ERR_UNSUPPORTED, "%s: text_config model_type \"%s\"; aspo's "
                         "InstructBLIP language model is a LLaMA (Vicuna), not Flan-T5 or OPT",
                         path, type ? type : "(none)");
    snprintf(text_where, where_size, "%s: text_config", path);
    if (!(*text = json_deep_copy(tc))) return aspo_fail(ASPO_ERR_OOM, "%s: out of memory", path);
    return llama_config_fill_defaults(*text, text_where);
}

aspo_status instructblip_config_load(const char *dir, instructblip_config *c, llama_config *text)
{
    memset(c, 0, sizeof *c);
    char path[4096], text_where[4300];
    json_t *root = load_root(dir, path, sizeof path), *tc = NULL;
    if (!root) return aspo_error_status();
    aspo_status s = read_config(root, path, dir, c, &tc, text_where, sizeof text_where);
    llama_config lc;
    llama_config *t = text ? text : &lc;
    if (!s) s = llama_config_from_json(tc, text_where, t);
    if (!s && c->image_token < 0) c->image_token = (int32_t)t->vocab_size;
    json_decref(tc);
    json_decref(root);
    return s;
}

/* ---- open ---- */

/* llama_open_spec.declare_more: the frozen parts beside the LLaMA, in its store. */
static aspo_status declare_vision_side(void *ctx, llama_model *lm, const peft_config *adapter)
{
    (void)adapter;
    instructblip_model *m = ctx;
    const instructblip_config *c = &m->cfg;
    int64_t Cq = c->qformer.hidden_size;
    aspo_status s = blip_vision_declare(&m->vision, &lm->ps, "vision_model", &c->vision,
                                        lm->storage_dt);
    if (!s) s = qformer_declare(&m->qformer, &lm->ps, "qformer", &c->qformer, lm->storage_dt);
    /* query_tokens stay f32 whatever the storage dtype (transformers keeps them so:
     * _keep_in_fp32_modules). */
    if (!s && !(m->query_tokens = param_declare(&lm->ps, "query_tokens", DT_F32,
                                                DIMS(1, c->num_query_tokens, Cq), false)))
        s = aspo_error_status();
    if (!s) s = linear_declare(&m->projection, &lm->ps, "language_projection", Cq,
                               lm->cfg.hidden_size, true, lm->storage_dt, false);
    return s;
}

aspo_status instructblip_open(const char *dir, const llama_options *lm, instructblip_model *m)
{
    memset(m, 0, sizeof *m);
    char path[4096], text_where[4300];
    json_t *root = load_root(dir, path, sizeof path), *text = NULL;
    if (!root) return aspo_error_status();
    aspo_status s = read_config(root, path, dir, &m->cfg, &text, text_where, sizeof text_where);
    json_decref(root);
    llama_options opt = lm ? *lm : llama_defaults();
    llama_open_spec spec = {.name_prefix = "language_model.", .config = text,
                            .config_where = text_where, .declare_more = declare_vision_side,
                            .ctx = m};
    if (!s) s = llama_open_with(dir, &opt, &spec, &m->lm);
    if (!s && m->cfg.image_token < 0) m->cfg.image_token = (int32_t)m->lm.cfg.vocab_size;
    json_decref(text);
    if (s) instructblip_close(m);
    return s;
}

void instructblip_close(instructblip_model *m)
{
    llama_close(&m->lm);
    blip_vision_free(&m->vision);
    qformer_free(&m->qformer);
    memset(m, 0, sizeof *m);
}

/* ---- merge ---- */

aspo_status instructblip_save_merged(const instructblip_model *m, const char *out_dir,
                                     dtype out_dtype)
{
    char path[4096];
    json_t *root = load_root(m->lm.dir, path, sizeof path);
    if (!root) return aspo_error_status();
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(root);
    if (!text) return aspo_fail(ASPO_ERR_OOM, "%s: out of memory", path);
    /* What InstructBlipProcessor.save_pretrained writes beside the weights, so that the
     * merged directory loads as the original does. */
    static const char *const files[] = {
        LLAMA_TOKENIZER_FILES, "generation_config.json", "preprocessor_config.json",
        "processor_config.json", "qformer_tokenizer/vocab.txt",
        "qformer_tokenizer/tokenizer.json", "qformer_tokenizer/tokenizer_config.json",
        "qformer_tokenizer/special_tokens_map.json", "qformer_tokenizer/added_tokens.json"};
    llama_merged_files f = {text, files, sizeof files / sizeof *files};
    aspo_status s = llama_save_merged_as(&m->lm, &f, out_dir, out_dtype);
    free(text);
    return s;
}

/* ---- forward ---- */

tensor *instructblip_image_inputs(instructblip_model *m, tensor *pixels, tensor *qformer_ids,
                                  tensor *qformer_mask)
{
    tensor *image = blip_vision_forward(&m->vision, pixels);                  /* (B,N,Cv) */
    tensor *h = qformer_forward(&m->qformer, m->query_tokens, qformer_ids, qformer_mask, image);
    if (!h) return NULL;                                                      /* (B,Q+L,Cq) */
    tensor *queries = tensor_contiguous(tensor_slice(h, 1, 0, m->cfg.num_query_tokens));
    return linear_forward(&m->projection, queries);                           /* (B,Q,C) */
}

tensor *instructblip_forward_hidden(instructblip_model *m, tensor *ids, tensor *key_mask,
                                    const int32_t *positions, tensor *features,
                                    const int32_t *feature_row)
{
    tensor *x = image_merge_embeddings(&m->lm, "instructblip", m->cfg.image_token, ids, features,
                                       feature_row);                           /* (B,T,C) */
    return x ? llama_forward_hidden_embeds(&m->lm, x, key_mask, positions) : NULL; /* (B,T,C) */
}
