/* `aspo demo`: the whole pipeline on an embedded task, nothing downloaded. It writes a
 * generated preference task (aspo/train/demo_task.h), its tokenizer and a small random LLaMA
 * into a directory, trains LoRA adapters on it with ASPO (or DPO) through train_run, and
 * prints the held-out reward accuracy and margin before and after training. */
#ifndef ASPO_DEMO_H
#define ASPO_DEMO_H

#include <stdbool.h>

#include "aspo/train/trainer.h"

typedef struct demo_options {
    const char *backend;
    const char *out;  /* NULL: a fresh temporary directory, removed at the end unless keep */
    const char *loss; /* aspo | dpo */
    long steps;       /* optimizer steps; 0 = the epochs decide */
    long epochs;      /* 0 = the mode's default */
    long seed;        /* task, weights, LoRA init, data order and eval split */
    long threads;     /* only reported; the caller sets OpenMP/OpenBLAS threads */
    bool keep;        /* keep the temporary directory */
    bool quick;       /* a smaller world and fewer pairs and epochs: seconds (tests) */
    bool quiet;       /* nothing on stdout/stderr (tests) */
} demo_options;

typedef struct demo_result {
    train_summary summary;
    long pairs, eval_pairs;
    char final_line[256]; /* the last line printed: held-out accuracy and margin */
} demo_result;

demo_options demo_defaults(void);
/* Runs the demo; result may be NULL. */
aspo_status demo_run(const demo_options *o, demo_result *result);

#endif
