/* transformers' warmup schedules (optimization.py), term for term. */
#include "schedule.h"

#include <math.h>
#include <string.h>

int64_t schedule_warmup_steps(int64_t total_steps, double warmup_ratio, int64_t warmup_steps)
{
    return warmup_steps > 0 ? warmup_steps : (int64_t)ceil((double)total_steps * warmup_ratio);
}

aspo_status schedule_check(const lr_schedule *s)
{
    if ((unsigned)s->kind > SCHEDULE_COSINE)
        return aspo_fail(ASPO_ERR_USAGE, "unknown learning-rate schedule %d", (int)s->kind);
    if (s->total_steps < 0 || s->warmup_steps < 0 || s->warmup_steps > s->total_steps)
        return aspo_fail(ASPO_ERR_USAGE,
                         "schedule: %lld warmup steps of %lld total; need 0 <= warmup <= total",
                         (long long)s->warmup_steps, (long long)s->total_steps);
    if (!isfinite(s->base_lr) || s->base_lr < 0)
        return aspo_fail(ASPO_ERR_USAGE, "schedule: learning rate %g must be finite and >= 0",
                         s->base_lr);
    return ASPO_OK;
}

static double max1(int64_t n) { return (double)(n > 1 ? n : 1); }

double schedule_factor(const lr_schedule *s, int64_t step)
{
    if (step < s->warmup_steps) return (double)step / max1(s->warmup_steps);
    switch (s->kind) {
    case SCHEDULE_CONSTANT: return 1.0;
    case SCHEDULE_LINEAR:
        return fmax(0.0, (double)(s->total_steps - step) / max1(s->total_steps - s->warmup_steps));
    case SCHEDULE_COSINE: {
        const double num_cycles = 0.5;
        double progress = (double)(step - s->warmup_steps) / max1(s->total_steps - s->warmup_steps);
        return fmax(0.0, 0.5 * (1.0 + cos(M_PI * num_cycles * 2.0 * progress)));
    }
    }
    return 0.0;
}

double schedule_lr(const lr_schedule *s, int64_t step)
{
    return s->base_lr * schedule_factor(s, step);
}

int schedule_kind_from_name(const char *name)
{
    static const char *const names[] = {"constant", "linear", "cosine"};
    for (int k = 0; k < 3; k++)
        if (strcmp(name, names[k]) == 0) return k;
    return -1;
}
