/* The training loop end to end on a toy LoRA model (16 -> 64 -> 8, SiLU, LoRA r=8 on both
 * layers): (a) parity with PyTorch + PEFT + transformers (tests/parity/make_toy_train.py),
 * (b) bitwise reproducibility, (c) no heap allocation in steady state, (d) gradient
 * accumulation. argv[1]: the fixtures directory. */
#include <jansson.h>
#include <malloc.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/adamw.h"
#include "nn/linear.h"
#include "nn/modules.h"
#include "nn/schedule.h"
#include "backends/registry.h"
#include "tensor/autograd.h"
#include "tensor/runtime.h"
#include "tensor/safetensors.h"
#include "tensor/tensor_ops.h"
#include "tests/check.h"

enum { IN = 16, HIDDEN = 64, OUT = 8, BATCH = 32, MAX_STEPS = 64 };

typedef struct toy_config {
    int steps, warmup_steps, lora_r;
    double lr, weight_decay, beta1, beta2, eps, max_grad_norm, lora_alpha;
} toy_config;

typedef struct toy_model {
    param_store ps;
    linear fc1, fc2;
} toy_model;

static void toy_declare(toy_model *m, const lora_config *lora)
{
    param_store_init(&m->ps, backend_cpu());
    /* The first base weight is frozen bf16, as a half-precision checkpoint would be. */
    CHECK(linear_declare(&m->fc1, &m->ps, "fc1", IN, HIDDEN, true, DT_BF16, false) == ASPO_OK,
          "fc1");
    CHECK(linear_add_lora(&m->fc1, &m->ps, "fc1", lora) == ASPO_OK, "fc1 lora");
    CHECK(linear_declare(&m->fc2, &m->ps, "fc2", HIDDEN, OUT, true, DT_F32, false) == ASPO_OK,
          "fc2");
    CHECK(linear_add_lora(&m->fc2, &m->ps, "fc2", lora) == ASPO_OK, "fc2 lora");
    CHECK(param_store_allocate(&m->ps) == ASPO_OK, "allocate: %s", aspo_error_message());
}

/* x (N,IN) -> (N,OUT). */
static tensor *toy_forward(const toy_model *m, tensor *x)
{
    return linear_forward(&m->fc2, tensor_silu(linear_forward(&m->fc1, x)));
}

/* F.mse_loss(y, t), mean over every element. */
static tensor *mse_loss(tensor *y, tensor *t)
{
    tensor *d = tensor_sub(y, t);
    return tensor_mean_dims(tensor_mul(d, d), 3u, false);
}

/* Every parameter of the store from the file, by name, dtype and shape. */
static void load_params(param_store *ps, const st_model *file)
{
    for (int i = 0; i < ps->n; i++) {
        tensor *t = ps->items[i];
        const st_entry *e = st_find(file, t->name);
        bool fits = e && e->dt == (int)t->dt && e->ndim == t->ndim && e->nbytes == tensor_nbytes(t);
        CHECK(fits, "fixture tensor %s missing or of another dtype/shape", t->name);
        if (fits) ps->be->upload(ps->be, t->data, e->data, e->nbytes);
    }
}

static tensor *fixture_tensor(const st_model *file, const char *name, int64_t rows, int64_t cols,
                              int64_t row0, int64_t n_rows)
{
    const st_entry *e = st_find(file, name);
    if (!e || e->dt != DT_F32 || e->ndim != 2 || e->shape[0] != rows || e->shape[1] != cols) {
        CHECK(0, "fixture %s missing or not f32 (%lld,%lld)", name, (long long)rows,
              (long long)cols);
        return NULL;
    }
    return tensor_from_host(DT_F32, DIMS(n_rows, cols), (const float *)e->data + row0 * cols);
}

typedef struct step_result {
    double loss, grad_norm, lr;
} step_result;

/* One optimizer step as the Hugging Face Trainer orders it: forward, backward, clip,
 * AdamW at the schedule's lr for this step, zero grads, reset the step arena. */
static step_result train_step(toy_model *m, adamw *opt, const lr_schedule *sched,
                              const toy_config *cfg, const st_model *data)
{
    step_result r = {NAN, NAN, NAN};
    tensor *x = fixture_tensor(data, "inputs", BATCH, IN, 0, BATCH);     /* (N,IN)  */
    tensor *t = fixture_tensor(data, "targets", BATCH, OUT, 0, BATCH);   /* (N,OUT) */
    tensor *loss = mse_loss(toy_forward(m, x), t);
    r.loss = tensor_item(loss);
    aspo_status s = tensor_backward(loss);
    if (!s) s = clip_grad_norm(&m->ps, (float)cfg->max_grad_norm, &r.grad_norm);
    r.lr = schedule_lr(sched, opt->step);
    if (!s) s = adamw_step(opt, (float)r.lr);
    if (!s) s = param_store_zero_grad(&m->ps);
    CHECK(s == ASPO_OK, "train step: %s", aspo_error_message());
    runtime_step_reset();
    return r;
}

static bool read_config(const char *path, toy_config *cfg, json_t **root)
{
    json_error_t err;
    *root = json_load_file(path, 0, &err);
    CHECK(*root != NULL, "%s:%d: %s", path, err.line, err.text);
    if (!*root) return false;
    json_t *c = json_object_get(*root, "config");
    cfg->steps = (int)json_integer_value(json_object_get(c, "steps"));
    cfg->warmup_steps = (int)json_integer_value(json_object_get(c, "warmup_steps"));
    cfg->lora_r = (int)json_integer_value(json_object_get(c, "lora_r"));
    cfg->lr = json_number_value(json_object_get(c, "lr"));
    cfg->weight_decay = json_number_value(json_object_get(c, "weight_decay"));
    cfg->beta1 = json_number_value(json_object_get(c, "beta1"));
    cfg->beta2 = json_number_value(json_object_get(c, "beta2"));
    cfg->eps = json_number_value(json_object_get(c, "eps"));
    cfg->max_grad_norm = json_number_value(json_object_get(c, "max_grad_norm"));
    cfg->lora_alpha = json_number_value(json_object_get(c, "lora_alpha"));
    bool ok = cfg->steps > 0 && cfg->steps <= MAX_STEPS && cfg->lora_r > 0 && cfg->lr > 0;
    CHECK(ok, "%s: config incomplete", path);
    return ok;
}

static void setup(toy_model *m, adamw *opt, lr_schedule *sched, const toy_config *cfg,
                  float dropout)
{
    lora_config lora = {.r = cfg->lora_r, .alpha = (float)cfg->lora_alpha, .dropout = dropout};
    toy_declare(m, &lora);
    adamw_config ac = {.beta1 = (float)cfg->beta1, .beta2 = (float)cfg->beta2,
                       .eps = (float)cfg->eps, .weight_decay = (float)cfg->weight_decay};
    CHECK(adamw_init(opt, &m->ps, &ac) == ASPO_OK, "adamw: %s", aspo_error_message());
    *sched = (lr_schedule){.kind = SCHEDULE_COSINE, .base_lr = cfg->lr,
                           .warmup_steps = schedule_warmup_steps(cfg->steps, 0.1, 0),
                           .total_steps = cfg->steps};
}

static void teardown(toy_model *m, adamw *opt)
{
    adamw_free(opt);
    param_store_free(&m->ps);
}

/* (a) every step's loss, lr and grad norm and the final LoRA weights against PyTorch. */
static void test_parity(const char *dir, const toy_config *cfg, json_t *ref, const st_model *init)
{
    char path[1024];
    toy_model m;
    adamw opt;
    lr_schedule sched;
    setup(&m, &opt, &sched, cfg, 0.0f);
    CHECK(sched.warmup_steps == cfg->warmup_steps, "warmup %lld, reference %d",
          (long long)sched.warmup_steps, cfg->warmup_steps);
    load_params(&m.ps, init);
    json_t *losses = json_object_get(ref, "loss"), *lrs = json_object_get(ref, "lr"),
           *norms = json_object_get(ref, "grad_norm");
    CHECK((int)json_array_size(losses) == cfg->steps && (int)json_array_size(norms) == cfg->steps,
          "reference has %zu losses", json_array_size(losses));
    nn_set_training(true); /* dropout 0: training mode must change nothing */
    double worst_loss = 0, worst_norm = 0;
    for (int k = 0; k < cfg->steps && k < (int)json_array_size(losses); k++) {
        step_result r = train_step(&m, &opt, &sched, cfg, init);
        double want_loss = json_number_value(json_array_get(losses, k)),
               want_norm = json_number_value(json_array_get(norms, k)),
               want_lr = json_number_value(json_array_get(lrs, k));
        worst_loss = fmax(worst_loss, fabs(r.loss - want_loss) / want_loss);
        worst_norm = fmax(worst_norm, fabs(r.grad_norm - want_norm) / want_norm);
        /* The schedule is double arithmetic on both sides, the same formula. */
        CHECK(fabs(r.lr - want_lr) <= 1e-15, "step %d lr %.17g, want %.17g", k, r.lr, want_lr);
        /* f32 training against f32 PyTorch: GEMMs sum in another order (OpenBLAS vs
         * PyTorch's BLAS), ~1e-7 relative per op; AdamW's m/sqrt(v) passes relative errors
         * of the gradients through unchanged, and 40 steps compound them (measured: 5e-7;
         * the bound leaves 20x for another BLAS or thread count). */
        CHECK(fabs(r.loss - want_loss) <= 1e-5 * want_loss, "step %d loss %.9g, want %.9g", k,
              r.loss, want_loss);
        CHECK(fabs(r.grad_norm - want_norm) <= 1e-5 * want_norm,
              "step %d grad norm %.9g, want %.9g", k, r.grad_norm, want_norm);
    }
    nn_set_training(false);
    printf("parity: worst relative error over %d steps: loss %.3g, grad norm %.3g\n", cfg->steps,
           worst_loss, worst_norm);

    snprintf(path, sizeof path, "%s/toy_train_final.safetensors", dir);
    st_model final;
    CHECK(st_open(path, &final) == ASPO_OK, "%s", aspo_error_message());
    double worst_w = 0;
    for (int i = 0; i < m.ps.n; i++) {
        tensor *p = m.ps.items[i];
        if (!p->requires_grad) continue;
        const st_entry *e = st_find(&final, p->name);
        CHECK(e && e->nbytes == tensor_nbytes(p), "final %s missing", p->name);
        if (!e || e->nbytes != tensor_nbytes(p)) continue;
        int64_t n = tensor_numel(p);
        float *got = malloc(sizeof(float) * n);
        CHECK(tensor_to_host_f32(p, got) == ASPO_OK, "download");
        const float *want = e->data;
        double err = 0, scale = 0;
        for (int64_t j = 0; j < n; j++) {
            err = fmax(err, fabs((double)got[j] - want[j]));
            scale = fmax(scale, fabs((double)want[j]));
        }
        worst_w = fmax(worst_w, err / scale);
        /* Same reasoning as the losses: relative to the tensor's largest element. */
        CHECK(err <= 1e-5 * scale, "final %s off by %g (max |w| %g)", p->name, err, scale);
        free(got);
    }
    printf("parity: final LoRA weights within %.3g of their largest element\n", worst_w);
    st_close(&final);
    teardown(&m, &opt);
}

/* A run from the seed alone (PEFT init from Philox, dropout 0.1 in training mode). */
static void seeded_run(const toy_config *cfg, const st_model *init, uint64_t seed, int steps,
                       double *losses)
{
    toy_model m;
    adamw opt;
    lr_schedule sched;
    setup(&m, &opt, &sched, cfg, 0.1f);
    load_params(&m.ps, init);
    CHECK(lora_init_weights(&m.ps, seed) == ASPO_OK, "init");
    runtime_set_seed(seed);
    bool prev = nn_set_training(true);
    for (int k = 0; k < steps; k++) losses[k] = train_step(&m, &opt, &sched, cfg, init).loss;
    nn_set_training(prev);
    teardown(&m, &opt);
}

/* (b) the same seed gives the same loss curve bit for bit; another seed does not. */
static void test_reproducible(const toy_config *cfg, const st_model *init)
{
    double a[MAX_STEPS], b[MAX_STEPS], c[MAX_STEPS];
    seeded_run(cfg, init, 42, cfg->steps, a);
    seeded_run(cfg, init, 42, cfg->steps, b);
    seeded_run(cfg, init, 43, cfg->steps, c);
    CHECK(memcmp(a, b, sizeof(double) * cfg->steps) == 0, "same seed, different loss curves");
    CHECK(memcmp(a, c, sizeof(double) * cfg->steps) != 0, "the seed changes nothing");
    CHECK(a[cfg->steps - 1] < 0.5 * a[0], "seeded run does not learn: %g -> %g", a[0],
          a[cfg->steps - 1]);
}

/* (c) after two warm-up steps the arenas have their peak size: no chunk and no malloc. */
static void test_steady_state(const toy_config *cfg, const st_model *init)
{
    toy_model m;
    adamw opt;
    lr_schedule sched;
    setup(&m, &opt, &sched, cfg, 0.1f);
    load_params(&m.ps, init);
    bool prev = nn_set_training(true);
    for (int k = 0; k < 2; k++) train_step(&m, &opt, &sched, cfg, init);
    long chunks = runtime_heap_allocations();
    size_t heap = mallinfo2().uordblks;
    for (int k = 0; k < 8; k++) train_step(&m, &opt, &sched, cfg, init);
    CHECK(runtime_heap_allocations() == chunks, "arena chunks %ld -> %ld in steady state", chunks,
          runtime_heap_allocations());
    size_t heap_after = mallinfo2().uordblks;
    CHECK(heap_after == heap, "malloc'd bytes %zu -> %zu in steady state", heap, heap_after);
    nn_set_training(prev);
    teardown(&m, &opt);
}

/* (d) two micro-batches of 16 (loss / 2 each, as the Trainer scales it) accumulate to the
 * gradients of one batch of 32. */
static void test_grad_accumulation(const toy_config *cfg, const st_model *init)
{
    toy_model m;
    adamw opt;
    lr_schedule sched;
    setup(&m, &opt, &sched, cfg, 0.0f);
    load_params(&m.ps, init);
    for (int k = 0; k < 6; k++) train_step(&m, &opt, &sched, cfg, init); /* B != 0 now */
    int64_t n = param_store_count(&m.ps, true);
    float *full = malloc(sizeof(float) * n), *accum = malloc(sizeof(float) * n);
    float *dst[2] = {full, accum};
    for (int pass = 0; pass < 2; pass++) {
        int micro = pass ? 2 : 1, rows = BATCH / micro;
        for (int mb = 0; mb < micro; mb++) {
            tensor *x = fixture_tensor(init, "inputs", BATCH, IN, mb * rows, rows);
            tensor *t = fixture_tensor(init, "targets", BATCH, OUT, mb * rows, rows);
            tensor *loss = tensor_scale(mse_loss(toy_forward(&m, x), t), 1.0f / micro);
            CHECK(tensor_backward(loss) == ASPO_OK, "backward: %s", aspo_error_message());
            runtime_step_reset();
        }
        float *at = dst[pass];
        for (int i = 0; i < m.ps.n; i++)
            if (m.ps.grads[i]) {
                CHECK(tensor_to_host_f32(m.ps.grads[i], at) == ASPO_OK, "grad");
                at += tensor_numel(m.ps.grads[i]);
            }
        param_store_zero_grad(&m.ps);
    }
    double err = 0, scale = 0;
    for (int64_t i = 0; i < n; i++) {
        err = fmax(err, fabs((double)full[i] - accum[i]));
        scale = fmax(scale, fabs((double)full[i]));
    }
    /* The same sums split in two and added in f32: a few ulps of the largest gradient. */
    CHECK(scale > 0 && err <= 1e-6 * scale, "accumulated grads off by %g (max |g| %g)", err, scale);
    free(full);
    free(accum);
    teardown(&m, &opt);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_train <fixtures dir>\n");
        return 2;
    }
    runtime_init(backend_cpu(), 0);
    char path[1024];
    toy_config cfg;
    json_t *ref = NULL;
    st_model init;
    snprintf(path, sizeof path, "%s/toy_train_init.safetensors", argv[1]);
    CHECK(st_open(path, &init) == ASPO_OK, "%s", aspo_error_message());
    snprintf(path, sizeof path, "%s/toy_train_reference.json", argv[1]);
    if (init.n_entries && read_config(path, &cfg, &ref)) {
        test_parity(argv[1], &cfg, ref, &init);
        test_reproducible(&cfg, &init);
        test_steady_state(&cfg, &init);
        test_grad_accumulation(&cfg, &init);
    }
    json_decref(ref);
    st_close(&init);
    runtime_shutdown();
    return check_summary("test_train");
}
