/* Matmul: one tiled shared-memory GEMM (shaders/matmul.comp) over every batch matrix, reading
 * transposed and sliced operands through their strides, so nothing is copied or widened. */
#include "vk_internal.h"

/* The default tile: a 64 x 64 output block per workgroup of 256 invocations, each owning
 * 4 x 4 outputs, through K in slabs of 16. The slabs take 2 x 16 x 65 floats (8.1 KiB),
 * under the 16 KiB of shared memory every Vulkan device has (lavapipe has 32 KiB). */
enum { TILE_M = 64, TILE_N = 64, TILE_K = 16, THREAD_M = 4, THREAD_N = 4 };

_Static_assert(2 * TILE_K * (TILE_M + 1) * sizeof(float) <= 16384,
               "matmul slabs exceed Vulkan's minimum maxComputeSharedMemorySize");
_Static_assert(TILE_M % THREAD_M == 0 && TILE_N % THREAD_N == 0, "micro-tiles must divide tiles");

/* The parameter block of shaders/matmul.comp. */
typedef struct matmul_params {
    vk_view a, b, o;
    int32_t a_k_unit, b_n_unit;
    int32_t pad_[2];
} matmul_params;

_Static_assert(sizeof(matmul_params) % 16 == 0, "std430 blocks are 16-byte multiples");

/* Shaders index with 32-bit offsets: the furthest element of t must be below 2^31. */
static aspo_status check_extent(const tensor *t, const char *what)
{
    int64_t last = 0;
    for (int d = 0; d < t->ndim; d++)
        if (t->shape[d] > 0) last += (t->shape[d] - 1) * t->stride[d];
    if (last > INT32_MAX || tensor_numel(t) > INT32_MAX) {
        char s[96];
        return aspo_fail(ASPO_ERR_UNSUPPORTED,
                         "op matmul on backend vulkan: %s %s spans more than 2^31 elements",
                         what, tensor_describe(t, s, sizeof s));
    }
    return ASPO_OK;
}

/* An operand as a 4-D view whose batch dims (0, 1) follow the output's, broadcasting its
 * size-1 or missing ones with stride 0; dims 2, 3 stay its own matrix dims. */
static vk_view operand(const tensor *t, const vk_view *o)
{
    vk_view v = vk_view_of(t, NULL);
    for (int d = 0; d < 2; d++)
        if (v.ne[d] != o->ne[d]) v.ne[d] = o->ne[d], v.st[d] = 0;
    return v;
}

/* Rows of every batch matrix of v at one stride: the batch folds into the rows. (A size-1
 * dim's stride is arbitrary, so only dims of real extent are checked.) */
static bool rows_fold(const vk_view *v)
{
    int64_t want = (int64_t)v->ne[2] * v->st[2];
    for (int d = 1; d >= 0; d--) {
        if (v->ne[d] > 1 && v->st[d] != want) return false;
        want *= v->ne[d];
    }
    return true;
}

static void fold_rows(vk_view *v)
{
    v->ne[2] *= v->ne[0] * v->ne[1];
    v->ne[0] = v->ne[1] = 1;
    v->st[0] = v->st[1] = 0;
}

VK_KERNEL(vk_matmul)
{
    const tensor *a = c->in[0], *b = c->in[1];
    tensor *out = c->out[0];
    aspo_status s;
    if ((s = check_extent(a, "a")) || (s = check_extent(b, "b")) ||
        (s = check_extent(out, "output")))
        return s;
    matmul_params p = {.o = vk_view_of(out, NULL)};
    if (p.o.ne[2] == 0 || p.o.ne[3] == 0) return ASPO_OK;
    p.a = operand(a, &p.o);
    p.b = operand(b, &p.o);
    /* One weight for every batch (x @ W): one tall GEMM fills the device better than many
     * short ones and leaves no partial tile per batch. */
    if (p.b.st[0] == 0 && p.b.st[1] == 0 && rows_fold(&p.a) && rows_fold(&p.o)) {
        fold_rows(&p.a);
        fold_rows(&p.o);
        p.b.ne[0] = p.b.ne[1] = 1;
    }
    /* A size-1 dim's stride is arbitrary: only a real extent decides the load order. */
    p.a_k_unit = p.a.st[3] == 1 || p.a.ne[3] == 1;
    p.b_n_unit = p.b.st[3] == 1 || p.b.ne[3] == 1;
    uint32_t spec[6] = {TILE_M, TILE_N, TILE_K, THREAD_M, THREAD_N,
                        (TILE_M / THREAD_M) * (TILE_N / THREAD_N)};
    uint32_t gx = (uint32_t)((p.o.ne[3] + TILE_N - 1) / TILE_N);
    uint32_t gy = (uint32_t)((p.o.ne[2] + TILE_M - 1) / TILE_M);
    uint32_t gz = (uint32_t)p.o.ne[0] * (uint32_t)p.o.ne[1];
    return vk_dispatch("matmul", spec, 6, &p, sizeof p, gx, gy, gz);
}
