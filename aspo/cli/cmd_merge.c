/* `aspo merge`: a LLaMA checkpoint with a PEFT LoRA adapter merged into its weights
 * (W + scaling * B A), written as safetensors + config.json that transformers'
 * LlamaForCausalLM.from_pretrained and `aspo ... --model` load. */
#define _XOPEN_SOURCE 700 /* realpath */
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aspo/cli/commands.h"
#include "aspo/cli/options.h"
#include "aspo/model/policy.h"
#include "backends/registry.h"
#include "tensor/runtime.h"

typedef struct merge_flags {
    const char *config, *backend, *model, *adapter, *out, *dtype;
    long threads;
    bool quiet;
} merge_flags;

static const char *const DTYPES[] = {"auto", "f32", "bf16", "f16", NULL};

#define F(name, kind, field, help, choices, lo, hi) \
    {name, kind, offsetof(merge_flags, field), help, choices, lo, hi}

static const option_spec MERGE_SPECS[] = {
    F("config", OPT_STRING, config, "JSON file whose keys are these flags' names", NULL, 0, 0),
    F("backend", OPT_STRING, backend, "compute backend", NULL, 0, 0),
    F("threads", OPT_INT, threads, "CPU threads (0 = all)", NULL, 0, 4096),
    F("model", OPT_STRING, model, "Hugging Face LLaMA directory (config.json, safetensors)", NULL, 0, 0),
    F("adapter", OPT_STRING, adapter, "PEFT LoRA adapter directory to merge", NULL, 0, 0),
    F("out", OPT_STRING, out, "directory to write the merged model to", NULL, 0, 0),
    F("dtype", OPT_STRING, dtype, "dtype of the written weights (auto = the model's torch_dtype)", DTYPES, 0, 0),
    F("quiet", OPT_BOOL, quiet, "no summary line", NULL, 0, 0),
    {NULL},
};

/* Whether a and b name the same existing directory. */
static bool same_dir(const char *a, const char *b)
{
    char ra[PATH_MAX], rb[PATH_MAX];
    return realpath(a, ra) && realpath(b, rb) && !strcmp(ra, rb);
}

static aspo_status merge(const merge_flags *f)
{
    if (!f->model || !f->adapter || !f->out)
        return aspo_fail(ASPO_ERR_USAGE, "merge needs --model DIR, --adapter DIR and --out DIR");
    if (same_dir(f->out, f->model) || same_dir(f->out, f->adapter))
        return aspo_fail(ASPO_ERR_USAGE, "--out %s is the %s directory; merging writes "
                         "model.safetensors and config.json, so give a new directory", f->out,
                         same_dir(f->out, f->model) ? "--model" : "--adapter");
    backend *be = backend_get(f->backend);
    if (!be) return ASPO_ERR_USAGE;
    runtime_init(be, 0);
    policy_options o = policy_defaults(); /* frozen weights as stored: the merge sums in f32 */
    o.model = f->model;
    o.adapter = f->adapter;
    policy_model p;
    aspo_status s = policy_open(&o, &p);
    dtype dt = DT_F32;
    if (!s) {
        /* auto: what the checkpoint says it is, else what its files hold. */
        const llama_model *m = p.lm;
        dt = strcmp(f->dtype, "auto") ? (dtype)dtype_from_name(f->dtype)
             : m->cfg.torch_dtype >= 0 ? (dtype)m->cfg.torch_dtype : m->storage_dt;
        s = policy_save_merged(&p, f->out, dt);
    }
    if (!s && !f->quiet)
        fprintf(stderr, "merged %s (r=%d, alpha=%g%s) into %s: %s weights in %s\n", f->adapter,
                p.lm->peft.lora.r, (double)p.lm->peft.lora.alpha,
                p.lm->peft.lora.rslora ? ", rsLoRA" : "", f->model, dtype_name(dt), f->out);
    policy_close(&p); /* a no-op after a failed open */
    runtime_shutdown();
    return s;
}

int cmd_merge(int argc, char **argv)
{
    merge_flags f = {.backend = "cpu", .dtype = "auto"}, defaults = f;
    options_source src;
    aspo_status s;
    if (command_parse(MERGE_SPECS, &f, &defaults, "usage: aspo merge --model DIR --adapter DIR --out DIR [flags]\n\n"
               "Merges a PEFT LoRA adapter into the model's weights (W + scaling * B A) and\n"
               "writes model.safetensors (sharded above 5 GB) and config.json, plus the\n"
               "model's tokenizer and generation files, to --out: a plain checkpoint that\n"
               "transformers' LlamaForCausalLM.from_pretrained and `aspo --model` load.\n\n",
                      argc, argv, &src, &s))
        return 0;
    if (!s) {
        command_set_threads(f.threads);
        s = merge(&f);
    }
    options_release(&src);
    return s ? command_fail(s) : 0;
}
