/* The trained model behind one interface: the family table (config.json picks the family
 * once; aspo/policy_<family>.c implement them), the calls that dispatch to it, and the CLIP
 * that ASPO's similarities use (--clip-model, or the model's own tower when it is a full
 * CLIP). */
#define _POSIX_C_SOURCE 200809L /* strdup */
#include "aspo/model/policy.h"
#include "aspo/model/policy_family.h"

#include "backends/registry.h"

#include <stdlib.h>
#include <string.h>

#include "tensor/autograd.h"
#include "tensor/runtime.h"
#include "tensor/tensor_ops.h"

policy_options policy_defaults(void)
{
    return (policy_options){.storage_dtype = -1, .lora = {.r = 0, .alpha = 16.0f}};
}

int policy_activation_dtype(const char *choice, const char *backend)
{
    if (strcmp(choice, "auto")) return dtype_from_name(choice);
    unsigned caps = 0;
    backend_caps_of(backend, &caps); /* an unknown name fails where the backend is opened */
    return caps & BACKEND_HALF_ACTIVATIONS ? -1 : DT_F32;
}

llama_options policy_language_options(const policy_options *o)
{
    llama_options l = llama_defaults();
    l.storage_dtype = o->storage_dtype;
    l.activation_dtype = o->activation_dtype;
    l.lora = o->lora;
    l.lora_targets = o->lora_targets;
    l.lora_seed = o->lora_seed;
    l.adapter_dir = o->adapter;
    l.checkpoint_layers = o->checkpoint_layers;
    l.skip_weights = o->skip_weights;
    return l;
}

/* In the order they are asked: the first whose detect says yes; LLaMA, last, takes any
 * config.json that none of the others claims. */
static const policy_family *const families[] = {&policy_llava_family, &policy_instructblip_family,
                                                &policy_llama_family};

aspo_status policy_detect(const char *model_dir, const policy_family **family)
{
    *family = NULL;
    for (size_t i = 0; i < sizeof families / sizeof *families; i++) {
        bool yes = false;
        aspo_status s = families[i]->detect(model_dir, &yes);
        if (s) return s;
        if (yes) {
            *family = families[i];
            return ASPO_OK;
        }
    }
    return aspo_fail(ASPO_ERR_UNSUPPORTED, "%s/config.json: no model family of aspo's reads it",
                     model_dir);
}

bool policy_family_reads_images(const policy_family *family)
{
    return family->images != NULL;
}

const char *policy_family_name(const policy_family *family)
{
    return family->name;
}

/* The CLIP for similarities from --clip-model, opened before the model so that a family can
 * share its vision tower (a family may instead offer its own tower: policy_llava.c). */
static aspo_status open_similarity_clip(const policy_options *o, policy_model *p)
{
    if (o->clip_model) {
        clip_open_options co = {o->storage_dtype, o->skip_weights};
        aspo_status s = clip_open_with(o->clip_model, &co, &p->clip);
        if (s) return s;
        p->has_clip = true;
        if (!p->clip.cfg.has_text || !p->clip.has_visual_projection)
            return aspo_fail(ASPO_ERR_USAGE, "--clip-model %s: ASPO's similarities need a full "
                             "CLIP (text tower, text_projection and visual_projection); this "
                             "is a vision tower only", o->clip_model);
        p->sim_clip = &p->clip;
        if (!(p->clip_dir = strdup(o->clip_model)))
            return aspo_fail(ASPO_ERR_OOM, "out of memory");
    }
    return ASPO_OK;
}

aspo_status policy_open(const policy_options *o, policy_model *p)
{
    memset(p, 0, sizeof *p);
    const policy_family *family;
    aspo_status s = policy_detect(o->model, &family);
    if (s) return s;
    if (!policy_family_reads_images(family) && (o->train_projector || o->vision_tower))
        return aspo_fail(ASPO_ERR_USAGE, "%s is a text-only %s: --train-projector and "
                         "--vision-tower are for models that read images", o->model,
                         family->name);
    /* --clip-model first, so that a family can share its vision tower. */
    if (o->need_similarity && (s = open_similarity_clip(o, p))) goto fail;
    p->family = family; /* its close undoes a failed open too */
    if ((s = family->open(o, p->has_clip ? &p->clip : NULL, p))) goto fail;
    if (o->need_similarity && !p->sim_clip) {
        s = aspo_fail(ASPO_ERR_USAGE, "ASPO's image-text similarities need a full CLIP model and "
                      "%s has only a vision tower: give --clip-model DIR (the CLIP the tower "
                      "came from, e.g. openai/clip-vit-large-patch14-336), or --alpha 0",
                      o->model);
        goto fail;
    }
    if (p->sim_clip && (s = clip_tokenizer_load(p->clip_dir, &p->clip_tok))) goto fail;
    tokenize_options prompts = tokenize_options_default(); /* until the caller sets its own */
    if ((s = policy_tokenize_options(p, "auto", &prompts))) goto fail;
    return ASPO_OK;
fail:
    policy_close(p);
    return s;
}

void policy_close(policy_model *p)
{
    if (p->family) p->family->close(p); /* before the CLIP it may share */
    if (p->has_clip) clip_close(&p->clip);
    if (p->clip_tok) clip_tokenizer_free(p->clip_tok);
    free(p->clip_dir);
    memset(p, 0, sizeof *p);
}

const char *policy_kind(const policy_model *p)
{
    return p->family->kind;
}

const char *policy_describe(const policy_model *p)
{
    return p->family->describe(p);
}

bool policy_images(const policy_model *p, pair_batch_images *images)
{
    if (!p->family->images) return false;
    *images = p->family->images(p);
    return true;
}

aspo_status policy_check_row(const policy_model *p, const preference_row *row)
{
    return p->family->check_row ? p->family->check_row(p, row) : ASPO_OK;
}

size_t policy_feature_floats(const policy_model *p)
{
    return p->family->feature_floats ? p->family->feature_floats(p) : 0;
}

aspo_status policy_image_features(policy_model *p, vision_cache *cache, const char *root,
                                  const image_limits *limits, const preference_row *const *rows,
                                  const int *slot, int n, float *out)
{
    if (!p->family->image_features)
        return aspo_fail(ASPO_ERR_USAGE, "%s reads no images", policy_describe(p));
    return p->family->image_features(p, cache, root, limits, rows, slot, n, out);
}

aspo_status policy_vision_cache_open(const policy_model *p, vision_cache *c, const char *dir,
                                     const char *model_dir)
{
    memset(c, 0, sizeof *c);
    if (!dir) return ASPO_OK;
    if (!p->family->cache_open)
        return aspo_fail(ASPO_ERR_USAGE, "--vision-cache: %s is a text-only %s", model_dir,
                         p->family->name);
    return p->family->cache_open(p, c, dir, model_dir);
}

aspo_status policy_own_pixels(const policy_model *p, const image_rgb8 *img, int size,
                              float *out, bool *done)
{
    *done = false;
    return p->family->own_pixels ? p->family->own_pixels(p, img, size, out, done) : ASPO_OK;
}

int policy_other_stores(const policy_model *p, const param_store **out, int max)
{
    int n = p->family->vision_stores ? p->family->vision_stores(p, out, max) : 0;
    bool shared = false; /* the similarity CLIP may be the model's own tower */
    for (int i = 0; i < n; i++) shared = shared || (p->has_clip && out[i] == &p->clip.ps);
    if (p->has_clip && !shared && n < max) out[n++] = &p->clip.ps;
    return n;
}

bool policy_describe_vision(const policy_model *p, char *buf, size_t size)
{
    if (!p->family->describe_vision) return false;
    p->family->describe_vision(p, buf, size);
    return true;
}

tensor *policy_logprobs(policy_model *p, const pair_batch *b, const float *vision,
                        tensor **logit_sums)
{
    pair_batch_input in = pair_batch_model_input(b);
    tensor *hidden = p->family->hidden(p, b, &in, vision); /* (2P,T,C) or (R,W,C) packed */
    if (!hidden) return NULL;
    /* Only the positions that score a token reach the LM head (N of 2P*T). */
    tensor *logits = llama_lm_head(p->lm, pair_batch_scored_hidden(b, hidden)); /* (N,V) f32 */
    return pair_batch_logprobs(b, logits, logit_sums);
}

aspo_status policy_tokenize_options(policy_model *p, const char *chat_template,
                                    tokenize_options *topt)
{
    pair_batch_images images;
    if ((topt->images = policy_images(p, &images))) {
        topt->image_token = images.token;
        topt->image_first = images.first;
    }
    const char *name = chat_template && strcmp(chat_template, "auto") ? chat_template
                                                                       : p->family->chat_template;
    aspo_status s = chat_template_parse(name, &topt->template);
    if (!s) p->prompts = *topt;
    return s;
}

aspo_status policy_save_adapter(const policy_model *p, const char *dir)
{
    return p->family->save_adapter(p, dir);
}

aspo_status policy_save_merged(const policy_model *p, const char *dir, dtype out_dtype)
{
    if (!p->family->save_merged)
        return aspo_fail(ASPO_ERR_UNSUPPORTED, "merging an adapter into a %s checkpoint is not "
                         "implemented yet (aspo merge writes LLaMA and InstructBLIP "
                         "checkpoints)",
                         policy_describe(p));
    return p->family->save_merged(p, dir, out_dtype);
}
