/* The demo: a 16 -> 64 -> 8 SiLU MLP with frozen random base weights (the first layer in
 * bf16) and LoRA r=8 on both layers learns targets made by the same base with a fixed
 * random adapter, so the adapters can fit them exactly. AdamW, cosine schedule with 10%
 * warmup, gradient clipping at 1, MSE loss; batches of 32 cycled over 256 samples. */
#include "toy_train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "nn/adamw.h"
#include "nn/linear.h"
#include "nn/modules.h"
#include "nn/schedule.h"
#include "tensor/autograd.h"
#include "tensor/rng.h"
#include "tensor/runtime.h"
#include "tensor/tensor_ops.h"

enum { IN = 16, HIDDEN = 64, OUT = 8, SAMPLES = 256, BATCH = 32, RANK = 8 };

demo_options demo_defaults(void)
{
    return (demo_options){.steps = 300, .seed = 1234, .lr = 2e-2, .log_every = 25};
}

typedef struct toy_model {
    param_store ps;
    linear fc1, fc2;
} toy_model;

/* x (N,IN) -> (N,OUT). */
static tensor *toy_forward(const toy_model *m, tensor *x)
{
    tensor *h = tensor_silu(linear_forward(&m->fc1, x)); /* (N,HIDDEN) */
    return linear_forward(&m->fc2, h);                   /* (N,OUT)    */
}

static tensor *mse_loss(tensor *y, tensor *t)
{
    tensor *d = tensor_sub(y, t);
    return tensor_mean_dims(tensor_mul(d, d), 3u, false);
}

/* n values uniform in [-bound, bound) from stream `stream` of the seed. */
static void fill_uniform(float *dst, int64_t n, uint64_t seed, uint64_t stream, double bound)
{
    for (int64_t i = 0; i < n; i++)
        dst[i] = (float)((2.0 * rng_uniform(seed, stream << 40, (uint64_t)i) - 1.0) * bound);
}

/* Host floats into a parameter of any float dtype. */
static aspo_status upload_param(tensor *t, const float *host, float *scratch)
{
    int64_t n = tensor_numel(t);
    for (int64_t i = 0; i < n; i++) dtype_store(scratch, t->dt, i, host[i]);
    return t->be->upload(t->be, t->data, scratch, tensor_nbytes(t));
}

/* nn.Linear's default init U(+-1/sqrt(in)) for both layers; streams start at 100 so they
 * never meet lora_init_weights' (keyed by the same seed, one stream per parameter). */
static aspo_status init_base(toy_model *m, uint64_t seed, float *buf, float *scratch)
{
    linear *layers[2] = {&m->fc1, &m->fc2};
    aspo_status s = ASPO_OK;
    for (int k = 0; k < 2 && !s; k++) {
        linear *l = layers[k];
        double bound = 1.0 / sqrt((double)l->in_features);
        fill_uniform(buf, tensor_numel(l->weight), seed, 100 + 2 * k, bound);
        s = upload_param(l->weight, buf, scratch);
        fill_uniform(buf, l->out_features, seed, 101 + 2 * k, bound);
        if (!s) s = upload_param(l->bias, buf, scratch);
    }
    return s;
}

/* The teacher's adapters: A like PEFT's init, B uniform in +-0.5 (PEFT's B is zero). */
static aspo_status set_teacher_adapters(toy_model *m, uint64_t seed, float *buf, float *scratch)
{
    linear *layers[2] = {&m->fc1, &m->fc2};
    aspo_status s = ASPO_OK;
    for (int k = 0; k < 2 && !s; k++) {
        linear *l = layers[k];
        fill_uniform(buf, tensor_numel(l->lora_A), seed, 200 + 2 * k,
                     1.0 / sqrt((double)l->in_features));
        s = upload_param(l->lora_A, buf, scratch);
        fill_uniform(buf, tensor_numel(l->lora_B), seed, 201 + 2 * k, 0.5);
        if (!s) s = upload_param(l->lora_B, buf, scratch);
    }
    return s;
}

/* Mean loss over all samples, adapters as they are, no tape. */
static double full_loss(const toy_model *m, const float *x, const float *y)
{
    bool prev = autograd_set_enabled(false);
    tensor *loss = mse_loss(toy_forward(m, tensor_from_host(DT_F32, DIMS(SAMPLES, IN), x)),
                            tensor_from_host(DT_F32, DIMS(SAMPLES, OUT), y));
    double v = tensor_item(loss);
    autograd_set_enabled(prev);
    runtime_step_reset();
    return v;
}

static aspo_status run(toy_model *m, adamw *opt, const demo_options *o, float *x, float *y,
                       float *buf, float *scratch)
{
    lora_config lora = {.r = RANK, .alpha = 16.0f};
    aspo_status s = ASPO_OK;
    param_store_init(&m->ps, runtime_backend());
    if ((s = linear_declare(&m->fc1, &m->ps, "fc1", IN, HIDDEN, true, DT_BF16, false)) ||
        (s = linear_add_lora(&m->fc1, &m->ps, "fc1", &lora)) ||
        (s = linear_declare(&m->fc2, &m->ps, "fc2", HIDDEN, OUT, true, DT_F32, false)) ||
        (s = linear_add_lora(&m->fc2, &m->ps, "fc2", &lora)) ||
        (s = param_store_allocate(&m->ps)) || (s = init_base(m, o->seed, buf, scratch)) ||
        (s = set_teacher_adapters(m, o->seed, buf, scratch)))
        return s;

    /* Data: inputs of unit variance, targets from the teacher. */
    fill_uniform(x, SAMPLES * IN, o->seed, 300, sqrt(3.0));
    bool prev = autograd_set_enabled(false);
    tensor *t = toy_forward(m, tensor_from_host(DT_F32, DIMS(SAMPLES, IN), x));
    s = t ? tensor_to_host(t, y) : aspo_error_status();
    autograd_set_enabled(prev);
    runtime_step_reset();
    if (s || (s = lora_init_weights(&m->ps, o->seed))) return s;

    adamw_config ac = adamw_defaults();
    ac.weight_decay = 0.0f; /* the Trainer's default */
    if ((s = adamw_init(opt, &m->ps, &ac))) return s;
    lr_schedule sched = {.kind = SCHEDULE_COSINE, .base_lr = o->lr,
                         .warmup_steps = schedule_warmup_steps(o->steps, 0.1, 0),
                         .total_steps = o->steps};
    if ((s = schedule_check(&sched))) return s;

    printf("aspo demo: MLP %d -> %d -> %d (SiLU), LoRA r=%d on both layers, %lld trainable of "
           "%lld parameters, backend %s\n", IN, HIDDEN, OUT, RANK,
           (long long)param_store_count(&m->ps, true), (long long)param_store_count(&m->ps, false),
           runtime_backend()->name);
    double initial = full_loss(m, x, y);
    runtime_set_seed(o->seed);
    nn_set_training(true);
    for (int step = 0; step < o->steps; step++) {
        int b = step % (SAMPLES / BATCH);
        tensor *xb = tensor_from_host(DT_F32, DIMS(BATCH, IN), x + b * BATCH * IN);
        tensor *yb = tensor_from_host(DT_F32, DIMS(BATCH, OUT), y + b * BATCH * OUT);
        tensor *loss = mse_loss(toy_forward(m, xb), yb); /* scalar */
        double loss_value = tensor_item(loss), norm = 0, lr = schedule_lr(&sched, opt->step);
        if ((s = tensor_backward(loss)) || (s = clip_grad_norm(&m->ps, 1.0f, &norm)) ||
            (s = adamw_step(opt, (float)lr)) || (s = param_store_zero_grad(&m->ps)))
            break;
        runtime_step_reset();
        if (step == 0 || step == o->steps - 1 || (o->log_every && (step + 1) % o->log_every == 0))
            printf("step %5d  loss %.6f  lr %.3e  grad_norm %.4f\n", step + 1, loss_value, lr,
                   norm);
    }
    nn_set_training(false);
    if (s) return s;
    double final = full_loss(m, x, y);
    printf("initial loss %.6f, final loss %.6g (%.0fx lower) over %d samples\n", initial, final,
           final > 0 ? initial / final : INFINITY, SAMPLES);
    printf("peak arena bytes: %zu activations, %zu tape\n", runtime_peak_data_bytes(),
           runtime_peak_host_bytes());
    return ASPO_OK;
}

aspo_status toy_train_demo(backend *be, const demo_options *o)
{
    if (o->steps < 1)
        return aspo_fail(ASPO_ERR_USAGE, "demo: --steps %d; need at least 1", o->steps);
    if (!(o->lr > 0) || !isfinite(o->lr))
        return aspo_fail(ASPO_ERR_USAGE, "demo: --lr %g must be a positive number", o->lr);
    aspo_status s = runtime_init(be, 0);
    if (s) return s;
    float *x = malloc(sizeof(float) * SAMPLES * IN), *y = malloc(sizeof(float) * SAMPLES * OUT);
    float *buf = malloc(sizeof(float) * IN * HIDDEN * 2),
          *scratch = malloc(sizeof(float) * IN * HIDDEN * 2);
    toy_model m = {0};
    adamw opt = {0};
    if (!x || !y || !buf || !scratch) s = aspo_fail(ASPO_ERR_OOM, "demo: no host memory");
    else s = run(&m, &opt, o, x, y, buf, scratch);
    if (opt.ps) adamw_free(&opt);
    param_store_free(&m.ps);
    free(x);
    free(y);
    free(buf);
    free(scratch);
    runtime_shutdown();
    return s;
}
