/* The text-only family: a LLaMA (or any config.json that no image family claims). */
#include "aspo/model/policy_family.h"

static aspo_status detect(const char *model_dir, bool *yes)
{
    (void)model_dir;
    *yes = true; /* the last family asked: llama_open says what it cannot read */
    return ASPO_OK;
}

static aspo_status open_llama(const policy_options *o, clip_model *shared_clip, policy_model *p)
{
    (void)shared_clip;
    llama_options l = policy_language_options(o);
    aspo_status s = llama_open(o->model, &l, &p->llama);
    if (!s) p->lm = &p->llama;
    return s;
}

static void close_llama(policy_model *p)
{
    llama_close(&p->llama);
}

static const char *describe(const policy_model *p)
{
    (void)p;
    return "LLaMA";
}

static tensor *hidden(policy_model *p, const pair_batch *b, const pair_batch_input *in,
                      const float *vision)
{
    (void)b, (void)vision;
    return llama_forward_hidden(&p->llama, in->ids, in->mask, in->positions); /* (B,T,C) */
}

static aspo_status save_adapter(const policy_model *p, const char *dir)
{
    return llama_save_adapter(&p->llama, dir);
}

static aspo_status save_merged(const policy_model *p, const char *dir, dtype out_dtype)
{
    return llama_save_merged(&p->llama, dir, out_dtype);
}

const policy_family policy_llama_family = {
    .kind = "llama",
    .name = "LLaMA",
    .chat_template = "raw",
    .detect = detect,
    .open = open_llama,
    .close = close_llama,
    .describe = describe,
    .hidden = hidden,
    .save_adapter = save_adapter,
    .save_merged = save_merged,
};
