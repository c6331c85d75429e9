/* AdamW over a param_store, its resumable state, and global-norm gradient clipping. */
#include "adamw.h"

#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/modules.h"
#include "tensor/autograd.h"
#include "tensor/json_guard.h"
#include "tensor/safetensors.h"
#include "tensor/tensor_ops.h"

adamw_config adamw_defaults(void)
{
    return (adamw_config){.beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.01f};
}

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

aspo_status adamw_init(adamw *opt, param_store *ps, const adamw_config *cfg)
{
    memset(opt, 0, sizeof *opt);
    if (!ps->block)
        return aspo_fail(ASPO_ERR_USAGE, "adamw: allocate the parameter store first");
    opt->ps = ps;
    opt->cfg = *cfg;
    for (int i = 0; i < ps->n; i++) opt->n += ps->items[i]->requires_grad;
    if (opt->n == 0)
        return aspo_fail(ASPO_ERR_USAGE, "adamw: the model has no trainable parameters");
    opt->index = calloc((size_t)opt->n, sizeof *opt->index);
    opt->m = calloc((size_t)opt->n, sizeof *opt->m);
    opt->v = calloc((size_t)opt->n, sizeof *opt->v);
    if (!opt->index || !opt->m || !opt->v) {
        adamw_free(opt);
        return aspo_fail(ASPO_ERR_OOM, "adamw: no host memory for %d state headers", opt->n);
    }
    size_t half = 0;
    for (int i = 0, k = 0; i < ps->n; i++) {
        if (!ps->items[i]->requires_grad) continue;
        opt->index[k++] = i;
        half += align64((size_t)tensor_numel(ps->items[i]) * sizeof(float));
    }
    opt->state_bytes = 2 * half;
    opt->state = ps->be->alloc(ps->be, opt->state_bytes);
    if (!opt->state) {
        size_t bytes = opt->state_bytes;
        adamw_free(opt);
        return aspo_fail(ASPO_ERR_OOM, "adamw: backend %s could not allocate %zu bytes of "
                         "optimizer state", ps->be->name, bytes);
    }
    size_t at = 0;
    for (int k = 0; k < opt->n; k++) {
        const tensor *p = ps->items[opt->index[k]];
        tensor *views[2] = {&opt->m[k], &opt->v[k]};
        for (int j = 0; j < 2; j++) {
            *views[j] = (tensor){.dt = DT_F32, .ndim = p->ndim, .be = ps->be,
                                 .data = opt->state + at + j * half, .name = p->name};
            memcpy(views[j]->shape, p->shape, sizeof p->shape);
            tensor_set_contiguous_strides(views[j]);
            op_call fill = {.op = OP_FILL, .n_out = 1, .out = {views[j]}};
            aspo_status s = op_run_kernel(&fill);
            if (s) {
                adamw_free(opt);
                return s;
            }
        }
        at += align64((size_t)tensor_numel(p) * sizeof(float));
    }
    return ASPO_OK;
}

aspo_status adamw_step(adamw *opt, float lr)
{
    adamw_hparams h = {.lr = lr, .beta1 = opt->cfg.beta1, .beta2 = opt->cfg.beta2,
                       .eps = opt->cfg.eps, .weight_decay = opt->cfg.weight_decay,
                       .step = opt->step + 1};
    for (int k = 0; k < opt->n; k++) {
        int i = opt->index[k];
        aspo_status s = tensor_adamw_update(opt->ps->items[i], opt->ps->grads[i], &opt->m[k],
                                            &opt->v[k], &h);
        if (s) return s;
    }
    opt->step++;
    return ASPO_OK;
}

void adamw_free(adamw *opt)
{
    if (opt->state) opt->ps->be->free(opt->ps->be, opt->state);
    free(opt->index);
    free(opt->m);
    free(opt->v);
    memset(opt, 0, sizeof *opt);
}

int64_t adamw_state_numel(const adamw *opt)
{
    int64_t n = 0;
    for (int k = 0; k < opt->n; k++) n += tensor_numel(&opt->m[k]);
    return n;
}

/* Copies every m (or v) tensor to/from consecutive runs of host. */
static aspo_status move_state(const adamw *opt, tensor *which, float *host, bool upload)
{
    backend *be = opt->ps->be;
    for (int k = 0; k < opt->n; k++) {
        size_t bytes = (size_t)tensor_numel(&which[k]) * sizeof(float);
        aspo_status s = upload ? be->upload(be, which[k].data, host, bytes)
                               : be->download(be, host, which[k].data, bytes);
        if (s) return s;
        host += tensor_numel(&which[k]);
    }
    return ASPO_OK;
}

aspo_status adamw_state_to_host(const adamw *opt, float *m, float *v)
{
    aspo_status s = opt->ps->be->synchronize(opt->ps->be);
    if (!s) s = move_state(opt, opt->m, m, false);
    if (!s) s = move_state(opt, opt->v, v, false);
    return s;
}

aspo_status adamw_state_from_host(adamw *opt, const float *m, const float *v, int64_t step)
{
    if (step < 0)
        return aspo_fail(ASPO_ERR_USAGE, "adamw: cannot resume at step %lld", (long long)step);
    aspo_status s = move_state(opt, opt->m, (float *)m, true);
    if (!s) s = move_state(opt, opt->v, (float *)v, true);
    if (!s) opt->step = step;
    return s;
}

static const char *const MOMENT_SUFFIX[2] = {"exp_avg", "exp_avg_sq"};

aspo_status adamw_save(const adamw *opt, const char *path)
{
    int64_t n = adamw_state_numel(opt);
    float *host = malloc((size_t)(2 * n + 1) * sizeof(float));
    st_write_entry *entries = calloc((size_t)(2 * opt->n), sizeof *entries);
    char *names = calloc((size_t)(2 * opt->n), 256);
    aspo_status s = ASPO_OK;
    if (!host || !entries || !names) {
        s = aspo_fail(ASPO_ERR_OOM, "%s: no host memory for the optimizer state", path);
        goto done;
    }
    if ((s = adamw_state_to_host(opt, host, host + n))) goto done;
    int64_t at = 0;
    for (int j = 0; j < 2; j++)
        for (int k = 0; k < opt->n; k++) {
            const tensor *t = j ? &opt->v[k] : &opt->m[k];
            char *name = names + (size_t)(j * opt->n + k) * 256;
            if ((s = nn_param_name(name, 256, t->name, MOMENT_SUFFIX[j]))) goto done;
            entries[j * opt->n + k] = (st_write_entry){name, DT_F32, t->ndim, t->shape,
                                                       host + at};
            at += tensor_numel(t);
        }
    char step[32];
    snprintf(step, sizeof step, "%" PRId64, opt->step);
    const char *keys[] = {"format", "step"}, *values[] = {"aspo-adamw", step};
    s = st_write(path, entries, 2 * opt->n, keys, values, 2);
done:
    free(host);
    free(entries);
    free(names);
    return s;
}

/* The "step" entry of the file's metadata. */
static aspo_status read_step(const st_model *m, const char *path, int64_t *step)
{
    uint64_t mark = json_guard_mark(); /* a lost digit would be another step */
    json_t *meta = m->metadata_json ? json_loads(m->metadata_json, 0, NULL) : NULL;
    aspo_status s = json_guard_check(mark, path);
    if (s) {
        json_decref(meta);
        return s;
    }
    const char *text = json_string_value(json_object_get(meta, "step"));
    char *end = NULL;
    long long v = text ? strtoll(text, &end, 10) : -1;
    bool valid = text && !*end && v >= 0;
    json_decref(meta); /* frees text */
    if (!valid)
        return aspo_fail(ASPO_ERR_FORMAT, "%s: no valid \"step\" in the metadata; not an aspo "
                         "optimizer state", path);
    *step = v;
    return ASPO_OK;
}

aspo_status adamw_load(adamw *opt, const char *path)
{
    st_model file;
    aspo_status s = st_open(path, &file);
    if (s) return s;
    int64_t step = 0;
    const st_entry **found = calloc((size_t)(2 * opt->n), sizeof *found); /* [j][k] */
    if (!found) {
        s = aspo_fail(ASPO_ERR_OOM, "%s: no host memory", path);
        goto done;
    }
    if ((s = read_step(&file, path, &step))) goto done;
    /* Check everything before changing anything, so a bad file leaves the state as it was. */
    for (int j = 0; j < 2; j++)
        for (int k = 0; k < opt->n; k++) {
            const tensor *t = &opt->m[k];
            char name[256], want[96];
            if ((s = nn_param_name(name, sizeof name, t->name, MOMENT_SUFFIX[j]))) goto done;
            const st_entry *e = st_find(&file, name);
            bool fits = e && e->dt == DT_F32 && e->ndim == t->ndim;
            for (int d = 0; fits && d < t->ndim; d++) fits = e->shape[d] == t->shape[d];
            if (!fits) {
                s = aspo_fail(ASPO_ERR_FORMAT, "%s: %s is %s; the model needs %s", path, name,
                              e ? "of another dtype or shape" : "missing",
                              tensor_describe(t, want, sizeof want));
                goto done;
            }
            found[j * opt->n + k] = e;
        }
    backend *be = opt->ps->be;
    for (int j = 0; j < 2 && !s; j++)
        for (int k = 0; k < opt->n && !s; k++)
            s = be->upload(be, (j ? &opt->v[k] : &opt->m[k])->data, found[j * opt->n + k]->data,
                           found[j * opt->n + k]->nbytes);
    if (!s) opt->step = step;
done:
    free(found);
    st_close(&file);
    return s;
}

aspo_status clip_grad_norm(param_store *ps, float max_norm, double *total_norm)
{
    if (!(max_norm > 0.0f) || isinf(max_norm))
        return aspo_fail(ASPO_ERR_USAGE, "clip_grad_norm: max_norm %g must be finite and > 0",
                         (double)max_norm);
    double sumsq = 0;
    for (int i = 0; i < ps->n; i++) {
        if (!ps->grads || !ps->grads[i]) continue;
        tensor *sq = tensor_sumsq(ps->grads[i]); /* scalar in the step arena */
        float part;
        if (!sq) return aspo_error_status();
        aspo_status s = tensor_to_host_f32(sq, &part);
        if (s) return s;
        sumsq += part;
    }
    double total = sqrt(sumsq);
    if (total_norm) *total_norm = total;
    if (!isfinite(total))
        return aspo_fail(ASPO_ERR_NUMERIC, "clip_grad_norm: the gradient norm is %g; a NaN or "
                         "Inf reached the gradients (lower the learning rate or check the data)",
                         total);
    double coef = (double)max_norm / (total + 1e-6);
    return coef >= 1.0 ? ASPO_OK : param_store_scale_grads(ps, (float)coef);
}
