/* `aspo score`: precomputed reference log-probs of a preference file (aspo/inference/score.h). */
#include <stddef.h>
#include <stdio.h>

#include "aspo/cli/commands.h"
#include "aspo/cli/data_flags.h"
#include "aspo/cli/options.h"
#include "aspo/inference/score.h"

/* The data flags' choices as `aspo run` has them (aspo/cli/train_flags.c). */

#define F(name, kind, field, help, choices, lo, hi) \
    {name, kind, offsetof(score_config, field), help, choices, lo, hi}

static const option_spec SCORE_SPECS[] = {
    DATA_FLAG_SPECS(score_config),
    F("adapter", OPT_STRING, adapter, "PEFT adapter: score the adapted policy instead of the base model", NULL, 0, 0),
    F("out", OPT_STRING, out, "JSONL file to write: the rows with id and reference log-probs", NULL, 0, 0),
    F("token-logps", OPT_BOOL, token_logps, "also write per-token arrays (ASPO needs them)", NULL, 0, 0),
    F("batch-size", OPT_INT, batch_size, "pairs per forward", NULL, 1, 1 << 20),
    {NULL},
};

int cmd_score(int argc, char **argv)
{
    score_config cfg = score_defaults(), defaults = cfg;
    options_source src;
    aspo_status s;
    if (command_parse(SCORE_SPECS, &cfg, &defaults, "usage: aspo score --model DIR --data FILE --out FILE [--adapter DIR] [flags]\n\n"
               "Writes the rows of --data to --out, in order, each with \"id\" (its line\n"
               "number when it has none) and the summed log-probs of its chosen and rejected\n"
               "response tokens, \"ref_chosen_logps\" and \"ref_rejected_logps\" (with\n"
               "--token-logps also per token). `aspo run` on that file uses them as the\n"
               "reference instead of running the base model. Give the same data flags as\n"
               "to `aspo run`, so that the same tokens are scored.\n\n", argc, argv, &src, &s))
        return 0;
    if (!s) {
        command_set_threads(cfg.threads);
        command_set_device(cfg.device);
        s = score_run(&cfg, NULL);
    }
    options_release(&src);
    return s ? command_fail(s) : 0;
}
