/* The command line: `aspo <command> [flags]`. Usage errors exit 2, failures 1, each with
 * one `aspo: error: ...` line on stderr. */
#include <cblas.h>
#include <errno.h>
#include <limits.h>
#include <omp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aspo/toy_train.h"
#include "tensor/backend.h"

enum { EXIT_USAGE = 2 };

static const char USAGE[] =
    "usage: aspo <command> [flags]\n"
    "\n"
    "commands:\n"
    "  demo      train LoRA adapters on a toy MLP (AdamW, cosine warmup, clipping)\n"
    "\n"
    "Run `aspo <command> --help` for a command's flags.\n";

static const char DEMO_USAGE[] =
    "usage: aspo demo [flags]\n"
    "\n"
    "Trains LoRA (r=8) on a 16 -> 64 -> 8 SiLU MLP with frozen random base weights toward\n"
    "targets the adapters can fit exactly, printing step, loss, lr and gradient norm.\n"
    "\n"
    "flags:\n"
    "  --backend NAME   compute backend (built in: %s; default cpu)\n"
    "  --steps N        optimizer steps (default %d)\n"
    "  --seed N         seed of weights, data and LoRA init (default %llu)\n"
    "  --lr X           peak learning rate (default %g)\n"
    "  --threads N      CPU threads for OpenMP and OpenBLAS (default: all)\n"
    "  --help           this text\n";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("aspo: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return EXIT_USAGE;
}

static bool parse_long(const char *text, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < min || v > max) return false;
    *out = v;
    return true;
}

static bool parse_double(const char *text, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end) return false;
    *out = v;
    return true;
}

static int cmd_demo(int argc, char **argv)
{
    demo_options o = demo_defaults();
    const char *backend_name = "cpu";
    long threads = 0, v;
    for (int i = 0; i < argc; i++) {
        const char *flag = argv[i], *value = NULL;
        if (strcmp(flag, "--help") == 0 || strcmp(flag, "-h") == 0) {
            printf(DEMO_USAGE, backend_list(), o.steps, (unsigned long long)o.seed, o.lr);
            return 0;
        }
        /* --flag VALUE or --flag=VALUE */
        const char *eq = strchr(flag, '=');
        char name[32];
        size_t len = eq ? (size_t)(eq - flag) : strlen(flag);
        if (len >= sizeof name) return usage_error("demo: unknown flag '%s'", flag);
        memcpy(name, flag, len);
        name[len] = 0;
        bool known = !strcmp(name, "--backend") || !strcmp(name, "--steps") ||
                     !strcmp(name, "--seed") || !strcmp(name, "--lr") || !strcmp(name, "--threads");
        if (!known)
            return usage_error("demo: unknown flag '%s'; run `aspo demo --help`", flag);
        if (eq) value = eq + 1;
        else if (i + 1 < argc) value = argv[++i];
        else return usage_error("demo: %s needs a value", name);

        if (!strcmp(name, "--backend")) {
            backend_name = value;
        } else if (!strcmp(name, "--steps")) {
            if (!parse_long(value, 1, INT_MAX, &v))
                return usage_error("demo: --steps '%s' is not a whole number >= 1", value);
            o.steps = (int)v;
        } else if (!strcmp(name, "--seed")) {
            char *end;
            errno = 0;
            unsigned long long seed = strtoull(value, &end, 10);
            if (errno || end == value || *end || value[0] == '-')
                return usage_error("demo: --seed '%s' is not a whole number >= 0", value);
            o.seed = seed;
        } else if (!strcmp(name, "--lr")) {
            if (!parse_double(value, &o.lr) || !(o.lr > 0) || o.lr > 1e3)
                return usage_error("demo: --lr '%s' is not a positive number", value);
        } else {
            if (!parse_long(value, 1, 4096, &threads))
                return usage_error("demo: --threads '%s' is not a whole number in 1..4096",
                                   value);
        }
    }
    backend *be = backend_get(backend_name);
    if (!be) return usage_error("%s", aspo_error_message());
    if (threads > 0) {
        omp_set_num_threads((int)threads);
        openblas_set_num_threads((int)threads);
    }
    aspo_status s = toy_train_demo(be, &o);
    if (s) {
        fprintf(stderr, "aspo: error: %s\n", aspo_error_message());
        return s == ASPO_ERR_USAGE ? EXIT_USAGE : 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(USAGE, stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        fputs(USAGE, stdout);
        return 0;
    }
    if (!strcmp(cmd, "demo")) return cmd_demo(argc - 2, argv + 2);
    return usage_error("unknown command '%s'; run `aspo --help`", cmd);
}
