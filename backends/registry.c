/* The registry: every backend aspo has code for, one line each in `entries` with its
 * name, capabilities and constructor (NULL where this build was made without it, with the
 * build option that adds it). Adding a backend is its line here and its constructor. */
#include "registry.h"

#include <stdio.h>
#include <string.h>

#include "cpu/cpu_backend.h"
#include "plan/plan_backend.h"
#ifdef ASPO_HAVE_VULKAN
#include "vulkan/vk_backend.h"
#define VULKAN vulkan_backend
#else
#define VULKAN NULL
#endif
#if defined(ASPO_HAVE_CUDA) || defined(ASPO_HAVE_HIP) || defined(ASPO_HAVE_SIMT)
#include "cuda/cuda_backend.h" /* the hip and simt backends are built from its sources */
#endif
#ifdef ASPO_HAVE_CUDA
#define CUDA cuda_backend
#else
#define CUDA NULL
#endif
#ifdef ASPO_HAVE_HIP
#define HIP cuda_backend
#else
#define HIP NULL
#endif
#ifdef ASPO_HAVE_SIMT
#define SIMT cuda_backend
#else
#define SIMT NULL
#endif

typedef struct backend_entry {
    const char *name;
    unsigned caps;
    backend *(*open)(void); /* NULL: not in this build */
    const char *build;      /* how to build a binary that has it */
} backend_entry;

enum { GPU = BACKEND_COMPUTE | BACKEND_HALF_ACTIVATIONS };

static const backend_entry entries[] = {
    {"cpu", BACKEND_COMPUTE, cpu_backend, ""},
    {"vulkan", BACKEND_COMPUTE, VULKAN, "-DASPO_VULKAN=ON (libvulkan-dev and glslc)"},
    {"cuda", GPU, CUDA, "-DASPO_CUDA=ON (the CUDA toolkit)"},
    {"hip", GPU, HIP, "-DASPO_HIP=ON (hipcc; bash scripts/setup.sh --hip)"},
    {"simt", GPU, SIMT, "-DASPO_SIMT=ON (a build without ASPO_CUDA and ASPO_HIP)"},
    {"plan", 0, plan_backend, ""},
};
enum { N_ENTRIES = sizeof entries / sizeof entries[0] };

static const backend_entry *find(const char *name)
{
    for (int i = 0; i < N_ENTRIES; i++)
        if (!strcmp(entries[i].name, name)) return &entries[i];
    return NULL;
}

/* Names of the compute entries, built ones only or all, joined by `sep` ("or" before the
 * last when `last` is given). */
static const char *names(char *buf, size_t size, bool built_only, const char *sep,
                         const char *last)
{
    int n = 0, total = 0;
    for (int i = 0; i < N_ENTRIES; i++)
        total += (entries[i].caps & BACKEND_COMPUTE) && (!built_only || entries[i].open);
    size_t len = 0;
    buf[0] = 0;
    for (int i = 0; i < N_ENTRIES; i++) {
        const backend_entry *e = &entries[i];
        if (!(e->caps & BACKEND_COMPUTE) || (built_only && !e->open)) continue;
        const char *before = n == 0 ? "" : last && n == total - 1 ? last : sep;
        len += (size_t)snprintf(buf + len, len < size ? size - len : 0, "%s%s", before, e->name);
        n++;
    }
    return buf;
}

const char *backend_list(void)
{
    static char list[128];
    return names(list, sizeof list, true, ",", NULL);
}

const char *backend_known(void)
{
    static char known[128];
    return names(known, sizeof known, false, ", ", " or ");
}

bool backend_caps_of(const char *name, unsigned *caps)
{
    const backend_entry *e = find(name);
    if (e && caps) *caps = e->caps;
    return e != NULL;
}

backend *backend_get(const char *name)
{
    const backend_entry *e = find(name);
    if (!e) {
        aspo_fail(ASPO_ERR_USAGE, "unknown backend '%s'; this build has: %s", name, backend_list());
        return NULL;
    }
    if (!e->open) {
        aspo_fail(ASPO_ERR_USAGE, "backend '%s' is not in this build (it has: %s); build with %s",
                  name, backend_list(), e->build);
        return NULL;
    }
    backend *be = backend_counted(e->open()); /* NULL and its error: no device, ... */
    if (be) be->caps = e->caps;
    return be;
}

backend *backend_cpu(void) { return backend_get("cpu"); }
