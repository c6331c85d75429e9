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

#include "aspo/trainer_internal.h"
#include "models/weights.h"
#include "tensor/json_file.h"
#include "tensor/runtime.h"

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
        json_t *state = json_pack("{s:I, s:I, s:I, s:s}", "global_step", (json_int_t)st->step,
                                  "rng_counter", (json_int_t)st->rng_counter, "seed",
                                  (json_int_t)t->cfg->seed, "loss", t->cfg->loss);
        if (state && t->scaler.enabled) { /* GradScaler's state_dict: scale and its count */
            json_object_set_new(state, "loss_scale", json_real(t->scaler.scale));
            json_object_set_new(state, "loss_scale_good_steps",
                                json_integer((json_int_t)t->scaler.good_steps));
        }
        snprintf(path, sizeof path, "%s/trainer_state.json", tmp);
        if (!state || json_dump_file(state, path, JSON_INDENT(2) | JSON_SORT_KEYS) != 0)
            s = aspo_fail(ASPO_ERR_IO, "%s: cannot write the trainer state", path);
        json_decref(state);
    }
    if (!s) {
        weights_remove_dir(final); /* a rerun over an old output directory */
        if (rename(tmp, final) != 0)
            s = aspo_fail(ASPO_ERR_IO, "cannot rename %s to %s: %s", tmp, final, strerror(errno));
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
    int bad = json_unpack_ex(state, &err, 0, "{s:I, s:I, s:I, s?F, s?I}", "global_step", &step,
                             "rng_counter", &counter, "seed", &seed, "loss_scale", &scale,
                             "loss_scale_good_steps", &good);
    json_decref(state);
    if (bad) return aspo_fail(ASPO_ERR_FORMAT, "%s: %s", path, err.text);
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
    aspo_status s = peft_adapter_load(&t->model.lm->ps, dir);
    if (s) return s;
    snprintf(path, sizeof path, "%s/optimizer.safetensors", dir);
    if ((s = adamw_load(opt, path))) return s;
    st->step = step;
    st->rng_counter = (uint64_t)counter;
    if (opt->step != step)
        return aspo_fail(ASPO_ERR_FORMAT, "%s: optimizer step %lld but trainer step %lld", dir,
                         (long long)opt->step, (long long)step);
    return ASPO_OK;
}
