// The CPU execution layer (backends/simt) catches what it claims, on kernels with planted
// bugs, and passes their fixed versions:
//   - a missing __syncthreads: a race on shared memory, named by kernel, block and threads;
//   - a warp-32 shuffle loop on 64-lane warps: the lanes its 32-bit mask leaves out, and
//     per-warp slots sized for 32 lanes: a read of shared memory nobody wrote;
//   - an out-of-bounds read of device memory: the layer's address check (instrumented
//     build) or AddressSanitizer (ASan build, in a child process that ASan stops);
//   - a pinned host buffer reused before its asynchronous copy ran: wrong data, as on a GPU,
//     and a report at the next synchronization;
// and a divergent barrier, an exited lane of a shuffle's mask, and the launch limits.
// Built like backends/cuda's kernels (simt.cmake); run with ASPO_SIMT_WARP=32 and 64.
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backends/cuda/cuda_common.cuh"
#include "tests/check.h"

namespace {

constexpr int N = 256; // threads of the test blocks: 8 warps of 32, 4 of 64

// ---- kernels with planted bugs, and their fixed versions ----

// out[i] = in[(i + 1) % N] through shared memory; `barrier` = 0 plants the missing one.
__global__ void rotate_kernel(const float *in, float *out, int barrier)
{
    CU_SHARED(float, tile, [N]);
    int i = threadIdx.x;
    tile[i] = 0.0f;
    __syncthreads();
    tile[i] = in[i];
    if (barrier) __syncthreads();
    out[i] = tile[(i + 1) % N];
}

// Sum of in[0..N) by warp shuffles, then per-warp partial sums. `hardcoded` plants the
// warp-32 assumption: a 32-bit full mask, offsets from 16, and warp slots indexed / 32.
__global__ void warp_sum_kernel(const float *in, float *out, int hardcoded)
{
    CU_SHARED(float, partial, [32]);
    int i = threadIdx.x;
    float v = in[i];
    if (hardcoded) {
        for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
        if (i % 32 == 0) partial[i / 32] = v;
    } else {
        for (int o = warpSize / 2; o > 0; o >>= 1) v += __shfl_xor_sync(~0ull, v, o);
        if (i % warpSize == 0) partial[i / warpSize] = v;
    }
    __syncthreads();
    if (i == 0) {
        float s = 0.0f;
        int warps = hardcoded ? N / 32 : N / warpSize;
        for (int w = 0; w < warps; w++) s += partial[w];
        out[0] = s;
    }
}

// The same per-warp slots, with warp-width-correct shuffles: only the slot count assumes 32.
__global__ void warp_slots_kernel(const float *in, float *out)
{
    CU_SHARED(float, partial, [32]);
    int i = threadIdx.x;
    float v = in[i];
    for (int o = warpSize / 2; o > 0; o >>= 1) v += __shfl_xor_sync(~0ull, v, o);
    if (i % warpSize == 0) partial[i / warpSize] = v;
    __syncthreads();
    if (i == 0) {
        float s = 0.0f;
        for (int w = 0; w < N / 32; w++) s += partial[w]; // 8 slots, 4 written with 64 lanes
        out[0] = s;
    }
}

// out[i] = in[i + shift]: shift 1 reads one element past the end of `in` (N elements).
__global__ void shifted_copy_kernel(const float *in, float *out, int shift)
{
    int i = threadIdx.x;
    out[i] = in[i + shift];
}

// Threads past `n` leave early; `barrier_after` plants a __syncthreads they never reach.
__global__ void early_exit_kernel(float *out, int n, int barrier_after)
{
    int i = threadIdx.x;
    if (i >= n) return;
    out[i] = 1.0f;
    if (barrier_after) __syncthreads();
}

// A shuffle whose full mask names lane 1, which has returned.
__global__ void exited_lane_kernel(float *out)
{
    int i = threadIdx.x;
    if (i == 1) return;
    out[i] = __shfl_xor_sync(~0ull, (float)i, 1);
}

// 13000 floats (52000 bytes) of static shared memory: over the 48 KiB a block may declare.
__global__ void big_static_kernel(float *out)
{
    CU_SHARED(float, big, [13000]);
    big[threadIdx.x] = 1.0f;
    out[threadIdx.x] = big[threadIdx.x];
}

__global__ void dynamic_kernel(float *out)
{
    CU_DYNAMIC_SHARED(float, buf);
    buf[threadIdx.x] = (float)threadIdx.x;
    __syncthreads();
    out[threadIdx.x] = buf[blockDim.x - 1 - threadIdx.x];
}

// out16[i] = x[i] rounded to f16 (kind 0) or bf16 (kind 1) by the device's conversions,
// back[i] = that half widened again.
__global__ void convert_kernel(const float *x, uint16_t *out16, float *back, int n, int kind)
{
    CU_FOR(i, n)
    {
        if (kind == 0) {
            __half h = __float2half_rn(x[i]);
            out16[i] = __half_as_ushort(h);
            back[i] = __half2float(h);
        } else {
            __nv_bfloat16 b = __float2bfloat16(x[i]);
            out16[i] = __bfloat16_as_ushort(b);
            back[i] = __bfloat162float(b);
        }
    }
}

// Every warp function at once, per thread i (lane l of its warp, warp w): out[i*8 + k] for
// k = shfl from lane (l*3 % W), shfl_up 3, shfl_down 5, shfl_xor 6 within groups of 16,
// ballot of odd values (as two 32-bit halves), any(v > 200), all(v >= 0).
__global__ void warp_functions_kernel(const int *in, int *out)
{
    int i = threadIdx.x, l = i % warpSize, v = in[i];
    unsigned long long all = ~0ull;
    out[i * 8 + 0] = __shfl_sync(all, v, (l * 3) % warpSize);
    out[i * 8 + 1] = __shfl_up_sync(all, v, 3);
    out[i * 8 + 2] = __shfl_down_sync(all, v, 5);
    out[i * 8 + 3] = __shfl_xor_sync(all, v, 6, 16);
    unsigned long long b = __ballot_sync(all, v & 1);
    out[i * 8 + 4] = (int)(unsigned)b;
    out[i * 8 + 5] = (int)(unsigned)(b >> 32);
    out[i * 8 + 6] = __any_sync(all, v > 200);
    out[i * 8 + 7] = __all_sync(all, v >= 0);
}

// Atomics from every thread of every block: a float sum, an int count, a max and a CAS
// claim (exactly one thread wins slot 0).
__global__ void atomics_kernel(float *sum, int *count, int *max, int *claim)
{
    int i = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    atomicAdd(sum, 0.5f);
    atomicAdd(count, 1);
    atomicMax(max, (i * 37) % 1000);
    if (atomicCAS(claim, -1, i) == -1) atomicAdd(claim + 1, 1);
}

// ---- helpers ----

cudaStream_t stream;

float *device_floats(const float *host, int n)
{
    float *d = NULL;
    CHECK(cudaMalloc((void **)&d, sizeof(float) * n) == cudaSuccess, "cudaMalloc");
    if (host) cudaMemcpy(d, host, sizeof(float) * n, cudaMemcpyHostToDevice);
    return d;
}

// The stream's outcome; `want` (NULL: success) must appear in the error's message along with
// each further string.
void expect(const char *what, cudaError_t got, const char *want, const char *also = NULL,
            const char *also2 = NULL)
{
    const char *msg = got == cudaSuccess ? "" : cudaGetErrorString(got);
    if (!want) {
        CHECK(got == cudaSuccess, "%s: %s", what, msg);
        return;
    }
    bool found = got != cudaSuccess && strstr(msg, want) && (!also || strstr(msg, also)) &&
                 (!also2 || strstr(msg, also2));
    CHECK(found, "%s: wanted a report with \"%s\"%s%s%s%s, got: %s", what, want,
          also ? ", \"" : "", also ? also : "", also2 ? "\", \"" : "", also2 ? also2 : "",
          got == cudaSuccess ? "(no error)" : msg);
    if (found) printf("reported (%s): %s\n", what, msg);
}

// The stream's outcome, and the error cleared (a failed call is also the last error).
cudaError_t sync()
{
    cudaError_t e = cudaStreamSynchronize(stream);
    cudaGetLastError();
    return e;
}

void check_missing_barrier(const float *in_h)
{
    float *in = device_floats(in_h, N), *out = device_floats(NULL, N), got[N];
    SIMT_LAUNCH(1, N, 0, stream, rotate_kernel)(in, out, 1);
    expect("rotate with its barrier", sync(), NULL);
    cudaMemcpy(got, out, sizeof got, cudaMemcpyDeviceToHost);
    bool right = true;
    for (int i = 0; i < N; i++) right = right && got[i] == in_h[(i + 1) % N];
    CHECK(right, "rotate with its barrier: wrong values");
    if (simt_race_checking()) {
        SIMT_LAUNCH(1, N, 0, stream, rotate_kernel)(in, out, 0);
        // Thread i writes tile[i] that thread i - 1 reads, with no barrier between: which of
        // the two the report names first depends on the schedule (ASPO_SIMT_SCHEDULE).
        expect("missing __syncthreads", sync(), "race on shared memory", "rotate_kernel",
               "with no barrier between them");
    } else {
        printf("note: race check off (ASan build or ASPO_SIMT_RACECHECK=0): the missing-barrier "
               "case is not run\n");
    }
    cudaFree(in);
    cudaFree(out);
}

void check_warp_width(const float *in_h)
{
    float *in = device_floats(in_h, N), *out = device_floats(NULL, 1), got = 0, want = 0;
    for (int i = 0; i < N; i++) want += in_h[i];
    SIMT_LAUNCH(1, N, 0, stream, warp_sum_kernel)(in, out, 0);
    expect("warp sum, any warp width", sync(), NULL);
    cudaMemcpy(&got, out, sizeof got, cudaMemcpyDeviceToHost);
    CHECK_CLOSE(got, want, 1e-5, "warp sum, any warp width");

    SIMT_LAUNCH(1, N, 0, stream, warp_sum_kernel)(in, out, 1);
    if (simt_warp_lanes() == 32) {
        expect("warp-32 shuffles on 32-lane warps", sync(), NULL);
        cudaMemcpy(&got, out, sizeof got, cudaMemcpyDeviceToHost);
        CHECK_CLOSE(got, want, 1e-5, "warp-32 shuffles on 32-lane warps");
    } else {
        expect("warp-32 shuffles on 64-lane warps", sync(), "which the mask leaves out",
               "a 32-bit full mask names only lanes 0-31", "warp_sum_kernel");
    }
    SIMT_LAUNCH(1, N, 0, stream, warp_slots_kernel)(in, out);
    if (simt_warp_lanes() == 32) {
        expect("warp slots on 32-lane warps", sync(), NULL);
    } else if (simt_race_checking()) {
        expect("per-warp slots sized for 32 lanes, on 64", sync(), "which no thread of the block "
               "has written", "thread (0,0,0) reads shared memory");
    } else {
        sync(); // the unwritten slots hold 0xff bytes: NaN
        cudaMemcpy(&got, out, sizeof got, cudaMemcpyDeviceToHost);
        CHECK(got != got, "per-warp slots sized for 32 lanes, on 64: got %g, want NaN", got);
    }
    cudaFree(in);
    cudaFree(out);
}

void check_out_of_bounds(const float *in_h)
{
    float *in = device_floats(in_h, N), *out = device_floats(NULL, N);
    SIMT_LAUNCH(1, N, 0, stream, shifted_copy_kernel)(in, out, 0);
    expect("in-bounds copy", sync(), NULL);
#if defined(__SANITIZE_ADDRESS__)
    // ASan stops the process at the bad read: watch a fresh copy of this test do it (a forked
    // child could not start OpenMP threads again).
    fflush(NULL);
    int fds[2];
    CHECK(pipe(fds) == 0, "pipe");
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        execl("/proc/self/exe", "test_simt", "out-of-bounds-read", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    char report[8192] = "";
    size_t len = 0;
    ssize_t r;
    while ((r = read(fds[0], report + len, sizeof report - 1 - len)) > 0) len += (size_t)r;
    report[len] = 0;
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(!(WIFEXITED(status) && WEXITSTATUS(status) == 0) &&
              strstr(report, "heap-buffer-overflow") && strstr(report, "READ of size 4"),
          "out-of-bounds read under ASan: the child was not stopped by ASan:\n%s", report);
    printf("reported (out-of-bounds read, ASan): %s\n", strstr(report, "ERROR") ?
           strtok(strstr(report, "ERROR"), "\n") : "?");
#else
    if (simt_race_checking()) {
        SIMT_LAUNCH(1, N, 0, stream, shifted_copy_kernel)(in, out, 1);
        expect("out-of-bounds read", sync(), "reads 4 bytes", "thread (255,0,0)",
               "not device memory");
    }
#endif
    cudaFree(in);
    cudaFree(out);
}

void check_reused_host_buffer()
{
    float *pinned = NULL, *dev = device_floats(NULL, N), got[N];
    CHECK(cudaHostAlloc((void **)&pinned, sizeof got, cudaHostAllocDefault) == cudaSuccess,
          "cudaHostAlloc");
    // Right: wait for the copy before reusing its source.
    for (int i = 0; i < N; i++) pinned[i] = 1.0f;
    cudaMemcpyAsync(dev, pinned, sizeof got, cudaMemcpyHostToDevice, stream);
    expect("pinned buffer reused after a wait", sync(), NULL);
    for (int i = 0; i < N; i++) pinned[i] = 2.0f;
    cudaMemcpy(got, dev, sizeof got, cudaMemcpyDeviceToHost);
    CHECK(got[0] == 1.0f && got[N - 1] == 1.0f, "the copy made before the reuse: %g", got[0]);
    // Planted: the host writes the buffer while its copy is still queued.
    for (int i = 0; i < N; i++) pinned[i] = 3.0f;
    cudaMemcpyAsync(dev, pinned, sizeof got, cudaMemcpyHostToDevice, stream);
    for (int i = 0; i < N; i++) pinned[i] = 4.0f;
    expect("pinned buffer reused before its copy ran", sync(), "the host changed byte",
           "before the stream reached it");
    cudaMemcpy(got, dev, sizeof got, cudaMemcpyDeviceToHost);
    CHECK(got[0] == 4.0f, "the device holds what the buffer held when the copy ran (as on a "
          "GPU): %g, want 4", got[0]);
    cudaFreeHost(pinned);
    cudaFree(dev);
}

// The device's half and bf16 conversions round as the hardware does (to nearest even,
// overflow to inf, subnormals kept), the same bits as the CPU backend's (tensor/dtype.h), on
// edge values and on a sweep of bit patterns; NaN stays NaN (its payload is the device's).
void check_half_conversions()
{
    enum { M = 4096 };
    static float x[M];
    const float edges[] = {0.0f, -0.0f, 1.0f, 65504.0f, 65519.99f, 65520.0f, -65520.0f, 1e-8f,
                           5.960464e-8f, 2.980232e-8f, 8.940697e-8f, 6.097555e-5f, 6.103516e-5f,
                           1.0009765625f, 1.00048828125f, 3.4028235e38f, INFINITY, -INFINITY,
                           NAN, 1.0039062f, 1.0078125f, 1.17549435e-38f, 9.2e-41f};
    int n = 0;
    for (float e : edges) x[n++] = e;
    for (uint32_t k = 0; n < M; k++, n++) { // bit patterns over the whole range
        uint32_t u = k * 0x9E3779B1u;
        memcpy(&x[n], &u, 4);
    }
    float *dx = device_floats(x, M), *back = device_floats(NULL, M);
    uint16_t *d16 = NULL, h16[M];
    static float hback[M];
    cudaMalloc((void **)&d16, sizeof h16);
    for (int kind = 0; kind < 2; kind++) {
        SIMT_LAUNCH(cu_blocks(M, 256), 256, 0, stream, convert_kernel)(dx, d16, back, M, kind);
        expect("conversions", sync(), NULL);
        cudaMemcpy(h16, d16, sizeof h16, cudaMemcpyDeviceToHost);
        cudaMemcpy(hback, back, sizeof hback, cudaMemcpyDeviceToHost);
        int bad = 0, first = -1;
        for (int i = 0; i < M; i++) {
            uint16_t want = kind == 0 ? f32_to_f16(x[i]) : f32_to_bf16(x[i]);
            float wide = kind == 0 ? f16_to_f32(want) : bf16_to_f32(want);
            bool ok = x[i] != x[i] ? hback[i] != hback[i]
                                   : h16[i] == want && memcmp(&hback[i], &wide, 4) == 0;
            if (!ok && first < 0) first = i;
            bad += !ok;
        }
        CHECK(bad == 0, "%s conversions: %d of %d differ from the CPU's, the first %.9g -> 0x%04x "
              "(want 0x%04x)", kind ? "bf16" : "f16", bad, M, first < 0 ? 0.0 : (double)x[first],
              first < 0 ? 0 : h16[first], first < 0 ? 0 : kind == 0 ? f32_to_f16(x[first])
                                                                  : f32_to_bf16(x[first]));
    }
    cudaFree(dx);
    cudaFree(back);
    cudaFree(d16);
}

// The warp functions give what CUDA's documentation says, at this run's warp width.
void check_warp_functions()
{
    int W = simt_warp_lanes(), in[N], out[N * 8], *din, *dout;
    for (int i = 0; i < N; i++) in[i] = (i * 53) % 251;
    cudaMalloc((void **)&din, sizeof in);
    cudaMalloc((void **)&dout, sizeof out);
    cudaMemcpy(din, in, sizeof in, cudaMemcpyHostToDevice);
    SIMT_LAUNCH(1, N, 0, stream, warp_functions_kernel)(din, dout);
    expect("warp functions", sync(), NULL);
    cudaMemcpy(out, dout, sizeof out, cudaMemcpyDeviceToHost);
    int bad = 0, first = -1;
    for (int i = 0; i < N; i++) {
        int l = i % W, base = i - l;
        unsigned long long ballot = 0;
        int any = 0, every = 1;
        for (int k = 0; k < W; k++) {
            int v = in[base + k];
            ballot |= (unsigned long long)(v & 1) << k;
            any |= v > 200;
            every &= v >= 0;
        }
        int x = l ^ 6;
        int want[8] = {in[base + (l * 3) % W], l >= 3 ? in[i - 3] : in[i],
                       l + 5 < W ? in[i + 5] : in[i], in[x / 16 > l / 16 ? i : base + x],
                       (int)(unsigned)ballot, (int)(unsigned)(ballot >> 32), any, every};
        for (int k = 0; k < 8; k++)
            if (out[i * 8 + k] != want[k]) bad++, first = first < 0 ? i * 8 + k : first;
    }
    CHECK(bad == 0, "warp functions (%d lanes): %d results differ, the first thread %d "
          "function %d: %d, want other", W, bad, first / 8, first % 8, first < 0 ? 0 : out[first]);
    cudaFree(din);
    cudaFree(dout);
}

// Atomics are atomic across threads and blocks (blocks run on several OS threads).
void check_atomics()
{
    enum { BLOCKS = 16 };
    float *sum;
    int *ints, h[5];
    float hs = 0;
    cudaMalloc((void **)&sum, sizeof(float));
    cudaMalloc((void **)&ints, 5 * sizeof(int));
    int init[5] = {0, -1, -1, 0, 0};
    cudaMemcpy(ints, init, sizeof init, cudaMemcpyHostToDevice);
    cudaMemcpy(sum, &hs, sizeof hs, cudaMemcpyHostToDevice);
    SIMT_LAUNCH(BLOCKS, N, 0, stream, atomics_kernel)(sum, ints, ints + 1, ints + 2);
    expect("atomics", sync(), NULL);
    cudaMemcpy(h, ints, sizeof h, cudaMemcpyDeviceToHost);
    cudaMemcpy(&hs, sum, sizeof hs, cudaMemcpyDeviceToHost);
    int want_max = 0;
    for (int i = 0; i < BLOCKS * N; i++) want_max = (i * 37) % 1000 > want_max ? (i * 37) % 1000 : want_max;
    CHECK(hs == 0.5f * BLOCKS * N && h[0] == BLOCKS * N && h[1] == want_max && h[2] >= 0 &&
              h[3] == 1,
          "atomics: sum %g (want %g), count %d, max %d (want %d), claimed by %d, winners %d",
          hs, 0.5 * BLOCKS * N, h[0], h[1], want_max, h[2], h[3]);
    cudaFree(sum);
    cudaFree(ints);
}

void check_barrier_and_lanes()
{
    float *out = device_floats(NULL, N);
    SIMT_LAUNCH(1, N, 0, stream, early_exit_kernel)(out, 100, 0);
    expect("early exit without a barrier", sync(), NULL);
    SIMT_LAUNCH(1, N, 0, stream, early_exit_kernel)(out, 100, 1);
    expect("divergent barrier", sync(), "divergent barrier: threads 0-99", "100-255",
           "early_exit_kernel");
    SIMT_LAUNCH(1, N, 0, stream, exited_lane_kernel)(out);
    expect("shuffle naming an exited lane", sync(), "lane 1 (thread 1)", "exited");
    cudaFree(out);
}

void check_limits()
{
    float *out = device_floats(NULL, 1024);
    SIMT_LAUNCH(1, 1025, 0, stream, dynamic_kernel)(out);
    expect("1025 threads", cudaGetLastError(), "1025 threads", "dynamic_kernel");
    SIMT_LAUNCH(dim3(1, 65536), 32, 0, stream, dynamic_kernel)(out);
    expect("grid y of 65536", cudaGetLastError(), "y and z may be at most 65535");
    SIMT_LAUNCH(1, 64, 0, stream, big_static_kernel)(out);
    expect("52000 bytes of static shared memory", sync(), "static shared memory reaches 52000",
           "big_static_kernel");
    // Dynamic shared memory: 48 KiB without the opt-in; above it the opt-in (NVIDIA), or
    // never above 64 KiB (AMD).
    SIMT_LAUNCH(1, 64, 48 << 10, stream, dynamic_kernel)(out);
    expect("48 KiB dynamic", sync(), NULL);
    SIMT_LAUNCH(1, 64, 50 << 10, stream, dynamic_kernel)(out);
    bool amd = simt_warp_lanes() == 64;
    expect("50 KiB dynamic, no opt-in", cudaGetLastError(), amd ? NULL : "without cudaFuncSetAttribute");
    if (amd) expect("50 KiB dynamic on AMD", sync(), NULL);
    cudaError_t e = cudaFuncSetAttribute(reinterpret_cast<const void *>(dynamic_kernel),
                                         cudaFuncAttributeMaxDynamicSharedMemorySize, 80 << 10);
    if (amd) {
        expect("an 80 KiB opt-in on AMD", e, "over the device's 65536");
        SIMT_LAUNCH(1, 64, 80 << 10, stream, dynamic_kernel)(out);
        expect("80 KiB dynamic on AMD", cudaGetLastError(), "on AMD GPUs");
    } else {
        expect("an 80 KiB opt-in", e, NULL);
        SIMT_LAUNCH(1, 64, 80 << 10, stream, dynamic_kernel)(out);
        expect("80 KiB dynamic after the opt-in", sync(), NULL);
    }
    cudaFree(out);
}

// The child of the ASan out-of-bounds case: the bad read, which ASan stops.
int out_of_bounds_read()
{
    cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
    float *in = device_floats(NULL, N), *out = device_floats(NULL, N);
    SIMT_LAUNCH(1, N, 0, stream, shifted_copy_kernel)(in, out, 1);
    sync();
    return 0;
}

} // namespace

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "out-of-bounds-read")) return out_of_bounds_read();
    printf("simt: %d-lane warps, race check %s\n", simt_warp_lanes(),
           simt_race_checking() ? "on" : "off");
    cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
    float in[N];
    for (int i = 0; i < N; i++) in[i] = (float)(i % 7) - 3.0f + 0.25f * (float)(i % 3);
    check_missing_barrier(in);
    check_warp_width(in);
    check_out_of_bounds(in);
    check_reused_host_buffer();
    check_half_conversions();
    check_warp_functions();
    check_atomics();
    check_barrier_and_lanes();
    check_limits();
    cudaStreamDestroy(stream);
    return check_summary("simt");
}
