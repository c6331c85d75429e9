/* `aspo score`: precomputed reference log-probs of a preference file (aspo/score.h). */
#include <cblas.h>
#include <omp.h>
#include <stddef.h>
#include <stdio.h>

#include "aspo/commands.h"
#include "aspo/options.h"
#include "aspo/score.h"

enum { EXIT_USAGE = 2 };

int command_fail(aspo_status s)
{
    fprintf(stderr, "aspo: error: %s\n", aspo_error_message());
    return s == ASPO_ERR_USAGE ? EXIT_USAGE : 1;
}

void command_set_threads(long threads)
{
    if (threads > 0) {
        omp_set_num_threads((int)threads);
        openblas_set_num_threads((int)threads);
    }
}

/* The data flags' choices as `aspo run` has them (aspo/train_flags.c). */
static const char *const DTYPES[] = {"auto", "f32", "bf16", "f16", NULL};
static const char *const TEMPLATES[] = {"raw", "vicuna_v1", NULL};
static const char *const TRUNCATION[] = {"keep_end", "keep_start", NULL};

#define F(name, kind, field, help, choices, lo, hi) \
    {name, kind, offsetof(score_config, field), help, choices, lo, hi}

static const option_spec SCORE_SPECS[] = {
    F("config", OPT_STRING, config, "JSON file whose keys are these flags' names", NULL, 0, 0),
    F("backend", OPT_STRING, backend, "compute backend", NULL, 0, 0),
    F("threads", OPT_INT, threads, "CPU threads (0 = all)", NULL, 0, 4096),
    F("model", OPT_STRING, model, "Hugging Face LLaMA directory (config.json, safetensors, tokenizer)", NULL, 0, 0),
    F("adapter", OPT_STRING, adapter, "PEFT adapter: score the adapted policy instead of the base model", NULL, 0, 0),
    F("tokenizer", OPT_STRING, tokenizer, "tokenizer file or directory (default: --model; text rows only)", NULL, 0, 0),
    F("data", OPT_STRING, data, "JSONL preference file", NULL, 0, 0),
    F("out", OPT_STRING, out, "JSONL file to write: the rows with id and reference log-probs", NULL, 0, 0),
    F("token-logps", OPT_BOOL, token_logps, "also write per-token arrays (ASPO needs them)", NULL, 0, 0),
    F("dtype", OPT_STRING, dtype, "storage dtype of frozen weights (auto = the file's)", DTYPES, 0, 0),
    F("batch-size", OPT_INT, batch_size, "pairs per forward", NULL, 1, 1 << 20),
    F("max-length", OPT_INT, max_length, "prompt + response tokens (0 = no limit)", NULL, 0, 1 << 24),
    F("max-prompt-length", OPT_INT, max_prompt_length, "prompt tokens (0 = no limit)", NULL, 0, 1 << 24),
    F("max-completion-length", OPT_INT, max_completion_length, "response tokens (0 = no limit)", NULL, 0, 1 << 24),
    F("truncation-mode", OPT_STRING, truncation_mode, "which end max-length keeps", TRUNCATION, 0, 0),
    F("chat-template", OPT_STRING, chat_template, "prompt template", TEMPLATES, 0, 0),
    F("no-bos", OPT_BOOL, no_bos, "do not prepend BOS to text prompts (TRL's behaviour)", NULL, 0, 0),
    F("skip-bad-lines", OPT_BOOL, skip_bad_lines, "count and skip malformed dataset lines", NULL, 0, 0),
    F("quiet", OPT_BOOL, quiet, "no progress lines", NULL, 0, 0),
    {NULL},
};

int cmd_score(int argc, char **argv)
{
    score_config cfg = score_defaults(), defaults = cfg;
    bool help;
    options_source src;
    aspo_status s = options_parse(SCORE_SPECS, &cfg, argc, argv, &help, &src);
    if (help) {
        printf("usage: aspo score --model DIR --data FILE --out FILE [--adapter DIR] [flags]\n\n"
               "Writes the rows of --data to --out, in order, each with \"id\" (its line\n"
               "number when it has none) and the summed log-probs of its chosen and rejected\n"
               "response tokens, \"ref_chosen_logps\" and \"ref_rejected_logps\" (with\n"
               "--token-logps also per token). `aspo run` on that file uses them as the\n"
               "reference instead of running the base model. Give the same data flags as\n"
               "to `aspo run`, so that the same tokens are scored.\n\n");
        options_print(stdout, SCORE_SPECS, &defaults);
        options_release(&src);
        return 0;
    }
    if (!s) {
        command_set_threads(cfg.threads);
        s = score_run(&cfg, NULL);
    }
    options_release(&src);
    return s ? command_fail(s) : 0;
}
