/* Runs every op case: forward against its double-precision reference, backward against
 * central differences of that reference, guard bytes around outputs, and each non-CPU
 * backend compiled in against the CPU backend.
 * Usage: test_ops [--backend NAME] [name-filter]
 *   --backend cpu    the CPU checks only;
 *   --backend NAME   the CPU checks and NAME against the CPU; when NAME is compiled in but
 *                    has no usable device the run says why and exits 77 (ctest: skipped);
 *   no --backend     every compiled backend that has a device. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "op_cases.h"
#include "backends/registry.h"
#include "tensor/autograd.h"
#include "tensor/op_backward.h"
#include "tensor/rng.h"
#include "tensor/runtime.h"
#include "tests/check.h"

static const op_case *const families[] = {
    cases_view,  cases_elementwise, cases_reduce, cases_matmul, cases_softmax,
    cases_norm,  cases_embedding,   cases_rope,   cases_attention, cases_optim,
};

static const char *only_backend; /* --backend; NULL = every compiled backend */

static double round_to(dtype dt, double v)
{
    switch (dt) {
    case DT_BF16: return bf16_to_f32(f32_to_bf16((float)v));
    case DT_F16: return f16_to_f32(f32_to_f16((float)v));
    case DT_I32: return floor(v);
    default: return (float)v;
    }
}

static double *random_values(int64_t n, uint64_t key, double lo, double hi, dtype dt)
{
    double *v = malloc(sizeof(double) * (n ? n : 1));
    for (int64_t i = 0; i < n; i++)
        v[i] = round_to(dt, lo + (hi - lo) * rng_uniform(key, 0, (uint64_t)i));
    return v;
}

/* Cases every backend computes to the CPU backend's bits: their kernels keep its order of
 * operations and its roundings (AdamW's separately rounded steps, dropout's Philox mask and
 * one multiply), so nothing but a changed formula can move them. */
static bool exact_case(const op_case *c)
{
    return !strcmp(c->name, "adamw") || !strncmp(c->name, "dropout", 7);
}

/* Elements whose bits differ (NaN equal to NaN). */
static int64_t bits_differ(const float *got, const float *want, int64_t n)
{
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++)
        bad += !(isnan(got[i]) && isnan(want[i])) && memcmp(&got[i], &want[i], sizeof *got);
    return bad;
}

static double nmse(const float *got, const double *want, int64_t n)
{
    double err = 0, ref = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)got[i] - want[i];
        if (isnan(got[i]) != isnan(want[i])) return INFINITY;
        if (!isnan(got[i])) err += d * d, ref += want[i] * want[i];
    }
    return ref > 0 ? err / ref : err;
}

/* Host values (row-major) -> a tensor of the case's dtype and layout. */
static tensor *make_input(const case_input *ci, const double *values)
{
    int64_t n = ref_numel(ci->ndim, ci->shape);
    int64_t shape[4];
    memcpy(shape, ci->shape, sizeof shape);
    int last = ci->ndim - 1;
    int64_t rows = last >= 0 ? n / (ci->shape[last] ? ci->shape[last] : 1) : 1;
    int64_t cols = last >= 0 ? ci->shape[last] : 1;
    size_t es = dtype_size(ci->dt);
    char *buf;
    tensor *base, *view;
    switch (ci->layout) {
    case LAYOUT_TRANSPOSED: { /* store as (..., C, R) and view back as (..., R, C) */
        int64_t R = ci->shape[last - 1], C = ci->shape[last], batch = R * C > 0 ? n / (R * C) : 0;
        buf = malloc(es * (n ? n : 1));
        for (int64_t b = 0; b < batch; b++)
            for (int64_t r = 0; r < R; r++)
                for (int64_t c = 0; c < C; c++)
                    dtype_store(buf, ci->dt, b * R * C + c * R + r, (float)values[b * R * C + r * C + c]);
        shape[last - 1] = C;
        shape[last] = R;
        base = tensor_from_host(ci->dt, ci->ndim, shape, buf);
        view = tensor_transpose(base, -1, -2);
        break;
    }
    case LAYOUT_SLICED: { /* rows of cols+3 elements, the view starts at column 1 */
        int64_t wide = cols + 3;
        buf = calloc(rows * wide > 0 ? rows * wide : 1, es);
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < cols; c++)
                dtype_store(buf, ci->dt, r * wide + 1 + c, (float)values[r * cols + c]);
        shape[last] = wide;
        base = tensor_from_host(ci->dt, ci->ndim, shape, buf);
        view = tensor_slice(base, -1, 1, cols);
        break;
    }
    default:
        buf = malloc(es * (n ? n : 1));
        for (int64_t i = 0; i < n; i++) {
            if (ci->dt == DT_I32) ((int32_t *)buf)[i] = (int32_t)values[i];
            else dtype_store(buf, ci->dt, i, (float)values[i]);
        }
        view = tensor_from_host(ci->dt, ci->ndim, ci->shape, buf);
    }
    free(buf);
    if (view) {
        view->node = NULL;
        view->requires_grad = ci->grad;
    }
    return view;
}

typedef struct case_run {
    int out_ndim;
    int64_t out_shape[4], out_numel;
    float *out;
    float *grad[CASE_MAX_INPUTS];
} case_run;

static void free_run(case_run *r)
{
    free(r->out);
    for (int i = 0; i < CASE_MAX_INPUTS; i++) free(r->grad[i]);
    memset(r, 0, sizeof *r);
}

/* Forward, then backward of sum(out * weights); weights keyed so every backend sees them. */
static bool run_case(backend *be, const op_case *c, double **values, uint64_t key,
                     case_run *r)
{
    runtime_init(be, 0);
    runtime_current()->data.guards = true;
    runtime_set_seed(1234);
    bool ok = false;
    tensor *in[CASE_MAX_INPUTS];
    bool prev = autograd_set_enabled(false);
    for (int i = 0; i < c->n_inputs; i++) in[i] = make_input(&c->in[i], values[i]);
    autograd_set_enabled(prev);
    tensor *out = c->run(in, c);
    if (!out) {
        CHECK(false, "%s on %s: %s", c->name, be->name, aspo_error_message());
        goto done;
    }
    r->out_ndim = out->ndim;
    memcpy(r->out_shape, out->shape, sizeof r->out_shape);
    r->out_numel = tensor_numel(out);
    r->out = malloc(sizeof(float) * (r->out_numel ? r->out_numel : 1));
    if (tensor_to_host_f32(out, r->out)) goto done;
    if (out->requires_grad) {
        double *w = random_values(r->out_numel, key ^ 0xabcdef, -1, 1, DT_F32);
        float *wf = malloc(sizeof(float) * (r->out_numel ? r->out_numel : 1));
        for (int64_t i = 0; i < r->out_numel; i++) wf[i] = (float)w[i];
        tensor *wt = tensor_from_host(DT_F32, out->ndim, out->shape, wf);
        free(w);
        free(wf);
        tensor *loss = tensor_sum_all(tensor_mul(out, wt));
        if (tensor_backward(loss)) {
            CHECK(false, "%s backward on %s: %s", c->name, be->name, aspo_error_message());
            goto done;
        }
        for (int i = 0; i < c->n_inputs; i++) {
            if (!c->in[i].grad) continue;
            int64_t n = tensor_numel(in[i]);
            r->grad[i] = calloc(n ? n : 1, sizeof(float));
            if (in[i]->grad && tensor_to_host_f32(in[i]->grad, r->grad[i])) goto done;
        }
    }
    aspo_status guards = arena_check_guards(&runtime_current()->data);
    CHECK(guards == ASPO_OK, "%s on %s: %s", c->name, be->name, aspo_error_message());
    ok = true;
done:
    aspo_error_clear();
    runtime_shutdown();
    return ok;
}

static double weighted_reference(const op_case *c, double **values, const case_run *r,
                                 const double *w, double *out)
{
    ref_args a = {.c = c, .out_ndim = r->out_ndim, .out_shape = r->out_shape};
    for (int i = 0; i < c->n_inputs; i++) {
        a.in[i] = values[i];
        a.numel[i] = ref_numel(c->in[i].ndim, c->in[i].shape);
    }
    c->reference(&a, out);
    double sum = 0;
    for (int64_t i = 0; i < r->out_numel; i++) sum += out[i] * w[i];
    return sum;
}

static void check_case(const op_case *c, uint64_t key)
{
    double *values[CASE_MAX_INPUTS] = {0};
    for (int i = 0; i < c->n_inputs; i++)
        values[i] = random_values(ref_numel(c->in[i].ndim, c->in[i].shape), key * 16 + i,
                                  c->in[i].lo, c->in[i].hi, c->in[i].dt);
    case_run cpu = {0};
    if (!run_case(backend_cpu(), c, values, key, &cpu)) goto done;

    /* Forward against the reference. */
    double *ref = malloc(sizeof(double) * (cpu.out_numel ? cpu.out_numel : 1));
    double *w = random_values(cpu.out_numel, key ^ 0xabcdef, -1, 1, DT_F32);
    weighted_reference(c, values, &cpu, w, ref);
    double e = nmse(cpu.out, ref, cpu.out_numel);
    double ftol = c->forward_tol ? c->forward_tol : 1e-10;
    CHECK(e <= ftol, "%s forward: NMSE %.3g > %.3g against the reference", c->name, e, ftol);

    /* Backward against central differences of the reference, on up to 64 elements. */
    for (int i = 0; i < c->n_inputs; i++) {
        if (!c->in[i].grad || !cpu.grad[i]) continue;
        int64_t n = ref_numel(c->in[i].ndim, c->in[i].shape), step = n > 64 ? n / 64 : 1;
        int64_t m = 0;
        float got[64];
        double fd[64];
        for (int64_t j = 0; j < n && m < 64; j += step, m++) {
            double x = values[i][j], h = 1e-5 * fmax(1.0, fabs(x));
            values[i][j] = x + h;
            double plus = weighted_reference(c, values, &cpu, w, ref);
            values[i][j] = x - h;
            double minus = weighted_reference(c, values, &cpu, w, ref);
            values[i][j] = x;
            fd[m] = (plus - minus) / (2 * h);
            got[m] = cpu.grad[i][j];
        }
        double ge = nmse(got, fd, m), gtol = c->grad_tol ? c->grad_tol : 1e-6;
        CHECK(ge <= gtol, "%s backward of input %d: NMSE %.3g > %.3g against finite differences",
              c->name, i, ge, gtol);
    }
    free(ref);
    free(w);

    /* Every other backend against the CPU backend (same inputs, same loss weights). */
    const char *names = backend_list();
    char name[32];
    for (const char *p = names; *p;) {
        size_t len = strcspn(p, ",");
        snprintf(name, sizeof name, "%.*s", (int)len, p);
        p += len + (p[len] == ',');
        if (strcmp(name, "cpu") == 0 || (only_backend && strcmp(name, only_backend))) continue;
        backend *be = backend_get(name);
        if (!be) aspo_error_clear(); /* no device: main() said so before the cases ran */
        case_run other = {0};
        if (be && run_case(be, c, values, key, &other)) {
            double *cpu_out = malloc(sizeof(double) * (cpu.out_numel ? cpu.out_numel : 1));
            for (int64_t k = 0; k < cpu.out_numel; k++) cpu_out[k] = cpu.out[k];
            /* f32 kernels differ from the CPU only in summation order (~1e-7 relative);
             * half-precision inputs may be computed in half precision on a device. */
            double tol = 1e-6;
            for (int i = 0; i < c->n_inputs; i++)
                if (c->in[i].dt == DT_BF16 || c->in[i].dt == DT_F16) tol = 1e-4;
            double oe = nmse(other.out, cpu_out, cpu.out_numel);
            CHECK(oe <= tol, "%s on %s: NMSE %.3g against cpu", c->name, name, oe);
            int64_t differ = exact_case(c) ? bits_differ(other.out, cpu.out, cpu.out_numel) : 0;
            CHECK(differ == 0, "%s on %s: %lld of %lld outputs differ from the CPU's bits (an "
                  "exact op)", c->name, name, (long long)differ, (long long)cpu.out_numel);
            for (int i = 0; i < c->n_inputs; i++) {
                if (!cpu.grad[i]) continue;
                int64_t n = ref_numel(c->in[i].ndim, c->in[i].shape);
                double *want = realloc(cpu_out, sizeof(double) * (n ? n : 1));
                cpu_out = want;
                for (int64_t k = 0; k < n; k++) want[k] = cpu.grad[i][k];
                double ge = other.grad[i] ? nmse(other.grad[i], want, n) : INFINITY;
                CHECK(ge <= tol, "%s on %s: grad of input %d NMSE %.3g against cpu", c->name,
                      name, i, ge);
                differ = exact_case(c) && other.grad[i] ? bits_differ(other.grad[i], cpu.grad[i], n) : 0;
                CHECK(differ == 0, "%s on %s: grad of input %d: %lld of %lld elements differ "
                      "from the CPU's bits (an exact op)", c->name, name, i, (long long)differ,
                      (long long)n);
            }
            free(cpu_out);
        }
        free_run(&other);
    }
done:
    free_run(&cpu);
    for (int i = 0; i < c->n_inputs; i++) free(values[i]);
}

/* Every op with a kernel slot has a kernel on be, and some case ran it there: a new op or
 * backend cannot go untested. */
static void check_coverage(backend *be)
{
    for (int op = 0; op < OP_COUNT; op++) {
        if (op_table[op].flags & OP_FLAG_NO_KERNEL) continue;
        CHECK(be->kernels[op] != NULL, "op %s has no kernel on backend %s", op_table[op].name,
              be->name);
        CHECK(be->calls[op] > 0, "op %s never ran on backend %s: no op case reaches it",
              op_table[op].name, be->name);
    }
}

/* A unary or binary kind past the last one this build knows is an error naming it and the
 * backend, on every backend: no kernel may compute something by a default branch. */
static void check_unknown_kinds(backend *be)
{
    static const struct {
        op_id op;
        int n_in, kind;
        const char *what;
    } cases[] = {
        {OP_UNARY, 1, UNARY_COUNT, "unary kind"},
        {OP_UNARY_BACKWARD, 3, UNARY_COUNT, "unary backward kind"},
        {OP_BINARY, 2, BINARY_COUNT, "binary kind"},
    };
    runtime_init(be, 0);
    tensor *x = tensor_from_host(DT_F32, DIMS(4), (float[]){1, 2, 3, 4});
    tensor *y = tensor_empty(DT_F32, DIMS(4));
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        op_call c = {.op = cases[i].op, .n_in = cases[i].n_in, .n_out = 1, .in = {x, x, x},
                     .out = {y}, .p.i = {cases[i].kind}};
        aspo_status s = x && y ? op_run_kernel(&c) : aspo_error_status();
        const char *msg = aspo_error_message();
        CHECK(s == ASPO_ERR_UNSUPPORTED && strstr(msg, cases[i].what) && strstr(msg, be->name),
              "%s %d on %s: status %d, %s", op_table[cases[i].op].name, cases[i].kind, be->name,
              (int)s, msg);
        aspo_error_clear();
    }
    runtime_shutdown();
}

int main(int argc, char **argv)
{
    int a = 1;
    if (argc > 2 && !strcmp(argv[1], "--backend")) only_backend = argv[2], a = 3;
    const char *filter = argc > a ? argv[a] : NULL;
    const char *names = backend_list();
    if (only_backend && strcmp(only_backend, "cpu")) {
        if (!strstr(names, only_backend)) {
            printf("SKIP: backend %s is not compiled into this build (it has: %s)\n",
                   only_backend, names);
            return 77;
        }
        if (!backend_get(only_backend)) {
            /* Skipped only when the machine has no device for it; anything else (a missing
             * validation layer, a bad ASPO_VULKAN_DEVICE) is a failure. */
            bool no_device = aspo_error_status() == ASPO_ERR_NO_DEVICE;
            printf("%s: backend %s: %s\n", no_device ? "SKIP" : "FAIL", only_backend,
                   aspo_error_message());
            return no_device ? 77 : 1;
        }
    } else if (!only_backend) {
        char name[32];
        for (const char *p = names; *p;) {
            size_t len = strcspn(p, ",");
            snprintf(name, sizeof name, "%.*s", (int)len, p);
            p += len + (p[len] == ',');
            if (strcmp(name, "cpu") && !backend_get(name)) {
                printf("note: backend %s not compared (no usable device): %s\n", name,
                       aspo_error_message());
                aspo_error_clear();
            }
        }
    }
    uint64_t key = 1;
    int ran = 0;
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++)
        for (const op_case *c = families[f]; c->name; c++, key++) {
            if (filter && !strstr(c->name, filter)) continue;
            int before = check_failed;
            check_case(c, key);
            ran++;
            if (check_failed > before) fprintf(stderr, "  case %s failed\n", c->name);
        }
    printf("%d op cases run\n", ran);
    if (!filter) { /* the whole suite: each backend it ran has run every op */
        check_coverage(backend_cpu());
        check_unknown_kinds(backend_cpu());
        char name[32];
        for (const char *p = names; *p;) {
            size_t len = strcspn(p, ",");
            snprintf(name, sizeof name, "%.*s", (int)len, p);
            p += len + (p[len] == ',');
            if (strcmp(name, "cpu") && (!only_backend || !strcmp(name, only_backend))) {
                backend *be = backend_get(name);
                if (be) {
                    check_coverage(be);
                    check_unknown_kinds(be);
                } else {
                    aspo_error_clear(); /* no device: not compared, said above */
                }
            }
        }
    }
    return check_summary("ops");
}
