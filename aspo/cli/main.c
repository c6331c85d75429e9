/* The command line: `aspo <command> [flags]`. Usage errors exit 2, failures 1, each with
 * one `aspo: error: ...` line on stderr. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "aspo/cli/commands.h"
#include "aspo/train/demo.h"
#include "aspo/cli/options.h"
#include "aspo/model/tiny_llama.h"
#include "aspo/train/trainer.h"
#include "tensor/backend.h"

enum { EXIT_USAGE = 2 };

static const char USAGE[] =
    "usage: aspo <command> [flags]\n"
    "\n"
    "commands:\n"
    "  run         train a LoRA adapter with ASPO or DPO on a preference file\n"
    "  score       write reference log-probs of a preference file (for run)\n"
    "  merge       merge a LoRA adapter into the model's weights (transformers format)\n"
    "  demo        train ASPO on an embedded task with a tiny LLaMA (CPU, under 2 minutes)\n"
    "  init-model  write a random LLaMA checkpoint of given sizes (tests, benchmarks)\n"
    "  bench       time DPO/ASPO training steps on a random model; one JSON line\n"
    "\n"
    "Run `aspo <command> --help` for a command's flags.\n";

/* Flags every command shares. */
typedef struct common_flags {
    const char *backend;
    long threads;
} common_flags;

typedef struct demo_flags {
    common_flags common;
    long steps, epochs, seed;
    const char *out, *loss;
    bool keep, quick;
} demo_flags;

#define COMMON_SPECS(type)                                                                 \
    {"backend", OPT_STRING, offsetof(type, common.backend), "compute backend", NULL, 0, 0}, \
    {"threads", OPT_INT, offsetof(type, common.threads),                                   \
     "CPU threads for OpenMP and OpenBLAS (0 = all)", NULL, 0, 4096}

static const char *const DEMO_LOSSES[] = {"aspo", "dpo", NULL};

static const option_spec DEMO_SPECS[] = {
    COMMON_SPECS(demo_flags),
    {"steps", OPT_INT, offsetof(demo_flags, steps), "optimizer steps (0 = the epochs decide)", NULL, 0, 1e9},
    {"epochs", OPT_INT, offsetof(demo_flags, epochs), "passes over the training pairs (0 = 15, or 8 with --quick)", NULL, 0, 1e6},
    {"seed", OPT_INT, offsetof(demo_flags, seed), "seed of the task, weights, LoRA init and data order", NULL, 0, 9e18},
    {"loss", OPT_STRING, offsetof(demo_flags, loss), "preference loss", DEMO_LOSSES, 0, 0},
    {"out", OPT_STRING, offsetof(demo_flags, out), "directory for the task, model and adapter (default: a temporary one)", NULL, 0, 0},
    {"keep", OPT_BOOL, offsetof(demo_flags, keep), "keep the temporary directory", NULL, 0, 0},
    {"quick", OPT_BOOL, offsetof(demo_flags, quick), "a smaller task that trains in seconds (tests)", NULL, 0, 0},
    {NULL},
};

static int cmd_demo(int argc, char **argv)
{
    demo_options o = demo_defaults();
    demo_flags f = {{o.backend, 0}, 0, 0, o.seed, NULL, o.loss, false, false}, defaults = f;
    options_source src;
    aspo_status s;
    if (command_parse(DEMO_SPECS, &f, &defaults, "usage: aspo demo [flags]\n\n"
               "Generates a preference task whose right answers are known (facts about animals,\n"
               "the rejected answer with one fact made false), its tokenizer and a tiny random\n"
               "LLaMA, trains LoRA adapters on it with ASPO (or DPO) and prints the held-out\n"
               "reward accuracy before and after. Nothing is downloaded. Backends in this\n"
               "build: %s.\n\n",
                      argc, argv, &src, &s))
        return 0;
    if (!s) {
        command_set_threads(f.common.threads);
        o.backend = f.common.backend;
        o.threads = f.common.threads;
        o.steps = f.steps;
        o.epochs = f.epochs;
        o.seed = f.seed;
        o.loss = f.loss;
        o.out = f.out;
        o.keep = f.keep;
        o.quick = f.quick;
        s = demo_run(&o, NULL);
    }
    options_release(&src);
    return s ? command_fail(s) : 0;
}

static int cmd_run(int argc, char **argv)
{
    train_config cfg = train_defaults(), defaults = cfg;
    options_source src;
    aspo_status s;
    if (command_parse(TRAIN_SPECS, &cfg, &defaults, "usage: aspo run --model DIR --data FILE [flags]\n\n"
               "Trains a LoRA adapter on preference pairs with ASPO (default) or DPO and writes\n"
               "it in PEFT format to --out, with checkpoints and metrics.jsonl.\n\n",
                      argc, argv, &src, &s))
        return 0;
    if (!s) {
        command_set_threads(cfg.threads);
        command_set_device(cfg.device);
        static const char *const lora_flags[] = {"lora-r", "lora-alpha", "lora-targets", "rslora",
                                                 "lora-dropout"};
        for (size_t i = 0; i < sizeof lora_flags / sizeof *lora_flags; i++)
            cfg.lora_given |= options_given(TRAIN_SPECS, &src, lora_flags[i]);
        train_summary sum;
        s = train_run(&cfg, &sum);
        if (!s && !cfg.quiet && !cfg.dry_run) /* a plan printed its own report */
            fprintf(stderr, "done: %ld steps, loss %.4f -> %.4f; adapter in %s\n", sum.steps,
                    sum.first_loss, sum.last_loss, cfg.out);
    }
    options_release(&src);
    return s ? command_fail(s) : 0;
}

typedef struct init_flags {
    const char *out;
    long layers, dim, heads, kv_heads, ffn, vocab, max_positions, bos, eos, pad, seed;
} init_flags;

static const option_spec INIT_SPECS[] = {
    {"out", OPT_STRING, offsetof(init_flags, out), "directory to write", NULL, 0, 0},
    {"layers", OPT_INT, offsetof(init_flags, layers), "decoder layers", NULL, 1, 1024},
    {"dim", OPT_INT, offsetof(init_flags, dim), "hidden size", NULL, 2, 1 << 16},
    {"heads", OPT_INT, offsetof(init_flags, heads), "attention heads", NULL, 1, 1024},
    {"kv-heads", OPT_INT, offsetof(init_flags, kv_heads), "key/value heads", NULL, 1, 1024},
    {"ffn", OPT_INT, offsetof(init_flags, ffn), "intermediate size", NULL, 1, 1 << 18},
    {"vocab", OPT_INT, offsetof(init_flags, vocab), "vocabulary size", NULL, 2, 1 << 22},
    {"max-positions", OPT_INT, offsetof(init_flags, max_positions), "max_position_embeddings", NULL, 1, 1 << 22},
    {"bos", OPT_INT, offsetof(init_flags, bos), "BOS id", NULL, 0, 1 << 22},
    {"eos", OPT_INT, offsetof(init_flags, eos), "EOS id", NULL, 0, 1 << 22},
    {"pad", OPT_INT, offsetof(init_flags, pad), "pad id (-1 = none)", NULL, -1, 1 << 22},
    {"seed", OPT_INT, offsetof(init_flags, seed), "weights seed", NULL, 0, 9e18},
    {NULL},
};

static int cmd_init_model(int argc, char **argv)
{
    init_flags f = {NULL, 2, 64, 4, 2, 172, 1000, 2048, 1, 2, -1, 0}, defaults = f;
    options_source src;
    aspo_status s;
    if (command_parse(INIT_SPECS, &f, &defaults, "usage: aspo init-model --out DIR [flags]\n\n"
               "Writes config.json and model.safetensors of a LLaMA with random weights\n"
               "(normal, std 0.02). Pair it with a tokenizer through `aspo run --tokenizer`.\n\n",
                      argc, argv, &src, &s))
        return 0;
    if (!s && !f.out) s = aspo_fail(ASPO_ERR_USAGE, "init-model needs --out DIR");
    if (!s) {
        tiny_llama_spec spec = {f.layers, f.dim, f.heads, f.kv_heads, f.ffn, f.vocab,
                                f.max_positions, (int)f.bos, (int)f.eos, (int)f.pad};
        s = tiny_llama_write(f.out, &spec, (uint64_t)f.seed);
    }
    options_release(&src);
    return s ? command_fail(s) : 0;
}

int main(int argc, char **argv)
{
    /* A write past a file size limit (ulimit -f) fails with EFBIG, which aspo reports with
     * the file's name, instead of the signal ending the process without a word. */
    signal(SIGXFSZ, SIG_IGN);
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
    if (!strcmp(cmd, "run")) return cmd_run(argc - 2, argv + 2);
    if (!strcmp(cmd, "score")) return cmd_score(argc - 2, argv + 2);
    if (!strcmp(cmd, "merge")) return cmd_merge(argc - 2, argv + 2);
    if (!strcmp(cmd, "init-model")) return cmd_init_model(argc - 2, argv + 2);
    if (!strcmp(cmd, "bench")) return cmd_bench(argc - 2, argv + 2);
    fprintf(stderr, "aspo: error: unknown command '%s'; run `aspo --help`\n", cmd);
    return EXIT_USAGE;
}
