/* nn layer: linear + LoRA (PEFT semantics), module declarations, AdamW, schedules and
 * gradient clipping, each against values computed here in double or taken from
 * transformers 4.30.2. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nn/adamw.h"
#include "nn/linear.h"
#include "nn/modules.h"
#include "nn/schedule.h"
#include "backends/registry.h"
#include "tensor/autograd.h"
#include "tensor/runtime.h"
#include "tensor/tensor_ops.h"
#include "tests/check.h"

/* Deterministic test values in [-1, 1). */
static float value_at(uint64_t seed, int64_t i)
{
    uint64_t x = (seed + 1) * 0x9E3779B97F4A7C15ull + (uint64_t)i * 0xBF58476D1CE4E5B9ull;
    x ^= x >> 31;
    x *= 0x94D049BB133111EBull;
    x ^= x >> 29;
    return (float)((double)(x >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static void fill_values(float *dst, int64_t n, uint64_t seed, float scale)
{
    for (int64_t i = 0; i < n; i++) dst[i] = scale * value_at(seed, i);
}

/* Writes host f32 values into a parameter of any float dtype; `host` is rounded in place
 * to what the parameter holds, so references use the stored values. */
static void set_param(tensor *t, float *host)
{
    int64_t n = tensor_numel(t);
    char *buf = malloc((size_t)n * dtype_size(t->dt));
    for (int64_t i = 0; i < n; i++) {
        dtype_store(buf, t->dt, i, host[i]);
        host[i] = dtype_load(buf, t->dt, i);
    }
    t->be->upload(t->be, t->data, buf, (size_t)n * dtype_size(t->dt));
    free(buf);
}

static void get_f32(const tensor *t, float *host)
{
    CHECK(tensor_to_host_f32(t, host) == ASPO_OK, "download");
}

static double max_abs_diff(const float *a, const double *b, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

/* Checks the guard bytes after every arena allocation of the step, then resets it. */
static void end_step(void)
{
    CHECK(arena_check_guards(&runtime_current()->data) == ASPO_OK, "guards: %s",
          aspo_error_message());
    runtime_step_reset();
}

/* ---- linear + LoRA ---- */

enum { N = 5, IN = 12, OUT = 7, R = 4 };

/* y = x W^T + b + s * (x A^T) B^T in double. */
static void linear_reference(const float *x, const float *W, const float *b, const float *A,
                             const float *B, double s, double *y)
{
    for (int n = 0; n < N; n++) {
        double xa[R] = {0};
        for (int r = 0; r < R && A; r++)
            for (int i = 0; i < IN; i++) xa[r] += (double)x[n * IN + i] * A[r * IN + i];
        for (int o = 0; o < OUT; o++) {
            double acc = b ? b[o] : 0.0;
            for (int i = 0; i < IN; i++) acc += (double)x[n * IN + i] * W[o * IN + i];
            for (int r = 0; r < R && A; r++) acc += s * xa[r] * B[o * R + r];
            y[n * OUT + o] = acc;
        }
    }
}

static void test_linear_lora(dtype weight_dt, bool rslora)
{
    const char *what = rslora ? "rslora" : "lora";
    param_store ps;
    param_store_init(&ps, backend_cpu());
    linear l;
    lora_config cfg = {.r = R, .alpha = 6.0f, .dropout = 0.25f, .rslora = rslora};
    const char *prefix = "model.layers.0.mlp.up_proj";
    CHECK(linear_declare(&l, &ps, prefix, IN, OUT, true, weight_dt, false) == ASPO_OK, "declare");
    CHECK(linear_add_lora(&l, &ps, prefix, &cfg) == ASPO_OK, "add lora: %s", aspo_error_message());
    CHECK(param_store_allocate(&ps) == ASPO_OK, "allocate");

    /* PEFT names and shapes; only the adapter trains. */
    CHECK(param_find(&ps, "model.layers.0.mlp.up_proj.weight") == l.weight, "weight name");
    CHECK(param_find(&ps, "model.layers.0.mlp.up_proj.bias") == l.bias, "bias name");
    CHECK(param_find(&ps, "model.layers.0.mlp.up_proj.lora_A.weight") == l.lora_A, "A name");
    CHECK(param_find(&ps, "model.layers.0.mlp.up_proj.lora_B.weight") == l.lora_B, "B name");
    CHECK(l.lora_A->shape[0] == R && l.lora_A->shape[1] == IN, "A is (r,in)");
    CHECK(l.lora_B->shape[0] == OUT && l.lora_B->shape[1] == R, "B is (out,r)");
    CHECK(!l.weight->requires_grad && l.lora_A->requires_grad && l.lora_B->requires_grad,
          "trainable flags");
    CHECK(param_store_count(&ps, true) == R * IN + OUT * R, "trainable count");
    double want_scaling = rslora ? 6.0 / sqrt((double)R) : 6.0 / R;
    CHECK_CLOSE(l.lora_scaling, want_scaling, 1e-7, "scaling");
    CHECK_CLOSE(lora_scaling(&cfg), want_scaling, 1e-7, "lora_scaling");

    float x[N * IN], W[OUT * IN], b[OUT], A[R * IN], B[OUT * R], y[N * OUT];
    double ref[N * OUT];
    fill_values(x, N * IN, 1, 1.0f);
    fill_values(W, OUT * IN, 2, 0.5f);
    fill_values(b, OUT, 3, 0.5f);
    set_param(l.weight, W);
    set_param(l.bias, b);
    CHECK(lora_init_weights(&ps, 7) == ASPO_OK, "init");
    get_f32(l.lora_A, A);
    get_f32(l.lora_B, B);
    bool b_zero = true;
    for (int i = 0; i < OUT * R; i++) b_zero &= B[i] == 0.0f;
    CHECK(b_zero, "%s: B starts at zero", what);

    /* f32 GEMMs over K <= 12 against double: a few f32 roundings of values near 1 (bf16
     * weights are exact once widened, so the same bound holds). */
    const double tol = 2e-6;
    tensor *xt = tensor_from_host(DT_F32, DIMS(N, IN), x);
    tensor *base = NULL;
    {
        bool prev = lora_set_enabled(false);
        CHECK(prev, "adapters start enabled");
        base = linear_forward(&l, xt);
        CHECK(lora_set_enabled(prev) == false, "switch returns the previous value");
    }
    tensor *yt = linear_forward(&l, xt); /* B = 0: the adapter adds exact zeros */
    float yb[N * OUT];
    get_f32(base, yb);
    get_f32(yt, y);
    CHECK(memcmp(y, yb, sizeof y) == 0, "%s: B = 0 gives the base output bitwise", what);
    linear_reference(x, W, b, NULL, NULL, 0, ref);
    CHECK(max_abs_diff(y, ref, N * OUT) < tol, "%s: base output off by %g", what,
          max_abs_diff(y, ref, N * OUT));

    /* Non-zero B: y = base + scaling * B A x; adapters off gives the base again. */
    fill_values(B, OUT * R, 4, 0.5f);
    set_param(l.lora_B, B);
    get_f32(linear_forward(&l, xt), y);
    linear_reference(x, W, b, A, B, want_scaling, ref);
    CHECK(max_abs_diff(y, ref, N * OUT) < tol, "%s: LoRA output off by %g", what,
          max_abs_diff(y, ref, N * OUT));
    /* A (B,T,C) input gives the same rows. */
    float y3[N * OUT];
    tensor *y3t = linear_forward(&l, tensor_reshape(xt, DIMS(1, N, IN)));
    CHECK(y3t && y3t->ndim == 3 && y3t->shape[2] == OUT, "3-D input keeps its leading dims");
    if (y3t) get_f32(y3t, y3);
    CHECK(y3t && max_abs_diff(y3, ref, N * OUT) < tol, "%s: 3-D input", what);
    lora_set_enabled(false);
    get_f32(linear_forward(&l, xt), y);
    lora_set_enabled(true);
    linear_reference(x, W, b, NULL, NULL, 0, ref);
    CHECK(max_abs_diff(y, ref, N * OUT) < tol, "%s: adapters off off by %g", what,
          max_abs_diff(y, ref, N * OUT));

    /* Gradients through the transposed views: loss = sum(y * g) gives
     * dB = s g^T (x A^T), dA = s (g B)^T x, and no gradient for the frozen W. */
    float g[N * OUT], dA[R * IN], dB[OUT * R];
    fill_values(g, N * OUT, 5, 1.0f);
    tensor *loss = tensor_sum_all(tensor_mul(linear_forward(&l, xt),
                                             tensor_from_host(DT_F32, DIMS(N, OUT), g)));
    CHECK(tensor_backward(loss) == ASPO_OK, "backward: %s", aspo_error_message());
    get_f32(l.lora_A->grad, dA);
    get_f32(l.lora_B->grad, dB);
    double rA[R * IN] = {0}, rB[OUT * R] = {0};
    for (int n = 0; n < N; n++)
        for (int r = 0; r < R; r++) {
            double xa = 0, gb = 0;
            for (int i = 0; i < IN; i++) xa += (double)x[n * IN + i] * A[r * IN + i];
            for (int o = 0; o < OUT; o++) gb += (double)g[n * OUT + o] * B[o * R + r];
            for (int o = 0; o < OUT; o++) rB[o * R + r] += want_scaling * g[n * OUT + o] * xa;
            for (int i = 0; i < IN; i++) rA[r * IN + i] += want_scaling * gb * x[n * IN + i];
        }
    CHECK(max_abs_diff(dA, rA, R * IN) < 1e-5, "%s: dA off by %g", what,
          max_abs_diff(dA, rA, R * IN));
    CHECK(max_abs_diff(dB, rB, OUT * R) < 1e-5, "%s: dB off by %g", what,
          max_abs_diff(dB, rB, OUT * R));
    CHECK(l.weight->grad == NULL, "frozen weight has no gradient");

    /* Dropout on the adapter input only, only in training mode, reproducible by seed. */
    runtime_set_seed(11);
    float y1[N * OUT], y2[N * OUT];
    get_f32(linear_forward(&l, xt), y);
    bool prev = nn_set_training(true);
    CHECK(!prev, "eval mode by default");
    get_f32(linear_forward(&l, xt), y1);
    runtime_set_seed(11);
    get_f32(linear_forward(&l, xt), y2);
    nn_set_training(false);
    CHECK(memcmp(y1, y, sizeof y) != 0, "%s: training mode applies dropout", what);
    CHECK(memcmp(y1, y2, sizeof y) == 0, "%s: dropout reproduces from the seed", what);
    lora_set_enabled(false);
    nn_set_training(true);
    get_f32(linear_forward(&l, xt), y1);
    nn_set_training(false);
    lora_set_enabled(true);
    CHECK(max_abs_diff(y1, ref, N * OUT) < tol, "%s: dropout never touches the base path", what);

    /* User errors: wrong input width, adapter twice, bad config. */
    aspo_error_clear();
    CHECK(linear_forward(&l, tensor_from_host(DT_F32, DIMS(N, OUT), y)) == NULL &&
              aspo_error_status() == ASPO_ERR_SHAPE && strstr(aspo_error_message(), "up_proj"),
          "wrong width: %s", aspo_error_message());
    aspo_error_clear();
    end_step();
    param_store_free(&ps);

    param_store_init(&ps, backend_cpu());
    CHECK(linear_declare(&l, &ps, "q", IN, OUT, false, weight_dt, false) == ASPO_OK, "declare q");
    lora_config bad = {.r = 0, .alpha = 1};
    CHECK(linear_add_lora(&l, &ps, "q", &bad) == ASPO_ERR_USAGE, "r = 0 refused");
    aspo_error_clear();
    bad = (lora_config){.r = 2, .alpha = 1, .dropout = 1.0f};
    CHECK(linear_add_lora(&l, &ps, "q", &bad) == ASPO_ERR_USAGE, "dropout 1 refused");
    aspo_error_clear();
    param_store_free(&ps);
}

/* kaiming_uniform_(a=sqrt(5)) on (r,in): U(-1/sqrt(in), 1/sqrt(in)). */
static void test_lora_init_statistics(void)
{
    enum { IN_BIG = 400, R_BIG = 64 };
    param_store ps;
    param_store_init(&ps, backend_cpu());
    linear l1, l2;
    lora_config cfg = {.r = R_BIG, .alpha = 16};
    CHECK(linear_declare(&l1, &ps, "a", IN_BIG, 8, false, DT_BF16, false) == ASPO_OK, "declare");
    CHECK(linear_add_lora(&l1, &ps, "a", &cfg) == ASPO_OK, "lora a");
    CHECK(linear_declare(&l2, &ps, "b", IN_BIG, 8, false, DT_BF16, false) == ASPO_OK, "declare");
    CHECK(linear_add_lora(&l2, &ps, "b", &cfg) == ASPO_OK, "lora b");
    CHECK(param_store_allocate(&ps) == ASPO_OK, "allocate");
    CHECK(lora_init_weights(&ps, 1234) == ASPO_OK, "init");
    int64_t n = R_BIG * IN_BIG;
    float *a = malloc(sizeof(float) * n), *a2 = malloc(sizeof(float) * n),
          *again = malloc(sizeof(float) * n);
    get_f32(l1.lora_A, a);
    get_f32(l2.lora_A, a2);
    double bound = 1.0 / sqrt((double)IN_BIG), sum = 0, sumsq = 0, peak = 0;
    for (int64_t i = 0; i < n; i++) {
        sum += a[i];
        sumsq += (double)a[i] * a[i];
        peak = fmax(peak, fabs(a[i]));
    }
    double mean = sum / n, var = sumsq / n - mean * mean;
    CHECK(peak <= bound, "|A| max %g exceeds the bound %g", peak, bound);
    CHECK(peak > 0.99 * bound, "|A| max %g never nears the bound %g", peak, bound);
    /* Mean of n uniforms: standard error bound/sqrt(3n); allow 5 of them. Variance
     * bound^2/3 with relative standard error 0.894/sqrt(n) (0.56%); allow 3%. */
    CHECK(fabs(mean) < 5 * bound / sqrt(3.0 * n), "A mean %g", mean);
    CHECK(fabs(var / (bound * bound / 3) - 1) < 0.03, "A variance %g, want %g", var,
          bound * bound / 3);
    CHECK(memcmp(a, a2, sizeof(float) * n) != 0, "each adapter draws its own values");
    CHECK(lora_init_weights(&ps, 1234) == ASPO_OK, "re-init");
    get_f32(l1.lora_A, again);
    CHECK(memcmp(a, again, sizeof(float) * n) == 0, "same seed, same A");
    CHECK(lora_init_weights(&ps, 1235) == ASPO_OK, "re-init");
    get_f32(l1.lora_A, again);
    CHECK(memcmp(a, again, sizeof(float) * n) != 0, "another seed, another A");
    free(a);
    free(a2);
    free(again);
    param_store_free(&ps);
}

static void test_module_declarations(void)
{
    param_store ps;
    param_store_init(&ps, backend_cpu());
    embedding e;
    rmsnorm rn;
    layernorm ln;
    CHECK(embedding_declare(&e, &ps, "model.embed_tokens", 100, 16, DT_BF16, false) == ASPO_OK,
          "emb");
    CHECK(rmsnorm_declare(&rn, &ps, "model.norm", 16, 1e-6f, DT_F32, false) == ASPO_OK, "rms");
    CHECK(layernorm_declare(&ln, &ps, "vision.post_layernorm", 16, 1e-5f, DT_F32, true) == ASPO_OK,
          "ln");
    CHECK(param_find(&ps, "model.embed_tokens.weight") == e.weight && e.weight->shape[0] == 100 &&
              e.weight->shape[1] == 16 && e.weight->dt == DT_BF16, "embedding weight (V,C)");
    CHECK(param_find(&ps, "model.norm.weight") == rn.weight && rn.eps == 1e-6f, "rmsnorm");
    CHECK(param_find(&ps, "vision.post_layernorm.weight") == ln.weight &&
              param_find(&ps, "vision.post_layernorm.bias") == ln.bias && ln.bias->requires_grad,
          "layernorm names");
    aspo_error_clear();
    CHECK(rmsnorm_declare(&rn, &ps, "bad", 0, 1e-6f, DT_F32, false) == ASPO_ERR_SHAPE, "size 0");
    aspo_error_clear();
    char longname[300];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    CHECK(rmsnorm_declare(&rn, &ps, longname, 4, 1e-6f, DT_F32, false) == ASPO_ERR_USAGE,
          "overlong name refused");
    aspo_error_clear();
    param_store_free(&ps);
}

/* ---- AdamW ---- */

/* torch.optim.AdamW's single-tensor update, in double. */
static void adamw_reference(double *p, double *m, double *v, const double *g, int n, double lr,
                            double b1, double b2, double eps, double wd, int step)
{
    double bc1 = 1 - pow(b1, step), bc2 = 1 - pow(b2, step);
    for (int i = 0; i < n; i++) {
        p[i] *= 1 - lr * wd;
        m[i] = b1 * m[i] + (1 - b1) * g[i];
        v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
        p[i] -= lr / bc1 * m[i] / (sqrt(v[i]) / sqrt(bc2) + eps);
    }
}

static void test_adamw_update(float wd)
{
    enum { E = 6 };
    float p0[E] = {0.5f, -1.25f, 2.0f, 0.0f, 1e-3f, -3.0f};
    float grads[3][E] = {{0.1f, -0.2f, 0.0f, 1e-4f, 5.0f, -0.3f},
                         {-0.05f, 0.4f, 0.3f, 1e-4f, -5.0f, -0.3f},
                         {0.2f, 0.1f, -0.1f, -1e-4f, 2.5f, 0.0f}};
    double p[E], m[E] = {0}, v[E] = {0}, g[E];
    for (int i = 0; i < E; i++) p[i] = p0[i];
    tensor *pt = tensor_from_host(DT_F32, DIMS(2, 3), p0), *mt = tensor_zeros(DT_F32, DIMS(2, 3)),
           *vt = tensor_zeros(DT_F32, DIMS(2, 3));
    float lr = 1e-2f;
    for (int step = 1; step <= 3; step++) {
        for (int i = 0; i < E; i++) g[i] = grads[step - 1][i];
        tensor *gt = tensor_from_host(DT_F32, DIMS(2, 3), grads[step - 1]);
        adamw_hparams h = {.lr = lr, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f,
                           .weight_decay = wd, .step = step};
        CHECK(tensor_adamw_update(pt, gt, mt, vt, &h) == ASPO_OK, "update: %s",
              aspo_error_message());
        adamw_reference(p, m, v, g, E, lr, 0.9f, 0.999f, 1e-8f, wd, step);
        float got[E], gm[E], gv[E];
        get_f32(pt, got);
        get_f32(mt, gm);
        get_f32(vt, gv);
        /* f32 against double: each step moves p by ~lr with a few f32 roundings, so the
         * error is a few ulps of |p| <= 3 plus ~1e-7 * lr. */
        for (int i = 0; i < E; i++) {
            CHECK_CLOSE(got[i], p[i], 1e-6, "adamw param");
            CHECK_CLOSE(gm[i], m[i], 1e-6, "adamw exp_avg");
            CHECK_CLOSE(gv[i], v[i], 1e-6, "adamw exp_avg_sq");
        }
    }
    /* Hand check of the first step of element 0 (g = 0.1) without decay: m = 0.01,
     * v = 1e-5, update = lr * (0.01/0.1) / (sqrt(1e-5/0.001) + 1e-8) = lr / (1 + 1e-7). */
    if (wd == 0.0f) {
        double first = 0.5 - 1e-2 * 1.0 / (1.0 + 1e-7);
        tensor *a = tensor_from_host(DT_F32, DIMS(1), p0),
               *gg = tensor_from_host(DT_F32, DIMS(1), grads[0]);
        adamw_hparams h = {.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .step = 1};
        CHECK(tensor_adamw_update(a, gg, tensor_zeros(DT_F32, DIMS(1)),
                                  tensor_zeros(DT_F32, DIMS(1)), &h) == ASPO_OK,
              "one");
        CHECK_CLOSE(tensor_item(a), first, 1e-7, "first step by hand");
    }
    aspo_error_clear();
    adamw_hparams h = {.lr = lr, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .step = 0};
    CHECK(tensor_adamw_update(pt, pt, mt, vt, &h) == ASPO_ERR_USAGE, "step 0 refused");
    aspo_error_clear();
    h.step = 1;
    CHECK(tensor_adamw_update(pt, tensor_zeros(DT_F32, DIMS(3, 2)), mt, vt, &h) == ASPO_ERR_SHAPE &&
              strstr(aspo_error_message(), "grad"),
          "grad shape: %s", aspo_error_message());
    aspo_error_clear();
    end_step();
}

/* A store with two trainables (shapes (2,3) and (4)) and one frozen tensor. */
static void small_store(param_store *ps)
{
    param_store_init(ps, backend_cpu());
    param_declare(ps, "frozen", DT_BF16, DIMS(3), false);
    param_declare(ps, "w", DT_F32, DIMS(2, 3), true);
    param_declare(ps, "u", DT_F32, DIMS(4), true);
    CHECK(param_store_allocate(ps) == ASPO_OK, "allocate");
}

static void set_grads(param_store *ps, const float *g10)
{
    ps->be->upload(ps->be, ps->grads[1]->data, g10, 6 * sizeof(float));
    ps->be->upload(ps->be, ps->grads[2]->data, g10 + 6, 4 * sizeof(float));
}

static void test_adamw_optimizer_and_resume(void)
{
    param_store a, b;
    small_store(&a);
    small_store(&b);
    float w[10], g[10];
    fill_values(w, 10, 21, 1.0f);
    set_param(a.items[1], w);
    set_param(a.items[2], w + 6);
    set_param(b.items[1], w);
    set_param(b.items[2], w + 6);
    adamw_config cfg = adamw_defaults();
    CHECK(cfg.beta1 == 0.9f && cfg.beta2 == 0.999f && cfg.eps == 1e-8f && cfg.weight_decay == 0.01f,
          "torch defaults");
    adamw oa, ob;
    CHECK(adamw_init(&oa, &a, &cfg) == ASPO_OK, "init a");
    CHECK(adamw_init(&ob, &b, &cfg) == ASPO_OK, "init b");
    CHECK(oa.n == 2 && adamw_state_numel(&oa) == 10, "state covers the trainables");
    /* Two steps on a, then its state saved and loaded into b (params copied too). */
    for (int s = 0; s < 2; s++) {
        fill_values(g, 10, 30 + s, 0.5f);
        set_grads(&a, g);
        CHECK(adamw_step(&oa, 1e-2f) == ASPO_OK, "step: %s", aspo_error_message());
    }
    char dir[] = "/tmp/aspo_test_nn_XXXXXX", path[128];
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(path, sizeof path, "%s/optimizer.safetensors", dir);
    CHECK(adamw_save(&oa, path) == ASPO_OK, "save: %s", aspo_error_message());
    CHECK(adamw_load(&ob, path) == ASPO_OK, "load: %s", aspo_error_message());
    CHECK(ob.step == 2, "step restored: %lld", (long long)ob.step);
    float pa[10], pb[10], ma[10], va[10], mb[10], vb[10];
    get_f32(a.items[1], pa);
    get_f32(a.items[2], pa + 6);
    set_param(b.items[1], pa);
    set_param(b.items[2], pa + 6);
    adamw_state_to_host(&oa, ma, va);
    adamw_state_to_host(&ob, mb, vb);
    CHECK(memcmp(ma, mb, sizeof ma) == 0 && memcmp(va, vb, sizeof va) == 0, "moments restored");
    /* The resumed optimizer continues bitwise like the original. */
    fill_values(g, 10, 40, 0.5f);
    set_grads(&a, g);
    set_grads(&b, g);
    CHECK(adamw_step(&oa, 5e-3f) == ASPO_OK && adamw_step(&ob, 5e-3f) == ASPO_OK, "step 3");
    get_f32(a.items[1], pa);
    get_f32(a.items[2], pa + 6);
    get_f32(b.items[1], pb);
    get_f32(b.items[2], pb + 6);
    CHECK(memcmp(pa, pb, sizeof pa) == 0, "resumed step matches bitwise");
    float frozen[3];
    get_f32(a.items[0], frozen);
    CHECK(frozen[0] == 0 && frozen[1] == 0 && frozen[2] == 0, "frozen tensors untouched");
    /* Host round trip. */
    CHECK(adamw_state_from_host(&ob, ma, va, 7) == ASPO_OK && ob.step == 7, "from host");

    /* Bad files: missing, and a state of another model. */
    aspo_error_clear();
    snprintf(path, sizeof path, "%s/missing.safetensors", dir);
    CHECK(adamw_load(&ob, path) == ASPO_ERR_IO, "missing file: %s", aspo_error_message());
    aspo_error_clear();
    param_store c;
    param_store_init(&c, backend_cpu());
    param_declare(&c, "w", DT_F32, DIMS(3, 2), true);
    param_declare(&c, "u", DT_F32, DIMS(4), true);
    CHECK(param_store_allocate(&c) == ASPO_OK, "allocate c");
    adamw oc;
    CHECK(adamw_init(&oc, &c, &cfg) == ASPO_OK, "init c");
    snprintf(path, sizeof path, "%s/optimizer.safetensors", dir);
    CHECK(adamw_load(&oc, path) == ASPO_ERR_FORMAT && strstr(aspo_error_message(), "w.exp_avg"),
          "shape mismatch: %s", aspo_error_message());
    CHECK(oc.step == 0, "a refused file changes nothing");
    aspo_error_clear();
    unlink(path);
    rmdir(dir);
    adamw_free(&oa);
    adamw_free(&ob);
    adamw_free(&oc);
    param_store_free(&a);
    param_store_free(&b);
    param_store_free(&c);
}

/* ---- schedules: transformers 4.30.2 LambdaLR learning rates, base lr 3e-4, 100 steps,
 * warmup ceil(0.1 * 100) = 10, printed with repr() ---- */
static void test_schedules(void)
{
    CHECK(schedule_warmup_steps(100, 0.1, 0) == 10, "warmup 10");
    CHECK(schedule_warmup_steps(40, 0.1, 0) == 4, "warmup 4");
    CHECK(schedule_warmup_steps(7, 0.1, 0) == 1, "ceil(0.7) = 1");
    CHECK(schedule_warmup_steps(50, 0.07, 0) == 4, "ceil(3.5000000000000004) = 4");
    CHECK(schedule_warmup_steps(50, 0.07, 3) == 3, "explicit warmup wins");
    CHECK(schedule_warmup_steps(50, 0.0, 0) == 0, "no warmup");
    static const int64_t at[] = {0, 1, 5, 9, 10, 11, 37, 55, 99, 100};
    static const double cosine[] = {0.0, 2.9999999999999997e-05, 0.00015, 0.00027, 0.0003,
                                    0.00029990862405286433, 0.00023816778784387094, 0.00015,
                                    9.137594713563568e-08, 0.0};
    static const double linear_[] = {0.0, 2.9999999999999997e-05, 0.00015, 0.00027, 0.0003,
                                     0.00029666666666666665, 0.00020999999999999998, 0.00015,
                                     3.3333333333333333e-06, 0.0};
    static const double constant[] = {0.0, 2.9999999999999997e-05, 0.00015, 0.00027, 0.0003,
                                      0.0003, 0.0003, 0.0003, 0.0003, 0.0003};
    const double *want[3] = {constant, linear_, cosine};
    for (int k = SCHEDULE_CONSTANT; k <= SCHEDULE_COSINE; k++) {
        lr_schedule s = {.kind = k, .base_lr = 3e-4, .warmup_steps = 10, .total_steps = 100};
        CHECK(schedule_check(&s) == ASPO_OK, "valid");
        for (int i = 0; i < 10; i++)
            CHECK(fabs(schedule_lr(&s, at[i]) - want[k][i]) <= 1e-15 * 3e-4,
                  "schedule %d at step %lld: %.17g, want %.17g", k, (long long)at[i],
                  schedule_lr(&s, at[i]), want[k][i]);
    }
    CHECK(schedule_kind_from_name("cosine") == SCHEDULE_COSINE &&
              schedule_kind_from_name("x") == -1,
          "names");
    lr_schedule bad = {
        .kind = SCHEDULE_COSINE, .base_lr = 1e-3, .warmup_steps = 20, .total_steps = 10};
    CHECK(schedule_check(&bad) == ASPO_ERR_USAGE, "warmup past the end refused");
    aspo_error_clear();
}

/* ---- clip_grad_norm_ ---- */
static void test_clipping(void)
{
    param_store ps;
    small_store(&ps);
    float g[10], got[10];
    fill_values(g, 10, 50, 1.0f);
    double want = 0;
    for (int i = 0; i < 10; i++) want += (double)g[i] * g[i];
    want = sqrt(want);
    /* Below max_norm: grads unchanged, total returned. Sum of squares is accumulated in
     * double from f32 values and rounded once to f32: 1e-7 relative. */
    set_grads(&ps, g);
    double total = 0;
    CHECK(clip_grad_norm(&ps, (float)(want * 2), &total) == ASPO_OK, "clip: %s",
          aspo_error_message());
    CHECK_CLOSE(total, want, 1e-7, "total norm");
    get_f32(ps.grads[1], got);
    get_f32(ps.grads[2], got + 6);
    CHECK(memcmp(got, g, sizeof g) == 0, "below max_norm: untouched");
    /* Above: every grad times max/(total + 1e-6), so the new norm is just under max. */
    CHECK(clip_grad_norm(&ps, 0.5f, &total) == ASPO_OK, "clip");
    get_f32(ps.grads[1], got);
    get_f32(ps.grads[2], got + 6);
    double coef = 0.5 / (want + 1e-6), after = 0;
    for (int i = 0; i < 10; i++) {
        CHECK_CLOSE(got[i], g[i] * coef, 1e-6, "clipped grad");
        after += (double)got[i] * got[i];
    }
    CHECK_CLOSE(sqrt(after), 0.5, 1e-5, "norm after clipping");
    end_step();
    /* A NaN or Inf anywhere: ASPO_ERR_NUMERIC, grads left as they were. */
    float bad_values[2] = {NAN, INFINITY};
    for (int k = 0; k < 2; k++) {
        float bad[10];
        memcpy(bad, g, sizeof g);
        bad[7] = bad_values[k];
        set_grads(&ps, bad);
        aspo_error_clear();
        CHECK(clip_grad_norm(&ps, 1.0f, &total) == ASPO_ERR_NUMERIC, "non-finite norm refused");
        CHECK(strstr(aspo_error_message(), "norm") != NULL, "message: %s", aspo_error_message());
        get_f32(ps.grads[1], got);
        CHECK(memcmp(got, bad, 6 * sizeof(float)) == 0, "grads untouched on error");
    }
    aspo_error_clear();
    CHECK(clip_grad_norm(&ps, 0.0f, &total) == ASPO_ERR_USAGE, "max_norm 0 refused");
    aspo_error_clear();
    end_step();
    param_store_free(&ps);
}

/* Module forwards against the formulas written out here (the ops themselves are checked
 * in tests/ops): embedding rows, LlamaRMSNorm, nn.LayerNorm. */
static void test_module_forwards(void)
{
    param_store ps;
    param_store_init(&ps, backend_cpu());
    embedding e;
    rmsnorm rn;
    layernorm ln;
    CHECK(embedding_declare(&e, &ps, "embed_tokens", 5, 4, DT_BF16, false) == ASPO_OK, "%s", aspo_error_message());
    CHECK(rmsnorm_declare(&rn, &ps, "norm", 4, 1e-6f, DT_F32, false) == ASPO_OK, "%s", aspo_error_message());
    CHECK(layernorm_declare(&ln, &ps, "ln", 4, 1e-5f, DT_F32, true) == ASPO_OK, "%s", aspo_error_message());
    CHECK(param_store_allocate(&ps) == ASPO_OK, "%s", aspo_error_message());
    float table[20], g[4] = {0.5f, 1, 1.5f, 2}, b[4] = {0.1f, 0.2f, 0.3f, 0.4f};
    fill_values(table, 20, 31, 1.0f);
    for (int i = 0; i < 20; i++) ((uint16_t *)e.weight->data)[i] = f32_to_bf16(table[i]);
    memcpy(rn.weight->data, g, sizeof g);
    memcpy(ln.weight->data, g, sizeof g);
    memcpy(ln.bias->data, b, sizeof b);

    int32_t ids[3] = {4, 0, 4};
    tensor *x = embedding_forward(&e, tensor_from_host(DT_I32, DIMS(3), ids)); /* (3,4) */
    tensor *r = rmsnorm_forward(&rn, x), *l = layernorm_forward(&ln, x);
    float xv[12], rv[12], lv[12];
    CHECK(x && r && l, "%s", aspo_error_message());
    if (!x || !r || !l) return;
    tensor_to_host_f32(x, xv);
    tensor_to_host_f32(r, rv);
    tensor_to_host_f32(l, lv);
    for (int t = 0; t < 3; t++) {
        double ss = 0, mean = 0, var = 0;
        for (int c = 0; c < 4; c++) {
            CHECK(xv[t * 4 + c] == bf16_to_f32(f32_to_bf16(table[ids[t] * 4 + c])), "row %d", t);
            ss += (double)xv[t * 4 + c] * xv[t * 4 + c];
            mean += xv[t * 4 + c] / 4.0;
        }
        for (int c = 0; c < 4; c++) var += (xv[t * 4 + c] - mean) * (xv[t * 4 + c] - mean) / 4.0;
        for (int c = 0; c < 4; c++) {
            /* f32 math over 4 elements: a few ulp. */
            CHECK_CLOSE(rv[t * 4 + c], g[c] * xv[t * 4 + c] / sqrt(ss / 4 + 1e-6), 1e-6, "rmsnorm");
            CHECK_CLOSE(lv[t * 4 + c], g[c] * (xv[t * 4 + c] - mean) / sqrt(var + 1e-5) + b[c], 1e-6,
                        "layernorm");
        }
    }
    runtime_step_reset();
    param_store_free(&ps);
}

int main(void)
{
    runtime_init(backend_cpu(), 0);
    runtime_current()->data.guards = true;
    test_linear_lora(DT_F32, false);
    test_linear_lora(DT_BF16, true);
    test_linear_lora(DT_F16, false);
    test_lora_init_statistics();
    test_module_declarations();
    test_module_forwards();
    test_adamw_update(0.0f);
    test_adamw_update(0.1f);
    test_adamw_optimizer_and_resume();
    test_schedules();
    test_clipping();
    end_step();
    runtime_shutdown();
    return check_summary("test_nn");
}
