/* LLaMA: declaring the model from config.json, loading HF weights and PEFT adapters, the
 * forward pass as transformers' LlamaForCausalLM, and writing adapters and merged models. */
#define _POSIX_C_SOURCE 200809L /* strdup */
#include "llama.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "models/weights.h"
#include "tensor/autograd.h"
#include "tensor/file_open.h"
#include "tensor/json_guard.h"
#include "tensor/runtime.h"
#include "tensor/tensor_ops.h"

/* transformers' default max_shard_size "5GB". */
#define MERGED_SHARD_BYTES ((size_t)5000000000ull)

llama_options llama_defaults(void)
{
    return (llama_options){.storage_dtype = -1, .lora = {.r = 0, .alpha = 16.0f},
                           .lora_seed = 0};
}

/* ---- declaring ---- */

typedef struct open_state {
    llama_model *m;
    const peft_config *check; /* adapter_config.json whose targets must equal the options' */
    const char *check_path;
} open_state;

/* Whether module `name` gets an adapter; with an adapter config to check against, both
 * must agree. */
static aspo_status wants_lora(open_state *os, const char *name, bool is_output, bool *want)
{
    llama_model *m = os->m;
    *want = m->has_lora && peft_targets_module(&m->peft, name, is_output);
    if (m->has_lora && os->check && peft_targets_module(os->check, name, is_output) != *want)
        return aspo_fail(ASPO_ERR_USAGE, "%s: the adapter %s module %s but --lora-targets %s; "
                         "give the same targets or leave the LoRA options out to take the "
                         "adapter's", os->check_path, *want ? "leaves out" : "adapts", name,
                         *want ? "adapts it" : "does not");
    return ASPO_OK;
}

static aspo_status declare_linear(open_state *os, linear *l, const char *name, int64_t in,
                                  int64_t out, bool bias, bool is_output)
{
    llama_model *m = os->m;
    bool want = false;
    aspo_status s = linear_declare(l, &m->ps, name, in, out, bias, m->storage_dt, false);
    if (!s) s = wants_lora(os, name, is_output, &want);
    return s || !want ? s : linear_add_lora(l, &m->ps, name, &m->peft.lora);
}

static aspo_status declare_model(open_state *os)
{
    llama_model *m = os->m;
    const llama_config *c = &m->cfg;
    int64_t C = c->hidden_size, I = c->intermediate_size, D = c->head_dim;
    int64_t qdim = c->num_heads * D, kvdim = c->num_kv_heads * D;
    dtype dt = m->storage_dt;
    m->layers = calloc((size_t)c->num_layers, sizeof *m->layers);
    m->blocks = calloc((size_t)c->num_layers, sizeof *m->blocks);
    if (!m->layers || !m->blocks)
        return aspo_fail(ASPO_ERR_OOM, "no host memory for %lld layers", (long long)c->num_layers);
    const char *pre = m->name_prefix;
    char p[256], name[320];
    snprintf(name, sizeof name, "%smodel.embed_tokens", pre);
    aspo_status s = embedding_declare(&m->embed, &m->ps, name, c->vocab_size, C, dt, false);
    for (int64_t i = 0; i < c->num_layers && !s; i++) {
        llama_layer *L = &m->layers[i];
        m->blocks[i] = (llama_block_ctx){m, (int)i};
        snprintf(p, sizeof p, "%smodel.layers.%lld", pre, (long long)i);
        const struct { linear *l; const char *sub; int64_t in, out; bool bias; } lin[] = {
            {&L->q, "self_attn.q_proj", C, qdim, c->attention_bias},
            {&L->k, "self_attn.k_proj", C, kvdim, c->attention_bias},
            {&L->v, "self_attn.v_proj", C, kvdim, c->attention_bias},
            {&L->o, "self_attn.o_proj", qdim, C, c->attention_bias},
            {&L->gate, "mlp.gate_proj", C, I, c->mlp_bias},
            {&L->up, "mlp.up_proj", C, I, c->mlp_bias},
            {&L->down, "mlp.down_proj", I, C, c->mlp_bias},
        };
        snprintf(name, sizeof name, "%s.input_layernorm", p);
        s = rmsnorm_declare(&L->input_norm, &m->ps, name, C, (float)c->rms_norm_eps, dt, false);
        for (size_t k = 0; k < sizeof lin / sizeof *lin && !s; k++) {
            snprintf(name, sizeof name, "%s.%s", p, lin[k].sub);
            s = declare_linear(os, lin[k].l, name, lin[k].in, lin[k].out, lin[k].bias, false);
        }
        snprintf(name, sizeof name, "%s.post_attention_layernorm", p);
        if (!s) s = rmsnorm_declare(&L->post_attention_norm, &m->ps, name, C,
                                    (float)c->rms_norm_eps, dt, false);
    }
    snprintf(name, sizeof name, "%smodel.norm", pre);
    if (!s) s = rmsnorm_declare(&m->norm, &m->ps, name, C, (float)c->rms_norm_eps, dt, false);
    if (s) return s;
    snprintf(name, sizeof name, "%slm_head", pre);
    if (!c->tie_word_embeddings)
        return declare_linear(os, &m->lm_head, name, C, c->vocab_size, false, true);
    /* Tied: lm_head reads the embedding table; an adapter on it is declared as PEFT does. */
    m->lm_head = (linear){.weight = m->embed.weight, .in_features = C,
                          .out_features = c->vocab_size};
    bool want = false;
    s = wants_lora(os, name, true, &want);
    return s || !want ? s : linear_add_lora(&m->lm_head, &m->ps, name, &m->peft.lora);
}

static bool is_lora_weight(const tensor *t)
{
    return strstr(t->name, ".lora_A.") || strstr(t->name, ".lora_B.");
}

static bool is_base_weight(const tensor *t, void *ctx)
{
    (void)ctx;
    return !is_lora_weight(t);
}

/* Configs and tokenizer files beside the weights are read whole; the largest real ones are
 * a few tens of MB (Gemma's tokenizer.json, 33 MB). */
#define SIDE_FILE_MAX_BYTES ((uint64_t)64 << 20)

/* The whole file, NUL-terminated; *size (optional) gets its length. Only a regular file
 * within SIDE_FILE_MAX_BYTES (a FIFO as config.json would block). */
static char *read_file(const char *path, size_t *size)
{
    uint64_t n = 0;
    FILE *f = file_open_regular(path, "model file", SIDE_FILE_MAX_BYTES, &n);
    if (!f) return NULL;
    char *buf = malloc((size_t)n + 1);
    if (!buf)
        aspo_fail(ASPO_ERR_OOM, "%s: out of memory for its %llu bytes", path,
                  (unsigned long long)n);
    else if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
        aspo_fail(ASPO_ERR_IO, "%s: read failed%s", path, ferror(f) ? "" : " (it shrank)");
        free(buf);
        buf = NULL;
    } else {
        buf[n] = 0;
        if (size) *size = (size_t)n;
    }
    fclose(f);
    return buf;
}

/* LoRA setup: from the options, from the adapter's config, or both (then they must agree). */
static aspo_status setup_lora(llama_model *m, const llama_options *opt, peft_config *file_cfg,
                              const char *file_path, open_state *os)
{
    aspo_status s = ASPO_OK;
    if (opt->adapter_dir && (s = peft_config_load(opt->adapter_dir, file_cfg))) return s;
    if (opt->lora.r > 0) {
        if ((s = peft_config_init(&m->peft, &opt->lora, opt->lora_targets))) return s;
        m->has_lora = true;
        if (!opt->adapter_dir) return ASPO_OK;
        const lora_config *a = &file_cfg->lora, *b = &opt->lora;
        if (a->r != b->r || a->alpha != b->alpha || a->rslora != b->rslora)
            return aspo_fail(ASPO_ERR_USAGE, "%s: the adapter has r=%d, lora_alpha=%g, "
                             "use_rslora=%s but the options ask for r=%d, alpha=%g, rslora=%s; "
                             "leave the LoRA options out to take the adapter's", file_path,
                             a->r, (double)a->alpha, a->rslora ? "true" : "false", b->r,
                             (double)b->alpha, b->rslora ? "true" : "false");
        os->check = file_cfg;
        os->check_path = file_path;
    } else if (opt->adapter_dir) {
        m->peft = *file_cfg; /* moved: file_cfg no longer owns its lists */
        memset(file_cfg, 0, sizeof *file_cfg);
        m->has_lora = true;
    }
    return ASPO_OK;
}

/* The config: model_dir/config.json, or the spec's parsed object. */
static aspo_status read_config(llama_model *m, const char *dir, const llama_open_spec *spec)
{
    char path[4096];
    if (spec && spec->config) {
        const char *where = spec->config_where ? spec->config_where : dir;
        if (!(m->config_text = json_dumps(spec->config, JSON_INDENT(2) | JSON_SORT_KEYS)))
            return aspo_fail(ASPO_ERR_OOM, "%s: out of memory", where);
        return llama_config_from_json(spec->config, where, &m->cfg);
    }
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (!(m->config_text = read_file(path, NULL))) return aspo_error_status();
    json_error_t err;
    uint64_t mark = json_guard_mark();
    /* A key given twice would leave "which one?" to the parser. */
    json_t *root = json_loads(m->config_text, JSON_REJECT_DUPLICATES, &err);
    aspo_status oom = json_guard_check(mark, path);
    if (oom) {
        json_decref(root);
        return oom;
    }
    if (!root)
        return aspo_fail(ASPO_ERR_FORMAT, "%s: not valid JSON: %s (line %d)", path, err.text,
                         err.line);
    aspo_status s = llama_config_from_json(root, path, &m->cfg);
    json_decref(root);
    return s;
}

static int count_lora_tensors(const param_store *ps)
{
    int n = 0;
    for (int i = 0; i < ps->n; i++) n += is_lora_weight(ps->items[i]);
    return n;
}

static aspo_status open_model(llama_model *m, const char *dir, const llama_options *opt,
                              const llama_open_spec *spec, st_model *st, peft_config *file_cfg)
{
    char adapter_cfg[4096], key[512];
    if (!(m->dir = strdup(dir)) ||
        !(m->name_prefix = strdup(spec && spec->name_prefix ? spec->name_prefix : "")))
        return aspo_fail(ASPO_ERR_OOM, "out of memory");
    aspo_status s = read_config(m, dir, spec);
    if (s) return s;
    if (!opt->skip_weights && (s = st_open(dir, st))) return s;
    if (opt->skip_weights && st_open(dir, st)) aspo_error_clear(); /* a plan: header if any */
    if (opt->storage_dtype >= 0 && !dtype_is_float((dtype)opt->storage_dtype))
        return aspo_fail(ASPO_ERR_USAGE, "storage dtype %s: frozen weights are f32, bf16 or f16",
                         dtype_name((dtype)opt->storage_dtype));
    snprintf(key, sizeof key, "%smodel.embed_tokens.weight", m->name_prefix);
    int dt = opt->storage_dtype >= 0 ? opt->storage_dtype
             : st->n_files                 ? weights_file_dtype(st, key)
             : m->cfg.torch_dtype >= 0     ? m->cfg.torch_dtype
                                           : weights_config_dtype(dir);
    if (dt < 0) return aspo_error_status();
    m->storage_dt = (dtype)dt;
    m->checkpoint_layers = opt->checkpoint_layers;
    m->activation_dt = opt->activation_dtype < 0 ? m->storage_dt : (dtype)opt->activation_dtype;
    if (m->activation_dt != DT_F32 && m->activation_dt != m->storage_dt)
        return aspo_fail(ASPO_ERR_USAGE, "%s: activations in %s need frozen weights in %s (they "
                         "are %s): activations are f32 or the weights' dtype", dir,
                         dtype_name(m->activation_dt), dtype_name(m->activation_dt),
                         dtype_name(m->storage_dt));
    open_state os = {.m = m};
    snprintf(adapter_cfg, sizeof adapter_cfg, "%s/adapter_config.json",
             opt->adapter_dir ? opt->adapter_dir : "");
    param_store_init(&m->ps, runtime_backend());
    if ((s = setup_lora(m, opt, file_cfg, adapter_cfg, &os)) || (s = declare_model(&os)))
        return s;
    const peft_config *adapter = !opt->adapter_dir ? NULL : os.check ? os.check : &m->peft;
    if (spec && spec->declare_more && (s = spec->declare_more(spec->ctx, m, adapter))) return s;
    if (m->has_lora && count_lora_tensors(&m->ps) == 0)
        return aspo_fail(ASPO_ERR_USAGE, "LoRA targets match no linear layer of %s (LLaMA has "
                         "q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, "
                         "lm_head)", dir);
    if ((s = param_store_allocate(&m->ps))) return s;
    if (opt->skip_weights) return ASPO_OK; /* a plan: shapes and bytes only */
    if ((s = weights_load_store(&m->ps, st, NULL, is_base_weight, NULL))) return s;
    if (m->has_lora && (s = lora_init_weights(&m->ps, opt->lora_seed))) return s;
    if (opt->adapter_dir) s = peft_adapter_load(&m->ps, opt->adapter_dir);
    return s;
}

aspo_status llama_open(const char *model_dir, const llama_options *opt, llama_model *m)
{
    return llama_open_with(model_dir, opt, NULL, m);
}

aspo_status llama_open_with(const char *model_dir, const llama_options *opt_in,
                            const llama_open_spec *spec, llama_model *m)
{
    memset(m, 0, sizeof *m);
    llama_options opt = opt_in ? *opt_in : llama_defaults();
    st_model st = {0};
    peft_config file_cfg = {0};
    aspo_status s = open_model(m, model_dir, &opt, spec, &st, &file_cfg);
    st_close(&st);
    peft_config_free(&file_cfg);
    if (s) llama_close(m);
    return s;
}

void llama_close(llama_model *m)
{
    param_store_free(&m->ps);
    peft_config_free(&m->peft);
    free(m->layers);
    free(m->blocks);
    free(m->dir);
    free(m->config_text);
    free(m->name_prefix);
    memset(m, 0, sizeof *m);
}

/* ---- forward ---- */

/* (B,T,n*D) -> (B,n,T,D), a view. */
static tensor *split_heads(tensor *x, int64_t B, int64_t T, int64_t n, int64_t D)
{
    return tensor_permute(tensor_reshape(x, DIMS(B, T, n, D)), (const int[]){0, 2, 1, 3});
}

/* One decoder layer, x (B,T,C) -> (B,T,C); cos/sin (B or 1,T,D). */
static tensor *decoder_layer(const llama_model *m, const llama_layer *L, tensor *x,
                             tensor *cos, tensor *sin, tensor *key_mask)
{
    if (!x) return NULL;
    const llama_config *c = &m->cfg;
    int64_t B = x->shape[0], T = x->shape[1], H = c->num_heads, Hkv = c->num_kv_heads,
            D = c->head_dim;
    tensor *h = rmsnorm_forward(&L->input_norm, x);                            /* (B,T,C)     */
    tensor *q = tensor_rope(split_heads(linear_forward(&L->q, h), B, T, H, D), cos, sin);
    tensor *k = tensor_rope(split_heads(linear_forward(&L->k, h), B, T, Hkv, D), cos, sin);
    tensor *v = split_heads(linear_forward(&L->v, h), B, T, Hkv, D);          /* (B,Hkv,T,D) */
    /* Grouped-query attention reads kv head h / (H/Hkv): repeat_kv without the copy. */
    tensor *a = tensor_attention(q, k, v, key_mask, true, 1.0f / sqrtf((float)D)); /* (B,H,T,D) */
    a = tensor_reshape(tensor_permute(a, (const int[]){0, 2, 1, 3}), DIMS(B, T, H * D));
    x = tensor_add(x, linear_forward(&L->o, a));                               /* (B,T,C)     */
    h = rmsnorm_forward(&L->post_attention_norm, x);
    tensor *g = tensor_mul(tensor_silu(linear_forward(&L->gate, h)),
                           linear_forward(&L->up, h));                         /* (B,T,I)     */
    return tensor_add(x, linear_forward(&L->down, g));                         /* (B,T,C)     */
}

/* A layer as tensor_checkpoint and tensor_run_scoped call it: inputs x, cos, sin [, key_mask]. */
static tensor *checkpointed_layer(void *ctx, tensor **in, int n)
{
    const llama_block_ctx *b = ctx;
    return decoder_layer(b->m, &b->m->layers[b->layer], in[0], in[1], in[2],
                         n > 3 ? in[3] : NULL);
}

tensor *llama_forward_hidden_embeds(llama_model *m, tensor *x, tensor *key_mask,
                                    const int32_t *positions)
{
    if (!x) return NULL;
    const llama_config *c = &m->cfg;
    char buf[96];
    if (x->ndim != 3 || !dtype_is_float(x->dt) || x->shape[0] < 1 || x->shape[1] < 1 ||
        x->shape[2] != c->hidden_size) {
        aspo_fail(ASPO_ERR_SHAPE, "llama: input embeddings %s must be (B,T,%lld) float",
                  tensor_describe(x, buf, sizeof buf), (long long)c->hidden_size);
        return NULL;
    }
    if (x->dt != m->activation_dt) x = tensor_cast(x, m->activation_dt); /* (B,T,C) */
    int64_t B = x->shape[0], T = x->shape[1];
    int64_t rows = positions ? B : 1; /* default positions: one table row for all */
    if (!positions) {
        int32_t *pos = arena_alloc(&runtime_current()->host, sizeof(int32_t) * (size_t)T);
        if (!pos) return NULL;
        for (int64_t t = 0; t < T; t++) pos[t] = (int32_t)t;
        positions = pos;
    }
    tensor *cos = NULL, *sin = NULL;
    if (tensor_rope_tables(positions, rows, T, c->head_dim, c->rope_theta,
                           c->rope_linear_factor, &cos, &sin))
        return NULL;                                                     /* (B or 1,T,D) */
    for (int64_t l = 0; l < c->num_layers && x; l++) {
        tensor *in[4] = {x, cos, sin, key_mask};
        int n_in = key_mask ? 4 : 3;
        /* Without a tape a layer's intermediates die with it (the reference pass). */
        void *block = &m->blocks[l];
        if (m->checkpoint_layers) x = tensor_checkpoint(checkpointed_layer, block, in, n_in);
        else if (!autograd_enabled()) x = tensor_run_scoped(checkpointed_layer, block, in, n_in);
        else x = decoder_layer(m, &m->layers[l], x, cos, sin, key_mask);
    }
    return rmsnorm_forward(&m->norm, x);                                 /* (B,T,C)      */
}

tensor *llama_forward_hidden(llama_model *m, tensor *ids, tensor *key_mask,
                             const int32_t *positions)
{
    if (!ids) return NULL;
    char buf[96];
    if (ids->ndim != 2 || ids->dt != DT_I32 || ids->shape[0] < 1 || ids->shape[1] < 1) {
        aspo_fail(ASPO_ERR_SHAPE, "llama: ids %s must be (B,T) i32",
                  tensor_describe(ids, buf, sizeof buf));
        return NULL;
    }
    return llama_forward_hidden_embeds(m, embedding_forward(&m->embed, ids), key_mask,
                                       positions);                       /* (B,T,C)      */
}

tensor *llama_lm_head(llama_model *m, tensor *hidden)
{
    tensor *logits = linear_forward(&m->lm_head, hidden); /* (...,C) -> (...,V) */
    /* f32 whatever the activations, as LlamaForCausalLM's logits.float(). */
    return logits && logits->dt != DT_F32 ? tensor_cast(logits, DT_F32) : logits;
}

tensor *llama_forward(llama_model *m, tensor *ids, tensor *key_mask, const int32_t *positions)
{
    return llama_lm_head(m, llama_forward_hidden(m, ids, key_mask, positions)); /* (B,T,V) */
}

/* ---- writing ---- */

aspo_status llama_save_adapter(const llama_model *m, const char *out_dir)
{
    if (!m->has_lora)
        return aspo_fail(ASPO_ERR_USAGE, "%s: the model was opened without a LoRA adapter",
                         out_dir);
    return peft_adapter_save(&m->ps, &m->peft, m->dir, out_dir);
}

/* Copies dir/name to out_dir/name when it exists; a name "sub/file" creates out_dir/sub. */
static aspo_status copy_if_present(const char *dir, const char *out_dir, const char *name)
{
    char from[4096], to[4096];
    snprintf(from, sizeof from, "%s/%s", dir, name);
    snprintf(to, sizeof to, "%s/%s", out_dir, name);
    if (access(from, F_OK) != 0) return ASPO_OK;
    const char *slash = strrchr(name, '/');
    if (slash) {
        char sub[4096];
        snprintf(sub, sizeof sub, "%s/%.*s", out_dir, (int)(slash - name), name);
        aspo_status s = weights_make_dir(sub);
        if (s) return s;
    }
    size_t n = 0;
    char *data = read_file(from, &n);
    if (!data) return aspo_error_status();
    aspo_status s = weights_write_file(to, data, n);
    free(data);
    return s;
}

aspo_status llama_save_merged_as(const llama_model *m, const llama_merged_files *f,
                                 const char *out_dir, dtype out_dtype)
{
    if (!dtype_is_float(out_dtype))
        return aspo_fail(ASPO_ERR_USAGE, "%s: merged weights are f32, bf16 or f16, not %s",
                         out_dir, dtype_name(out_dtype));
    float scaling = m->has_lora ? lora_scaling(&m->peft.lora) : 0.0f;
    aspo_status s = peft_merge_save(&m->ps, scaling, out_dir, out_dtype, MERGED_SHARD_BYTES,
                                    NULL, NULL);
    if (s) return s;
    /* config.json: the given config with torch_dtype set to what was written. */
    json_error_t err;
    uint64_t mark = json_guard_mark();
    json_t *root = json_loads(f->config_text, 0, &err);
    const char *torch_name = out_dtype == DT_F32 ? "float32"
                             : out_dtype == DT_BF16 ? "bfloat16" : "float16";
    char *text = NULL;
    if (!root || json_object_set_new(root, "torch_dtype", json_string(torch_name)) ||
        !(text = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS)))
        s = aspo_fail(ASPO_ERR_OOM, "%s: cannot build config.json", out_dir);
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", out_dir);
    if (!s) s = json_guard_check(mark, path);
    if (!s) s = weights_write_file(path, text, strlen(text));
    free(text);
    json_decref(root);
    for (size_t i = 0; i < f->n_files && !s; i++) s = copy_if_present(m->dir, out_dir, f->files[i]);
    return s;
}

aspo_status llama_save_merged(const llama_model *m, const char *out_dir, dtype out_dtype)
{
    static const char *const files[] = {LLAMA_TOKENIZER_FILES, "generation_config.json"};
    llama_merged_files f = {m->config_text, files, sizeof files / sizeof *files};
    return llama_save_merged_as(m, &f, out_dir, out_dtype);
}
