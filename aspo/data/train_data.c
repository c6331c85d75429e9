/* The training data, prepared once: rows read, tokenized as TRL does, the unit of every
 * chosen response token found, and the pairs split into train and eval sets. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aspo/data/image_rows.h"
#include "aspo/train/similarity.h"
#include "aspo/train/trainer_internal.h"
#include "tensor/rng.h"

/* A permutation of 0..n-1 from the seed (Fisher-Yates over Philox draws). */
void shuffle_indices(int64_t *idx, int64_t n, uint64_t seed, uint64_t stream)
{
    for (int64_t i = 0; i < n; i++) idx[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(rng_uniform(seed, stream << 32, (uint64_t)i) * (float)(i + 1));
        if (j > i) j = i;
        int64_t tmp = idx[i];
        idx[i] = idx[j];
        idx[j] = tmp;
    }
}

/* The units of the chosen response: the unit of each token into *unit_of, their byte spans
 * into *spans (both malloc'd). */
static aspo_status chosen_units(const preference_row *row, const tokenized_pair *p,
                                aspo_unit_level level, int32_t **unit_of, aspo_span **spans_out,
                                int *n_units)
{
    int64_t n = p->chosen.n - p->chosen.n_prompt; /* response tokens, EOS included */
    int64_t *begin = malloc(sizeof(int64_t) * (size_t)n), *end = malloc(sizeof(int64_t) * (size_t)n);
    aspo_span *spans = *spans_out = malloc(sizeof(aspo_span) * (size_t)n);
    *unit_of = malloc(sizeof(int32_t) * (size_t)n);
    aspo_status s = ASPO_OK;
    if (!begin || !end || !spans || !*unit_of) {
        s = aspo_fail(ASPO_ERR_OOM, "no host memory for the units of %s",
                      preference_row_where(row));
    } else {
        for (int64_t i = 0; i < n; i++) {
            begin[i] = p->chosen.span_begin ? p->chosen.span_begin[i] : -1;
            end[i] = p->chosen.span_end ? p->chosen.span_end[i] : -1;
        }
        const char *text = row->chosen ? row->chosen : "";
        size_t len = row->chosen ? row->chosen_len : 0;
        s = aspo_response_units(level, text, len, begin, end, n, spans, *unit_of, n_units);
        if (s) aspo_fail_prefix(s, "%s: ", preference_row_where(row));
    }
    free(begin);
    free(end);
    return s;
}

aspo_status train_data_read(const train_config *cfg, train_data *d)
{
    memset(d, 0, sizeof *d);
    dataset_options dopt = {.skip_bad_lines = cfg->skip_bad_lines};
    aspo_status s = dataset_load_jsonl(cfg->data, &dopt, &d->ds);
    if (!s) s = image_rows_check(cfg->image_root, &d->ds, &d->n_images);
    return s;
}

/* Pixels of row's image for the similarity CLIP: the model's own preprocessing when that
 * CLIP sees the model's image size (the same pixels the model gets), else pad-to-square with
 * the CLIP mean colour and CLIPImageProcessor at the CLIP's size. */
static aspo_status similarity_pixels(const policy_model *m, const train_config *cfg,
                                     const image_limits *limits, const preference_row *row,
                                     float *out)
{
    image_rgb8 img, square = {0};
    aspo_status s = image_row_load(cfg->image_root, row, limits, &img);
    if (s) return s;
    int size = (int)m->sim_clip->cfg.vision.image_size;
    bool done = false;
    s = policy_own_pixels(m, &img, size, out, &done);
    if (!s && !done) {
        clip_preprocess_config pc = clip_config_default(size);
        uint8_t mean[3];
        image_mean_u8(pc.mean, mean);
        if (!(s = image_pad_to_square(&img, mean, &square))) s = clip_preprocess(&square, &pc, out);
    }
    image_free(&img);
    image_free(&square);
    if (s) aspo_fail_prefix(s, "%s: image %s: ", preference_row_where(row), row->image);
    return s;
}

/* S_i of every unit of the image rows' chosen responses, a batch of images at a time. */
static aspo_status similarities(const train_config *cfg, policy_model *m,
                                const image_limits *limits, aspo_span *const *spans,
                                train_data *d)
{
    enum { IMAGES_PER_PASS = 1 }; /* one ViT-L image's activations are ~1.7 GB in the arena */
    clip_scorer sc = {m->sim_clip, m->clip_tok, 32};
    int64_t E = clip_scorer_dim(&sc), S = m->sim_clip->cfg.vision.image_size;
    size_t per_image = (size_t)(3 * S * S);
    float *pixels = malloc(sizeof(float) * per_image * IMAGES_PER_PASS);
    float *embeds = malloc(sizeof(float) * (size_t)E * IMAGES_PER_PASS);
    int64_t rows[IMAGES_PER_PASS];
    aspo_status s = pixels && embeds ? ASPO_OK
                                     : aspo_fail(ASPO_ERR_OOM, "no host memory for CLIP images");
    for (int64_t i = 0; i < d->n && !s;) {
        int k = 0;
        for (; i < d->n && k < IMAGES_PER_PASS; i++) {
            if (!d->ds.rows[i].image) continue;
            rows[k] = i;
            if ((s = similarity_pixels(m, cfg, limits, &d->ds.rows[i], pixels + per_image * k)))
                break;
            k++;
        }
        if (!s && k) s = clip_image_embedding(&sc, k, pixels, embeds);
        for (int j = 0; j < k && !s; j++) {
            int64_t r = rows[j];
            const preference_row *row = &d->ds.rows[r];
            int n = d->n_units[r];
            const char *texts[n];
            size_t lens[n];
            for (int u = 0; u < n; u++) {
                texts[u] = (row->chosen ? row->chosen : "") + spans[r][u].begin;
                lens[u] = (size_t)(spans[r][u].end - spans[r][u].begin);
            }
            if (!(d->similarity[r] = malloc(sizeof(float) * (size_t)n)))
                s = aspo_fail(ASPO_ERR_OOM, "no host memory for similarities");
            if (!s && (s = clip_similarities(&sc, n, texts, lens, embeds + (size_t)E * j, E,
                                             d->similarity[r])))
                aspo_fail_prefix(s, "%s: ", preference_row_where(row));
        }
    }
    free(pixels);
    free(embeds);
    return s;
}

aspo_status train_data_prepare(const train_config *cfg, const tokenizer *tok,
                               aspo_unit_level level, policy_model *model,
                               const image_limits *limits, train_data *d)
{
    tokenize_options topt = tokenize_options_default();
    topt.max_length = cfg->max_length;
    topt.max_prompt_length = cfg->max_prompt_length;
    topt.max_completion_length = cfg->max_completion_length;
    topt.add_bos = !cfg->no_bos;
    aspo_status s;
    if ((s = policy_tokenize_options(model, cfg->chat_template, &topt)) ||
        (s = truncation_mode_parse(cfg->truncation_mode, &topt.mode)))
        return s;
    d->n = d->ds.n_rows;
    d->pairs = calloc((size_t)d->n, sizeof *d->pairs);
    d->unit_of = calloc((size_t)d->n, sizeof *d->unit_of);
    d->n_units = calloc((size_t)d->n, sizeof *d->n_units);
    d->similarity = calloc((size_t)d->n, sizeof *d->similarity);
    d->train = malloc(sizeof(int64_t) * (size_t)d->n);
    d->eval = malloc(sizeof(int64_t) * (size_t)d->n);
    aspo_span **spans = calloc((size_t)d->n, sizeof *spans);
    if (!d->pairs || !d->unit_of || !d->n_units || !d->similarity || !d->train || !d->eval ||
        !spans) {
        free(spans);
        return aspo_fail(ASPO_ERR_OOM, "no host memory for %lld pairs", (long long)d->n);
    }
    for (int64_t i = 0; i < d->n && !s; i++) {
        const preference_row *row = &d->ds.rows[i];
        if (model->sim_clip && !row->image)
            s = aspo_fail(ASPO_ERR_USAGE, "%s: the row has no image, so ASPO's image "
                          "similarity S is undefined for it; give every row an image or use "
                          "--alpha 0", preference_row_where(row));
        if (!s) s = pair_tokenize(tok, row, &topt, &d->pairs[i], &d->counts);
        if (!s) s = policy_check_row(model, row);
        if (!s) s = chosen_units(row, &d->pairs[i], level, &d->unit_of[i], &spans[i],
                                 &d->n_units[i]);
    }
    if (!s && model->sim_clip) s = similarities(cfg, model, limits, spans, d);
    for (int64_t i = 0; i < d->n; i++) free(spans[i]);
    free(spans);
    if (s) return s;
    /* The eval pairs: a seeded random subset, the same on every run with that seed. */
    int64_t *order = malloc(sizeof(int64_t) * (size_t)d->n);
    if (!order) return aspo_fail(ASPO_ERR_OOM, "no host memory to split the data");
    shuffle_indices(order, d->n, (uint64_t)cfg->seed, 0xe7a1);
    d->n_eval = (int64_t)(cfg->eval_split * (double)d->n);
    if (cfg->eval_split > 0 && d->n_eval == 0 && d->n > 1) d->n_eval = 1;
    d->n_train = d->n - d->n_eval;
    for (int64_t i = 0; i < d->n_eval; i++) d->eval[i] = order[i];
    for (int64_t i = 0; i < d->n_train; i++) d->train[i] = order[d->n_eval + i];
    free(order);
    if (d->n_train < 1)
        return aspo_fail(ASPO_ERR_USAGE, "%s: no training pairs left after the eval split",
                         cfg->data);
    return ASPO_OK;
}

void train_data_free(train_data *d)
{
    for (int64_t i = 0; i < d->n; i++) {
        if (d->pairs) tokenized_pair_free(&d->pairs[i]);
        if (d->unit_of) free(d->unit_of[i]);
        if (d->similarity) free(d->similarity[i]);
    }
    free(d->pairs);
    free(d->unit_of);
    free(d->n_units);
    free(d->similarity);
    free(d->train);
    free(d->eval);
    dataset_free(&d->ds);
    memset(d, 0, sizeof *d);
}
