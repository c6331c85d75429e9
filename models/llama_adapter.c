/* A language model's LoRA adapter saved for PEFT with target_modules naming exactly the
 * modules that carry LoRA, for a LLaMA inside a larger model (LLaVA, InstructBLIP). */
#define _POSIX_C_SOURCE 200809L /* strndup */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/llama.h"
#include "models/peft_adapter.h"

/* Appends s to the growing string *buf (regex metacharacters escaped when escape). */
static bool append(char **buf, size_t *len, size_t *cap, const char *s, bool escape)
{
    for (; *s; s++) {
        if (*len + 3 > *cap) {
            size_t ncap = *cap ? *cap * 2 : 256;
            char *nb = realloc(*buf, ncap);
            if (!nb) return false;
            *buf = nb;
            *cap = ncap;
        }
        if (escape && strchr(".[]()*+?{}|^$\\", *s)) (*buf)[(*len)++] = '\\';
        (*buf)[(*len)++] = *s;
        (*buf)[*len] = 0;
    }
    return true;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "<prefix>model.layers.<digits>.<rest>" -> rest and the layer, else NULL. */
static const char *layer_suffix(const char *module, const char *stem, long *layer)
{
    size_t n = strlen(stem);
    if (strncmp(module, stem, n) != 0) return NULL;
    char *end = NULL;
    *layer = strtol(module + n, &end, 10);
    return end != module + n && *end == '.' ? end + 1 : NULL;
}

/* target_modules as one regular expression (POSIX ERE and Python re alike) that matches
 * exactly the adapted modules: a module suffix adapted in every decoder layer is written
 * once under "layers\.[0-9]+\.", anything else by its full name. */
static char *adapted_regex(const llama_model *m)
{
    const param_store *ps = &m->ps;
    const char *suffix = ".lora_A.weight";
    char stem[320];
    snprintf(stem, sizeof stem, "%smodel.layers.", m->name_prefix);
    char **mods = calloc((size_t)ps->n + 1, sizeof *mods);
    int n = 0;
    for (int i = 0; mods && i < ps->n; i++) {
        const char *name = ps->items[i]->name;
        size_t len = strlen(name), k = strlen(suffix);
        if (len > k && !strcmp(name + len - k, suffix)) mods[n++] = strndup(name, len - k);
    }
    if (mods) qsort(mods, (size_t)n, sizeof *mods, cmp_str);
    /* Suffixes present in every layer (distinct suffixes, then count their layers). */
    const char **every = calloc((size_t)n + 1, sizeof *every);
    bool *literal = calloc((size_t)n + 1, sizeof *literal);
    int n_every = 0;
    for (int i = 0; every && literal && i < n; i++) {
        long layer;
        const char *rest = mods[i] ? layer_suffix(mods[i], stem, &layer) : NULL;
        literal[i] = true;
        if (!rest) continue;
        int count = 0;
        bool seen = false;
        for (int j = 0; j < n; j++) {
            long lj;
            const char *rj = mods[j] ? layer_suffix(mods[j], stem, &lj) : NULL;
            if (rj && !strcmp(rj, rest)) count++;
        }
        for (int e = 0; e < n_every; e++) seen = seen || !strcmp(every[e], rest);
        literal[i] = count != m->cfg.num_layers;
        if (!literal[i] && !seen) every[n_every++] = rest;
    }
    if (every) qsort(every, (size_t)n_every, sizeof *every, cmp_str);
    char *re = NULL;
    size_t len = 0, cap = 0;
    bool ok = mods && every && literal && append(&re, &len, &cap, "", false);
    if (ok && n_every) {
        ok = append(&re, &len, &cap, stem, true) &&
             append(&re, &len, &cap, "[0-9]+\\.", false) &&
             append(&re, &len, &cap, n_every > 1 ? "(" : "", false);
        for (int e = 0; ok && e < n_every; e++)
            ok = append(&re, &len, &cap, e ? "|" : "", false) &&
                 append(&re, &len, &cap, every[e], true);
        ok = ok && append(&re, &len, &cap, n_every > 1 ? ")" : "", false);
    }
    for (int i = 0; ok && i < n; i++)
        if (literal[i])
            ok = append(&re, &len, &cap, len ? "|" : "", false) &&
                 append(&re, &len, &cap, mods[i], true);
    for (int i = 0; mods && i < n; i++) free(mods[i]);
    free(mods);
    free(every);
    free(literal);
    if (!ok || !len) {
        free(re);
        return NULL;
    }
    return re;
}

aspo_status llama_save_adapter_exact(const llama_model *m, const char *task_type,
                                     const char *out_dir)
{
    if (!m->has_lora)
        return aspo_fail(ASPO_ERR_USAGE, "%s: the model was opened without a LoRA adapter",
                         out_dir);
    peft_config c = {.lora = m->peft.lora};
    snprintf(c.task_type, sizeof c.task_type, "%s", task_type ? task_type : "");
    if (!(c.target_regex = adapted_regex(m)))
        return aspo_fail(ASPO_ERR_OOM, "%s: cannot build target_modules", out_dir);
    aspo_status s = peft_adapter_save(&m->ps, &c, m->dir, out_dir);
    free(c.target_regex);
    return s;
}
