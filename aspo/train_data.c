/* The training data, prepared once: rows read, tokenized as TRL does, the unit of every
 * chosen response token found, and the pairs split into train and eval sets. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aspo/trainer_internal.h"
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

static aspo_status chosen_units(const preference_row *row, const tokenized_pair *p,
                                aspo_unit_level level, int32_t **unit_of, int *n_units)
{
    int64_t n = p->chosen.n - p->chosen.n_prompt; /* response tokens, EOS included */
    int64_t *begin = malloc(sizeof(int64_t) * (size_t)n), *end = malloc(sizeof(int64_t) * (size_t)n);
    aspo_span *spans = malloc(sizeof(aspo_span) * (size_t)n);
    *unit_of = malloc(sizeof(int32_t) * (size_t)n);
    aspo_status s = ASPO_OK;
    if (!begin || !end || !spans || !*unit_of) {
        s = aspo_fail(ASPO_ERR_OOM, "no host memory for the units of %s line %lld", row->source,
                      (long long)row->line);
    } else {
        for (int64_t i = 0; i < n; i++) {
            begin[i] = p->chosen.span_begin ? p->chosen.span_begin[i] : -1;
            end[i] = p->chosen.span_end ? p->chosen.span_end[i] : -1;
        }
        const char *text = row->chosen ? row->chosen : "";
        size_t len = row->chosen ? row->chosen_len : 0;
        s = aspo_response_units(level, text, len, begin, end, n, spans, *unit_of, n_units);
        if (s) aspo_fail_prefix(s, "%s line %lld: ", row->source, (long long)row->line);
    }
    free(begin);
    free(end);
    free(spans);
    return s;
}

aspo_status train_data_load(const train_config *cfg, const tokenizer *tok,
                            aspo_unit_level level, train_data *d)
{
    memset(d, 0, sizeof *d);
    dataset_options dopt = {.skip_bad_lines = cfg->skip_bad_lines};
    aspo_status s = dataset_load_jsonl(cfg->data, &dopt, &d->ds);
    if (s) return s;
    tokenize_options topt = tokenize_options_default();
    topt.max_length = cfg->max_length;
    topt.max_prompt_length = cfg->max_prompt_length;
    topt.max_completion_length = cfg->max_completion_length;
    topt.add_bos = !cfg->no_bos;
    if ((s = chat_template_parse(cfg->chat_template, &topt.template)) ||
        (s = truncation_mode_parse(cfg->truncation_mode, &topt.mode)))
        return s;
    d->n = d->ds.n_rows;
    d->pairs = calloc((size_t)d->n, sizeof *d->pairs);
    d->unit_of = calloc((size_t)d->n, sizeof *d->unit_of);
    d->n_units = calloc((size_t)d->n, sizeof *d->n_units);
    d->train = malloc(sizeof(int64_t) * (size_t)d->n);
    d->eval = malloc(sizeof(int64_t) * (size_t)d->n);
    if (!d->pairs || !d->unit_of || !d->n_units || !d->train || !d->eval)
        return aspo_fail(ASPO_ERR_OOM, "no host memory for %lld pairs", (long long)d->n);
    for (int64_t i = 0; i < d->n; i++) {
        const preference_row *row = &d->ds.rows[i];
        if ((s = pair_tokenize(tok, row, &topt, &d->pairs[i], &d->counts)) ||
            (s = chosen_units(row, &d->pairs[i], level, &d->unit_of[i], &d->n_units[i])))
            return s;
    }
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
    }
    free(d->pairs);
    free(d->unit_of);
    free(d->n_units);
    free(d->train);
    free(d->eval);
    dataset_free(&d->ds);
    memset(d, 0, sizeof *d);
}
