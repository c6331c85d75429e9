/* The trained model behind one interface: LLaMA or LLaVA (config.json says which), and the
 * CLIP that ASPO's similarities use (LLaVA's own tower when it is a full CLIP, else
 * --clip-model, shared with LLaVA when it is the same tower). */
#define _POSIX_C_SOURCE 200809L /* strdup */
#include "aspo/policy.h"

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

static llama_options language_options(const policy_options *o)
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

/* The CLIP for similarities: --clip-model (opened before LLaVA, so LLaVA can share its
 * tower), else LLaVA's own tower when it has the text side. */
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
        p->clip_dir = strdup(o->clip_model);
    }
    return ASPO_OK;
}

aspo_status policy_open(const policy_options *o, policy_model *p)
{
    memset(p, 0, sizeof *p);
    bool llava = false;
    aspo_status s = llava_detect(o->model, &llava);
    if (s) return s;
    p->is_llava = llava;
    if (!llava && (o->train_projector || o->vision_tower)) {
        return aspo_fail(ASPO_ERR_USAGE, "%s is a text-only LLaMA: --train-projector and "
                         "--vision-tower are for LLaVA models", o->model);
    }
    if (o->need_similarity && (s = open_similarity_clip(o, p))) goto fail;
    if (!llava) {
        llama_options l = language_options(o);
        if ((s = llama_open(o->model, &l, &p->llama))) goto fail;
        p->lm = &p->llama;
    } else {
        llava_options v = llava_defaults();
        v.lm = language_options(o);
        v.train_projector = o->train_projector;
        v.vision_tower_dir = o->vision_tower;
        v.shared_clip = p->has_clip ? &p->clip : NULL;
        if ((s = llava_open(o->model, &v, &p->llava))) goto fail;
        p->lm = &p->llava.lm;
        clip_model *tower = p->llava.vision;
        if (o->need_similarity && !p->sim_clip && tower->cfg.has_text &&
            tower->has_visual_projection) {
            p->sim_clip = tower;
            p->clip_dir = strdup(p->llava.cfg.vision_tower_dir);
        }
    }
    if (o->need_similarity && !p->sim_clip) {
        s = aspo_fail(ASPO_ERR_USAGE, "ASPO's image-text similarities need a full CLIP model and "
                      "%s has only a vision tower: give --clip-model DIR (the CLIP the tower "
                      "came from, e.g. openai/clip-vit-large-patch14-336), or --alpha 0",
                      o->model);
        goto fail;
    }
    if (p->sim_clip && (s = clip_tokenizer_load(p->clip_dir, &p->clip_tok))) goto fail;
    return ASPO_OK;
fail:
    policy_close(p);
    return s;
}

void policy_close(policy_model *p)
{
    if (p->is_llava) llava_close(&p->llava); /* before the CLIP it may share */
    else llama_close(&p->llama);
    if (p->has_clip) clip_close(&p->clip);
    if (p->clip_tok) clip_tokenizer_free(p->clip_tok);
    free(p->clip_dir);
    memset(p, 0, sizeof *p);
}

bool policy_images(const policy_model *p, pair_batch_images *images)
{
    if (!p->is_llava) return false;
    *images = (pair_batch_images){p->llava.cfg.image_token_index, p->llava.cfg.image_positions};
    return true;
}

tensor *policy_logprobs(policy_model *p, const pair_batch *b, const float *vision,
                        tensor **logit_sums)
{
    int64_t rows = 2 * (int64_t)b->n_pairs;
    tensor *ids = tensor_from_host(DT_I32, DIMS(rows, b->T), b->ids);
    tensor *mask = tensor_from_host(DT_F32, DIMS(rows, b->T), b->mask);
    tensor *hidden;
    if (!p->is_llava) {
        hidden = llama_forward_hidden(&p->llama, ids, mask, NULL);
    } else {
        tensor *features = NULL;
        if (b->n_images) {
            int64_t N = p->llava.cfg.image_positions, Cv = llava_vision_width(&p->llava);
            tensor *v = tensor_from_host(DT_F32, DIMS(b->n_images, N, Cv), vision);
            features = llava_project(&p->llava, v);                        /* (k,N,C) */
            if (!features) return NULL;
            features = tensor_reshape(features, DIMS(-1, features->shape[2])); /* (k*N,C) */
        }
        hidden = llava_forward_hidden(&p->llava, ids, mask, features,
                                      features ? b->feature_row : NULL);
    }
    tensor *logits = llama_lm_head(p->lm, hidden); /* (2P,T,V) f32 */
    return pair_batch_logprobs(b, logits, logit_sums);
}

const char *policy_chat_template(const policy_model *p, const char *name)
{
    if (!name || strcmp(name, "auto")) return name;
    return p->is_llava ? "vicuna_v1" : "raw";
}

aspo_status policy_save_adapter(const policy_model *p, const char *dir)
{
    return p->is_llava ? llava_save_adapter(&p->llava, dir) : llama_save_adapter(p->lm, dir);
}
