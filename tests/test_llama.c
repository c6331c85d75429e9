/* LLaMA + PEFT LoRA against transformers 4.44.2 / PEFT 0.12.0 (fixtures from
 * tests/parity/make_llama_fixtures.py): config parsing, logits, sequence log-probs and LoRA
 * gradients, adapters off, bf16 storage, checkpointing, adapters written and read both
 * ways, merging, and bad input. argv[1] = tests/fixtures/llama; argv[2] (optional) = a
 * directory to keep aspo's adapter and merged model in, for the script's --check-exports. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "backends/registry.h"
#include "models/llama.h"
#include "models/weights.h"
#include "tensor/autograd.h"
#include "tensor/runtime.h"
#include "tensor/tensor_ops.h"
#include "tests/test_support.h"

static const char *fixtures, *tmp_root;

static const char *fx(const char *name) { return join(fixtures, name); }
static const char *tmp(const char *name) { return join(tmp_root, name); }

/* ---- the fixture's inputs and outputs ---- */

typedef struct fixture {
    st_model out;
    const int32_t *ids, *mask, *response, *positions;
    int64_t B, T, V;
    bool use_positions;
} fixture;

static bool fixture_open(fixture *f, const char *name, bool use_positions)
{
    char file[256];
    snprintf(file, sizeof file, "%s_outputs.safetensors", name);
    memset(f, 0, sizeof *f);
    if (st_open(fx(file), &f->out)) {
        CHECK(0, "open %s: %s", file, aspo_error_message());
        return false;
    }
    const st_entry *ids = st_find(&f->out, "ids"), *logits = st_find(&f->out, "logits");
    f->ids = ids->data;
    f->mask = st_find(&f->out, "attention_mask")->data;
    f->response = st_find(&f->out, "response_mask")->data;
    f->positions = st_find(&f->out, "position_ids")->data;
    f->B = ids->shape[0];
    f->T = ids->shape[1];
    f->V = logits->shape[2];
    f->use_positions = use_positions;
    return true;
}

static const float *fixture_f32(const fixture *f, const char *key)
{
    return fx_f32(&f->out, key, -1);
}

/* Logits (B,T,V) on the host; returns false on failure. */
static bool run_logits(llama_model *m, const fixture *f, float *out)
{
    bool prev = autograd_set_enabled(false);
    tensor *ids = tensor_from_host(DT_I32, DIMS(f->B, f->T), f->ids);
    tensor *mask = tensor_from_host(DT_I32, DIMS(f->B, f->T), f->mask);
    tensor *logits = llama_forward(m, ids, mask, f->use_positions ? f->positions : NULL);
    aspo_status s = logits ? tensor_to_host(logits, out) : aspo_error_status();
    autograd_set_enabled(prev);
    CHECK(s == ASPO_OK, "forward: %s", aspo_error_message());
    end_step();
    return s == ASPO_OK;
}

/* Sum over response tokens of log p(ids[t] | <t) per row into seq (B), then backward of
 * their sum: the LoRA gradients land in the parameters' grads. */
static void run_logprobs_backward(llama_model *m, const fixture *f, double *seq)
{
    int64_t B = f->B, T = f->T, N = B * (T - 1);
    int32_t *targets = malloc(sizeof(int32_t) * (size_t)N);
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t + 1 < T; t++)
            targets[b * (T - 1) + t] = f->response[b * T + t + 1] ? f->ids[b * T + t + 1] : -100;
    tensor *ids = tensor_from_host(DT_I32, DIMS(B, T), f->ids);
    tensor *mask = tensor_from_host(DT_I32, DIMS(B, T), f->mask);
    tensor *logits = llama_forward(m, ids, mask, f->use_positions ? f->positions : NULL);
    tensor *flat = tensor_reshape(tensor_slice(logits, 1, 0, T - 1), DIMS(N, f->V)); /* (N,V) */
    tensor *lp = tensor_gather_logprobs(flat, tensor_from_host(DT_I32, DIMS(N), targets), -100);
    tensor *per_seq = tensor_sum(tensor_reshape(lp, DIMS(B, T - 1)), 1, false);     /* (B) */
    float host[8] = {0};
    CHECK(per_seq && B <= 8 && tensor_to_host(per_seq, host) == ASPO_OK, "logprobs: %s",
          aspo_error_message());
    for (int64_t b = 0; b < B; b++) seq[b] = host[b];
    CHECK(param_store_zero_grad(&m->ps) == ASPO_OK, "zero grad");
    CHECK(tensor_backward(tensor_sum_all(per_seq)) == ASPO_OK, "backward: %s",
          aspo_error_message());
    end_step();
    free(targets);
}

/* Every LoRA gradient against the fixture's grad.<PEFT key>; returns the worst error. */
static double lora_grad_err(const llama_model *m, const fixture *f, int *count)
{
    double worst = 0;
    *count = 0;
    for (int i = 0; i < m->ps.n; i++) {
        const tensor *t = m->ps.items[i];
        if (!strstr(t->name, ".lora_")) continue;
        char key[512];
        snprintf(key, sizeof key, "grad.base_model.model.%s", t->name);
        const float *want = fixture_f32(f, key);
        int64_t n = tensor_numel(t);
        float *got = malloc(sizeof(float) * (size_t)n);
        CHECK(want && tensor_to_host_f32(t->grad, got) == ASPO_OK, "grad of %s", t->name);
        if (want) worst = fmax(worst, rel_err(got, want, n));
        free(got);
        (*count)++;
    }
    return worst;
}

/* ---- config ---- */

static void write_text(const char *path, const char *text)
{
    CHECK(write_file_text(path, text), "write %s", path);
}

static void test_config(void)
{
    llama_config c;
    CHECK(llama_config_load(fx("tiny/config.json"), &c) == ASPO_OK, "tiny config: %s",
          aspo_error_message());
    CHECK(c.hidden_size == 32 && c.intermediate_size == 48 && c.num_layers == 3 &&
          c.num_heads == 4 && c.num_kv_heads == 2 && c.head_dim == 8 && c.vocab_size == 96,
          "tiny sizes");
    CHECK(c.rms_norm_eps == 1e-6 && c.rope_theta == 10000 && c.rope_linear_factor == 1 &&
          !c.tie_word_embeddings && c.torch_dtype == DT_F32, "tiny settings");
    CHECK(c.bos_token_id == 1 && c.n_eos == 1 && c.eos_token_ids[0] == 2 && c.pad_token_id == 0,
          "tiny token ids");
    CHECK(llama_config_load(fx("tied/config.json"), &c) == ASPO_OK, "tied config");
    CHECK(c.tie_word_embeddings && c.rope_linear_factor == 2.0 && c.rope_theta == 500 &&
          c.num_kv_heads == 1 && c.torch_dtype == DT_BF16, "tied settings");

    /* Unknown fields are ignored; defaults as transformers'; eos may be a list. */
    write_text(tmp("cfg_ok.json"),
               "{\"hidden_size\": 64, \"intermediate_size\": 96, \"num_hidden_layers\": 2,"
               " \"num_attention_heads\": 4, \"vocab_size\": 50, \"rms_norm_eps\": 1e-5,"
               " \"head_dim\": 32, \"eos_token_id\": [7, 9], \"pad_token_id\": null,"
               " \"some_future_field\": {\"x\": [1, 2]}, \"rope_scaling\": null}");
    CHECK(llama_config_load(tmp("cfg_ok.json"), &c) == ASPO_OK, "unknown fields: %s",
          aspo_error_message());
    CHECK(c.num_kv_heads == 4 && c.head_dim == 32 && c.rope_theta == 10000 &&
          c.max_position_embeddings == 2048 && c.n_eos == 2 && c.eos_token_ids[1] == 9 &&
          c.pad_token_id == -1 && c.bos_token_id == 1, "defaults");

    write_text(tmp("cfg_missing.json"),
               "{\"hidden_size\": 64, \"intermediate_size\": 96, \"num_hidden_layers\": 2,"
               " \"vocab_size\": 50, \"rms_norm_eps\": 1e-5}");
    expect_error(llama_config_load(tmp("cfg_missing.json"), &c), ASPO_ERR_FORMAT,
                 "missing field", "cfg_missing.json", "num_attention_heads");
    write_text(tmp("cfg_rope.json"),
               "{\"hidden_size\": 64, \"intermediate_size\": 96, \"num_hidden_layers\": 2,"
               " \"num_attention_heads\": 4, \"vocab_size\": 50, \"rms_norm_eps\": 1e-5,"
               " \"rope_scaling\": {\"rope_type\": \"dynamic\", \"factor\": 2.0}}");
    expect_error(llama_config_load(tmp("cfg_rope.json"), &c), ASPO_ERR_UNSUPPORTED,
                 "rope type", "cfg_rope.json", "dynamic");
    write_text(tmp("cfg_gqa.json"),
               "{\"hidden_size\": 64, \"intermediate_size\": 96, \"num_hidden_layers\": 2,"
               " \"num_attention_heads\": 4, \"num_key_value_heads\": 3, \"vocab_size\": 50,"
               " \"rms_norm_eps\": 1e-5}");
    expect_error(llama_config_load(tmp("cfg_gqa.json"), &c), ASPO_ERR_FORMAT, "kv heads",
                 "cfg_gqa.json", "num_key_value_heads");
    expect_error(llama_config_load(tmp("no_such.json"), &c), ASPO_ERR_IO, "no file",
                 "no_such.json");
}

/* PEFT's target matching: suffixes, all-linear, a whole-name regex, layers_to_transform. */
static void test_targets(void)
{
    peft_config c;
    lora_config l = {.r = 2, .alpha = 4};
    const char *q0 = "model.layers.0.self_attn.q_proj", *q1 = "model.layers.1.self_attn.q_proj";
    CHECK(peft_config_init(&c, &l, "q_proj,mlp.up_proj") == ASPO_OK, "init");
    CHECK(peft_targets_module(&c, q1, false) && peft_targets_module(&c, "model.layers.3.mlp.up_proj",
          false) && !peft_targets_module(&c, "model.layers.0.self_attn.k_proj", false) &&
          !peft_targets_module(&c, "model.layers.0.self_attn.xq_proj", false), "suffixes");
    peft_config_free(&c);
    CHECK(peft_config_init(&c, &l, "all-linear") == ASPO_OK, "init");
    CHECK(peft_targets_module(&c, q0, false) && !peft_targets_module(&c, "lm_head", true),
          "all-linear leaves lm_head out");
    peft_config_free(&c);
    write_text(tmp("adapter_config.json"),
               "{\"peft_type\": \"LORA\", \"r\": 2, \"lora_alpha\": 4, \"target_modules\":"
               " \".*layers\\\\.1\\\\..*(q|v)_proj\", \"bias\": \"none\", \"new_key\": 1}");
    CHECK(peft_config_load(tmp_root, &c) == ASPO_OK, "regex config: %s", aspo_error_message());
    CHECK(c.target_regex && peft_targets_module(&c, q1, false) &&
          !peft_targets_module(&c, q0, false) &&
          !peft_targets_module(&c, "model.layers.1.self_attn.o_proj", false), "regex");
    peft_config_free(&c);
    write_text(tmp("adapter_config.json"),
               "{\"peft_type\": \"LORA\", \"r\": 2, \"lora_alpha\": 4, \"target_modules\":"
               " [\"q_proj\"], \"layers_to_transform\": [1, 2]}");
    CHECK(peft_config_load(tmp_root, &c) == ASPO_OK && peft_targets_module(&c, q1, false) &&
          !peft_targets_module(&c, q0, false), "layers_to_transform");
    peft_config_free(&c);
    write_text(tmp("adapter_config.json"),
               "{\"peft_type\": \"LORA\", \"r\": 2, \"lora_alpha\": 4, \"target_modules\":"
               " [\"q_proj\"], \"use_dora\": true}");
    expect_error(peft_config_load(tmp_root, &c), ASPO_ERR_UNSUPPORTED, "dora",
                 "adapter_config.json", "use_dora");
    write_text(tmp("adapter_config.json"), "{\"peft_type\": \"LORA\", \"r\": 2}");
    expect_error(peft_config_load(tmp_root, &c), ASPO_ERR_FORMAT, "no alpha",
                 "adapter_config.json", "lora_alpha");
}

/* ---- parity ---- */

/* f32 on CPU against transformers in f32: per-op rounding of ~6e-8 relative compounds
 * through 3 layers (norms, softmax, GEMMs over K <= 48) to a few 1e-7 of the largest
 * logit; 1e-5 leaves an order of magnitude of room without hiding a wrong op (a wrong
 * mask, eps or rope angle moves logits by 1e-2 or more). */
static const double LOGIT_TOL = 1e-5;
/* Sums of up to 7 log-probs of magnitude ~3: the same relative bound. */
static const double SEQ_TOL = 1e-5;
/* Gradients pass back through the same depth plus softmax and norm backward; measured
 * ~1e-6 relative to each tensor's largest entry; 2e-5 leaves room. */
static const double GRAD_TOL = 2e-5;

/* Logits with adapters on against `on_key` and off against base_logits; then seq log-probs
 * and LoRA gradients when grads. */
static void check_parity(llama_model *m, fixture *f, const char *what, const char *on_key,
                         bool grads)
{
    int64_t n = f->B * f->T * f->V;
    float *logits = malloc(sizeof(float) * (size_t)n);
    if (run_logits(m, f, logits)) {
        double e = rel_err(logits, fixture_f32(f, on_key), n);
        printf("  %s: logits rel err %.2e\n", what, e);
        CHECK(e <= LOGIT_TOL, "%s: logits rel err %g > %g", what, e, LOGIT_TOL);
        bool prev = lora_set_enabled(false);
        run_logits(m, f, logits);
        lora_set_enabled(prev);
        e = rel_err(logits, fixture_f32(f, "base_logits"), n);
        printf("  %s: adapters off vs base logits rel err %.2e\n", what, e);
        CHECK(e <= LOGIT_TOL, "%s: adapters off rel err %g", what, e);
    }
    free(logits);
    if (!grads) return;
    double seq[8];
    run_logprobs_backward(m, f, seq);
    const float *want = fixture_f32(f, "seq_logprobs");
    for (int64_t b = 0; want && b < f->B; b++)
        CHECK_CLOSE(seq[b], want[b], SEQ_TOL, "seq logprob");
    int count = 0;
    double e = lora_grad_err(m, f, &count);
    printf("  %s: %d LoRA grads, worst rel err %.2e\n", what, count, e);
    CHECK(count > 0 && e <= GRAD_TOL, "%s: LoRA grad rel err %g > %g", what, e, GRAD_TOL);
}

static void test_tiny(void)
{
    fixture f;
    if (!fixture_open(&f, "tiny", false)) return;
    llama_model m;
    llama_options o = llama_defaults();
    o.adapter_dir = fx("tiny_adapter"); /* r, alpha, targets from PEFT's adapter_config.json */
    aspo_status s = llama_open(fx("tiny"), &o, &m);
    CHECK(s == ASPO_OK, "open tiny: %s", aspo_error_message());
    if (s) goto done;
    CHECK(m.has_lora && m.peft.lora.r == 4 && m.peft.lora.alpha == 8.0f && m.storage_dt == DT_F32,
          "adapter config taken");
    CHECK(param_store_count(&m.ps, true) == 3 * (2 * 4 * (32 + 32) + 2 * 4 * (32 + 16) +
                                                 2 * 4 * (32 + 48) + 4 * (48 + 32)),
          "LoRA on all seven projections");
    check_parity(&m, &f, "tiny f32", "logits", true);
    llama_close(&m);

    /* The same with the LoRA options given too (they agree with the adapter), and each
     * decoder layer checkpointed: the same numbers. */
    o.lora = (lora_config){.r = 4, .alpha = 8.0f};
    o.lora_targets = "all-linear";
    o.checkpoint_layers = true;
    s = llama_open(fx("tiny"), &o, &m);
    CHECK(s == ASPO_OK, "open tiny checkpointed: %s", aspo_error_message());
    if (!s) check_parity(&m, &f, "tiny checkpointed", "logits", true);
    llama_close(&m);

    /* bf16 storage of the frozen weights computes, in f32, the model whose frozen weights
     * are rounded to bf16: the fixture's bf16_logits (torch, same rounding), within the f32
     * tolerance. Against the f32 logits that rounding alone moves the largest logit by
     * 1.2e-2 relative (2^-9 per weight through 3 layers, same in torch): bound 3e-2. */
    o = llama_defaults();
    o.adapter_dir = fx("tiny_adapter");
    o.storage_dtype = DT_BF16;
    s = llama_open(fx("tiny"), &o, &m);
    CHECK(s == ASPO_OK && m.embed.weight->dt == DT_BF16 && m.layers[0].q.lora_A->dt == DT_F32,
          "open tiny bf16: %s", aspo_error_message());
    if (!s) {
        int64_t n = f.B * f.T * f.V;
        float *logits = malloc(sizeof(float) * (size_t)n);
        if (run_logits(&m, &f, logits)) {
            double e = rel_err(logits, fixture_f32(&f, "bf16_logits"), n);
            double e32 = rel_err(logits, fixture_f32(&f, "logits"), n);
            printf("  tiny bf16 storage: logits rel err %.2e (vs f32 weights %.2e)\n", e, e32);
            CHECK(e <= LOGIT_TOL, "bf16 storage rel err %g", e);
            CHECK(e32 <= 3e-2 && e32 > 0, "bf16 storage vs f32 rel err %g", e32);
        }
        free(logits);
    }
    llama_close(&m);
done:
    st_close(&f.out);
}

/* Half-precision activations (--activation-dtype bf16) against transformers + PEFT with
 * the model loaded in bf16 and the step under torch.autocast(bf16), f32 adapter weights
 * (tests/parity/make_llama_bf16_fixtures.py). Both compute with values rounded to 8
 * mantissa bits at different points (torch rounds the attention scores and probabilities
 * and each elementwise op; aspo's attention and norms round only their outputs), so each
 * sits about as far from the other as from the f32 result: torch's bf16 is 2e-2 (logits)
 * and up to 9e-2 (a LoRA gradient, relative to its largest entry) from its f32. The
 * bounds take that bf16 noise with room (x2) but not a wrong op, which moves logits by
 * 1e-1 or more (a missing cast to f32 of the logits fails the dtype check first). */
static void test_bf16_activations(void)
{
    fixture f, f32;
    if (!fixture_open(&f, "tiny_bf16", false)) return;
    if (!fixture_open(&f32, "tiny", false)) {
        st_close(&f.out);
        return;
    }
    llama_model m;
    llama_options o = llama_defaults();
    o.adapter_dir = fx("tiny_adapter");
    o.storage_dtype = DT_BF16;
    o.activation_dtype = -1; /* the weights' dtype */
    aspo_status s = llama_open(fx("tiny"), &o, &m);
    CHECK(s == ASPO_OK && m.activation_dt == DT_BF16, "open tiny, bf16 activations: %s",
          aspo_error_message());
    if (s) goto done;
    int64_t n = f.B * f.T * f.V;
    float *logits = malloc(sizeof(float) * (size_t)n);
    if (run_logits(&m, &f, logits)) {
        double e = rel_err(logits, fixture_f32(&f, "logits"), n);
        double e32 = rel_err(logits, fixture_f32(&f32, "logits"), n);
        printf("  bf16 activations: logits rel err %.2e vs torch bf16, %.2e vs f32\n", e, e32);
        CHECK(e <= 5e-2 && e32 <= 5e-2, "bf16 activations: logits rel err %g / %g", e, e32);
        CHECK(e > 0 && e32 > 0, "bf16 activations do round: %g / %g", e, e32);
    }
    free(logits);
    double seq[8];
    run_logprobs_backward(&m, &f, seq);
    const float *want = fixture_f32(&f, "seq_logprobs");
    for (int64_t b = 0; want && b < f.B; b++)
        CHECK(fabs(seq[b] - want[b]) <= 0.15, "bf16 seq logprob %g vs torch %g", seq[b], want[b]);
    int count = 0;
    double e = lora_grad_err(&m, &f, &count), e32 = lora_grad_err(&m, &f32, &count);
    printf("  bf16 activations: %d LoRA grads, worst rel err %.2e vs torch bf16, %.2e vs f32\n",
           count, e, e32);
    CHECK(count == 42 && e <= 0.2 && e32 <= 0.2, "bf16 LoRA grads rel err %g / %g", e, e32);
    llama_close(&m);

    /* Activations in a half dtype need frozen weights in it. */
    o.storage_dtype = DT_F32;
    o.activation_dtype = DT_BF16;
    expect_error(llama_open(fx("tiny"), &o, &m), ASPO_ERR_USAGE, "bf16 activations, f32 weights",
                 "activations in bf16", "frozen weights in bf16");
done:
    st_close(&f.out);
    st_close(&f32.out);
}

/* Sharded bf16 checkpoint, tied lm_head, linear RoPE scaling, explicit positions, MQA,
 * rsLoRA on three targets. The weights are bf16-exact, so bf16 storage computes the same
 * f32 values as the fixture did. */
static void test_tied(void)
{
    fixture f;
    if (!fixture_open(&f, "tied", true)) return;
    for (int k = 0; k < 2; k++) {
        llama_model m;
        llama_options o = llama_defaults();
        o.adapter_dir = fx("tied_adapter");
        o.storage_dtype = k == 0 ? -1 : DT_F32;
        aspo_status s = llama_open(fx("tied"), &o, &m);
        CHECK(s == ASPO_OK, "open tied: %s", aspo_error_message());
        if (s) continue;
        CHECK(m.storage_dt == (k == 0 ? DT_BF16 : DT_F32) && m.lm_head.weight == m.embed.weight &&
              m.peft.lora.rslora && m.layers[0].q.lora_A && !m.layers[0].k.lora_A &&
              m.layers[1].down.lora_A, "tied model as configured");
        check_parity(&m, &f, k == 0 ? "tied bf16 file" : "tied as f32", "logits", true);
        llama_close(&m);
    }
    st_close(&f.out);
}

/* ---- adapters written by aspo ---- */

/* Equal key counts and every key of a in b: the same key sets. */
static bool same_json_keys(const char *a_path, const char *b_path)
{
    json_t *a = json_load_file(a_path, 0, NULL), *b = json_load_file(b_path, 0, NULL);
    bool same = a && b && json_object_size(a) == json_object_size(b);
    const char *key;
    json_t *v;
    if (same) json_object_foreach(a, key, v) {
        if (!json_object_get(b, key)) {
            fprintf(stderr, "key %s of %s is not in %s\n", key, a_path, b_path);
            same = false;
        }
    }
    json_decref(a);
    json_decref(b);
    return same;
}

/* The two files have the same key names, shapes and dtypes. */
static bool same_st_keys(const char *a_path, const char *b_path)
{
    st_model a, b;
    if (st_open(a_path, &a)) return false;
    if (st_open(b_path, &b)) {
        st_close(&a);
        return false;
    }
    bool same = a.n_entries == b.n_entries;
    for (int i = 0; same && i < a.n_entries; i++) {
        const st_entry *x = &a.entries[i], *y = st_find(&b, x->name);
        same = y && x->ndim == y->ndim &&
               !memcmp(x->shape, y->shape, sizeof(int64_t) * (size_t)x->ndim) &&
               x->dt == y->dt;
        if (!same) fprintf(stderr, "key %s of %s differs in %s\n", x->name, a_path, b_path);
    }
    st_close(&a);
    st_close(&b);
    return same;
}

static bool lora_bitwise_equal(const llama_model *a, const llama_model *b)
{
    bool same = a->ps.n == b->ps.n;
    for (int i = 0; same && i < a->ps.n; i++) {
        const tensor *x = a->ps.items[i], *y = b->ps.items[i];
        if (!strstr(x->name, ".lora_")) continue;
        same = !strcmp(x->name, y->name) && !memcmp(x->data, y->data, tensor_nbytes(x));
    }
    return same;
}

static void test_adapter_io(const char *export_dir)
{
    fixture f;
    if (!fixture_open(&f, "tiny", false)) return;
    llama_model peft_m, ours, again;
    llama_options o = llama_defaults();
    o.adapter_dir = fx("tiny_adapter");
    CHECK(llama_open(fx("tiny"), &o, &peft_m) == ASPO_OK, "open: %s", aspo_error_message());
    const char *adapter = join(export_dir ? export_dir : tmp_root, "tiny_adapter");
    const char *a_st = join(adapter, "adapter_model.safetensors");
    const char *a_cfg = join(adapter, "adapter_config.json");
    CHECK(llama_save_adapter(&peft_m, adapter) == ASPO_OK, "save: %s", aspo_error_message());
    CHECK(same_st_keys(a_st, fx("tiny_adapter/adapter_model.safetensors")),
          "aspo's adapter has exactly PEFT's keys");
    CHECK(same_json_keys(a_cfg, fx("tiny_adapter/adapter_config.json")),
          "aspo's adapter_config.json has exactly PEFT's keys");
    json_t *cfg = json_load_file(a_cfg, 0, NULL);
    json_t *targets = json_object_get(cfg, "target_modules");
    CHECK(json_is_array(targets) && json_array_size(targets) == 7 &&
          json_integer_value(json_object_get(cfg, "r")) == 4 &&
          json_integer_value(json_object_get(cfg, "lora_alpha")) == 8 &&
          fabs(json_real_value(json_object_get(cfg, "lora_dropout")) - 0.05) < 1e-12,
          "config values");
    json_decref(cfg);

    /* Round trip: what aspo wrote loads back bitwise and gives the fixture logits. */
    o.adapter_dir = adapter;
    CHECK(llama_open(fx("tiny"), &o, &ours) == ASPO_OK, "reopen: %s", aspo_error_message());
    CHECK(lora_bitwise_equal(&peft_m, &ours), "round trip is bitwise");
    check_parity(&ours, &f, "aspo-written adapter", "logits", false);
    llama_close(&ours);
    llama_close(&peft_m);

    /* A fresh adapter from options: PEFT init (B = 0) so it starts as the base model; an
     * all-linear adapter is written as the expanded module list, as PEFT does. */
    o = llama_defaults();
    o.lora = (lora_config){.r = 8, .alpha = 16.0f, .dropout = 0.1f, .rslora = true};
    o.lora_targets = "q_proj, v_proj";
    o.lora_seed = 42;
    if (llama_open(fx("tiny"), &o, &ours) == ASPO_OK) {
        CHECK(ours.layers[2].v.lora_A && !ours.layers[2].o.lora_A && !ours.lm_head.lora_A,
              "targets by suffix");
        check_parity(&ours, &f, "fresh adapter (B = 0)", "base_logits", false);
        CHECK(llama_save_adapter(&ours, tmp("fresh")) == ASPO_OK, "save fresh");
        CHECK(llama_open(fx("tiny"), &(llama_options){.storage_dtype = -1,
                                                      .adapter_dir = tmp("fresh")}, &again) ==
              ASPO_OK, "reopen fresh: %s", aspo_error_message());
        CHECK(again.peft.lora.rslora && again.peft.lora.r == 8 &&
              fabsf(again.peft.lora.dropout - 0.1f) < 1e-7f && lora_bitwise_equal(&ours, &again),
              "fresh adapter round trip");
        llama_close(&again);
        llama_close(&ours);
    } else {
        CHECK(0, "open fresh: %s", aspo_error_message());
    }
    st_close(&f.out);
}

/* ---- merging ---- */

/* Reopens a merged checkpoint without an adapter: its logits against the fixture's adapter
 * logits (into `logits`). */
static double reopened_err(const char *dir, const fixture *f, dtype want_dt, float *logits)
{
    llama_model m;
    double e = INFINITY;
    if (llama_open(dir, NULL, &m) != ASPO_OK) {
        CHECK(0, "open %s: %s", dir, aspo_error_message());
        return e;
    }
    CHECK(!m.has_lora && m.storage_dt == want_dt, "%s: no adapter, %s weights", dir,
          dtype_name(want_dt));
    if (run_logits(&m, f, logits)) e = rel_err(logits, fixture_f32(f, "logits"), f->B * f->T * f->V);
    llama_close(&m);
    printf("  merged %s: logits rel err %.2e\n", strrchr(dir, '/') + 1, e);
    return e;
}

static void test_merge(const char *name, bool positions, const char *export_dir)
{
    fixture f;
    if (!fixture_open(&f, name, positions)) return;
    const char *out = export_dir ? export_dir : tmp_root;
    char adapter[64], dir[1024], path[1100];
    snprintf(adapter, sizeof adapter, "%s_adapter", name);
    llama_model m;
    llama_options o = {.storage_dtype = DT_F32, .adapter_dir = fx(adapter)};
    if (llama_open(fx(name), &o, &m) != ASPO_OK) {
        CHECK(0, "open %s: %s", name, aspo_error_message());
        st_close(&f.out);
        return;
    }
    int64_t n = f.B * f.T * f.V;
    float *logits = malloc(sizeof(float) * (size_t)n), *first = malloc(sizeof(float) * (size_t)n);
    /* f32: W + s*B*A rounded once per weight, within the f32 parity tolerance. */
    snprintf(dir, sizeof dir, "%s/%s_merged", out, name);
    CHECK(llama_save_merged(&m, dir, DT_F32) == ASPO_OK, "merge: %s", aspo_error_message());
    llama_config mc;
    snprintf(path, sizeof path, "%s/config.json", dir);
    CHECK(llama_config_load(path, &mc) == ASPO_OK && mc.torch_dtype == DT_F32 &&
          mc.num_layers == m.cfg.num_layers && mc.tie_word_embeddings == m.cfg.tie_word_embeddings,
          "merged config.json");
    CHECK(reopened_err(dir, &f, DT_F32, first) <= LOGIT_TOL, "merged f32");
    /* The same merge as ~8 KB shards plus an index: the same weights bit for bit. */
    snprintf(dir, sizeof dir, "%s/%s_sharded", out, name);
    snprintf(path, sizeof path, "%s/config.json", dir);
    CHECK(peft_merge_save(&m.ps, lora_scaling(&m.peft.lora), dir, DT_F32, 8000, NULL, NULL) ==
          ASPO_OK, "sharded: %s", aspo_error_message());
    write_text(path, m.config_text);
    reopened_err(dir, &f, DT_F32, logits);
    CHECK(!memcmp(logits, first, sizeof(float) * (size_t)n), "sharded merge is bitwise the same");
    /* f16 (an F16 file to read back) rounds weights by up to 2^-12 relative, 8x finer than
     * bf16's 2^-9 that moves the tiny logits by 1.2e-2: measured <= 1.8e-3, bound 5e-3. */
    snprintf(dir, sizeof dir, "%s/%s_merged_f16", tmp_root, name);
    CHECK(llama_save_merged(&m, dir, DT_F16) == ASPO_OK, "merge f16");
    CHECK(reopened_err(dir, &f, DT_F16, logits) <= 5e-3, "merged f16");
    free(logits);
    free(first);
    llama_close(&m);
    st_close(&f.out);
}

/* ---- bad input ---- */

/* Copies safetensors src to dst without `drop` and with `cut`'s first dim set to dim0. */
static void copy_st(const char *src, const char *dst, const char *drop, const char *cut,
                    int64_t dim0)
{
    st_model st;
    if (st_open(src, &st)) return;
    st_write_entry *e = calloc((size_t)st.n_entries, sizeof *e);
    int64_t (*shapes)[8] = calloc((size_t)st.n_entries, sizeof *shapes);
    int n = 0;
    for (int i = 0; i < st.n_entries; i++) {
        const st_entry *x = &st.entries[i];
        if (drop && !strcmp(x->name, drop)) continue;
        memcpy(shapes[n], x->shape, sizeof shapes[n]);
        if (cut && !strcmp(x->name, cut)) shapes[n][0] = dim0; /* smaller: the data fits */
        e[n] = (st_write_entry){x->name, x->dt, x->ndim, shapes[n], x->data};
        n++;
    }
    CHECK(st_write(dst, e, n, NULL, NULL, 0) == ASPO_OK, "write %s", dst);
    st_close(&st);
    free(e);
    free(shapes);
}

/* A copy that counts as a check. */
static void copy_checked(const char *src, const char *dst)
{
    CHECK(copy_file(src, dst), "copy %s", src);
}

static void test_bad_input(void)
{
    llama_model m;
    llama_options o = llama_defaults();

    /* Checkpoints missing a tensor or holding one of the wrong shape. */
    const char *dirs[] = {"missing", "reshaped", "nofield", "bad_adapter"};
    for (int i = 0; i < 4; i++) CHECK(weights_make_dir(tmp(dirs[i])) == ASPO_OK, "mkdir");
    copy_checked(fx("tiny/config.json"), tmp("missing/config.json"));
    copy_checked(fx("tiny/config.json"), tmp("reshaped/config.json"));
    copy_st(fx("tiny/model.safetensors"), tmp("missing/model.safetensors"),
            "model.layers.1.mlp.up_proj.weight", NULL, 0);
    expect_error(llama_open(tmp("missing"), NULL, &m), ASPO_ERR_FORMAT, "missing tensor",
                 "missing/model.safetensors", "model.layers.1.mlp.up_proj.weight", "(48,32)");
    CHECK(m.ps.n == 0 && !m.layers, "failed open leaves the model closed");
    copy_st(fx("tiny/model.safetensors"), tmp("reshaped/model.safetensors"), NULL,
            "model.norm.weight", 31);
    expect_error(llama_open(tmp("reshaped"), NULL, &m), ASPO_ERR_SHAPE, "wrong shape",
                 "reshaped/model.safetensors", "model.norm.weight", "(31,)");

    /* Config missing a field, through llama_open. */
    write_text(tmp("nofield/config.json"),
               "{\"hidden_size\": 32, \"num_hidden_layers\": 3, \"num_attention_heads\": 4,"
               " \"vocab_size\": 96, \"rms_norm_eps\": 1e-6}");
    expect_error(llama_open(tmp("nofield"), NULL, &m), ASPO_ERR_FORMAT, "config field",
                 "nofield/config.json", "intermediate_size");

    /* An adapter whose shapes do not fit: PEFT's tiny adapter with one A cut to r=3. */
    const char *cut = "base_model.model.model.layers.2.self_attn.k_proj.lora_A.weight";
    copy_checked(fx("tiny_adapter/adapter_config.json"), tmp("bad_adapter/adapter_config.json"));
    copy_st(fx("tiny_adapter/adapter_model.safetensors"),
            tmp("bad_adapter/adapter_model.safetensors"), NULL, cut, 3);
    o.adapter_dir = tmp("bad_adapter");
    expect_error(llama_open(fx("tiny"), &o, &m), ASPO_ERR_SHAPE, "adapter shape",
                 "bad_adapter/adapter_model.safetensors", cut, "(3,32)");
    /* One key short: the adapter does not cover a module its config targets. */
    copy_st(fx("tiny_adapter/adapter_model.safetensors"),
            tmp("bad_adapter/adapter_model.safetensors"), cut, NULL, 0);
    expect_error(llama_open(fx("tiny"), &o, &m), ASPO_ERR_FORMAT, "adapter key missing",
                 "bad_adapter/adapter_model.safetensors", cut);

    /* Options that disagree with the adapter's config. */
    o.adapter_dir = fx("tiny_adapter");
    o.lora = (lora_config){.r = 8, .alpha = 8.0f};
    expect_error(llama_open(fx("tiny"), &o, &m), ASPO_ERR_USAGE, "adapter r",
                 "tiny_adapter/adapter_config.json", "r=4", "r=8");
    o.lora.r = 4;
    o.lora_targets = "q_proj,v_proj";
    expect_error(llama_open(fx("tiny"), &o, &m), ASPO_ERR_USAGE, "adapter targets",
                 "tiny_adapter/adapter_config.json", "k_proj");
    o = llama_defaults();
    o.lora = (lora_config){.r = 4, .alpha = 8.0f};
    o.lora_targets = "no_such_proj";
    expect_error(llama_open(fx("tiny"), &o, &m), ASPO_ERR_USAGE, "targets match nothing",
                 "match no linear");
    o.lora_targets = "q_proj,,v_proj";
    expect_error(llama_open(fx("tiny"), &o, &m), ASPO_ERR_USAGE, "empty target", "empty");
    /* Another model's adapter: the tied model's v_proj B is (8,2), the tiny model's (16,2). */
    o = llama_defaults();
    o.adapter_dir = fx("tied_adapter");
    expect_error(llama_open(fx("tiny"), &o, &m), ASPO_ERR_SHAPE, "adapter of another model",
                 "tied_adapter/adapter_model.safetensors", "expects");

    /* Forward with bad ids. */
    CHECK(llama_open(fx("tiny"), NULL, &m) == ASPO_OK, "open base: %s", aspo_error_message());
    tensor *ids = tensor_from_host(DT_F32, DIMS(1, 3), (float[]){1, 2, 3});
    CHECK(llama_forward(&m, ids, NULL, NULL) == NULL, "f32 ids refused");
    expect_error(aspo_error_status(), ASPO_ERR_SHAPE, "ids dtype", "i32");
    tensor *big = tensor_from_host(DT_I32, DIMS(1, 3), (int32_t[]){1, 96, 3});
    CHECK(llama_forward(&m, big, NULL, NULL) == NULL, "id out of range refused");
    expect_error(aspo_error_status(), ASPO_ERR_USAGE, "id range", "96");
    CHECK(llama_save_adapter(&m, tmp("none")) == ASPO_ERR_USAGE, "no adapter to save");
    aspo_error_clear();
    end_step();
    llama_close(&m);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_llama FIXTURE_DIR [EXPORT_DIR]\n");
        return 2;
    }
    fixtures = argv[1];
    if (!(tmp_root = test_tmp_make("llama"))) return 1;
    runtime_init(backend_cpu(), 0);
    test_config();
    test_targets();
    test_tiny();
    test_bf16_activations();
    test_tied();
    const char *export_dir = argc > 2 ? argv[2] : NULL;
    if (export_dir) CHECK(weights_make_dir(export_dir) == ASPO_OK, "export dir");
    test_adapter_io(export_dir);
    test_merge("tiny", false, export_dir);
    test_merge("tied", true, export_dir);
    test_bad_input();
    runtime_shutdown();
    test_tmp_remove();
    return check_summary("llama");
}
