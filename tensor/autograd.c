#include "op_backward.h"

#include <string.h>

#include "runtime.h"
#include "tensor_ops.h"

bool op_any_requires_grad(tensor **in, int n_in)
{
    for (int i = 0; i < n_in; i++)
        if (in[i] && in[i]->requires_grad) return true;
    return false;
}

aspo_status op_run_kernel(const op_call *call)
{
    backend *be = call->out[0]->be;
    for (int i = 0; i < call->n_in; i++)
        if (call->in[i]->be != be)
            return aspo_fail(ASPO_ERR_USAGE, "op %s: input %d is on backend %s, output on %s",
                             op_table[call->op].name, i, call->in[i]->be->name, be->name);
    kernel_fn kernel = be->kernels[call->op];
    if (!kernel)
        return aspo_fail(ASPO_ERR_UNSUPPORTED, "op %s has no kernel on backend %s",
                         op_table[call->op].name, be->name);
    be->calls[call->op]++;
    return kernel(call);
}

static tape_node *push_node(op_id op, tensor **in, int n_in, const op_params *p)
{
    runtime *rt = runtime_current();
    tape_node *n = arena_alloc(&rt->host, sizeof *n);
    if (!n) return NULL;
    memset(n, 0, sizeof *n);
    n->op = op;
    n->n_in = n_in;
    for (int i = 0; i < n_in; i++) n->in[i] = in[i];
    if (p) n->p = *p;
    n->prev = rt->tape;
    rt->tape = n;
    rt->tape_length++;
    return n;
}

aspo_status op_record(op_id op, tensor **in, int n_in, const op_params *p, tensor *out,
                      void *extra0, void *extra1)
{
    if (!autograd_enabled() || !op_any_requires_grad(in, n_in)) return ASPO_OK;
    tape_node *n = push_node(op, in, n_in, p);
    if (!n) return aspo_error_status();
    n->n_out = 1;
    n->out[0] = out;
    n->extra[0] = extra0;
    n->extra[1] = extra1;
    out->node = n;
    out->requires_grad = true;
    return ASPO_OK;
}

tensor *op_exec(op_id op, tensor **in, int n_in, const op_params *p, tensor **out, int n_out)
{
    ASPO_ASSERT(n_in <= OP_MAX_INPUTS && n_out <= OP_MAX_OUTPUTS && n_out >= 1);
    for (int i = 0; i < n_in; i++)
        if (!in[i]) return NULL;
    for (int i = 0; i < n_out; i++)
        if (!out[i]) return NULL;
    tensor *args[OP_MAX_INPUTS];
    for (int i = 0; i < n_in; i++) {
        args[i] = in[i];
        if ((op_table[op].flags & OP_FLAG_CONTIGUOUS) && !tensor_is_contiguous(in[i]))
            if (!(args[i] = tensor_contiguous(in[i]))) return NULL;
    }
    op_call call = {.op = op, .n_in = n_in, .n_out = n_out};
    for (int i = 0; i < n_in; i++) call.in[i] = args[i];
    for (int i = 0; i < n_out; i++) call.out[i] = out[i];
    if (p) call.p = *p;
    if (op_run_kernel(&call) != ASPO_OK) return NULL;

    if (autograd_enabled() && op_table[op].backward && op_any_requires_grad(args, n_in)) {
        tape_node *n = push_node(op, args, n_in, p);
        if (!n) return NULL;
        n->n_out = n_out;
        for (int i = 0; i < n_out; i++) n->out[i] = out[i];
        out[0]->node = n;
        out[0]->requires_grad = true;
    }
    return out[0];
}

aspo_status grad_accumulate(tensor *t, tensor *g)
{
    if (!t->requires_grad) return ASPO_OK;
    if (!g) return aspo_error_status() ? aspo_error_status() : ASPO_ERR_USAGE;
    if (!tensor_same_shape(t, g)) {
        char a[96], b[96];
        return aspo_fail(ASPO_ERR_SHAPE, "internal: gradient %s does not fit tensor %s",
                         tensor_describe(g, b, sizeof b), tensor_describe(t, a, sizeof a));
    }
    if (g->dt != DT_F32 || !tensor_is_contiguous(g)) {
        tensor *c = tensor_empty_like(g, DT_F32);
        if (!c) return aspo_error_status();
        op_call copy = {.op = OP_COPY, .n_in = 1, .n_out = 1, .in = {g}, .out = {c}};
        aspo_status s = op_run_kernel(&copy);
        if (s) return s;
        g = c;
    }
    if (t->is_param) {
        /* Persistent buffer: add in place, so micro-batches accumulate. */
        ASPO_ASSERT(t->grad);
        op_call add = {.op = OP_BINARY, .n_in = 2, .n_out = 1, .in = {t->grad, g},
                       .out = {t->grad}, .p.i = {BINARY_ADD}};
        return op_run_kernel(&add);
    }
    if (!t->grad) {
        t->grad = g; /* may alias another tensor's grad: never modified in place */
        g->grad_aliases++;
        return ASPO_OK;
    }
    /* A sum only t holds takes the contribution in place; else a new sum, t's alone. */
    tensor *sum = grad_in_place(t);
    if (!sum && (sum = tensor_empty_like(t, DT_F32))) sum->is_grad_sum = true;
    if (!sum) return aspo_error_status();
    op_call add = {.op = OP_BINARY, .n_in = 2, .n_out = 1, .in = {t->grad, g}, .out = {sum},
                   .p.i = {BINARY_ADD}};
    aspo_status s = op_run_kernel(&add);
    if (s) return s;
    t->grad = sum;
    return ASPO_OK;
}

tensor *grad_in_place(tensor *t)
{
    tensor *g = t->grad;
    return g && !t->is_param && g->is_grad_sum && g->grad_aliases == 0 && g->dt == DT_F32 &&
                   tensor_is_contiguous(g) && tensor_same_shape(g, t)
               ? g
               : NULL;
}

/* Runs backward rules from `from` (newest) down to, not including, `stop`. */
static aspo_status run_tape(tape_node *from, tape_node *stop)
{
    for (tape_node *n = from; n && n != stop; n = n->prev) {
        tensor *dy = n->out[0]->grad;
        if (!dy) continue; /* nothing downstream of this node reached the loss */
        aspo_status s = op_table[n->op].backward(n, dy);
        if (s) return s;
    }
    return ASPO_OK;
}

void tape_clear(void)
{
    runtime *rt = runtime_current();
    rt->tape = NULL;
    rt->tape_length = 0;
}

aspo_status tensor_backward(tensor *loss)
{
    if (!loss) return aspo_error_status() ? aspo_error_status() : ASPO_ERR_USAGE;
    if (tensor_numel(loss) != 1)
        return aspo_fail(ASPO_ERR_SHAPE, "backward: the loss must be a scalar, got %lld elements",
                         (long long)tensor_numel(loss));
    if (!loss->requires_grad)
        return aspo_fail(ASPO_ERR_USAGE,
                         "backward: the loss does not depend on anything that requires grad");
    bool prev = autograd_set_enabled(false);
    aspo_status s = ASPO_OK;
    tensor *one = tensor_empty_like(loss, DT_F32);
    op_call fill = {.op = OP_FILL, .n_out = 1, .out = {one}, .p.f = {1.0f}};
    if (!one) s = aspo_error_status();
    else if (!(s = op_run_kernel(&fill))) s = grad_accumulate(loss, one);
    if (!s) s = run_tape(runtime_current()->tape, NULL);
    tape_clear();
    autograd_set_enabled(prev);
    return s;
}

/* ---- activation checkpointing ---- */

/* dst (made before a scope) = src (made inside it), before the scope is released. */
static aspo_status copy_out(tensor *dst, tensor *src)
{
    op_call copy = {.op = OP_COPY, .n_in = 1, .n_out = 1, .in = {src}, .out = {dst}};
    return op_run_kernel(&copy);
}

tensor *tensor_run_scoped(checkpoint_fn fn, void *ctx, tensor **inputs, int n_inputs)
{
    for (int i = 0; i < n_inputs; i++)
        if (!inputs[i]) return NULL;
    if (autograd_enabled()) {
        aspo_fail(ASPO_ERR_USAGE, "internal: tensor_run_scoped with recording on");
        return NULL;
    }
    tensor *kept = tensor_empty_like(inputs[0], inputs[0]->dt);
    if (!kept) return NULL;
    step_mark mark = runtime_mark();
    tensor *y = fn(ctx, inputs, n_inputs);
    aspo_status s = y ? ASPO_OK : aspo_error_status();
    char a[96], b[96];
    if (!s && (!tensor_same_shape(y, kept) || y->dt != kept->dt))
        s = aspo_fail(ASPO_ERR_SHAPE, "internal: a scoped block returned %s for input %s",
                      tensor_describe(y, a, sizeof a), tensor_describe(inputs[0], b, sizeof b));
    if (!s) s = copy_out(kept, y);
    runtime_release(mark);
    return s ? NULL : kept;
}

aspo_status backward_checkpoint(const tape_node *n, tensor *dy)
{
    checkpoint_fn fn = (checkpoint_fn)n->extra[0];
    runtime *rt = runtime_current();
    /* The inputs' gradients outlive the re-run: room for them before its mark. In a stack of
     * blocks, dy is the buffer the next block made for this block's output and nothing else
     * holds: once the re-run has used it, it can hold the input's gradient (same shape), so
     * one buffer goes down the stack instead of one per block. */
    bool reuse = n->in[0]->requires_grad && dy->is_grad_buffer && dy->grad_aliases == 1 &&
                 dy->dt == DT_F32 && tensor_is_contiguous(dy) && tensor_same_shape(dy, n->in[0]);
    tensor *grads[OP_MAX_INPUTS] = {0};
    for (int i = 0; i < n->n_in; i++) {
        if (!n->in[i]->requires_grad) continue;
        grads[i] = i == 0 && reuse ? tensor_alias(dy) : tensor_empty_like(n->in[i], DT_F32);
        if (!grads[i]) return aspo_error_status();
        grads[i]->is_grad_buffer = true;
    }
    step_mark mark = runtime_mark();
    tensor *inputs[OP_MAX_INPUTS];
    for (int i = 0; i < n->n_in; i++) {
        /* Fresh leaves over the saved inputs: the re-run builds its own small tape. */
        inputs[i] = tensor_alias(n->in[i]);
        if (!inputs[i]) return aspo_error_status();
        inputs[i]->requires_grad = n->in[i]->requires_grad;
    }
    tape_node *saved_tape = rt->tape;
    uint64_t saved_counter = rt->rng_counter;
    rt->rng_counter = (uint64_t)n->p.i[0]; /* same dropout masks as the forward pass */
    autograd_set_enabled(true);
    tensor *y = fn(n->extra[1], inputs, n->n_in);
    autograd_set_enabled(false);
    rt->rng_counter = saved_counter;
    aspo_status s = y ? ASPO_OK : aspo_error_status();
    if (!s && y->requires_grad) {
        s = grad_accumulate(y, dy);
        if (!s) s = run_tape(rt->tape, saved_tape);
    }
    rt->tape = saved_tape;
    bool reached[OP_MAX_INPUTS] = {0};
    for (int i = 0; i < n->n_in && !s; i++) {
        if (!grads[i] || !inputs[i]->grad) continue;
        /* With dy reused, an input whose gradient is dy itself (y = x + ...) has it there. */
        if (inputs[i]->grad->data != grads[i]->data) s = copy_out(grads[i], inputs[i]->grad);
        reached[i] = !s;
    }
    runtime_release(mark);
    if (reuse) n->out[0]->grad = NULL; /* its memory holds the input's gradient now */
    for (int i = 0; i < n->n_in && !s; i++)
        if (reached[i]) s = grad_accumulate(n->in[i], grads[i]);
    return s;
}

tensor *tensor_checkpoint(checkpoint_fn fn, void *ctx, tensor **inputs, int n_inputs)
{
    ASPO_ASSERT(n_inputs <= OP_MAX_INPUTS);
    for (int i = 0; i < n_inputs; i++)
        if (!inputs[i]) return NULL;
    runtime *rt = runtime_current();
    op_params p = {.i = {(int64_t)rt->rng_counter}};
    bool prev = autograd_set_enabled(false);
    tensor *y = tensor_run_scoped(fn, ctx, inputs, n_inputs);
    autograd_set_enabled(prev);
    if (!y || !prev) return y;
    /* Parameters inside the block need the node even when no input requires grad. */
    tape_node *n = push_node(OP_CHECKPOINT, inputs, n_inputs, &p);
    if (!n) return NULL;
    n->n_out = 1;
    n->out[0] = y;
    n->extra[0] = (void *)fn;
    n->extra[1] = ctx;
    y->node = n;
    y->requires_grad = true;
    return y;
}
