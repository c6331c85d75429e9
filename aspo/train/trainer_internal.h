/* Pieces of the trainer shared by its files (aspo/train_*.c, aspo/train/checkpoint.c). */
#ifndef ASPO_TRAINER_INTERNAL_H
#define ASPO_TRAINER_INTERNAL_H

#include <stdio.h>

#include "aspo/data/dataset.h"
#include "aspo/model/image_features.h"
#include "aspo/data/pair_batch.h"
#include "aspo/model/policy.h"
#include "aspo/train/preference_loss.h"
#include "aspo/train/trainer.h"
#include "models/tokenizer.h"
#include "nn/adamw.h"
#include "nn/loss_scale.h"
#include "nn/schedule.h"

/* The data, tokenized once: pairs and, per pair, the unit of each chosen response token. */
typedef struct train_data {
    preference_dataset ds;
    tokenized_pair *pairs;  /* (n) */
    int32_t **unit_of;      /* (n) arrays of the chosen response's token count */
    int *n_units;           /* (n) */
    float **similarity;     /* (n) NULL, or CLIP's S_i of each chosen unit (n_units[i]) */
    int64_t n_images;       /* rows with an image */
    int64_t n;
    int64_t *train, n_train; /* indices into pairs */
    int64_t *eval, n_eval;
    truncation_counts counts;
} train_data;

/* Reads the rows and checks that every image file is there (before the model opens). */
aspo_status train_data_read(const train_config *cfg, train_data *d);
/* Tokenizes the rows (the model gives the image token for LLaVA), finds the units of each
 * chosen response and, when the model has a similarity CLIP, each image row's unit
 * similarities S_i (once, before training), and splits train/eval. */
aspo_status train_data_prepare(const train_config *cfg, const tokenizer *tok,
                               aspo_unit_level level, policy_model *model,
                               const image_limits *limits, train_data *d);
void train_data_free(train_data *d);
/* A permutation of 0..n-1 determined by (seed, stream). */
void shuffle_indices(int64_t *idx, int64_t n, uint64_t seed, uint64_t stream);

/* What one forward/backward over a batch produced. */
typedef struct batch_result {
    double loss;
    aspo_loss_stats stats;
    int64_t tokens;   /* real tokens of the pairs (pair_batch_tokens) */
    int64_t computed; /* positions the policy pass computed: packed, or the padded rows' */
} batch_result;

typedef struct trainer {
    const train_config *cfg;
    policy_model model;
    image_limits image_limits;
    aspo_loss_options loss;
    train_data data;
    int32_t pad_id;
    /* host buffers reused across batches */
    float *logp, *ref, *sums, *grad;
    float *vision; /* (k,N,Cv) the vision features of a batch's images (LLaVA) */
    size_t vision_cap;
    vision_cache cache; /* --vision-cache */
    size_t cap;
    loss_scale scaler; /* enabled with f16 activations; saved in checkpoints */
} trainer;

/* The loss of cfg (has_images: the data has image rows, which decides alpha's default). */
aspo_status trainer_loss_options(const train_config *cfg, bool has_images, aspo_loss_options *o);
/* Images to read need a model that reads them: checked from config.json before the model
 * is opened. images: what asks for them, for the message ("data.jsonl: 12 rows have
 * images", trainer_image_rows), or NULL when nothing does. */
aspo_status trainer_check_images(const train_config *cfg, const char *images);
const char *trainer_image_rows(const train_config *cfg, const train_data *d, char *buf,
                               size_t size);
/* The model of cfg with LoRA (no tensor data read under --dry-run). */
aspo_status trainer_open_model(const train_config *cfg, uint64_t seed, bool need_similarity,
                               policy_model *m);

/* Closes the model and frees the data and buffers (not the runtime). */
void trainer_free(trainer *t);

/* Forward (policy and reference) and, when `scale` > 0, backward of scale * loss into the
 * LoRA gradients. Resets the step arena before returning. */
aspo_status train_batch(trainer *t, const int64_t *pair_index, int n, double scale,
                        batch_result *r);

/* Training state on disk: <out>/checkpoint-<step>/ with the PEFT adapter, the optimizer
 * state and trainer_state.json; written under a temporary name and renamed. */
typedef struct train_state {
    int64_t step;          /* optimizer steps done */
    uint64_t rng_counter;  /* dropout counter of the runtime */
    int64_t total;         /* the run's steps (--max-steps, or epochs of the data) */
} train_state;

aspo_status checkpoint_save(const trainer *t, const adamw *opt, const train_state *st,
                            const char *out_dir);
/* dir: a checkpoint directory, or "auto" for the newest under out_dir. The settings that
 * make the run what it is (loss, data, batch, learning rate, steps) must be the
 * checkpoint's, unless cfg->allow_setting_changes; st->total is this run's, compared. The
 * adapter and the optimizer state read back must be finite. */
aspo_status checkpoint_load(trainer *t, adamw *opt, const char *dir, const char *out_dir,
                            train_state *st);

#endif
