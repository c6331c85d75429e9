/* Shared by the CPU kernels: 4-D views of tensors with strides aligned to the last dim,
 * so kernels loop over (i0,i1,i2,i3) whatever the rank, and the kernel declarations. */
#ifndef ASPO_CPU_INTERNAL_H
#define ASPO_CPU_INTERNAL_H

#include <stdint.h>

#include "../../tensor/tensor.h"

typedef struct cpu_view {
    char *data;
    dtype dt;
    int64_t ne[4]; /* sizes, leading dims padded with 1 */
    int64_t st[4]; /* element strides; 0 where broadcast */
} cpu_view;

/* t as 4-D. With `like` non-NULL, t is broadcast to like's shape (stride 0 where t has 1). */
static inline cpu_view cpu_view_of(const tensor *t, const tensor *like)
{
    cpu_view v = {.data = t->data, .dt = t->dt};
    tensor_view4(t, like, v.ne, v.st);
    return v;
}

static inline int64_t cpu_offset(const cpu_view *v, int64_t i0, int64_t i1, int64_t i2,
                                 int64_t i3)
{
    return i0 * v->st[0] + i1 * v->st[1] + i2 * v->st[2] + i3 * v->st[3];
}

static inline float cpu_load(const cpu_view *v, int64_t off) { return dtype_load(v->data, v->dt, off); }
static inline void cpu_store(const cpu_view *v, int64_t off, float x) { dtype_store(v->data, v->dt, off, x); }

/* Scratch memory reused across kernel calls: grown on demand, never shrunk, so steady-state
 * training steps make no heap allocations. Each slot is one buffer; a kernel must not
 * hold a slot across a call to another kernel that uses the same slot. NULL when the
 * host is out of memory. */
enum cpu_scratch_slot {
    SCRATCH_MATMUL_A,
    SCRATCH_MATMUL_PANEL,
    SCRATCH_MATMUL_OUT,
    SCRATCH_ROWS,
    SCRATCH_ATTN_Q, /* attention's half-precision inputs and output, widened to f32 */
    SCRATCH_ATTN_K,
    SCRATCH_ATTN_V,
    SCRATCH_ATTN_O,
    SCRATCH_ATTN_DO,
    SCRATCH_COUNT
};
/* The CPU backend instance's state, behind backend.impl. */
typedef struct cpu_state {
    struct {
        void *data;
        size_t bytes;
    } scratch[SCRATCH_COUNT];
} cpu_state;

/* The state of a CPU backend instance; a kernel's is cpu_state_of(c->out[0]->be). */
cpu_state *cpu_state_of(const backend *be);
void *cpu_scratch(cpu_state *cpu, enum cpu_scratch_slot slot, size_t bytes);
/* Elements [at, at+n) of contiguous t = src, each rounded once to t's dtype: a kernel that
 * computes a half-precision output in f32 scratch writes it out with this (cpu_copy.c). */
void cpu_store_f32(const tensor *t, int64_t at, const float *src, int64_t n);

#define CPU_KERNEL(name) aspo_status name(const op_call *c)

CPU_KERNEL(cpu_copy);
CPU_KERNEL(cpu_fill);
CPU_KERNEL(cpu_binary);
CPU_KERNEL(cpu_scale);
CPU_KERNEL(cpu_unary);
CPU_KERNEL(cpu_unary_backward);
CPU_KERNEL(cpu_masked_fill);
CPU_KERNEL(cpu_dropout);
CPU_KERNEL(cpu_sum);
CPU_KERNEL(cpu_sumsq);
CPU_KERNEL(cpu_matmul);
CPU_KERNEL(cpu_softmax);
CPU_KERNEL(cpu_softmax_backward);
CPU_KERNEL(cpu_rmsnorm);
CPU_KERNEL(cpu_rmsnorm_backward);
CPU_KERNEL(cpu_layernorm);
CPU_KERNEL(cpu_layernorm_backward);
CPU_KERNEL(cpu_l2norm);
CPU_KERNEL(cpu_l2norm_backward);
CPU_KERNEL(cpu_gather_logprobs);
CPU_KERNEL(cpu_gather_logprobs_backward);
CPU_KERNEL(cpu_embedding);
CPU_KERNEL(cpu_embedding_backward);
CPU_KERNEL(cpu_rope);
CPU_KERNEL(cpu_attention);
CPU_KERNEL(cpu_attention_backward);
CPU_KERNEL(cpu_adamw);

#endif
