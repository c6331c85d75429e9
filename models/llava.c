/* LLaVA-1.5: opening both checkpoint layouts onto one model (the LLaMA with the
 * projector in its param_store, the CLIP vision tower beside it or shared), image
 * preprocessing and features, the forward pass with image features among the token
 * embeddings, and PEFT adapters that PEFT loads onto LlavaForConditionalGeneration. */
#define _XOPEN_SOURCE 700 /* realpath, strndup */
#include "llava.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llava_internal.h"
#include "models/image_merge.h"
#include "models/weights.h"
#include "tensor/autograd.h"
#include "tensor/runtime.h"
#include "tensor/tensor_ops.h"

llava_options llava_defaults(void)
{
    return (llava_options){.lm = llama_defaults()};
}

/* ---- the projector, declared into the language model's param_store ---- */

typedef struct projector_ctx {
    llava_model *m;
    const llava_options *opt;
    int64_t vision_hidden;
} projector_ctx;

static void projector_names(const llava_config *c, const char **n1, const char **n2)
{
    *n1 = c->hf_layout ? "multi_modal_projector.linear_1" : "model.mm_projector.0";
    *n2 = c->hf_layout ? "multi_modal_projector.linear_2" : "model.mm_projector.2";
}

/* Whether the projector gets LoRA: train_projector, or an adapter being loaded that adapts
 * it. With both, they must agree (as llama_open checks the language model's targets). */
static aspo_status projector_wants_lora(const projector_ctx *pc, llama_model *lm,
                                        const peft_config *adapter, bool *want)
{
    const char *n1, *n2;
    projector_names(&pc->m->cfg, &n1, &n2);
    bool opt = pc->opt->train_projector;
    bool file1 = adapter && peft_targets_module(adapter, n1, false),
         file2 = adapter && peft_targets_module(adapter, n2, false);
    if (adapter && file1 != file2)
        return aspo_fail(ASPO_ERR_UNSUPPORTED, "%s/adapter_config.json: the adapter adapts only "
                         "one of %s and %s; aspo trains the projector's two linears together",
                         pc->opt->lm.adapter_dir, n1, n2);
    if (adapter && opt && !file1)
        return aspo_fail(ASPO_ERR_USAGE, "%s/adapter_config.json: the adapter leaves the "
                         "projector (%s) out but training the projector was asked for",
                         pc->opt->lm.adapter_dir, n1);
    if (adapter && !opt && file1 && pc->opt->lm.lora.r > 0)
        return aspo_fail(ASPO_ERR_USAGE, "%s/adapter_config.json: the adapter adapts the "
                         "projector (%s) but training the projector was not asked for; ask for "
                         "it or leave the LoRA options out to take the adapter's",
                         pc->opt->lm.adapter_dir, n1);
    *want = adapter ? file1 : opt;
    if (*want && !lm->has_lora)
        return aspo_fail(ASPO_ERR_USAGE, "training the projector needs LoRA (a rank r > 0 or an "
                         "adapter)");
    return ASPO_OK;
}

static aspo_status declare_projector(void *ctx, llama_model *lm, const peft_config *adapter)
{
    projector_ctx *pc = ctx;
    llava_model *m = pc->m;
    const char *n1, *n2;
    projector_names(&m->cfg, &n1, &n2);
    int64_t Cv = pc->vision_hidden, C = lm->cfg.hidden_size;
    bool want = false;
    aspo_status s = projector_wants_lora(pc, lm, adapter, &want);
    if (!s) s = linear_declare(&m->proj1, &lm->ps, n1, Cv, C, true, lm->storage_dt, false);
    if (!s) s = linear_declare(&m->proj2, &lm->ps, n2, C, C, true, lm->storage_dt, false);
    if (!s && want) s = linear_add_lora(&m->proj1, &lm->ps, n1, &lm->peft.lora);
    if (!s && want) s = linear_add_lora(&m->proj2, &lm->ps, n2, &lm->peft.lora);
    return s;
}

/* ---- the vision tower: own or shared ---- */

static bool same_tower_config(const clip_tower_config *a, const clip_tower_config *b)
{
    return a->hidden_size == b->hidden_size && a->intermediate_size == b->intermediate_size &&
           a->num_layers == b->num_layers && a->num_heads == b->num_heads &&
           a->layer_norm_eps == b->layer_norm_eps && a->act == b->act &&
           a->image_size == b->image_size && a->patch_size == b->patch_size &&
           a->num_channels == b->num_channels;
}

/* Whether parameter t holds exactly what loading entry e into it would give. */
static bool param_equals_entry(const tensor *t, const st_entry *e)
{
    if (!e || e->dt < 0 || !dtype_is_float((dtype)e->dt) || e->ndim != t->ndim) return false;
    for (int d = 0; d < t->ndim; d++)
        if (e->shape[d] != t->shape[d]) return false;
    int64_t n = tensor_numel(t);
    size_t bytes = (size_t)n * dtype_size(t->dt);
    char *have = malloc(bytes ? bytes : 1), *want = malloc(bytes ? bytes : 1);
    bool same = have && want && weights_read(t, t->dt, have) == ASPO_OK;
    if (same) {
        for (int64_t i = 0; i < n; i++)
            dtype_store(want, t->dt, i, dtype_load(e->data, (dtype)e->dt, i));
        same = memcmp(have, want, bytes) == 0;
    }
    free(have);
    free(want);
    aspo_error_clear(); /* a failed read only means "not shared" */
    return same;
}

/* llava-hf: the shared CLIP's vision_model.* equal the checkpoint's vision_tower.*. */
static bool shares_hf_weights(const clip_model *clip, const st_model *st)
{
    for (int i = 0; i < clip->ps.n; i++) {
        const tensor *t = clip->ps.items[i];
        if (strncmp(t->name, "vision_model.", 13) != 0) continue;
        char key[512];
        snprintf(key, sizeof key, "vision_tower.%s", t->name);
        if (!param_equals_entry(t, st_find(st, key))) return false;
    }
    return true;
}

static bool same_directory(const char *a, const char *b)
{
    char *ra = a ? realpath(a, NULL) : NULL, *rb = b ? realpath(b, NULL) : NULL;
    bool same = ra && rb && strcmp(ra, rb) == 0;
    free(ra);
    free(rb);
    return same;
}

static bool can_share(const llava_model *m, const clip_model *clip, const llava_parsed *p,
                      const char *dir, bool skip_weights)
{
    if (!clip || !same_tower_config(&clip->cfg.vision, &p->tower.vision)) return false;
    if (!m->cfg.hf_layout) return same_directory(clip->dir, m->cfg.vision_tower_dir);
    /* A plan reads no weights to compare: the same tower config is taken to be the same
     * tower, as it is for a --clip-model that LLaVA-1.5's tower came from. */
    if (skip_weights) return true;
    st_model st = {0};
    bool same = st_open(dir, &st) == ASPO_OK && shares_hf_weights(clip, &st);
    st_close(&st);
    aspo_error_clear();
    return same;
}

static aspo_status open_vision(llava_model *m, const char *dir, const llava_options *opt,
                               const llava_parsed *p)
{
    if (can_share(m, opt->shared_clip, p, dir, opt->lm.skip_weights)) {
        m->vision = opt->shared_clip;
        return ASPO_OK;
    }
    if (!(m->vision = calloc(1, sizeof *m->vision)))
        return aspo_fail(ASPO_ERR_OOM, "no host memory for the vision tower");
    m->owns_vision = true;
    clip_open_options co = {opt->lm.storage_dtype, opt->lm.skip_weights};
    /* The original layout's tower is a whole CLIP directory (its text tower can serve ASPO's
     * similarities); llava-hf's is the vision_tower.* part of the checkpoint. */
    aspo_status s = m->cfg.hf_layout
                        ? clip_open_vision_with(p->vision_config, p->vision_where, dir,
                                                "vision_tower.", &co, m->vision)
                        : clip_open_with(m->cfg.vision_tower_dir, &co, m->vision);
    if (s) return aspo_fail_prefix(s, "LLaVA %s: vision tower: ", dir);
    return ASPO_OK;
}

/* ---- open / close ---- */

static aspo_status open_model(llava_model *m, const char *dir, const llava_options *opt)
{
    llava_parsed p;
    aspo_status s = llava_config_parse(dir, opt, &m->cfg, &p);
    if (s) return s;
    s = open_vision(m, dir, opt, &p);
    projector_ctx pc = {m, opt, p.tower.vision.hidden_size};
    llama_open_spec spec = {.name_prefix = m->cfg.hf_layout ? "language_model." : "",
                            .config = p.text_config, .config_where = p.text_where,
                            .declare_more = declare_projector, .ctx = &pc};
    if (!s) s = llama_open_with(dir, &opt->lm, &spec, &m->lm);
    llava_parsed_free(&p);
    return s;
}

aspo_status llava_open(const char *dir, const llava_options *opt_in, llava_model *m)
{
    memset(m, 0, sizeof *m);
    llava_options opt = opt_in ? *opt_in : llava_defaults();
    aspo_status s = open_model(m, dir, &opt);
    if (s) llava_close(m);
    return s;
}

void llava_close(llava_model *m)
{
    llama_close(&m->lm);
    if (m->owns_vision && m->vision) {
        clip_close(m->vision);
        free(m->vision);
    }
    memset(m, 0, sizeof *m);
}

/* ---- images ---- */

aspo_status llava_preprocess(const llava_model *m, const image_rgb8 *img, float *out)
{
    if (!m->cfg.pad_to_square) return clip_preprocess(img, &m->cfg.image, out);
    uint8_t mean[3];
    image_mean_u8(m->cfg.image.mean, mean);
    image_rgb8 square = {0};
    aspo_status s = image_pad_to_square(img, mean, &square);
    if (!s) s = clip_preprocess(&square, &m->cfg.image, out);
    image_free(&square);
    return s;
}

tensor *llava_vision_features(llava_model *m, tensor *pixels, tensor **clip_embeds)
{
    if (clip_embeds) *clip_embeds = NULL;
    if (!pixels) return NULL;
    /* The tower is frozen: no tape for it, only for the projector. */
    bool prev = autograd_set_enabled(false);
    tensor *hidden = NULL, *embeds = NULL;
    if (clip_embeds) /* the whole tower, for the image embedding too */
        embeds = clip_vision_forward(m->vision, pixels, m->cfg.vision_feature_layer, &hidden);
    else /* only the layers up to the selected one */
        hidden = clip_vision_hidden(m->vision, pixels, m->cfg.vision_feature_layer);
    autograd_set_enabled(prev);                                       /* (n,1+P,Cv)     */
    if (!hidden || (clip_embeds && !embeds)) return NULL;
    if (clip_embeds && m->vision->has_visual_projection) *clip_embeds = tensor_detach(embeds);
    int64_t P = hidden->shape[1] - 1;
    return m->cfg.keep_cls ? hidden : tensor_slice(hidden, 1, 1, P); /* (n,N,Cv) */
}

tensor *llava_project(llava_model *m, tensor *f)
{
    tensor *h = clip_activation(m->cfg.projector_act, linear_forward(&m->proj1, f));
    return linear_forward(&m->proj2, h);                              /* (n,N,C)        */
}

int64_t llava_vision_width(const llava_model *m) { return m->vision->cfg.vision.hidden_size; }

tensor *llava_image_features(llava_model *m, tensor *pixels, tensor **clip_embeds)
{
    return llava_project(m, llava_vision_features(m, pixels, clip_embeds));
}

/* ---- forward ---- */

tensor *llava_forward_hidden(llava_model *m, tensor *ids, tensor *key_mask,
                             const int32_t *positions, tensor *features,
                             const int32_t *feature_row)
{
    tensor *x = image_merge_embeddings(&m->lm, "llava", m->cfg.image_token_index, ids, features,
                                       feature_row);                            /* (B,T,C) */
    return x ? llama_forward_hidden_embeds(&m->lm, x, key_mask, positions) : NULL; /* (B,T,C) */
}

tensor *llava_lm_head(llava_model *m, tensor *hidden)
{
    return llama_lm_head(&m->lm, hidden); /* (...,C) -> (...,V) */
}

/* ---- adapters ---- */

aspo_status llava_save_adapter(const llava_model *m, const char *out_dir)
{
    /* The vision tower's attention has q_proj/k_proj/v_proj too: name the LLM's exactly. */
    return llama_save_adapter_exact(&m->lm, m->lm.peft.task_type, out_dir);
}
