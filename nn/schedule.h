/* Learning-rate schedules as transformers.get_*_schedule_with_warmup, read at the number of
 * optimizer steps taken so far (LambdaLR's current_step): the first update uses step 0, so
 * with warmup it has lr 0, as in the Hugging Face Trainer. */
#ifndef ASPO_NN_SCHEDULE_H
#define ASPO_NN_SCHEDULE_H

#include <stdint.h>

#include "tensor/error.h"

typedef enum schedule_kind {
    SCHEDULE_CONSTANT,              /* get_constant_schedule_with_warmup (0 warmup: constant) */
    SCHEDULE_LINEAR,                /* get_linear_schedule_with_warmup */
    SCHEDULE_COSINE,                /* get_cosine_schedule_with_warmup, num_cycles 0.5 */
} schedule_kind;

typedef struct lr_schedule {
    schedule_kind kind;
    double base_lr;
    int64_t warmup_steps, total_steps;
} lr_schedule;

/* TrainingArguments.get_warmup_steps: warmup_steps when > 0, else
 * ceil(total_steps * warmup_ratio). */
int64_t schedule_warmup_steps(int64_t total_steps, double warmup_ratio, int64_t warmup_steps);
/* Checks the fields (steps >= 0, warmup <= total, base_lr finite). */
aspo_status schedule_check(const lr_schedule *s);
/* The multiplier lr_lambda(step) and the learning rate base_lr * lr_lambda(step). */
double schedule_factor(const lr_schedule *s, int64_t step);
double schedule_lr(const lr_schedule *s, int64_t step);
/* "constant", "linear", "cosine"; -1 when unknown. */
int schedule_kind_from_name(const char *name);

#endif
