/* `aspo demo`: generated task + tokenizer + random tiny LLaMA, then train_run with LoRA.
 *
 * Why a random base can learn the task: the base is frozen noise, so before training it
 * prefers neither answer. The facts are a lookup from the animal's name to three values,
 * and a LoRA of rank 8 on every linear layer has room for that map; the held-out pairs
 * are unseen combinations of order, false fact and false value, so a better accuracy on
 * them means the adapter learned the facts, not the training pairs. */
#define _XOPEN_SOURCE 700 /* mkdtemp */
#include "backends/registry.h"
#include "aspo/train/demo.h"
#include "aspo/train/clock.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aspo/train/demo_task.h"
#include "aspo/model/tiny_llama.h"
#include "models/weights.h"
#include "tensor/backend.h"

/* The sizes of a run. In Release on one core the default takes ~10 s and reaches a
 * held-out accuracy of 0.92-1.0 over seeds; quick takes ~2 s and reaches 0.85-0.975. */
typedef struct demo_plan {
    int animals, pairs;
    long epochs, batch_size;
    double lr, eval_split;
} demo_plan;

static const demo_plan FULL = {.animals = 16, .pairs = 600, .epochs = 15, .batch_size = 8,
                               .lr = 2e-3, .eval_split = 0.2};
static const demo_plan QUICK = {.animals = 6, .pairs = 200, .epochs = 8, .batch_size = 8,
                                .lr = 3e-3, .eval_split = 0.2};

/* The model: 2 layers, hidden 64; vocab and BOS/EOS come from the generated tokenizer. */
static const tiny_llama_spec MODEL = {.layers = 2, .dim = 64, .heads = 4, .kv_heads = 4,
                                      .ffn = 172, .max_positions = 128, .bos_id = 1,
                                      .eos_id = 2, .pad_id = -1};

demo_options demo_defaults(void)
{
    return (demo_options){.backend = "cpu", .loss = "aspo", .seed = 42};
}

/* Held-out pairs by the trainer's split rule: floor(eval_split * n), at least one. */
static long held_out(const demo_plan *p)
{
    long n = (long)(p->eval_split * p->pairs);
    return n > 0 ? n : 1;
}

static void join(char *dst, size_t cap, const char *dir, const char *name)
{
    snprintf(dst, cap, "%s/%s", dir, name);
}

/* The train_config of the demo: the trainer's defaults with the demo's sizes; alpha 0
 * because the pairs are text only (ASPO weights each sentence by its perplexity only). */
static train_config demo_config(const demo_options *o, const demo_plan *p, const char *model,
                                const char *data, const char *out)
{
    train_config c = train_defaults();
    c.backend = o->backend;
    c.model = model;
    c.data = data;
    c.out = out;
    c.overwrite = true; /* the demo's directory is its own: each run replaces the last */
    c.loss = o->loss;
    c.alpha = 0;
    c.unit = "sentence";
    c.lora_r = 8;
    c.lora_alpha = 16;
    c.lora_dropout = 0; /* faster learning; determinism would hold with dropout too */
    c.batch_size = p->batch_size;
    c.epochs = o->epochs > 0 ? o->epochs : p->epochs;
    c.max_steps = o->steps;
    c.lr = p->lr;
    c.eval_split = p->eval_split;
    c.seed = o->seed;
    c.threads = o->threads;
    c.quiet = o->quiet;
    long per_epoch = (p->pairs - held_out(p) + p->batch_size - 1) / p->batch_size;
    long total = c.max_steps > 0 ? c.max_steps : c.epochs * per_epoch;
    c.logging_steps = total / 10 > 0 ? total / 10 : 1; /* about ten progress lines */
    return c;
}

static void print_header(const demo_options *o, const demo_plan *p, int vocab,
                         const char *dir, bool removed)
{
    char prompt[256], chosen[256], rejected[256];
    printf("aspo demo: %s with LoRA on a tiny random LLaMA; backend %s, threads %d, seed %ld\n",
           strcmp(o->loss, "dpo") ? "ASPO (sentence-level weights)" : "DPO", o->backend,
           o->threads > 0 ? (int)o->threads : omp_get_max_threads(), o->seed);
    demo_task_describe(stdout, p->animals);
    if (!demo_task_pair((uint64_t)o->seed, p->animals, 0, prompt, chosen, rejected, sizeof prompt))
        printf("  prompt:   %s\n  chosen:   %s\n  rejected: %s\n", prompt, chosen, rejected);
    printf("model: LLaMA, %lld layers, hidden %lld, vocabulary %d, random weights (frozen); "
           "LoRA r=8 on every linear layer\n",
           (long long)MODEL.layers, (long long)MODEL.dim, vocab);
    printf("files: %s%s\n", dir, removed ? " (removed at the end; --keep keeps them)" : "");
    fflush(stdout);
}

/* Writes the task, tokenizer and model, trains, and fills r. dir exists. */
static aspo_status run_in(const demo_options *o, const demo_plan *p, const char *dir,
                          bool removed, demo_result *r)
{
    char model[4200], data[4200], out[4200], tok[4300];
    join(model, sizeof model, dir, "model");
    join(data, sizeof data, dir, "pairs.jsonl");
    join(out, sizeof out, dir, "adapter");
    join(tok, sizeof tok, model, "tokenizer.json");
    tiny_llama_spec spec = MODEL;
    int vocab = 0;
    aspo_status s = weights_make_dir(model);
    if (!s) s = demo_task_write_tokenizer(tok, &vocab);
    if (!s) s = demo_task_check_tokenizer(tok);
    spec.vocab = vocab;
    if (!s) s = tiny_llama_write(model, &spec, (uint64_t)o->seed);
    if (!s) s = demo_task_write_data(data, (uint64_t)o->seed, p->animals, p->pairs);
    if (s) return s;
    if (!o->quiet) print_header(o, p, vocab, dir, removed);

    train_config cfg = demo_config(o, p, model, data, out);
    double start = now_seconds();
    if ((s = train_run(&cfg, &r->summary))) return s;
    r->pairs = p->pairs;
    r->eval_pairs = held_out(p);
    const train_summary *sum = &r->summary;
    snprintf(r->final_line, sizeof r->final_line,
             "held-out reward accuracy %.3f -> %.3f, margin %+.4f -> %+.4f (%ld of %ld pairs)",
             sum->eval_accuracy_before, sum->eval_accuracy_after, sum->eval_margin_before,
             sum->eval_margin_after, r->eval_pairs, r->pairs);
    if (!o->quiet) {
        printf("trained %ld steps in %.1f s; loss %.4f -> %.4f; adapter and metrics.jsonl in %s\n",
               sum->steps, now_seconds() - start, sum->first_loss, sum->last_loss, out);
        printf("(before training the adapter is zero, so the policy equals the reference and "
               "every reward is 0;\n ties count as misses, as in TRL)\n");
        printf("%s\n", r->final_line);
    }
    return ASPO_OK;
}

aspo_status demo_run(const demo_options *o, demo_result *result)
{
    if (strcmp(o->loss, "aspo") && strcmp(o->loss, "dpo"))
        return aspo_fail(ASPO_ERR_USAGE, "demo: --loss %s; use aspo or dpo", o->loss);
    if (!backend_get(o->backend)) return ASPO_ERR_USAGE; /* its message names the backends */
    const demo_plan *p = o->quick ? &QUICK : &FULL;
    demo_result local;
    demo_result *r = result ? result : &local;
    memset(r, 0, sizeof *r);
    char dir[4096];
    bool temporary = !o->out;
    if (temporary) {
        const char *tmp = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/aspo-demo-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(dir))
            return aspo_fail(ASPO_ERR_IO, "demo: cannot make a temporary directory %s "
                             "(set TMPDIR or pass --out DIR)", dir);
    } else {
        snprintf(dir, sizeof dir, "%s", o->out);
        aspo_status s = weights_make_dir(dir);
        if (s) return s;
    }
    bool remove_after = temporary && !o->keep;
    aspo_status s = run_in(o, p, dir, remove_after, r);
    if (remove_after) weights_remove_dir(dir); /* the mkdtemp directory of this run */
    return s;
}
