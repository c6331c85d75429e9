/* The CUDA runtime API as backends/cuda uses it, executed on the CPU (the `simt` backend):
 * cuda_internal.h includes this header instead of <cuda_runtime.h> when ASPO_SIMT is
 * defined. It is C (cuda_backend.c and cuda_staging.c are C) and C++ (the .cu files, built
 * by the host C++ compiler with backends/simt/simt_device.h).
 *
 * What it models (docs/GPU.md, "The CPU execution layer"):
 *   - one device: "device memory" is host memory (malloc), so an ASan build sees a kernel's
 *     out-of-bounds global access; new allocations are filled with 0xff bytes (NaN, id -1),
 *     as a GPU gives no zeros;
 *   - streams run in order and lazily: queued kernels, copies, memsets and frees run when
 *     the host waits (stream/event/device synchronize, a blocking copy), never when queued.
 *     An asynchronous copy from pinned memory (cudaHostAlloc) reads its source when the
 *     stream reaches it, so a host buffer reused before then gives wrong data, as on a GPU
 *     (and the layer reports it); copies with pageable host memory wait as CUDA's do;
 *   - a kernel error (race, divergent barrier, warp misuse, bad address) is reported by the
 *     next synchronization, with its kernel, block and threads in cudaGetErrorString, and
 *     then cleared: the layer keeps running, unlike a GPU after a fault;
 *   - launch limits of a real device are launch errors naming the kernel (simt_device.h).
 * Settings (environment, read at first use):
 *   ASPO_SIMT_WARP=32|64           lanes per warp: 32 = NVIDIA profile (default), 64 = AMD
 *                                  CDNA profile (64 KiB shared memory per block, no opt-in)
 *   ASPO_SIMT_SCHEDULE=random:SEED threads of a block run in a seeded random order between
 *                                  barriers (default: in order)
 *   ASPO_SIMT_RACECHECK=0          no race, address and shared-memory initialisation checks
 *                                  (they need the instrumented build, on by default there)
 *   ASPO_SIMT_MEMORY=MiB           the device's memory (default 16384)
 *   ASPO_SIMT_SHARED_OPTIN=KiB     the opt-in shared memory limit of the NVIDIA profile
 *                                  (default 99, as sm_89; A100 163, H100 227) */
#ifndef ASPO_SIMT_RUNTIME_H
#define ASPO_SIMT_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- errors (CUDA's numbers) ---- */

typedef enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInitializationError = 3,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidMemcpyDirection = 21,
    cudaErrorInvalidDeviceFunction = 98,
    cudaErrorNoDevice = 100,
    cudaErrorInvalidDevice = 101,
    cudaErrorInvalidResourceHandle = 400,
    cudaErrorNotReady = 600,
    cudaErrorIllegalAddress = 700,
    cudaErrorLaunchOutOfResources = 701,
    cudaErrorAssert = 710,
    cudaErrorLaunchFailure = 719,
    cudaErrorNotSupported = 801,
} cudaError_t;

const char *cudaGetErrorString(cudaError_t e); /* the last error's full message when it is
                                                  the layer's own report */
const char *cudaGetErrorName(cudaError_t e);
cudaError_t cudaGetLastError(void);  /* returns and clears */
cudaError_t cudaPeekAtLastError(void);

/* ---- device ---- */

struct cudaDeviceProp {
    char name[256];
    size_t totalGlobalMem;
    size_t sharedMemPerBlock;      /* 48 KiB (NVIDIA) or 64 KiB (AMD) */
    size_t sharedMemPerBlockOptin; /* ASPO_SIMT_SHARED_OPTIN, or 64 KiB on the AMD profile */
    size_t sharedMemPerMultiprocessor; /* the opt-in limit + 1 KiB (NVIDIA), 64 KiB (AMD) */
    int warpSize;
    int maxThreadsPerBlock;
    int maxThreadsDim[3];
    int maxGridSize[3];
    int multiProcessorCount;
    int major, minor;
};

enum cudaDeviceAttr {
    cudaDevAttrMaxThreadsPerBlock = 1,
    cudaDevAttrMaxSharedMemoryPerBlock = 8,
    cudaDevAttrWarpSize = 10,
    cudaDevAttrMultiProcessorCount = 16,
    cudaDevAttrMaxSharedMemoryPerMultiprocessor = 81,
    cudaDevAttrMaxSharedMemoryPerBlockOptin = 97,
};

cudaError_t cudaGetDeviceCount(int *count);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDevice(int *device);
cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *prop, int device);
/* The AMD profile answers the opt-in attribute with 0, as ROCm does. */
cudaError_t cudaDeviceGetAttribute(int *value, enum cudaDeviceAttr attr, int device);
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes);
cudaError_t cudaDeviceSynchronize(void);

/* ---- memory ---- */

enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4,
};

typedef struct simt_stream *cudaStream_t; /* NULL: the default stream */
typedef struct simt_event *cudaEvent_t;

enum { cudaStreamDefault = 0, cudaStreamNonBlocking = 1 };
enum { cudaHostAllocDefault = 0 };
enum { cudaEventDefault = 0, cudaEventDisableTiming = 2 };

cudaError_t cudaMalloc(void **ptr, size_t bytes);
cudaError_t cudaFree(void *ptr); /* waits for the device, as CUDA's does */
cudaError_t cudaMallocAsync(void **ptr, size_t bytes, cudaStream_t s);
cudaError_t cudaFreeAsync(void *ptr, cudaStream_t s); /* freed when the stream reaches it */
cudaError_t cudaHostAlloc(void **ptr, size_t bytes, unsigned flags); /* pinned */
cudaError_t cudaMallocHost(void **ptr, size_t bytes);
cudaError_t cudaFreeHost(void *ptr);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, enum cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, enum cudaMemcpyKind kind,
                            cudaStream_t s);
cudaError_t cudaMemset(void *dst, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void *dst, int value, size_t bytes, cudaStream_t s);

/* The stream-ordered allocator's pool (cudaMallocAsync): the release threshold says how
 * many freed bytes the pool keeps at a synchronization instead of returning them. */
typedef struct simt_mem_pool *cudaMemPool_t;
enum cudaMemPoolAttr {
    cudaMemPoolAttrReleaseThreshold = 4,
    cudaMemPoolAttrReservedMemCurrent = 5,
    cudaMemPoolAttrReservedMemHigh = 6,
    cudaMemPoolAttrUsedMemCurrent = 7,
    cudaMemPoolAttrUsedMemHigh = 8,
};
cudaError_t cudaDeviceGetDefaultMemPool(cudaMemPool_t *pool, int device);
cudaError_t cudaMemPoolSetAttribute(cudaMemPool_t pool, enum cudaMemPoolAttr attr, void *value);
cudaError_t cudaMemPoolGetAttribute(cudaMemPool_t pool, enum cudaMemPoolAttr attr, void *value);

/* ---- streams and events ---- */

cudaError_t cudaStreamCreate(cudaStream_t *s);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaStreamQuery(cudaStream_t s); /* cudaErrorNotReady while work is queued */

cudaError_t cudaEventCreate(cudaEvent_t *e);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s);
cudaError_t cudaEventSynchronize(cudaEvent_t e); /* runs the stream up to the event */
cudaError_t cudaEventQuery(cudaEvent_t e);
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end);

/* ---- kernels ---- */

enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
/* The opt-in above 48 KiB of dynamic shared memory, per kernel (func: the kernel). */
cudaError_t cudaFuncSetAttribute(const void *func, enum cudaFuncAttribute attr, int value);

/* ---- the layer's own interface (simt_device.h, simt_cublas.c, tests) ---- */

typedef struct simt_dim3 {
    unsigned x, y, z;
} simt_dim3;

/* A kernel launch: `thunk(closure)` runs the kernel body for the current CUDA thread;
 * `closure` (the copied arguments) is freed by `closure_free` when the launch is done. */
typedef struct simt_launch_desc {
    const char *kernel; /* its name, for reports */
    const void *func;   /* its identity, for cudaFuncSetAttribute */
    simt_dim3 grid, block;
    size_t dynamic_shared;
    void (*thunk)(void *closure);
    void *closure;
    size_t closure_size;
    void (*closure_free)(void *closure);
} simt_launch_desc;

/* Checks the launch against the device's limits (an error naming the kernel becomes the
 * last error, nothing is queued) and queues it on s. Takes the closure in every case. */
cudaError_t simt_launch(const simt_launch_desc *d, cudaStream_t s);

/* Queues `fn(arg)` on stream s; `bytes` of arg are copied when queued. fn runs when the
 * stream reaches it (on the host thread that waits) and may call simt_fail. */
cudaError_t simt_enqueue(cudaStream_t s, const char *what, void (*fn)(void *arg),
                         const void *arg, size_t bytes);

/* Within work that a stream runs: records an error, reported by the next synchronization
 * (the first one recorded wins until it is reported). */
void simt_fail(cudaError_t code, const char *fmt, ...)
#ifdef __GNUC__
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Whether [p, p + bytes) lies inside one live device allocation. */
int simt_is_device_range(const void *p, size_t bytes);

/* The lanes per warp of this run (ASPO_SIMT_WARP). */
int simt_warp_lanes(void);
/* Whether kernels run under the race, address and initialisation checks: the instrumented
 * build (not ASPO_SANITIZE) without ASPO_SIMT_RACECHECK=0. */
int simt_race_checking(void);

/* Bytes of the device (cudaMalloc, cudaMallocAsync) live now. */
size_t simt_device_bytes_live(void);

/* For tests: how many times the host has waited for the device (a stream, event or device
 * synchronize, a blocking copy, memset or free), and the name of the kernel launched `back`
 * launches ago (0: the last; NULL past the last 64). */
unsigned long simt_host_waits(void);
const char *simt_launch_name(int back);

#ifdef __cplusplus
}
#endif

#endif
