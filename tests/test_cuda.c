/* The CUDA backend's own behaviour beyond the op suite (tests/ops runs every op against the
 * CPU), and the HIP backend's in a HIP build: device choice errors that list the devices and
 * the precedence of ASPO_CUDA_DEVICE over ASPO_DEVICE, the device name and memory, a tensor
 * of more than 2^31 elements through a kernel (64-bit indexing, grid-stride loops past the
 * grid cap), and device out-of-memory as an error after which the device still works.
 * Exit 77 (skipped) on a machine without a GPU.
 * Usage: test_cuda [cuda|hip|simt]   (default cuda; simt: the same sources on the CPU) */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "backends/registry.h"
#include "check.h"
#include "tensor/runtime.h"
#include "tensor/tensor_ops.h"

/* Element i of the large tensor: small integers (exact in bf16, also times -2) that depend
 * on i's high bits, so an index wrapped at 2^31 reads a different value. */
static float big_value(int64_t i) { return (float)((i * 7 + (i >> 20)) % 61) - 30.0f; }

/* y = -2 x over n bf16 elements, x and y on the device; skipped (with a note) when the device
 * or the host lacks room. */
static void check_large_tensor(backend *be, int64_t n)
{
    char name[256];
    size_t total = 0, free_bytes = 0, bytes = (size_t)n * 2;
    if (be->device_info(be, name, sizeof name, &total, &free_bytes) || free_bytes < 3 * bytes) {
        printf("note: %lld-element check skipped: %zu MiB free on the device, %zu needed\n",
               (long long)n, free_bytes >> 20, (3 * bytes) >> 20);
        aspo_error_clear();
        return;
    }
    uint16_t *host = malloc(bytes);
    if (!host) {
        printf("note: %lld-element check skipped: no %zu MiB on the host\n", (long long)n,
               bytes >> 20);
        return;
    }
#pragma omp parallel for
    for (int64_t i = 0; i < n; i++) host[i] = f32_to_bf16(big_value(i));
    tensor *x = tensor_from_host(DT_BF16, DIMS(n), host);
    CHECK(x != NULL, "upload of %lld bf16: %s", (long long)n, aspo_error_message());
    tensor *y = x ? tensor_scale(x, -2.0f) : NULL;
    memset(host, 0xff, bytes); /* NaN: an element the download misses cannot pass */
    CHECK(y && tensor_to_host(y, host) == ASPO_OK, "scale of %lld bf16: %s", (long long)n,
          aspo_error_message());
    int64_t bad = 0, first_bad = -1;
#pragma omp parallel for reduction(+ : bad)
    for (int64_t i = 0; i < n; i++) bad += bf16_to_f32(host[i]) != -2.0f * big_value(i);
    for (int64_t i = 0; bad && first_bad < 0 && i < n; i++)
        if (bf16_to_f32(host[i]) != -2.0f * big_value(i)) first_bad = i;
    CHECK(y && bad == 0, "%lld of %lld elements wrong, the first at %lld", (long long)bad,
          (long long)n, (long long)first_bad);
    free(host);
    runtime_step_reset();
}

int main(int argc, char **argv)
{
    const char *gpu = argc > 1 ? argv[1] : "cuda";
    char device_env[32];
    snprintf(device_env, sizeof device_env, "ASPO_%s_DEVICE", gpu);
    for (char *c = device_env; *c; c++) *c = (char)toupper((unsigned char)*c); /* ASPO_HIP_DEVICE */

    /* A device index beyond the list: an error naming the devices there are. */
    setenv("ASPO_DEVICE", "99", 1);
    backend *none = backend_get(gpu);
    const char *why = aspo_error_message();
    if (!none && aspo_error_status() == ASPO_ERR_NO_DEVICE) {
        printf("SKIP: %s\n", why);
        return 77;
    }
    CHECK(none == NULL && strstr(why, "device 99 asked for") && strstr(why, "0: "),
          "ASPO_DEVICE=99: %s", why);
    aspo_error_clear();
    /* The backend's own variable wins over ASPO_DEVICE (what --device sets). */
    setenv(device_env, "0", 1);
    backend *be = backend_get(gpu);
    CHECK(be != NULL, "%s=0 beside ASPO_DEVICE=99: %s", device_env, aspo_error_message());
    unsetenv("ASPO_DEVICE");
    unsetenv(device_env);
    if (!be) return check_summary(gpu);
    CHECK(strcmp(be->name, gpu) == 0, "backend name %s, want %s", be->name, gpu);

    char name[256] = "", tag[16];
    size_t total = 0, free_bytes = 0;
    snprintf(tag, sizeof tag, "(%s ", gpu);
    CHECK(be->device_info(be, name, sizeof name, &total, &free_bytes) == ASPO_OK &&
              strstr(name, tag) && total > 0 && free_bytes <= total,
          "device_info: '%s', %zu of %zu bytes free: %s", name, free_bytes, total,
          aspo_error_message());
    printf("device: %s, %zu MiB of %zu MiB free\n", name, free_bytes >> 20, total >> 20);
    runtime_init(be, 0);

    /* 2^31 + 4099 elements (4 GiB of bf16): past int32 element indices and past the grid
     * cap of cu_blocks (65535 * 8 blocks), so every kernel loop runs several strides. */
    check_large_tensor(be, (1ll << 31) + 4099);

    /* More than the device holds: an out-of-memory error, not a crash ... */
    tensor *huge = tensor_empty(DT_F32, DIMS(1ll << 40));
    CHECK(huge == NULL && aspo_error_status() == ASPO_ERR_OOM, "4 TiB tensor: status %d, %s",
          (int)aspo_error_status(), aspo_error_message());
    aspo_error_clear();
    /* ... and the device still works afterwards (the failed allocation must not be
     * reported again by the next kernel launch's check). */
    tensor *z = tensor_scale(tensor_from_host(DT_F32, DIMS(3), (float[]){1, 2, 3}), 2.0f);
    float zh[3] = {0};
    CHECK(z && tensor_to_host(z, zh) == ASPO_OK && zh[0] == 2.0f && zh[2] == 6.0f,
          "after OOM: %s", aspo_error_message());
    runtime_shutdown();
    return check_summary(gpu);
}
