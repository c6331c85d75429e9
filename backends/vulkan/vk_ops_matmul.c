/* Matmul: one tiled shared-memory GEMM (shaders/matmul.comp) over every batch matrix, reading
 * transposed and sliced operands through their strides, so nothing is copied or widened. */
#include "vk_internal.h"

/* Output tiles of one workgroup (BM x BN, through K in BK-deep slabs) and each
 * invocation's micro-tile (TM x TN); shaders/matmul.comp takes them as constants. */
typedef struct tile_config {
    uint32_t bm, bn, bk, tm, tn;
} tile_config;

/* 64 x 64 by 16 with 4 x 4 per invocation (256 invocations): 8.1 KiB of slabs, under the
 * 16 KiB of shared memory every Vulkan device has, and enough workgroups to fill a GPU
 * for mid-sized products. 128 x 128 with 8 x 8 per invocation reads shared memory half as
 * often per multiply-add (4.1 vs 1.9 GFLOP/s on lavapipe at 512^3 and at 1024^3) and
 * takes 16.1 KiB, so it is used where the device has the memory and the output has
 * tiles for every compute unit. */
static const tile_config TILE_SMALL = {64, 64, 16, 4, 4}, TILE_LARGE = {128, 128, 16, 8, 8};

enum {
    /* Workgroups of large tiles that keep a discrete GPU's 100+ compute units busy; a CPU
     * device (lavapipe) has a few cores and takes large tiles whenever they fit. */
    LARGE_MIN_GROUPS = 128,
};

/* Shared memory of a configuration's two slabs (each row padded by one word). */
static size_t slab_bytes(const tile_config *t)
{
    return sizeof(float) * t->bk * (t->bm + 1 + t->bn + 1);
}

static const tile_config *pick_tile(const vk_state *vk, int64_t M, int64_t N, int64_t batch)
{
    const VkPhysicalDeviceProperties *props = &vk->props;
    const tile_config *t = &TILE_LARGE;
    if (M < t->bm || N < t->bn ||
        slab_bytes(t) > props->limits.maxComputeSharedMemorySize)
        return &TILE_SMALL;
    int64_t groups = (M + t->bm - 1) / t->bm * ((N + t->bn - 1) / t->bn) * batch;
    bool cpu = props->deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU;
    return cpu || groups >= LARGE_MIN_GROUPS ? t : &TILE_SMALL;
}

/* The parameter block of shaders/matmul.comp. accumulate: o += a @ b (GEMM beta = 1). */
typedef struct matmul_params {
    vk_view a, b, o;
    int32_t accumulate, pad_[3];
} matmul_params;

_Static_assert(sizeof(matmul_params) == 3 * 48 + 16, "matmul_params mirrors matmul.comp's Params");

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
    if (!dtype_is_float(a->dt) || !dtype_is_float(b->dt) || !dtype_is_float(out->dt))
        return aspo_fail(ASPO_ERR_UNSUPPORTED, "op matmul on backend vulkan: %s @ %s -> %s "
                         "(float dtypes only)", dtype_name(a->dt), dtype_name(b->dt),
                         dtype_name(out->dt));
    aspo_status s;
    if ((s = check_extent(a, "a")) || (s = check_extent(b, "b")) ||
        (s = check_extent(out, "output")))
        return s;
    /* i[0] = 1: out is in[2]'s memory and gets c + a @ b; the shader reads it through o. */
    matmul_params p = {.o = vk_view_of(out, NULL), .accumulate = c->p.i[0] != 0};
    if (p.o.ne[2] == 0 || p.o.ne[3] == 0) return ASPO_OK;
    /* c + 0 is c; skipping the pass also keeps a -0.0 in c as it is. */
    if (p.accumulate && a->shape[a->ndim - 1] == 0) return ASPO_OK;
    p.a = operand(a, &p.o);
    p.b = operand(b, &p.o);
    /* One weight for every batch (x @ W): one tall GEMM fills the device better than many
     * short ones and leaves no partial tile per batch. */
    if (p.b.st[0] == 0 && p.b.st[1] == 0 && rows_fold(&p.a) && rows_fold(&p.o)) {
        fold_rows(&p.a);
        fold_rows(&p.o);
        p.b.ne[0] = p.b.ne[1] = 1;
    }
    /* The shader's VARIANT: dtypes, and whether a's K / b's N stride is 1 (a size-1 dim's
     * stride is arbitrary, so only a real extent decides the load order). */
    bool a_k_unit = p.a.st[3] == 1 || p.a.ne[3] == 1, b_n_unit = p.b.st[3] == 1 || p.b.ne[3] == 1;
    uint32_t variant = (uint32_t)a->dt | (uint32_t)b->dt << 2 | (uint32_t)out->dt << 4 |
                       (uint32_t)a_k_unit << 6 | (uint32_t)b_n_unit << 7;
    int64_t batch = (int64_t)p.o.ne[0] * p.o.ne[1];
    vk_state *vk = vk_state_of(out->be);
    const tile_config *t = pick_tile(vk, p.o.ne[2], p.o.ne[3], batch);
    uint32_t spec[7] = {t->bm, t->bn, t->bk, t->tm, t->tn, (t->bm / t->tm) * (t->bn / t->tn),
                        variant};
    uint32_t gx = (uint32_t)((p.o.ne[3] + t->bn - 1) / t->bn);
    uint32_t gy = (uint32_t)((p.o.ne[2] + t->bm - 1) / t->bm);
    uint32_t gz = (uint32_t)batch;
    return vk_dispatch(vk, "matmul", spec, 7, &p, sizeof p, gx, gy, gz);
}
