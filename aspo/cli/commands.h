/* Commands of the `aspo` binary that live outside aspo/cli/main.c: each takes the arguments
 * after its name and returns the exit status (0 ok, 1 failure, 2 usage error), printing
 * `aspo: error: ...` on failure. */
#ifndef ASPO_COMMANDS_H
#define ASPO_COMMANDS_H

#include <stdbool.h>

#include "aspo/cli/options.h"
#include "tensor/error.h"

/* aspo score --model DIR --data FILE --out FILE [--adapter DIR] [data flags] */
int cmd_score(int argc, char **argv);
/* aspo merge --model DIR --adapter DIR --out DIR [--dtype D] */
int cmd_merge(int argc, char **argv);
/* aspo bench [sizes] */
int cmd_bench(int argc, char **argv);

/* Shared by the commands (aspo/cli/command.c). */

/* Parses argv into values. On --help prints `usage` (a printf format that may use one %s,
 * the backends of this build) and the flag table with `defaults`, and returns true: the
 * command then returns 0. Otherwise *status is the parse result; release src after. */
bool command_parse(const option_spec *specs, void *values, const void *defaults,
                   const char *usage, int argc, char **argv, options_source *src,
                   aspo_status *status);
/* Prints the error and returns its exit status. */
int command_fail(aspo_status s);
/* OpenMP and OpenBLAS threads; 0 leaves their defaults (all cores). */
void command_set_threads(long threads);
/* --device N (N >= 0) for the GPU backends: ASPO_DEVICE for this process. */
void command_set_device(long device);

#endif
