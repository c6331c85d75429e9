/* `aspo demo`: trains LoRA adapters on a toy two-layer MLP whose target is reachable
 * (the frozen base plus a fixed low-rank change), to show the training stack end to end. */
#ifndef ASPO_TOY_TRAIN_H
#define ASPO_TOY_TRAIN_H

#include <stdint.h>

#include "tensor/backend.h"

typedef struct demo_options {
    int steps;        /* optimizer steps */
    uint64_t seed;    /* base weights, data, LoRA init and dropout */
    double lr;        /* peak learning rate of the cosine schedule */
    int log_every;    /* print a line every this many steps (and the first and last) */
} demo_options;

demo_options demo_defaults(void);
/* Runs the demo on be, printing progress to stdout. */
aspo_status toy_train_demo(backend *be, const demo_options *o);

#endif
