/* The CUDA backend's vtable (also HIP's, built from the same sources): device choice
 * (--device N / ASPO_CUDA_DEVICE / ASPO_DEVICE), memory, copies on one stream, scratch, and
 * the kernel table (cuda_*.cu). */
#include "cuda_backend.h"

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

static cudaStream_t stream;
static int ready;

cudaStream_t cu_stream(void) { return stream; }

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
    int64_t ne[4];
    tensor_view4(t, like, ne, v.st);
    for (int d = 0; d < 4; d++) v.ne[d] = (int32_t)ne[d];
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
    static void *buf;
    static size_t size;
    if (bytes > size) {
        if (buf) cudaFreeAsync(buf, stream);
        buf = NULL;
        size = 0;
        if (cu_check(cudaMallocAsync(&buf, bytes, stream), "cudaMallocAsync (scratch)")) {
            cudaGetLastError(); /* clear it, or the next launch check reports it */
            return NULL;
        }
        size = bytes;
    }
    return buf;
}

static int wanted_device(void)
{
    const char *v = getenv(DEVICE_ENV);
    if (!v || !*v) v = getenv("ASPO_DEVICE");
    return v && *v ? atoi(v) : 0;
}

static aspo_status init(void)
{
    if (ready) return ASPO_OK;
    int n = 0;
    cudaError_t r = cudaGetDeviceCount(&n);
    if (r != cudaSuccess || n == 0)
        return aspo_fail(ASPO_ERR_UNSUPPORTED, "--backend %s: no GPU found (%s)", BACKEND_NAME,
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
    if (!s) s = cu_check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking),
                         "cudaStreamCreate");
    if (!s) ready = 1;
    return s;
}

static aspo_status device_info(backend *be, char *name, size_t name_size, size_t *total,
                               size_t *free_bytes)
{
    (void)be;
    aspo_status s = init();
    if (s) return s;
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
    (void)be;
    void *p = NULL;
    /* Stream-ordered: memory freed by earlier work on the stream is reused without a sync. */
    if (init()) return NULL;
    if (cu_check(cudaMallocAsync(&p, bytes ? bytes : 1, stream), "cudaMallocAsync")) {
        cudaGetLastError(); /* out of memory is reported by the caller; clear the sticky error */
        return NULL;
    }
    return p;
}

static void be_free(backend *be, void *p)
{
    (void)be;
    if (p) cudaFreeAsync(p, stream);
}

static aspo_status be_upload(backend *be, void *dst, const void *src, size_t bytes)
{
    (void)be;
    aspo_status s = init();
    return s ? s : cu_upload(dst, src, bytes); /* staged: the host does not wait */
}

static aspo_status be_download(backend *be, void *dst, const void *src, size_t bytes)
{
    (void)be;
    if (!bytes) return ASPO_OK;
    aspo_status s = cu_check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream),
                             "cudaMemcpyAsync (download)");
    return s ? s : cu_check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
}

static aspo_status be_synchronize(backend *be)
{
    (void)be;
    return cu_check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
}

static backend cu = {
    .name = BACKEND_NAME,
    .device_info = device_info,
    .alloc = be_alloc,
    .free = be_free,
    .upload = be_upload,
    .download = be_download,
    .synchronize = be_synchronize,
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
    if (init()) return NULL;
    return &cu;
}
