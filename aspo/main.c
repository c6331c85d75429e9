/* The command line: `aspo <command> [flags]`. Usage errors exit 2, failures 1, each with
 * one `aspo: error: ...` line on stderr. */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "aspo/options.h"
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

/* Flags every command shares. */
typedef struct common_flags {
    const char *backend;
    long threads;
} common_flags;

static void set_threads(long threads)
{
    if (threads > 0) {
        omp_set_num_threads((int)threads);
        openblas_set_num_threads((int)threads);
    }
}

static int fail(aspo_status s)
{
    fprintf(stderr, "aspo: error: %s\n", aspo_error_message());
    return s == ASPO_ERR_USAGE ? EXIT_USAGE : 1;
}

typedef struct demo_flags {
    common_flags common;
    long steps, seed;
    double lr;
} demo_flags;

#define COMMON_SPECS(type)                                                                 \
    {"backend", OPT_STRING, offsetof(type, common.backend), "compute backend", NULL, 0, 0}, \
    {"threads", OPT_INT, offsetof(type, common.threads),                                   \
     "CPU threads for OpenMP and OpenBLAS (0 = all)", NULL, 0, 4096}

static const option_spec DEMO_SPECS[] = {
    COMMON_SPECS(demo_flags),
    {"steps", OPT_INT, offsetof(demo_flags, steps), "optimizer steps", NULL, 1, 1e9},
    {"seed", OPT_INT, offsetof(demo_flags, seed), "seed of weights, data, LoRA init", NULL, 0, 9e18},
    {"lr", OPT_FLOAT, offsetof(demo_flags, lr), "peak learning rate", NULL, 1e-12, 1e3},
    {NULL},
};

static int cmd_demo(int argc, char **argv)
{
    demo_options o = demo_defaults();
    demo_flags f = {{"cpu", 0}, o.steps, (long)o.seed, o.lr}, defaults = f;
    bool help;
    options_source src;
    aspo_status s = options_parse(DEMO_SPECS, &f, argc, argv, &help, &src);
    if (help) {
        printf("usage: aspo demo [flags]\n\n"
               "Trains LoRA (r=8) on a 16 -> 64 -> 8 SiLU MLP with frozen random base weights\n"
               "toward targets the adapters can fit exactly, printing step, loss, lr and\n"
               "gradient norm. Backends in this build: %s.\n\n",
               backend_list());
        options_print(stdout, DEMO_SPECS, &defaults);
        return 0;
    }
    backend *be = s ? NULL : backend_get(f.common.backend);
    if (be) {
        set_threads(f.common.threads);
        o.steps = (int)f.steps;
        o.seed = (uint64_t)f.seed;
        o.lr = f.lr;
        s = toy_train_demo(be, &o);
    } else if (!s) {
        s = ASPO_ERR_USAGE;
    }
    options_release(&src);
    return s ? fail(s) : 0;
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
    fprintf(stderr, "aspo: error: unknown command '%s'; run `aspo --help`\n", cmd);
    return EXIT_USAGE;
}
