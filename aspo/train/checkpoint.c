/* Checkpoints: <out>/checkpoint-<step>/ holding the PEFT adapter, the optimizer state and
 * trainer_state.json. Each is written into <out>/.checkpoint-<step>.tmp and renamed as a
 * whole, so a killed run leaves either a complete checkpoint or none. */
#define _DEFAULT_SOURCE
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aspo/train/trainer_internal.h"
#include "models/weights.h"
#include "tensor/file_open.h"
#include "tensor/json_file.h"
#include "tensor/json_guard.h"
#include "tensor/runtime.h"

/* FNV-1a over the data file's bytes, as "<bytes>:<hash>": the same data under another
 * path resumes, edited data does not. */
static aspo_status data_fingerprint(const char *path, char *out, size_t size)
{
    uint64_t bytes = 0, h = 0xcbf29ce484222325ull;
    FILE *f = file_open_regular(path, "dataset", 0, &bytes);
    if (!f) return aspo_error_status();
    unsigned char buf[1 << 16];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0)
        for (size_t i = 0; i < got; i++) h = (h ^ buf[i]) * 0x100000001b3ull;
    bool bad = ferror(f);
    fclose(f);
    if (bad) return aspo_fail(ASPO_ERR_IO, "dataset %s: read failed", path);
    snprintf(out, size, "%llu:%016llx", (unsigned long long)bytes, (unsigned long long)h);
    return ASPO_OK;
}

/* The settings that make a run what it is, as trainer_state.json's "run" object. */
static json_t *run_settings(const train_config *c, const train_state *st, const char *data)
{
    return json_pack("{s:s, s:s, s:s, s:I, s:I, s:f, s:f, s:s, s:f, s:I}", "loss", c->loss,
                     "data", c->data, "data_fingerprint", data, "batch_size",
                     (json_int_t)c->batch_size, "grad_accum", (json_int_t)c->grad_accum, "lr",
                     c->lr, "beta", c->beta, "scheduler", c->scheduler, "warmup_ratio",
                     c->warmup_ratio, "total_steps", (json_int_t)st->total);
}

aspo_status checkpoint_save(const trainer *t, const adamw *opt, const train_state *st,
                            const char *out_dir)
{
    char tmp[4096], final[4096], path[4200];
    snprintf(tmp, sizeof tmp, "%s/.checkpoint-%lld.tmp", out_dir, (long long)st->step);
    snprintf(final, sizeof final, "%s/checkpoint-%lld", out_dir, (long long)st->step);
    weights_remove_dir(tmp);
    if (mkdir(tmp, 0755) != 0)
        return aspo_fail(ASPO_ERR_IO, "%s: cannot create the checkpoint directory: %s", tmp,
                         strerror(errno));
    aspo_status s = policy_save_adapter(&t->model, tmp);
    if (!s) {
        snprintf(path, sizeof path, "%s/optimizer.safetensors", tmp);
        s = adamw_save(opt, path);
    }
    if (!s) {
        char data[64];
        uint64_t mark = json_guard_mark();
        s = data_fingerprint(t->cfg->data, data, sizeof data);
        json_t *state = s ? NULL : json_pack("{s:I, s:I, s:I, s:s, s:o}", "global_step",
                                             (json_int_t)st->step, "rng_counter",
                                             (json_int_t)st->rng_counter, "seed",
                                             (json_int_t)t->cfg->seed, "loss", t->cfg->loss,
                                             "run", run_settings(t->cfg, st, data));
        if (state && t->scaler.enabled) { /* GradScaler's state_dict: scale and its count */
            json_object_set_new(state, "loss_scale", json_real(t->scaler.scale));
            json_object_set_new(state, "loss_scale_good_steps",
                                json_integer((json_int_t)t->scaler.good_steps));
        }
        snprintf(path, sizeof path, "%s/trainer_state.json", tmp);
        char *text = state ? json_dumps(state, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
        json_decref(state);
        if (!s) s = json_guard_check(mark, path); /* a field may be missing */
        if (!s && !text) s = aspo_fail(ASPO_ERR_OOM, "%s: out of memory", path);
        if (!s) s = weights_write_file(path, text, strlen(text)); /* fsynced, as the others */
        free(text);
    }
    if (!s) {
        weights_remove_dir(final); /* a rerun over an old output directory */
        if (rename(tmp, final) != 0)
            s = aspo_fail(ASPO_ERR_IO, "cannot rename %s to %s: %s", tmp, final, strerror(errno));
        else file_sync_parent(final);
    }
    if (s) weights_remove_dir(tmp);
    return s;
}

/* The checkpoint-<N> directory with the largest N in out_dir, into buf. */
static aspo_status newest_checkpoint(const char *out_dir, char *buf, size_t size)
{
    DIR *dir = opendir(out_dir);
    if (!dir)
        return aspo_fail(ASPO_ERR_IO, "--resume auto: cannot read %s: %s", out_dir,
                         strerror(errno));
    long long best = -1;
    struct dirent *e;
    while ((e = readdir(dir))) {
        long long step;
        char tail;
        if (sscanf(e->d_name, "checkpoint-%lld%c", &step, &tail) == 1 && step > best) best = step;
    }
    closedir(dir);
    if (best < 0) return aspo_fail(ASPO_ERR_USAGE, "--resume auto: no checkpoint-N in %s", out_dir);
    snprintf(buf, size, "%s/checkpoint-%lld", out_dir, best);
    return ASPO_OK;
}

/* The checkpoint's run settings against this command's: the first that differs, unless the
 * user accepts changes. A checkpoint written before they were recorded has none to compare. */
static aspo_status check_settings(const trainer *t, const train_state *st, json_t *saved,
                                  const char *path)
{
    if (!json_is_object(saved)) return ASPO_OK;
    char data[64];
    uint64_t mark = json_guard_mark();
    aspo_status s = data_fingerprint(t->cfg->data, data, sizeof data);
    if (s) return s;
    json_t *now = run_settings(t->cfg, st, data);
    if (!now || (s = json_guard_check(mark, path))) {
        json_decref(now);
        return s ? s : aspo_fail(ASPO_ERR_OOM, "%s: out of memory comparing settings", path);
    }
    const char *key;
    json_t *was;
    json_object_foreach(saved, key, was) {
        json_t *is = json_object_get(now, key);
        if (!is || json_equal(was, is) || !strcmp(key, "data")) continue; /* a moved file */
        char *a = json_dumps(was, JSON_ENCODE_ANY), *b = json_dumps(is, JSON_ENCODE_ANY);
        if (!t->cfg->allow_setting_changes)
            s = aspo_fail(ASPO_ERR_USAGE, "%s: the checkpoint's run had %s %s, this command gives "
                          "%s: resuming would change what the run means; give the same setting, "
                          "or --allow-setting-changes to accept it", path, key, a ? a : "?",
                          b ? b : "?");
        else
            fprintf(stderr, "aspo: warning: --resume: %s was %s, now %s (--allow-setting-changes)\n",
                    key, a ? a : "?", b ? b : "?");
        free(a);
        free(b);
        if (s) break;
    }
    json_decref(now);
    return s;
}

/* Every value of the trainables (the adapter just read) and of the optimizer's moments is
 * finite: a checkpoint carrying NaN would resume into NaN steps. */
static aspo_status check_finite(const trainer *t, const adamw *opt, const char *dir)
{
    const param_store *ps = &t->model.lm->ps;
    for (int k = 0; k < 3; k++) {
        int n = k ? opt->n : ps->n;
        for (int i = 0; i < n; i++) {
            tensor *x = k == 0 ? ps->items[i] : k == 1 ? &opt->m[i] : &opt->v[i];
            if (k == 0 && !x->requires_grad) continue;
            int64_t numel = tensor_numel(x), bad = 0;
            float *host = malloc(sizeof(float) * (size_t)(numel ? numel : 1));
            if (!host) return aspo_fail(ASPO_ERR_OOM, "%s: no host memory to check a tensor", dir);
            aspo_status s = tensor_to_host_f32(x, host);
            for (int64_t j = 0; !s && j < numel; j++) bad += !isfinite(host[j]);
            free(host);
            if (s) return s;
            if (bad)
                return aspo_fail(ASPO_ERR_NUMERIC, "%s/%s: %s of %s holds %lld non-finite values; "
                                 "resume from an earlier checkpoint",
                                 dir, k ? "optimizer.safetensors" : "adapter_model.safetensors",
                                 k == 0 ? "tensor" : k == 1 ? "exp_avg" : "exp_avg_sq",
                                 ps->items[k ? opt->index[i] : i]->name, (long long)bad);
        }
    }
    return ASPO_OK;
}

aspo_status checkpoint_load(trainer *t, adamw *opt, const char *dir, const char *out_dir,
                            train_state *st)
{
    char found[4096], path[4200];
    if (!strcmp(dir, "auto")) {
        aspo_status s = newest_checkpoint(out_dir, found, sizeof found);
        if (s) return s;
        dir = found;
    }
    snprintf(path, sizeof path, "%s/trainer_state.json", dir);
    json_t *state = json_file_load(path, "trainer state");
    if (!state)
        return aspo_fail_prefix(ASPO_OK, "--resume %s: not a checkpoint: ", dir);
    json_error_t err;
    json_int_t step = 0, counter = 0, seed = 0, good = t->scaler.good_steps;
    double scale = t->scaler.scale;
    json_t *run = NULL;
    int bad = json_unpack_ex(state, &err, 0, "{s:I, s:I, s:I, s?F, s?I, s?o}", "global_step", &step,
                             "rng_counter", &counter, "seed", &seed, "loss_scale", &scale,
                             "loss_scale_good_steps", &good, "run", &run);
    aspo_status s = bad ? aspo_fail(ASPO_ERR_FORMAT, "%s: %s", path, err.text) : ASPO_OK;
    if (!s && step > st->total)
        s = aspo_fail(ASPO_ERR_USAGE, "%s: the checkpoint is at step %lld, past this run's %lld "
                      "steps (--max-steps or --epochs)", path, (long long)step,
                      (long long)st->total);
    if (!s) s = check_settings(t, st, run, path);
    json_decref(state);
    if (s) return s;
    if (t->scaler.enabled && !(scale > 0 && isfinite(scale)))
        return aspo_fail(ASPO_ERR_FORMAT, "%s: loss_scale %g is not a positive number", path,
                         scale);
    if (t->scaler.enabled) { /* a checkpoint of a bf16 or f32 run starts at the default */
        t->scaler.scale = scale;
        t->scaler.good_steps = good;
    }
    if (seed != t->cfg->seed)
        return aspo_fail(ASPO_ERR_USAGE,
                         "%s was written with --seed %lld; resume with the same seed (got %ld)",
                         path, (long long)seed, t->cfg->seed);
    if ((s = peft_adapter_load(&t->model.lm->ps, dir))) return s;
    snprintf(path, sizeof path, "%s/optimizer.safetensors", dir);
    if ((s = adamw_load(opt, path)) || (s = check_finite(t, opt, dir))) return s;
    st->step = step;
    st->rng_counter = (uint64_t)counter;
    if (opt->step != step)
        return aspo_fail(ASPO_ERR_FORMAT, "%s: optimizer step %lld but trainer step %lld", dir,
                         (long long)opt->step, (long long)step);
    return ASPO_OK;
}
