/* The CUDA backend's vtable (also HIP's, built from the same sources): device choice
 * (--device N / ASPO_CUDA_DEVICE / ASPO_DEVICE), memory, copies on one stream, scratch, and
 * the kernel table (cuda_*.cu). */
#include "cuda_backend.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"

#ifdef ASPO_HIP
#define BACKEND_NAME "hip"
#define DEVICE_ENV "ASPO_HIP_DEVICE"
#elif defined(ASPO_SIMT)
#define BACKEND_NAME "simt"
#define DEVICE_ENV "ASPO_SIMT_DEVICE"
#else
#define BACKEND_NAME "cuda"
#define DEVICE_ENV "ASPO_CUDA_DEVICE"
#endif

static backend *instance; /* one per process: one device (multi-GPU is one process each) */

cu_state *cu_state_of_process(void) { return instance ? instance->impl : NULL; }
static cu_state *state(void) { return instance->impl; }

cu_faults *cu_fault_slots(void) { return instance ? state()->faults : NULL; }

cudaStream_t cu_stream(void) { return state()->stream; }

aspo_status cu_check(cudaError_t r, const char *what)
{
    if (r == cudaSuccess) return ASPO_OK;
    return aspo_fail(r == cudaErrorMemoryAllocation ? ASPO_ERR_OOM : ASPO_ERR_UNSUPPORTED,
                     "%s: %s: %s (%s)", BACKEND_NAME, what, cudaGetErrorString(r),
                     cudaGetErrorName(r));
}

aspo_status cu_check_launch(const char *kernel)
{
    return cu_check(cudaGetLastError(), kernel);
}

cu_view cu_view_of(const tensor *t, const tensor *like)
{
    cu_view v = {.data = t->data, .dt = (int32_t)t->dt};
    tensor_view4(t, like, v.ne, v.st);
    return v;
}

unsigned cu_blocks(int64_t n, unsigned threads)
{
    int64_t b = (n + threads - 1) / threads;
    if (b < 1) b = 1;
    return b > 65535 * 8 ? 65535 * 8 : (unsigned)b; /* kernels use grid-stride loops */
}

void *cu_scratch(size_t bytes)
{
    cu_state *st = state();
    if (bytes > st->scratch_bytes) {
        if (st->scratch) cudaFreeAsync(st->scratch, st->stream);
        st->scratch = NULL;
        st->scratch_bytes = 0;
        if (cu_check(cudaMallocAsync(&st->scratch, bytes, st->stream), "cudaMallocAsync (scratch)")) {
            (void)cudaGetLastError(); /* clear it, or the next launch check reports it */
            return NULL;
        }
        st->scratch_bytes = bytes;
    }
    return st->scratch;
}

static int wanted_device(void)
{
    const char *v = getenv(DEVICE_ENV);
    if (!v || !*v) v = getenv("ASPO_DEVICE");
    return v && *v ? atoi(v) : 0;
}

/* Opens the device (--device, ASPO_*_DEVICE, ASPO_DEVICE) into st. */
static aspo_status init(cu_state *st)
{
    int n = 0;
    cudaError_t r = cudaGetDeviceCount(&n);
    if (r != cudaSuccess || n == 0)
        return aspo_fail(ASPO_ERR_NO_DEVICE, "--backend %s: no GPU found (%s)", BACKEND_NAME,
                         r != cudaSuccess ? cudaGetErrorString(r) : "0 devices");
    int want = wanted_device();
    if (want < 0 || want >= n) {
        char list[1024] = "";
        for (int i = 0; i < n && i < 16; i++) {
            struct cudaDeviceProp p;
            if (cudaGetDeviceProperties(&p, i) == cudaSuccess)
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s%d: %s", i ? "; " : "",
                         i, p.name);
        }
        return aspo_fail(ASPO_ERR_USAGE, "--backend %s: device %d asked for (--device / %s / "
                         "ASPO_DEVICE) but there are %d: %s", BACKEND_NAME, want, DEVICE_ENV, n,
                         list);
    }
    aspo_status s = cu_check(cudaSetDevice(want), "cudaSetDevice");
    if (!s) s = cu_check(cudaStreamCreateWithFlags(&st->stream, cudaStreamNonBlocking),
                         "cudaStreamCreate");
    /* The stream-ordered allocator's pool returns freed memory to the device at every
     * synchronization by default (release threshold 0), and the next step allocates it
     * again: keep it instead, as PyTorch's caching allocator does. */
    cudaMemPool_t pool;
    uint64_t keep_all = UINT64_MAX;
    if (!s) s = cu_check(cudaDeviceGetDefaultMemPool(&pool, want), "cudaDeviceGetDefaultMemPool");
    if (!s) s = cu_check(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep_all),
                         "cudaMemPoolSetAttribute (release threshold)");
    if (!s) s = cu_check(cudaMalloc((void **)&st->faults, sizeof *st->faults),
                         "cudaMalloc (fault slots)");
    if (!s) s = cu_check(cudaHostAlloc((void **)&st->faults_host, sizeof *st->faults_host,
                                       cudaHostAllocDefault), "cudaHostAlloc (fault slots)");
    if (!s) s = cu_check(cudaMemsetAsync(st->faults, 0xff, sizeof *st->faults, st->stream),
                         "cudaMemsetAsync");
    return s;
}

static aspo_status device_info(backend *be, char *name, size_t name_size, size_t *total,
                               size_t *free_bytes)
{
    (void)be;
    aspo_status s;
    int dev = 0;
    struct cudaDeviceProp p;
    if ((s = cu_check(cudaGetDevice(&dev), "cudaGetDevice")) ||
        (s = cu_check(cudaGetDeviceProperties(&p, dev), "cudaGetDeviceProperties")) ||
        (s = cu_check(cudaMemGetInfo(free_bytes, total), "cudaMemGetInfo")))
        return s;
    snprintf(name, name_size, "%s (%s %d.%d)", p.name, BACKEND_NAME, p.major, p.minor);
    return ASPO_OK;
}

static void *be_alloc(backend *be, size_t bytes)
{
    void *p = NULL;
    /* Stream-ordered: memory freed by earlier work on the stream is reused without a sync. */
    cu_state *st = be->impl;
    if (cu_check(cudaMallocAsync(&p, bytes ? bytes : 1, st->stream), "cudaMallocAsync")) {
        (void)cudaGetLastError(); /* out of memory is the caller's to report; clear it */
        return NULL;
    }
    return p;
}

static void be_free(backend *be, void *p)
{
    cu_state *st = be->impl;
    if (p) cudaFreeAsync(p, st->stream);
}

static aspo_status be_upload(backend *be, void *dst, const void *src, size_t bytes)
{
    (void)be;
    return cu_upload(dst, src, bytes); /* staged: the host does not wait */
}

/* Waits for the stream, then reports a fault the kernels recorded since the last wait (the
 * slots came back with the same wait) and clears it. */
static aspo_status wait_and_check(cu_state *st)
{
    aspo_status s = cu_check(cudaMemcpyAsync(st->faults_host, st->faults, sizeof *st->faults,
                                             cudaMemcpyDeviceToHost, st->stream),
                             "cudaMemcpyAsync (fault slots)");
    if (!s) s = cu_check(cudaStreamSynchronize(st->stream), "cudaStreamSynchronize");
    if (s) return s;
    static const char *const ops[CU_FAULT_KINDS] = {"embedding", "gather_logprobs",
                                                     "gather_logprobs backward"};
    for (int k = 0; k < CU_FAULT_KINDS; k++) {
        unsigned long long first = st->faults_host->first[k];
        if (first == ~0ull) continue;
        s = cu_check(cudaMemsetAsync(st->faults, 0xff, sizeof *st->faults, st->stream),
                     "cudaMemsetAsync");
        if (s) return s; /* reported once: the slots start over */
        long long row = (long long)(first >> 32), limit = (long long)st->faults_host->limit[k];
        int32_t value = (int32_t)(uint32_t)first;
        if (k == CU_FAULT_EMBEDDING)
            return aspo_fail(ASPO_ERR_USAGE, "embedding on backend %s: ids[%lld] (row-major) = "
                             "%d is outside the table's rows [0, %lld); check the tokenizer's "
                             "vocabulary against the model's", BACKEND_NAME, row, (int)value, limit);
        return aspo_fail(ASPO_ERR_USAGE, "%s on backend %s: target %d at row %lld is outside the "
                         "vocabulary [0, %lld) and is not the ignore index", ops[k], BACKEND_NAME,
                         (int)value, row, limit);
    }
    return ASPO_OK;
}

static aspo_status be_download(backend *be, void *dst, const void *src, size_t bytes)
{
    cu_state *st = be->impl;
    if (!bytes) return ASPO_OK;
    aspo_status s = cu_check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, st->stream),
                             "cudaMemcpyAsync (download)");
    return s ? s : wait_and_check(st);
}

static aspo_status be_synchronize(backend *be) { return wait_and_check(be->impl); }

/* The most device memory the pool has held (what the process takes from the device,
 * allocations and freed memory kept for reuse together). */
static size_t reserved_peak(backend *be)
{
    cu_state *st = be->impl;
    cudaMemPool_t pool;
    int dev = 0;
    uint64_t high = 0;
    if (st && cudaGetDevice(&dev) == cudaSuccess &&
        cudaDeviceGetDefaultMemPool(&pool, dev) == cudaSuccess &&
        cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReservedMemHigh, &high) == cudaSuccess)
        st->pool_reserved_peak = (size_t)high;
    return st ? st->pool_reserved_peak : 0;
}

static const backend CU_VTABLE = {
    .name = BACKEND_NAME,
    .device_info = device_info,
    .alloc = be_alloc,
    .free = be_free,
    .upload = be_upload,
    .download = be_download,
    .synchronize = be_synchronize,
    .reserved_peak = reserved_peak,
    .kernels = {
        [OP_COPY] = cu_copy,
        [OP_FILL] = cu_fill,
        [OP_BINARY] = cu_binary,
        [OP_SCALE] = cu_scale,
        [OP_UNARY] = cu_unary,
        [OP_UNARY_BACKWARD] = cu_unary_backward,
        [OP_MASKED_FILL] = cu_masked_fill,
        [OP_DROPOUT] = cu_dropout,
        [OP_SUM] = cu_sum,
        [OP_SUMSQ] = cu_sumsq,
        [OP_MATMUL] = cu_matmul,
        [OP_SOFTMAX] = cu_softmax,
        [OP_SOFTMAX_BACKWARD] = cu_softmax_backward,
        [OP_RMSNORM] = cu_rmsnorm,
        [OP_RMSNORM_BACKWARD] = cu_rmsnorm_backward,
        [OP_LAYERNORM] = cu_layernorm,
        [OP_LAYERNORM_BACKWARD] = cu_layernorm_backward,
        [OP_L2NORM] = cu_l2norm,
        [OP_L2NORM_BACKWARD] = cu_l2norm_backward,
        [OP_GATHER_LOGPROBS] = cu_gather_logprobs,
        [OP_GATHER_LOGPROBS_BACKWARD] = cu_gather_logprobs_backward,
        [OP_EMBEDDING] = cu_embedding,
        [OP_EMBEDDING_BACKWARD] = cu_embedding_backward,
        [OP_ROPE] = cu_rope,
        [OP_ATTENTION] = cu_attention,
        [OP_ATTENTION_BACKWARD] = cu_attention_backward,
        [OP_ADAMW] = cu_adamw,
    },
};

backend *cuda_backend(void)
{
    if (instance) return instance;
    backend *made = backend_instance_new(&CU_VTABLE, sizeof(cu_state));
    if (!made) return NULL;
    if (init(made->impl)) { /* no device, or not the one asked for: the error says which */
        free(made);
        return NULL;
    }
    return instance = made;
}
