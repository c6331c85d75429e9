/* The language model's two ends: embedding lookup and its scatter-add backward
 * (shaders/embedding.comp), target log-probabilities and their backward
 * (shaders/gather_logprobs.comp). Inputs are contiguous (op table flag).
 *
 * Ids and targets are read back to the host before the kernel runs: a bad one is the
 * user's mistake and must fail the op with the CPU backend's message, not read out of
 * bounds. The embedding backward also needs them there: it groups token positions by id
 * (a counting sort, stable, so each dtable row adds its tokens in the CPU's order) and
 * uploads that, so one invocation owns each dtable element; no atomics, deterministic. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "../../tensor/op_checks.h"
#include "vk_internal.h"

enum { GROUP = 256 }; /* local_size_x of the per-element passes */

/* A contiguous tensor as a (rows, cols) view. */
static vk_view rows_view(const tensor *t, int64_t rows, int64_t cols)
{
    vk_view v = vk_view_of(t, NULL);
    v.ne[0] = v.ne[1] = 1;
    v.ne[2] = (int32_t)rows;
    v.ne[3] = (int32_t)cols;
    v.st[0] = v.st[1] = 0;
    v.st[2] = (int32_t)cols;
    v.st[3] = 1;
    return v;
}

/* Shaders index with 32-bit ints. */
static aspo_status fits_int32(const char *op, int64_t elements)
{
    if (elements <= INT32_MAX) return ASPO_OK;
    return aspo_fail(ASPO_ERR_UNSUPPORTED,
                     "%s on backend vulkan: %" PRId64 " elements exceed the shaders' 32-bit "
                     "indexing",
                     op, elements);
}

/* ids (N) i32 from the device; the caller frees. */
static aspo_status ids_to_host(const char *op, const tensor *ids, int32_t **out)
{
    vk_state *vk = vk_state_of(ids->be);
    int64_t N = tensor_numel(ids);
    *out = malloc(sizeof(int32_t) * (size_t)(N ? N : 1));
    if (!*out)
        return aspo_fail(ASPO_ERR_OOM, "%s on backend vulkan: no host memory for %" PRId64 " ids",
                         op, N);
    aspo_status s = N ? vk_download(vk, *out, ids->data, sizeof(int32_t) * (size_t)N) : ASPO_OK;
    if (s) {
        free(*out);
        *out = NULL;
    }
    return s;
}

/* The parameter block of shaders/embedding.comp. */
typedef struct embedding_params {
    vk_view src, ids, dst;
    uint64_t csr;
    int32_t backward, N, C, V, pad_[2];
} embedding_params;

static aspo_status run_embedding(vk_state *vk, embedding_params *p, int64_t elements)
{
    uint32_t gx, gy;
    vk_groups_1d(vk, elements, GROUP, &gx, &gy);
    return vk_dispatch(vk, "embedding", NULL, 0, p, sizeof *p, gx, gy, 1);
}

VK_KERNEL(vk_embedding)
{
    const tensor *table = c->in[0], *ids = c->in[1];
    int64_t V = table->shape[0], C = table->shape[1], N = tensor_numel(ids);
    aspo_status s = fits_int32("embedding", N * C > V * C ? N * C : V * C);
    if (s) return s;
    int32_t *id;
    if ((s = ids_to_host("embedding", ids, &id))) return s;
    s = op_check_ids(ids, id, V);
    free(id);
    if (s || N * C == 0) return s;
    embedding_params p = {.src = rows_view(table, V, C), .ids = rows_view(ids, 1, N),
                          .dst = rows_view(c->out[0], N, C), .backward = 0, .N = (int32_t)N,
                          .C = (int32_t)C, .V = (int32_t)V};
    p.csr = p.ids.addr; /* unused; a valid address */
    return run_embedding(vk_state_of(c->out[0]->be), &p, N * C);
}

/* Into vk->token_positions, device memory kept between calls and grown as needed: a later
 * upload into it is ordered after the dispatches that read it (vk_exec.c puts a barrier
 * after every command). */
static aspo_status upload_csr(vk_state *vk, const int32_t *csr, size_t bytes)
{
    if (bytes > vk->token_positions_bytes) {
        vk_free(vk, vk->token_positions);
        vk->token_positions_bytes = 0;
        if (!(vk->token_positions = vk_alloc(vk, bytes)))
            return aspo_fail(ASPO_ERR_OOM, "embedding backward on backend vulkan: no device "
                             "memory for %zu bytes of token positions", bytes);
        vk->token_positions_bytes = bytes;
    }
    return vk_upload(vk, vk->token_positions, csr, bytes);
}

VK_KERNEL(vk_embedding_backward)
{
    const tensor *ids = c->in[0], *dy = c->in[1];
    tensor *dtable = c->out[0];
    vk_state *vk = vk_state_of(dtable->be);
    int64_t V = dtable->shape[0], C = dtable->shape[1], N = tensor_numel(ids);
    aspo_status s = fits_int32("embedding backward", (N * C > V * C ? N * C : V * C) + V + N + 1);
    if (s) return s;
    int32_t *id;
    if ((s = ids_to_host("embedding backward", ids, &id))) return s;
    if ((s = op_check_ids(ids, id, V)) || V * C == 0) {
        free(id);
        return s;
    }
    /* csr = start (V+1), then token positions (N) grouped by id, in token order. */
    int32_t *csr = calloc((size_t)(V + 1 + N), sizeof(int32_t));
    if (!csr) {
        free(id);
        return aspo_fail(ASPO_ERR_OOM, "embedding backward on backend vulkan: no host memory "
                         "for %" PRId64 " token positions", N);
    }
    int32_t *start = csr, *tokens = csr + V + 1;
    for (int64_t n = 0; n < N; n++) start[id[n] + 1]++;
    for (int64_t v = 0; v < V; v++) start[v + 1] += start[v];
    for (int64_t n = 0; n < N; n++) tokens[start[id[n]]++] = (int32_t)n;
    for (int64_t v = V; v > 0; v--) start[v] = start[v - 1]; /* the fill moved each start */
    start[0] = 0;
    free(id);
    s = upload_csr(vk, csr, sizeof(int32_t) * (size_t)(V + 1 + N));
    free(csr);
    if (s) return s;
    embedding_params p = {.src = rows_view(dy, N, C), .ids = rows_view(ids, 1, N),
                          .dst = rows_view(dtable, V, C),
                          .csr = (uint64_t)(uintptr_t)vk->token_positions,
                          .backward = 1, .N = (int32_t)N, .C = (int32_t)C, .V = (int32_t)V};
    return run_embedding(vk, &p, V * C);
}

/* ---- gather_logprobs ---- */

static aspo_status targets_ok(const char *op, const tensor *targets, int64_t V,
                              int64_t ignore_index)
{
    int32_t *ids;
    aspo_status s = ids_to_host(op, targets, &ids);
    if (s) return s;
    s = op_check_targets(op, ids, tensor_numel(targets), V, ignore_index);
    free(ids);
    return s;
}

/* The parameter block of shaders/gather_logprobs.comp. */
typedef struct gather_params {
    vk_view logits, targets, lse_in, dlogp, out0, out1;
    int64_t ignore_index;
    int32_t backward, N, V, pad_[3];
} gather_params;

/* in: logits (N,V), targets (N); out: logp (N), lse (N). One workgroup per row. */
VK_KERNEL(vk_gather_logprobs)
{
    const tensor *logits = c->in[0], *targets = c->in[1];
    int64_t N = tensor_numel(targets), V = logits->ndim ? logits->shape[logits->ndim - 1] : 1;
    aspo_status s = fits_int32("gather_logprobs", N * V);
    if (!s) s = targets_ok("gather_logprobs", targets, V, c->p.i[0]);
    if (s || N == 0) return s;
    gather_params p = {.logits = rows_view(logits, N, V), .targets = rows_view(targets, 1, N),
                       .out0 = rows_view(c->out[0], 1, N), .out1 = rows_view(c->out[1], 1, N),
                       .ignore_index = c->p.i[0], .backward = 0, .N = (int32_t)N,
                       .V = (int32_t)V};
    p.lse_in = p.dlogp = p.out1; /* unused */
    vk_state *vk = vk_state_of(c->out[0]->be);
    uint32_t gx, gy, spec[1] = {GROUP};
    vk_groups_1d(vk, N, 1, &gx, &gy);
    return vk_dispatch(vk, "gather_logprobs", spec, 1, &p, sizeof p, gx, gy, 1);
}

/* in: logits, targets, lse, dlogp; out: dlogits (N,V). One invocation per element. */
VK_KERNEL(vk_gather_logprobs_backward)
{
    const tensor *logits = c->in[0], *targets = c->in[1];
    int64_t N = tensor_numel(targets), V = logits->ndim ? logits->shape[logits->ndim - 1] : 1;
    if (V == 0 || N == 0) return ASPO_OK;
    aspo_status s = fits_int32("gather_logprobs backward", N * V);
    if (!s) s = targets_ok("gather_logprobs backward", targets, V, c->p.i[0]);
    if (s) return s;
    gather_params p = {.logits = rows_view(logits, N, V), .targets = rows_view(targets, 1, N),
                       .lse_in = rows_view(c->in[2], 1, N), .dlogp = rows_view(c->in[3], 1, N),
                       .out0 = rows_view(c->out[0], N, V), .ignore_index = c->p.i[0],
                       .backward = 1, .N = (int32_t)N, .V = (int32_t)V};
    p.out1 = p.out0; /* unused */
    vk_state *vk = vk_state_of(c->out[0]->be);
    uint32_t gx, gy, spec[1] = {GROUP};
    vk_groups_1d(vk, N * V, GROUP, &gx, &gy);
    return vk_dispatch(vk, "gather_logprobs", spec, 1, &p, sizeof p, gx, gy, 1);
}
