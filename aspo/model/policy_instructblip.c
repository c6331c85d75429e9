/* The InstructBLIP family: the vision encoder, the Q-Former and language_projection turn an
 * image and its instruction into Q inputs of the LLaMA (models/instructblip.h), all frozen;
 * LoRA trains the LLaMA. The Q-Former reads the instruction, so an image's frozen outputs
 * depend on the row's prompt too: they are computed per (image, instruction) once per step
 * and keyed by both in --vision-cache. The Q inputs go before BOS (image_first). */
#define _POSIX_C_SOURCE 200809L /* access */
#include "aspo/model/policy_family.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aspo/data/image_rows.h"
#include "tensor/runtime.h"
#include "tensor/tensor_ops.h"

static aspo_status detect(const char *model_dir, bool *yes)
{
    return instructblip_detect(model_dir, yes);
}

/* <model>/qformer_tokenizer, where InstructBlipProcessor.save_pretrained puts the Q-Former's
 * BERT tokenizer. A plan (skip_weights) of a directory that has only config.json does
 * without it: its instructions are then two tokens (instruction_ids). */
static aspo_status open_instruction_tokenizer(const policy_options *o, policy_model *p)
{
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/qformer_tokenizer", o->model);
    if (o->skip_weights && access(dir, F_OK) != 0) return ASPO_OK;
    aspo_status s = bert_tokenizer_load(dir, &p->blip.instruction_tok);
    if (s)
        return aspo_fail_prefix(s, "%s: InstructBLIP's Q-Former reads the instruction with the "
                                "BERT tokenizer that InstructBlipProcessor.save_pretrained "
                                "writes to qformer_tokenizer/: ", o->model);
    int32_t V = bert_tokenizer_vocab_size(p->blip.instruction_tok);
    int64_t rows = p->blip.model.cfg.qformer.vocab_size;
    if (V > rows)
        return aspo_fail(ASPO_ERR_FORMAT, "%s: the tokenizer has %d ids but the Q-Former's word "
                         "embeddings have %lld rows (qformer_config.vocab_size); they do not "
                         "belong together", dir, V, (long long)rows);
    return ASPO_OK;
}

static aspo_status open_blip(const policy_options *o, clip_model *shared_clip, policy_model *p)
{
    (void)shared_clip; /* EVA ViT-g is no CLIP: S comes from --clip-model alone */
    if (o->train_projector || o->vision_tower)
        return aspo_fail(ASPO_ERR_USAGE, "%s is an InstructBLIP: --train-projector and "
                         "--vision-tower are LLaVA's (its image side is one frozen checkpoint)",
                         o->model);
    llama_options lm = policy_language_options(o);
    aspo_status s = instructblip_open(o->model, &lm, &p->blip.model);
    if (s) return s;
    p->blip.plan = o->skip_weights;
    p->lm = &p->blip.model.lm;
    return open_instruction_tokenizer(o, p);
}

static void close_blip(policy_model *p)
{
    instructblip_close(&p->blip.model);
    if (p->blip.instruction_tok) bert_tokenizer_free(p->blip.instruction_tok);
}

static const char *describe(const policy_model *p)
{
    (void)p;
    return "InstructBLIP";
}

static tensor *hidden(policy_model *p, const pair_batch *b, const pair_batch_input *in,
                      const float *vision)
{
    instructblip_model *m = &p->blip.model;
    tensor *inputs = NULL;
    if (b->n_images) {
        int64_t Q = m->cfg.num_query_tokens, C = m->lm.cfg.hidden_size;
        inputs = tensor_from_host(DT_F32, DIMS((int64_t)b->n_images * Q, C), vision); /* (k*Q,C) */
    }
    return instructblip_forward_hidden(m, in->ids, in->mask, in->positions, inputs,
                                       inputs ? in->feature_row : NULL);          /* (B,T,C) */
}

static aspo_status save_adapter(const policy_model *p, const char *dir)
{
    /* The Q-Former and the vision encoder have no q_proj, but --lora-targets all-linear
     * would mean their layers too in PEFT: name the LLM's modules exactly. task_type null:
     * PeftModelForCausalLM passes inputs_embeds, which InstructBLIP's forward does not take,
     * so PEFT users wrap it as a plain PeftModel. */
    return llama_save_adapter_exact(&p->blip.model.lm, NULL, dir);
}

static aspo_status save_merged(const policy_model *p, const char *dir, dtype out_dtype)
{
    return instructblip_save_merged(&p->blip.model, dir, out_dtype);
}

static pair_batch_images images(const policy_model *p)
{
    const instructblip_config *c = &p->blip.model.cfg;
    return (pair_batch_images){c->image_token, c->num_query_tokens, true};
}

static size_t feature_floats(const policy_model *p)
{
    const instructblip_model *m = &p->blip.model;
    return (size_t)(m->cfg.num_query_tokens * m->lm.cfg.hidden_size); /* Q*C */
}

/* The Q-Former's ids of row's instruction: [CLS] the text the LLM's prompt is made from
 * [SEP], as InstructBlipProcessor gives both tokenizers one text. ids holds P+1 entries, P
 * the Q-Former's positions; more tokens than P is an error naming the row. */
static aspo_status instruction_ids(const policy_model *p, const preference_row *row,
                                   int32_t *ids, int *n)
{
    const bert_tokenizer *tok = p->blip.instruction_tok;
    int64_t P = p->blip.model.cfg.qformer.max_position_embeddings;
    bool has_text = row->prompt != NULL; /* not a pre-tokenized row or a plan's synthetic one */
    if (!tok || (p->blip.plan && !has_text)) {
        /* A plan of a config without qformer_tokenizer/ (open_instruction_tokenizer), or of
         * --dry-run's synthetic rows, which have ids only. */
        ids[0] = ids[1] = 0;
        *n = 2; /* [CLS] [SEP]: the Q-Former's text costs a plan nothing worth counting */
        return ASPO_OK;
    }
    if (!has_text)
        return aspo_fail(ASPO_ERR_USAGE, "%s: a pre-tokenized image row has no prompt text, and "
                         "InstructBLIP's Q-Former reads the instruction; give the row's "
                         "prompt, chosen and rejected as text", preference_row_where(row));
    char *text = NULL;
    size_t len = 0;
    aspo_status s = pair_prompt_text(row, &p->prompts, &text, &len);
    if (!s) s = bert_encode(tok, text, len, true, ids, (int)P + 1, n);
    free(text);
    if (s) return aspo_fail_prefix(s, "%s: the instruction for the Q-Former: ",
                                   preference_row_where(row));
    if (*n > P)
        return aspo_fail(ASPO_ERR_USAGE, "%s: the instruction is longer than the Q-Former's %lld "
                         "positions (qformer_config.max_position_embeddings) in BERT tokens; "
                         "shorten the prompt", preference_row_where(row), (long long)P);
    return ASPO_OK;
}

static aspo_status check_row(const policy_model *p, const preference_row *row)
{
    if (!row->image || !p->blip.instruction_tok) return ASPO_OK;
    int64_t P = p->blip.model.cfg.qformer.max_position_embeddings;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(P + 1));
    int n = 0;
    aspo_status s = ids ? instruction_ids(p, row, ids, &n)
                        : aspo_fail(ASPO_ERR_OOM, "no host memory for an instruction");
    free(ids);
    return s;
}

/* One image row's Q inputs (Q,C) into dst: from the cache when it has them (keyed by the
 * image and the instruction's ids), else the image side run without a tape. */
static aspo_status row_inputs(policy_model *p, vision_cache *cache, const char *root,
                              const image_limits *limits, const preference_row *row,
                              int32_t *ids, float *pixels, float *dst)
{
    instructblip_model *m = &p->blip.model;
    int64_t S = m->cfg.image.crop_size;
    int n = 0;
    char path[4096], file[4300] = "";
    aspo_status s = instruction_ids(p, row, ids, &n);
    if (!s) s = image_row_path(root, row, path, sizeof path);
    if (s) return s;
    bool cached = cache && cache->dir;
    if (cached && vision_cache_file(cache, path, ids, sizeof(int32_t) * (size_t)n, file,
                                    sizeof file)) {
        if (vision_cache_get(cache, file, dst)) {
            cache->hits++;
            return ASPO_OK;
        }
    }
    if (cache) cache->misses++;
    image_rgb8 img;
    if ((s = image_row_load(root, row, limits, &img))) return s;
    s = blip_preprocess(&img, &m->cfg.image, pixels);
    image_free(&img);
    if (s) return aspo_fail_prefix(s, "%s: image %s: ", preference_row_where(row), row->image);
    bool prev = autograd_set_enabled(false);
    tensor *x = instructblip_image_inputs(m, tensor_from_host(DT_F32, DIMS(1, 3, S, S), pixels),
                                          tensor_from_host(DT_I32, DIMS(1, n), ids), NULL);
    autograd_set_enabled(prev);                                               /* (1,Q,C) */
    s = x ? tensor_to_host_f32(x, dst) : aspo_error_status();
    if (!s && file[0]) s = vision_cache_put(cache, file, dst);
    runtime_step_reset(); /* the image side's activations: its outputs are on the host now */
    return s;
}

static aspo_status image_features(policy_model *p, vision_cache *cache, const char *root,
                                  const image_limits *limits, const preference_row *const *rows,
                                  const int *slot, int n, float *out)
{
    int64_t S = p->blip.model.cfg.image.crop_size;
    int64_t P = p->blip.model.cfg.qformer.max_position_embeddings;
    size_t per_row = feature_floats(p);
    float *pixels = malloc(sizeof(float) * (size_t)(3 * S * S));
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(P + 1));
    aspo_status s = pixels && ids ? ASPO_OK : aspo_fail(ASPO_ERR_OOM, "no host memory for an image");
    /* One image per pass, as for LLaVA: the step arena holds one image's activations, and
     * an image's outputs do not depend on the batch it is in. */
    for (int i = 0; i < n && !s; i++)
        if (slot[i] >= 0)
            s = row_inputs(p, cache, root, limits, rows[i], ids, pixels,
                           out + (size_t)slot[i] * per_row);
    free(pixels);
    free(ids);
    return s;
}

static aspo_status cache_open(const policy_model *p, vision_cache *c, const char *dir,
                              const char *model_dir)
{
    const instructblip_model *m = &p->blip.model;
    /* The model directory, the image processing and the dtype; the instruction is in each
     * file's name. */
    uint64_t h = vision_cache_model_key("instructblip", model_dir);
    int32_t fields[] = {m->cfg.image.crop_size, (int32_t)m->lm.storage_dt};
    h = vision_cache_hash(h, fields, sizeof fields);
    h = vision_cache_hash(h, m->cfg.image.mean, sizeof m->cfg.image.mean);
    h = vision_cache_hash(h, m->cfg.image.std, sizeof m->cfg.image.std);
    h = vision_cache_hash(h, &m->cfg.image.rescale, sizeof m->cfg.image.rescale);
    return vision_cache_start(c, dir, h, m->cfg.num_query_tokens, m->lm.cfg.hidden_size);
}

/* The image side's parameters (vision_model, qformer, query_tokens, language_projection):
 * every one outside the language model's name prefix. */
static int64_t image_side_parameters(const instructblip_model *m)
{
    const param_store *ps = &m->lm.ps;
    size_t k = strlen(m->lm.name_prefix);
    int64_t n = 0;
    for (int i = 0; i < ps->n; i++)
        if (strncmp(ps->items[i]->name, m->lm.name_prefix, k) != 0) n += tensor_numel(ps->items[i]);
    return n;
}

static void describe_vision(const policy_model *p, char *buf, size_t size)
{
    const instructblip_model *m = &p->blip.model;
    snprintf(buf, size, "%lld frozen parameters (vision encoder, Q-Former, projection), %lld "
             "query positions per image before the text; similarities S %s",
             (long long)image_side_parameters(m), (long long)m->cfg.num_query_tokens,
             p->sim_clip ? "from --clip-model" : "not used");
}

const policy_family policy_instructblip_family = {
    .kind = "instructblip",
    .name = "InstructBLIP",
    /* The released models take the instruction as it is (transformers' examples and LAVIS
     * give the prompt raw); BOS, the text, and the answer after it. */
    .chat_template = "raw",
    .detect = detect,
    .open = open_blip,
    .close = close_blip,
    .describe = describe,
    .hidden = hidden,
    .save_adapter = save_adapter,
    .save_merged = save_merged,
    .images = images,
    .feature_floats = feature_floats,
    .image_features = image_features,
    .check_row = check_row,
    .cache_open = cache_open,
    .describe_vision = describe_vision,
};
