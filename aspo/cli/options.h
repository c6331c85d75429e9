/* Command-line flags from a table: `--name value`, `--name=value`, `--flag` for booleans,
 * and `--config FILE`, a JSON object whose keys are the long flag names (flags given on
 * the command line override it). Every mistake is an ASPO_ERR_USAGE naming the flag or
 * the config key; the CLI turns it into exit code 2. */
#ifndef ASPO_OPTIONS_H
#define ASPO_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "tensor/error.h"

typedef enum option_kind { OPT_STRING, OPT_INT, OPT_FLOAT, OPT_BOOL } option_kind;

typedef struct option_spec {
    const char *name;            /* long name without dashes, e.g. "batch-size" */
    option_kind kind;
    size_t offset;               /* of the field in the values struct: const char *, long,
                                    double or bool */
    const char *help;
    const char *const *choices;  /* OPT_STRING: allowed values, NULL-terminated; NULL = any */
    double min, max;             /* OPT_INT / OPT_FLOAT: inclusive bounds */
} option_spec;

/* Strings taken from a config file stay valid until options_release. */
typedef struct options_source {
    void *config; /* the parsed JSON document, or NULL */
    unsigned long long given[2]; /* bit k: spec k was set, on the command line or in --config */
} options_source;

/* specs ends with a {NULL} entry. *help is set when --help/-h was given (nothing else is
 * checked then). */
aspo_status options_parse(const option_spec *specs, void *values, int argc, char **argv,
                          bool *help, options_source *src);
void options_release(options_source *src);
/* Whether flag `name` was given (on the command line or in --config), not left at its
 * default: some defaults give way to what a file says (an --adapter's own LoRA settings). */
bool options_given(const option_spec *specs, const options_source *src, const char *name);
/* Prints "flags:" and one line per spec with its default taken from `defaults`. */
void options_print(FILE *f, const option_spec *specs, const void *defaults);

#endif
