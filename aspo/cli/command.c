/* What every `aspo <command>` does around its own work: parse the flags (printing the help
 * when asked), set the thread count, and turn a failure into one message and an exit code. */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#include "aspo/train/trainer.h"
#include "backends/registry.h"
#include "aspo/cli/commands.h"
#include "tensor/backend.h"

enum { EXIT_USAGE = 2 };

int command_fail(aspo_status s)
{
    fprintf(stderr, "aspo: error: %s\n", aspo_error_message());
    if (s == ASPO_ERR_STOPPED) return 128 + train_stop_signal(); /* as a shell reports a signal */
    return s == ASPO_ERR_USAGE ? EXIT_USAGE : 1;
}

void command_set_threads(long threads)
{
    if (threads > 0) {
        omp_set_num_threads((int)threads);
        openblas_set_num_threads((int)threads);
    }
}

void command_set_device(long device)
{
    if (device < 0) return;
    char v[24];
    snprintf(v, sizeof v, "%ld", device);
    setenv("ASPO_DEVICE", v, 1); /* every GPU backend reads it (after its own variable) */
}

bool command_parse(const option_spec *specs, void *values, const void *defaults,
                   const char *usage, int argc, char **argv, options_source *src,
                   aspo_status *status)
{
    bool help;
    *status = options_parse(specs, values, argc, argv, &help, src);
    if (!help) return false;
    printf(usage, backend_list());
    options_print(stdout, specs, defaults);
    options_release(src);
    return true;
}
