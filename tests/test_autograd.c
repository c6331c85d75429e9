/* The tape: no-grad scopes, detach, accumulation, checkpointing, and the errors a user
 * can meet (out of memory, a missing kernel, a bad backward call). */
#include <math.h>
#include <string.h>

#include "backends/registry.h"
#include "tensor/autograd.h"
#include "tensor/params.h"
#include "tensor/rng.h"
#include "tensor/runtime.h"
#include "tensor/tensor_ops.h"
#include "tests/check.h"

static tensor *filled(int64_t rows, int64_t cols, uint64_t key)
{
    float v[4096];
    for (int64_t i = 0; i < rows * cols; i++) v[i] = rng_uniform(key, 0, (uint64_t)i) - 0.5f;
    return tensor_from_host(DT_F32, DIMS(rows, cols), v);
}

static void test_no_grad_and_detach(void)
{
    tensor *x = filled(3, 4, 1);
    x->requires_grad = true;
    bool prev = autograd_set_enabled(false);
    tensor *y = tensor_mul(x, x);
    autograd_set_enabled(prev);
    CHECK(y && !y->requires_grad && !y->node, "no_grad result must not record");

    tensor *z = tensor_sum_all(tensor_mul(tensor_detach(x), x)); /* d/dx = detached x */
    CHECK(tensor_backward(z) == ASPO_OK, "%s", aspo_error_message());
    float g[12], xv[12];
    tensor_to_host_f32(x->grad, g);
    tensor_to_host_f32(x, xv);
    bool same = true;
    for (int i = 0; i < 12; i++) same &= g[i] == xv[i];
    CHECK(same, "gradient through a detached factor counts once");
    runtime_step_reset();
}

static void test_reuse_accumulates(void)
{
    tensor *x = filled(2, 5, 2);
    x->requires_grad = true;
    /* x used three times: d/dx sum(x*x + x) = 2x + 1 */
    tensor *loss = tensor_sum_all(tensor_add(tensor_mul(x, x), x));
    CHECK(tensor_backward(loss) == ASPO_OK, "%s", aspo_error_message());
    float g[10], xv[10];
    tensor_to_host_f32(x->grad, g);
    tensor_to_host_f32(x, xv);
    for (int i = 0; i < 10; i++) CHECK_CLOSE(g[i], 2 * xv[i] + 1, 1e-6, "d/dx");
    runtime_step_reset();
}

/* a + b over a's memory: the values, the memory, the gradients of both operands (b a
 * broadcast row, as a bias), and the refusals. */
static void test_add_into(void)
{
    tensor *x = filled(3, 4, 11), *w = filled(3, 4, 12), *b = filled(1, 4, 13);
    x->requires_grad = b->requires_grad = true;
    tensor *a = tensor_mul(x, w);                                 /* fresh, (3,4) */
    tensor *s = tensor_add_into(a, b);
    CHECK(s && s->data == a->data && s != a, "the sum is a new tensor over a's memory");
    float xv[12], wv[12], bv[4], sv[12], gx[12], gb[4];
    tensor_to_host_f32(x, xv);
    tensor_to_host_f32(w, wv);
    tensor_to_host_f32(b, bv);
    tensor_to_host_f32(s, sv);
    bool ok = true;
    for (int i = 0; i < 12; i++) ok &= sv[i] == xv[i] * wv[i] + bv[i % 4];
    CHECK(ok, "x*w + b");
    CHECK(tensor_backward(tensor_sum_all(s)) == ASPO_OK, "%s", aspo_error_message());
    tensor_to_host_f32(x->grad, gx);
    tensor_to_host_f32(b->grad, gb);
    ok = true;
    for (int i = 0; i < 12; i++) ok &= gx[i] == wv[i];
    for (int j = 0; j < 4; j++) ok &= gb[j] == 3.0f;
    CHECK(ok, "d/dx = w, d/db = 3 (three rows)");
    /* The first operand must hold the sum: not a view, not broadcast. */
    tensor *t = tensor_transpose(filled(4, 3, 14), 0, 1);
    CHECK(!tensor_add_into(t, filled(3, 4, 15)) && strstr(aspo_error_message(), "add into"),
          "%s", aspo_error_message());
    aspo_error_clear();
    CHECK(!tensor_add_into(filled(1, 4, 16), filled(3, 4, 17)), "a broadcast first operand");
    aspo_error_clear();
    runtime_step_reset();
}

/* Gradient sums in place: a is read by an add (whose backward hands a and b one shared
 * gradient tensor) and by two products (the first makes a sum that only a holds, the second
 * has its GEMM add into it). b's gradient must stay w1, a's is w1 + w2 W2^T + w3 W3^T. */
static void test_grad_sums_in_place(void)
{
    tensor *a = filled(6, 4, 21), *b = filled(6, 4, 22), *W2 = filled(4, 5, 23),
           *W3 = filled(4, 5, 24), *w1 = filled(6, 4, 25), *w2 = filled(6, 5, 26),
           *w3 = filled(6, 5, 27);
    a->requires_grad = b->requires_grad = true;
    tensor *t3 = tensor_matmul(a, W3), *t2 = tensor_matmul(a, W2), *t1 = tensor_add(a, b);
    tensor *loss = tensor_add(tensor_add(tensor_sum_all(tensor_mul(t1, w1)),
                                         tensor_sum_all(tensor_mul(t2, w2))),
                              tensor_sum_all(tensor_mul(t3, w3)));
    CHECK(tensor_backward(loss) == ASPO_OK, "%s", aspo_error_message());
    float ga[24], gb[24], v1[24], v2[30], v3[30], m2[20], m3[20];
    tensor_to_host_f32(a->grad, ga);
    tensor_to_host_f32(b->grad, gb);
    tensor_to_host_f32(w1, v1);
    tensor_to_host_f32(w2, v2);
    tensor_to_host_f32(w3, v3);
    tensor_to_host_f32(W2, m2);
    tensor_to_host_f32(W3, m3);
    bool b_ok = true, a_ok = true;
    for (int i = 0; i < 24; i++) b_ok &= gb[i] == v1[i];
    for (int r = 0; r < 6; r++)
        for (int k = 0; k < 4; k++) {
            double want = v1[r * 4 + k];
            for (int n = 0; n < 5; n++)
                want += (double)v2[r * 5 + n] * m2[k * 5 + n] + (double)v3[r * 5 + n] * m3[k * 5 + n];
            a_ok &= fabs(ga[r * 4 + k] - want) <= 1e-5;
        }
    CHECK(b_ok, "the gradient b shares with a is not added into");
    CHECK(a_ok, "a's three contributions: the add's, then two GEMMs' (one in place)");
    CHECK(a->grad->is_grad_sum && a->grad != b->grad, "a's gradient is a sum of its own");
    /* matmul into: c must hold the product (its shape, contiguous, its dtype). */
    tensor *c = tensor_transpose(filled(5, 6, 28), 0, 1);
    CHECK(!tensor_matmul_into(c, a, W2) && strstr(aspo_error_message(), "matmul into"), "%s",
          aspo_error_message());
    aspo_error_clear();
    CHECK(!tensor_matmul_into(filled(6, 4, 29), a, W2), "a c of another shape");
    aspo_error_clear();
    runtime_step_reset();
}

/* Two linear maps with a SiLU between, (R,8) -> (R,8): the block checkpointing re-runs. */
typedef struct block {
    tensor *w1, *w2;
    float dropout;
} block;

static tensor *block_forward(void *ctx, tensor **in, int n)
{
    (void)n;
    block *b = ctx;
    tensor *h = tensor_silu(tensor_matmul(in[0], tensor_transpose(b->w1, 0, 1)));
    return tensor_matmul(tensor_dropout(h, b->dropout), tensor_transpose(b->w2, 0, 1));
}

static void run_block(block *b, bool checkpointed, float *grad_w1, float *grad_x)
{
    runtime_set_seed(7);
    tensor *x = filled(5, 8, 3);
    x->requires_grad = true;
    tensor *y = checkpointed ? tensor_checkpoint(block_forward, b, &x, 1) : block_forward(b, &x, 1);
    tensor *loss = tensor_sum_all(tensor_mul(y, y));
    CHECK(tensor_backward(loss) == ASPO_OK, "%s", aspo_error_message());
    tensor_to_host_f32(b->w1->grad, grad_w1);
    tensor_to_host_f32(x->grad, grad_x);
    runtime_step_reset();
}

static void test_checkpoint_matches(void)
{
    param_store ps;
    param_store_init(&ps, backend_cpu());
    block b = {param_declare(&ps, "w1", DT_F32, DIMS(16, 8), true),
               param_declare(&ps, "w2", DT_F32, DIMS(8, 16), true), 0.25f};
    CHECK(param_store_allocate(&ps) == ASPO_OK, "%s", aspo_error_message());
    float w[128];
    for (int i = 0; i < 128; i++) w[i] = rng_uniform(9, 0, (uint64_t)i) - 0.5f;
    memcpy(b.w1->data, w, sizeof(float) * 128);
    memcpy(b.w2->data, w, sizeof(float) * 128);
    float g_plain[128], gx_plain[40], g_ckpt[128], gx_ckpt[40];
    run_block(&b, false, g_plain, gx_plain);
    param_store_zero_grad(&ps);
    run_block(&b, true, g_ckpt, gx_ckpt);
    /* The re-run computes the same values in the same order, dropout masks included. */
    CHECK(memcmp(g_plain, g_ckpt, sizeof g_plain) == 0, "checkpointed dW equals plain dW");
    CHECK(memcmp(gx_plain, gx_ckpt, sizeof gx_plain) == 0, "checkpointed dX equals plain dX");

    /* Parameters accumulate across backward calls until zero_grad. */
    run_block(&b, false, g_ckpt, gx_ckpt);
    bool doubled = true;
    for (int i = 0; i < 128; i++) doubled &= fabsf(g_ckpt[i] - 2 * g_plain[i]) <= 1e-5f * (1 + fabsf(g_plain[i]));
    CHECK(doubled, "a second backward adds into parameter grads");
    param_store_free(&ps);
}

/* Four blocks stacked (the output of one the input of the next), checkpointed or not: the
 * same gradients to the bit, though the checkpointed backward passes one gradient buffer
 * down the stack (each block's dy becomes its input's gradient). */
static void test_checkpoint_stack(void)
{
    param_store ps;
    param_store_init(&ps, backend_cpu());
    block b = {param_declare(&ps, "w1", DT_F32, DIMS(16, 8), true),
               param_declare(&ps, "w2", DT_F32, DIMS(8, 16), true), 0.25f};
    CHECK(param_store_allocate(&ps) == ASPO_OK, "%s", aspo_error_message());
    float w[128], g[2][128], gx[2][40];
    for (int i = 0; i < 128; i++) w[i] = 0.7f * (rng_uniform(21, 0, (uint64_t)i) - 0.5f);
    memcpy(b.w1->data, w, sizeof w);
    memcpy(b.w2->data, w, sizeof w);
    for (int ck = 0; ck < 2; ck++) {
        runtime_set_seed(3);
        param_store_zero_grad(&ps);
        tensor *x = filled(5, 8, 4), *y = x;
        x->requires_grad = true;
        for (int l = 0; l < 4; l++)
            y = ck ? tensor_checkpoint(block_forward, &b, &y, 1) : block_forward(&b, &y, 1);
        CHECK(tensor_backward(tensor_sum_all(tensor_mul(y, y))) == ASPO_OK, "%s",
              aspo_error_message());
        tensor_to_host_f32(b.w1->grad, g[ck]);
        tensor_to_host_f32(x->grad, gx[ck]);
        runtime_step_reset();
    }
    CHECK(!memcmp(g[0], g[1], sizeof g[0]) && !memcmp(gx[0], gx[1], sizeof gx[0]),
          "4 checkpointed blocks: the plain gradients");
    param_store_free(&ps);
}

/* y = x + bias: the input's gradient is dy itself, the edge of passing dy down the stack. */
static tensor *bias_forward(void *ctx, tensor **in, int n)
{
    (void)n;
    return tensor_add(in[0], (tensor *)ctx);
}

static void test_checkpoint_stack_passthrough(void)
{
    param_store ps;
    param_store_init(&ps, backend_cpu());
    tensor *bias = param_declare(&ps, "bias", DT_F32, DIMS(8), true);
    CHECK(param_store_allocate(&ps) == ASPO_OK, "%s", aspo_error_message());
    for (int i = 0; i < 8; i++) ((float *)bias->data)[i] = 0.1f * (float)i;
    float gb[2][8], gx[2][40];
    for (int ck = 0; ck < 2; ck++) {
        param_store_zero_grad(&ps);
        tensor *x = filled(5, 8, 5), *y = x;
        x->requires_grad = true;
        for (int l = 0; l < 3; l++)
            y = ck ? tensor_checkpoint(bias_forward, bias, &y, 1) : bias_forward(bias, &y, 1);
        CHECK(tensor_backward(tensor_sum_all(tensor_mul(y, y))) == ASPO_OK, "%s",
              aspo_error_message());
        tensor_to_host_f32(bias->grad, gb[ck]);
        tensor_to_host_f32(x->grad, gx[ck]);
        runtime_step_reset();
    }
    CHECK(!memcmp(gb[0], gb[1], sizeof gb[0]) && !memcmp(gx[0], gx[1], sizeof gx[0]),
          "3 checkpointed pass-through blocks: the plain gradients");
    param_store_free(&ps);
}

/* Peak step-arena bytes of `blocks` blocks run without a tape, scoped or not. */
static size_t no_grad_peak(block *b, int blocks, bool scoped)
{
    runtime_step_reset();
    size_t base = runtime_current()->data.used;
    runtime_current()->data.peak = base;
    bool prev = autograd_set_enabled(false);
    tensor *x = filled(5, 8, 3);
    for (int i = 0; i < blocks && x; i++)
        x = scoped ? tensor_run_scoped(block_forward, b, &x, 1) : block_forward(b, &x, 1);
    autograd_set_enabled(prev);
    CHECK(x != NULL, "%s", aspo_error_message());
    size_t peak = runtime_current()->data.peak - base;
    runtime_step_reset();
    return peak;
}

static void test_scoped_blocks_free(void)
{
    param_store ps;
    param_store_init(&ps, backend_cpu());
    block b = {param_declare(&ps, "w1", DT_F32, DIMS(16, 8), true),
               param_declare(&ps, "w2", DT_F32, DIMS(8, 16), true), 0.0f};
    tensor *wide = param_declare(&ps, "w3", DT_F32, DIMS(16, 16), true);
    CHECK(param_store_allocate(&ps) == ASPO_OK, "%s", aspo_error_message());
    /* Scoped, each block leaves only its (5,8) f32 output (160 bytes, 192 in the arena's
     * 64-byte alignment): four blocks peak at one block's peak plus three outputs. */
    size_t one = no_grad_peak(&b, 1, true), four = no_grad_peak(&b, 4, true);
    CHECK(four == one + 3 * 192, "scoped: 4 blocks peak at %zu bytes, 1 block at %zu", four, one);
    size_t plain = no_grad_peak(&b, 4, false);
    CHECK(plain > four, "unscoped blocks keep their intermediates: %zu vs %zu", plain, four);

    /* A scoped block must keep its input's shape; recording must be off. */
    bool prev = autograd_set_enabled(false);
    block narrow = b;
    narrow.w2 = wide; /* the block returns (5,16) */
    tensor *x = filled(5, 8, 3);
    CHECK(!tensor_run_scoped(block_forward, &narrow, &x, 1) &&
              strstr(aspo_error_message(), "scoped block returned (5,16)"),
          "%s", aspo_error_message());
    aspo_error_clear();
    autograd_set_enabled(true);
    CHECK(!tensor_run_scoped(block_forward, &b, &x, 1) &&
              strstr(aspo_error_message(), "recording on"), "%s", aspo_error_message());
    aspo_error_clear();
    autograd_set_enabled(prev);
    runtime_step_reset();
    param_store_free(&ps);
}

static void test_errors(void)
{
    /* Out of memory names the request and what is left. */
    runtime_init(backend_cpu(), 1 << 20);
    tensor *big = tensor_empty(DT_F32, DIMS(1024, 1024));
    CHECK(!big && aspo_error_status() == ASPO_ERR_OOM, "1 MiB arena refuses 4 MiB");
    CHECK(strstr(aspo_error_message(), "4194304") && strstr(aspo_error_message(), "left"),
          "message: %s", aspo_error_message());
    aspo_error_clear();

    /* A backend without a kernel for an op is an error naming both. */
    backend partial = *backend_cpu();
    partial.name = "partial";
    partial.kernels[OP_UNARY] = NULL;
    runtime_init(&partial, 0);
    CHECK(!tensor_silu(filled(2, 2, 4)), "missing kernel fails");
    CHECK(strstr(aspo_error_message(), "unary") && strstr(aspo_error_message(), "partial"),
          "message: %s", aspo_error_message());
    aspo_error_clear();
    runtime_init(backend_cpu(), 0);

    /* NULL propagates without a second message. */
    CHECK(!tensor_add(tensor_silu(NULL), filled(2, 2, 5)), "NULL in, NULL out");

    tensor *x = filled(2, 3, 6);
    x->requires_grad = true;
    CHECK(tensor_backward(tensor_mul(x, x)) == ASPO_ERR_SHAPE, "backward needs a scalar");
    aspo_error_clear();
    CHECK(tensor_backward(tensor_sum_all(filled(2, 3, 7))) == ASPO_ERR_USAGE,
          "backward of a constant");
    aspo_error_clear();
    CHECK(!tensor_add(filled(2, 3, 8), filled(3, 2, 9)) && aspo_error_status() == ASPO_ERR_SHAPE,
          "shapes that do not broadcast");
    CHECK(strstr(aspo_error_message(), "(2,3)") && strstr(aspo_error_message(), "(3,2)"),
          "message: %s", aspo_error_message());
    aspo_error_clear();
    CHECK(!tensor_reshape(filled(2, 3, 10), DIMS(4, 2)), "reshape keeps the element count");
    aspo_error_clear();
    CHECK(backend_get("no-such-backend") == NULL && strstr(aspo_error_message(), "cpu"),
          "unknown backend lists what exists: %s", aspo_error_message());
    aspo_error_clear();
    runtime_step_reset();
}

int main(void)
{
    runtime_init(backend_cpu(), 0);
    test_no_grad_and_detach();
    test_reuse_accumulates();
    test_add_into();
    test_grad_sums_in_place();
    test_checkpoint_matches();
    test_checkpoint_stack();
    test_checkpoint_stack_passthrough();
    test_scoped_blocks_free();
    test_errors();
    runtime_shutdown();
    return check_summary("autograd");
}
