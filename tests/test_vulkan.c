/* The Vulkan backend's own behaviour beyond the op suite (tests/ops runs every op against
 * the CPU): device choice errors that list the devices, device out-of-memory as an error,
 * host copies larger than the staging ring, and an op on a tensor larger than
 * maxStorageBufferRange (128 MiB on lavapipe). Exit 77 (skipped) without a Vulkan device.
 * Usage: test_vulkan */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include <stdlib.h>
#include <string.h>

#include "backends/registry.h"
#include "check.h"
#include "tensor/runtime.h"
#include "tensor/tensor_ops.h"

int main(void)
{
    /* A device index beyond the list: an error naming the devices there are. */
    setenv("ASPO_VULKAN_DEVICE", "99", 1);
    backend *none = backend_get("vulkan");
    const char *why = aspo_error_message();
    if (!none && aspo_error_status() == ASPO_ERR_NO_DEVICE) {
        printf("SKIP: %s\n", why);
        return 77;
    }
    CHECK(none == NULL && strstr(why, "device 99 asked for") && strstr(why, "0: "),
          "device 99: %s", why);
    aspo_error_clear();
    unsetenv("ASPO_VULKAN_DEVICE");
    backend *be = backend_get("vulkan");
    CHECK(be != NULL, "vulkan: %s", aspo_error_message());
    if (!be) return check_summary("vulkan");
    runtime_init(be, 0);

    /* 48 Mi floats = 192 MiB: past the 64 MiB staging ring (copies in pieces) and past
     * maxStorageBufferRange (shaders address memory by device address, no bindings). */
    int64_t n = 48ll << 20;
    float *host = malloc(sizeof(float) * (size_t)n), *back = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) host[i] = (float)(i % 1000) - 500.0f;
    tensor *x = tensor_from_host(DT_F32, DIMS(n), host);
    CHECK(x != NULL, "192 MiB upload: %s", aspo_error_message());
    tensor *y = tensor_scale(x, -2.0f);
    CHECK(y && tensor_to_host(y, back) == ASPO_OK, "scale: %s", aspo_error_message());
    int64_t bad = 0;
    for (int64_t i = 0; y && i < n; i++) bad += back[i] != -2.0f * host[i];
    CHECK(y && bad == 0, "%lld of %lld elements wrong after a 192 MiB round trip",
          (long long)bad, (long long)n);
    free(host);
    free(back);
    runtime_step_reset();

    /* More than one allocation can hold: an out-of-memory error, not a crash. */
    tensor *huge = tensor_empty(DT_F32, DIMS(1ll << 40));
    CHECK(huge == NULL && aspo_error_status() == ASPO_ERR_OOM, "4 TiB tensor: status %d, %s",
          (int)aspo_error_status(), aspo_error_message());
    aspo_error_clear();
    /* ... and the device still works afterwards. */
    tensor *z = tensor_scale(tensor_from_host(DT_F32, DIMS(3), (float[]){1, 2, 3}), 2.0f);
    float zh[3] = {0};
    CHECK(z && tensor_to_host(z, zh) == ASPO_OK && zh[2] == 6.0f, "after OOM: %s",
          aspo_error_message());
    runtime_shutdown();
    return check_summary("vulkan");
}
