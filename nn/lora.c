/* LoRA configuration, the global adapter switch and PEFT's initialisation. */
#include "lora.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/rng.h"

static bool adapters_enabled = true;

bool lora_set_enabled(bool enabled)
{
    bool prev = adapters_enabled;
    adapters_enabled = enabled;
    return prev;
}

bool lora_enabled(void) { return adapters_enabled; }

float lora_scaling(const lora_config *cfg)
{
    return cfg->rslora ? cfg->alpha / sqrtf((float)cfg->r) : cfg->alpha / (float)cfg->r;
}

aspo_status lora_config_check(const lora_config *cfg, const char *where)
{
    if (cfg->r < 1)
        return aspo_fail(ASPO_ERR_USAGE, "%s: LoRA rank r = %d; it must be at least 1", where,
                         cfg->r);
    if (!isfinite(cfg->alpha))
        return aspo_fail(ASPO_ERR_USAGE, "%s: LoRA alpha %g is not finite", where,
                         (double)cfg->alpha);
    if (!(cfg->dropout >= 0.0f && cfg->dropout < 1.0f))
        return aspo_fail(ASPO_ERR_USAGE, "%s: LoRA dropout %g is outside [0, 1)", where,
                         (double)cfg->dropout);
    return ASPO_OK;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Each parameter gets its own counter range: 2^40 counters (2^42 values) apart. */
enum { LORA_COUNTER_SHIFT = 40 };

aspo_status lora_init_weights(param_store *ps, uint64_t seed)
{
    if (!ps->block)
        return aspo_fail(ASPO_ERR_USAGE, "lora_init_weights: allocate the store first");
    for (int i = 0; i < ps->n; i++) {
        tensor *t = ps->items[i];
        bool is_A = ends_with(t->name, ".lora_A.weight"),
             is_B = ends_with(t->name, ".lora_B.weight");
        if (!is_A && !is_B) continue;
        if (t->dt != DT_F32 || t->ndim != 2)
            return aspo_fail(ASPO_ERR_SHAPE, "%s: LoRA weights are 2-D f32", t->name);
        int64_t n = tensor_numel(t);
        float *host = calloc(n ? (size_t)n : 1, sizeof(float));
        if (!host) return aspo_fail(ASPO_ERR_OOM, "%s: no host memory to initialise", t->name);
        if (is_A) {
            /* kaiming_uniform_(a=sqrt(5)) on (r,in): gain sqrt(2/(1+5)), bound
             * gain*sqrt(3/fan_in) = 1/sqrt(in). */
            double bound = 1.0 / sqrt((double)t->shape[1]);
            uint64_t counter = (uint64_t)i << LORA_COUNTER_SHIFT;
            for (int64_t k = 0; k < n; k++)
                host[k] = (float)((2.0 * rng_uniform(seed, counter, (uint64_t)k) - 1.0) * bound);
        }
        aspo_status s = ps->be->upload(ps->be, t->data, host, (size_t)n * sizeof(float));
        free(host);
        if (s) return s;
    }
    return ASPO_OK;
}
