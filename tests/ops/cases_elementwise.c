/* Elementwise ops: broadcasting arithmetic, activations, masked fill, dropout. */
#include <math.h>

#include "op_cases.h"
#include "tensor/rng.h"

static void ref_binary(const ref_args *a, double *out)
{
    int64_t n = ref_numel(a->out_ndim, a->out_shape);
    for (int64_t o = 0; o < n; o++) {
        double x = a->in[0][ref_broadcast_index(o, a->out_ndim, a->out_shape, IN(a, 0).ndim,
                                                IN(a, 0).shape)];
        double y = a->in[1][ref_broadcast_index(o, a->out_ndim, a->out_shape, IN(a, 1).ndim,
                                                IN(a, 1).shape)];
        switch (a->c->ip[0]) {
        case BINARY_ADD: out[o] = x + y; break;
        case BINARY_SUB: out[o] = x - y; break;
        case BINARY_MUL: out[o] = x * y; break;
        default: out[o] = x / y; break;
        }
    }
}

static tensor *run_binary(tensor **in, const op_case *c)
{
    switch (c->ip[0]) {
    case BINARY_ADD: return tensor_add(in[0], in[1]);
    case BINARY_SUB: return tensor_sub(in[0], in[1]);
    case BINARY_MUL: return tensor_mul(in[0], in[1]);
    default: return tensor_div(in[0], in[1]);
    }
}

static double unary_ref(int kind, double x)
{
    switch (kind) {
    case UNARY_EXP: return exp(x);
    case UNARY_LOG: return log(x);
    case UNARY_SILU: return x / (1 + exp(-x));
    case UNARY_GELU_ERF: return 0.5 * x * (1 + erf(x / sqrt(2.0)));
    case UNARY_GELU_TANH:
        return 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
    case UNARY_QUICK_GELU: return x / (1 + exp(-1.702 * x));
    case UNARY_SQRT: return sqrt(x);
    case UNARY_RSQRT: return 1 / sqrt(x);
    case UNARY_NEG: return -x;
    default: return x * x;
    }
}

static void ref_unary(const ref_args *a, double *out)
{
    for (int64_t i = 0; i < a->numel[0]; i++) out[i] = unary_ref((int)a->c->ip[0], a->in[0][i]);
}

static tensor *run_unary(tensor **in, const op_case *c)
{
    return tensor_unary(in[0], (unary_kind)c->ip[0]);
}

static void ref_scale(const ref_args *a, double *out)
{
    for (int64_t i = 0; i < a->numel[0]; i++) out[i] = a->in[0][i] * a->c->fp[0];
}

static tensor *run_scale(tensor **in, const op_case *c) { return tensor_scale(in[0], (float)c->fp[0]); }

static void ref_masked_fill(const ref_args *a, double *out)
{
    for (int64_t o = 0; o < a->numel[0]; o++) {
        double m = a->in[1][ref_broadcast_index(o, a->out_ndim, a->out_shape, IN(a, 1).ndim,
                                                IN(a, 1).shape)];
        out[o] = m != 0 ? a->c->fp[0] : a->in[0][o];
    }
}

static tensor *run_masked_fill(tensor **in, const op_case *c)
{
    return tensor_masked_fill(in[0], in[1], (float)c->fp[0]);
}

/* The runner seeds the runtime with 1234 and the first draw starts at counter 0. */
static void ref_dropout(const ref_args *a, double *out)
{
    double p = a->c->fp[0];
    for (int64_t i = 0; i < a->numel[0]; i++)
        out[i] = rng_uniform(1234, 0, (uint64_t)i) >= p ? a->in[0][i] / (1 - p) : 0;
}

static tensor *run_dropout(tensor **in, const op_case *c) { return tensor_dropout(in[0], (float)c->fp[0]); }

#define F32(...) {DT_F32, 0, {__VA_ARGS__}, LAYOUT_CONTIGUOUS, true, -2, 2}
#define IN3(dt, layout, a, b, c) {dt, 3, {a, b, c}, layout, true, -2, 2}
#define BIN(nm, kind, tol, ...) {nm, 2, {__VA_ARGS__}, {kind}, {0}, run_binary, ref_binary, tol, 0}
#define UN(nm, kind, ...) {nm, 1, {__VA_ARGS__}, {kind}, {0}, run_unary, ref_unary, 0, 0}

const op_case cases_elementwise[] = {
    BIN("add", BINARY_ADD, 0, IN3(DT_F32, LAYOUT_CONTIGUOUS, 3, 7, 5), IN3(DT_F32, LAYOUT_SLICED, 3, 7, 5)),
    BIN("sub", BINARY_SUB, 0, IN3(DT_F32, LAYOUT_TRANSPOSED, 2, 5, 3), IN3(DT_F32, LAYOUT_CONTIGUOUS, 2, 5, 3)),
    BIN("mul", BINARY_MUL, 0, IN3(DT_F32, LAYOUT_SLICED, 4, 3, 9), IN3(DT_F32, LAYOUT_TRANSPOSED, 4, 3, 9)),
    {"div", 2, {IN3(DT_F32, LAYOUT_CONTIGUOUS, 3, 4, 5), {DT_F32, 3, {3, 4, 5}, LAYOUT_CONTIGUOUS, true, 0.5, 2}},
     {BINARY_DIV}, {0}, run_binary, ref_binary, 0, 0},
    BIN("add_broadcast_row", BINARY_ADD, 0, IN3(DT_F32, LAYOUT_CONTIGUOUS, 2, 3, 5), {DT_F32, 1, {5}, LAYOUT_CONTIGUOUS, true, -2, 2}),
    BIN("mul_broadcast_both", BINARY_MUL, 0, IN3(DT_F32, LAYOUT_CONTIGUOUS, 4, 1, 6), {DT_F32, 2, {3, 1}, LAYOUT_CONTIGUOUS, true, -2, 2}),
    {"div_broadcast", 2, {{DT_F32, 4, {2, 3, 1, 5}, LAYOUT_CONTIGUOUS, true, -2, 2},
                          {DT_F32, 2, {4, 1}, LAYOUT_CONTIGUOUS, true, 0.5, 2}},
     {BINARY_DIV}, {0}, run_binary, ref_binary, 0, 0},
    /* bf16 out: each result is rounded to 8 bits of mantissa (relative error 2^-9). */
    BIN("add_bf16", BINARY_ADD, 1e-5, IN3(DT_BF16, LAYOUT_CONTIGUOUS, 3, 5, 7), IN3(DT_BF16, LAYOUT_CONTIGUOUS, 3, 5, 7)),
    BIN("mul_f16_f32", BINARY_MUL, 0, IN3(DT_F16, LAYOUT_SLICED, 3, 5, 7), IN3(DT_F32, LAYOUT_CONTIGUOUS, 3, 5, 7)),
    {"scale", 1, {IN3(DT_F32, LAYOUT_SLICED, 2, 3, 11)}, {0}, {-0.37}, run_scale, ref_scale, 0, 0},
    UN("exp", UNARY_EXP, IN3(DT_F32, LAYOUT_CONTIGUOUS, 2, 5, 7)),
    UN("log", UNARY_LOG, {DT_F32, 2, {9, 13}, LAYOUT_SLICED, true, 0.1, 3}),
    UN("silu", UNARY_SILU, IN3(DT_F32, LAYOUT_TRANSPOSED, 3, 6, 5)),
    UN("gelu_erf", UNARY_GELU_ERF, {DT_F32, 2, {7, 19}, LAYOUT_CONTIGUOUS, true, -4, 4}),
    UN("gelu_tanh", UNARY_GELU_TANH, {DT_F32, 2, {7, 19}, LAYOUT_SLICED, true, -4, 4}),
    UN("quick_gelu", UNARY_QUICK_GELU, {DT_F32, 2, {7, 19}, LAYOUT_CONTIGUOUS, true, -4, 4}),
    UN("sqrt", UNARY_SQRT, {DT_F32, 2, {5, 9}, LAYOUT_CONTIGUOUS, true, 0.1, 3}),
    UN("rsqrt", UNARY_RSQRT, {DT_F32, 2, {5, 9}, LAYOUT_CONTIGUOUS, true, 0.1, 3}),
    UN("neg", UNARY_NEG, IN3(DT_F32, LAYOUT_CONTIGUOUS, 1, 3, 4)),
    UN("square", UNARY_SQUARE, IN3(DT_F32, LAYOUT_CONTIGUOUS, 2, 3, 4)),
    {"silu_bf16", 1, {IN3(DT_BF16, LAYOUT_CONTIGUOUS, 2, 5, 9)}, {UNARY_SILU}, {0}, run_unary, ref_unary, 1e-5, 0},
    {"masked_fill", 2, {IN3(DT_F32, LAYOUT_CONTIGUOUS, 2, 3, 5), {DT_I32, 2, {1, 5}, LAYOUT_CONTIGUOUS, false, 0, 2}},
     {0}, {-1e4}, run_masked_fill, ref_masked_fill, 0, 0},
    /* Past the OpenMP thresholds and through the vector paths (70,000 elements). */
    BIN("mul_large", BINARY_MUL, 0, IN3(DT_F32, LAYOUT_CONTIGUOUS, 7, 100, 100), IN3(DT_F32, LAYOUT_CONTIGUOUS, 7, 100, 100)),
    UN("silu_large", UNARY_SILU, IN3(DT_F32, LAYOUT_CONTIGUOUS, 7, 100, 100)),
    UN("exp_large", UNARY_EXP, IN3(DT_F32, LAYOUT_CONTIGUOUS, 7, 100, 100)),
    {"dropout_large", 1, {IN3(DT_F32, LAYOUT_CONTIGUOUS, 7, 100, 100)}, {0}, {0.1}, run_dropout, ref_dropout, 0, 0},
    {"dropout", 1, {IN3(DT_F32, LAYOUT_CONTIGUOUS, 4, 3, 33)}, {0}, {0.3}, run_dropout, ref_dropout, 0, 0},
    {0},
};
