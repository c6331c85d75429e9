/* LLaVA-1.5 against transformers 4.44.2 LlavaForConditionalGeneration + PEFT 0.12.0
 * (fixtures from tests/parity/make_llava_fixtures.py): detection, both checkpoint layouts
 * giving the same logits, log-probs, LoRA logits and gradients (language model and
 * projector), sharing a CLIP the caller opened, adapters written and read back,
 * preprocessing, and bad input. argv[1] = tests/fixtures; argv[2] (optional) = a directory
 * to keep aspo's adapter in, for the script's --check-adapter. */
#define _XOPEN_SOURCE 700 /* realpath, symlink */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "backends/registry.h"
#include "models/llava.h"
#include "models/weights.h"
#include "tensor/autograd.h"
#include "tensor/runtime.h"
#include "tensor/tensor_ops.h"
#include "tests/test_support.h"

static const char *fixtures, *export_dir, *tmp_root;
static st_model out; /* llava/outputs.safetensors */

static const char *fx(const char *name) { return join(fixtures, name); }
static const char *tmp(const char *name) { return join(tmp_root, name); }

static const int32_t *fx_i32(const char *key)
{
    const st_entry *e = fx_entry(&out, key);
    return e && e->dt == DT_I32 ? e->data : NULL;
}

/* max |got - want| / max |want| over the rows of (B,T,...) where mask (B,T) is nonzero
 * (all rows when mask is NULL), t from t0 on in got and t - t0 in want when want has fewer
 * positions: one scale per tensor, so near-zero entries do not blow up. */
static double rel_err_masked(tensor *got, const st_entry *want, const int32_t *mask, int64_t T,
                             int64_t t0)
{
    if (!got || !want) return INFINITY;
    int64_t n = tensor_numel(got), rows = got->ndim >= 2 ? got->shape[0] * got->shape[1] : 1;
    int64_t width = n / rows, want_T = want->ndim >= 2 ? want->shape[1] : 1;
    float *h = malloc(sizeof(float) * (size_t)n);
    double d = 0, scale = 1e-30;
    if (!h || tensor_to_host_f32(got, h)) {
        free(h);
        return INFINITY;
    }
    const float *w = want->data;
    for (int64_t r = 0; r < rows; r++) {
        int64_t b = r / T, t = r % T;
        if (t < t0 || (mask && !mask[r])) continue;
        const float *wr = w + (b * want_T + (t - t0)) * width, *gr = h + r * width;
        for (int64_t i = 0; i < width; i++) {
            d = fmax(d, fabs((double)gr[i] - wr[i]));
            scale = fmax(scale, fabs((double)wr[i]));
        }
    }
    free(h);
    return d / scale;
}

/* rel_err of the tensor against the fixture's `key`; INFINITY when the sizes differ. */
static double rel_err_fx(tensor *got, const char *key)
{
    const st_entry *e = fx_entry(&out, key);
    if (!got || !e || tensor_numel(got) != (e ? (int64_t)(e->nbytes / 4) : -1)) return INFINITY;
    return rel_err_masked(got, e, NULL, got->ndim >= 2 ? got->shape[1] : 1, 0);
}

/* f32 weights and compute; 3 CLIP layers, the projector and 2 LLaMA layers: transformers
 * and aspo differ by summation order (~1e-7 relative per op), measured at most 5e-7 of the
 * tensor's scale at the logits; 1e-5 leaves margin and still catches a wrong weight,
 * position or layer (those move logits by 1e-2 and more). */
#define F32_TOL 1e-5
/* Gradients add the backward pass's rounding: measured at most 1.6e-6 of the scale. */
#define GRAD_TOL 2e-5

/* ---- running the model on the fixture's inputs ---- */

typedef struct inputs {
    const int32_t *ids, *mask, *answer, *feature_row;
    int64_t B, T, V;
} inputs;

static inputs fixture_inputs(void)
{
    inputs in = {fx_i32("ids"), fx_i32("attention_mask"), fx_i32("answer_mask"),
                 fx_i32("feature_row"), 0, 0, 0};
    const st_entry *ids = st_find(&out, "ids"), *logits = st_find(&out, "logits");
    if (ids && logits) {
        in.B = ids->shape[0];
        in.T = ids->shape[1];
        in.V = logits->shape[2];
    }
    return in;
}

/* Logits (B,T,V) of the fixture's batch; features_out (optional) gets the features. */
static tensor *forward_logits(llava_model *m, const inputs *in, tensor **features_out,
                              tensor **clip_embeds)
{
    tensor *features = llava_image_features(m, fx_tensor(&out, "pixel_values"), clip_embeds);
    if (features_out) *features_out = features;
    tensor *ids = tensor_from_host(DT_I32, DIMS(in->B, in->T), in->ids);
    tensor *mask = tensor_from_host(DT_I32, DIMS(in->B, in->T), in->mask);
    return llava_lm_head(m, llava_forward_hidden(m, ids, mask, NULL, features, in->feature_row));
}

/* Per-sequence sums of log p(ids[t] | <t) over answer positions (B). */
static tensor *answer_logprobs(tensor *logits, const inputs *in)
{
    int64_t B = in->B, T = in->T, N = B * (T - 1);
    int32_t *targets = malloc(sizeof(int32_t) * (size_t)N);
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t + 1 < T; t++)
            targets[b * (T - 1) + t] = in->answer[b * T + t + 1] ? in->ids[b * T + t + 1] : -100;
    tensor *flat = tensor_reshape(tensor_slice(logits, 1, 0, T - 1), DIMS(N, in->V)); /* (N,V) */
    tensor *lp = tensor_gather_logprobs(flat, tensor_from_host(DT_I32, DIMS(N), targets), -100);
    free(targets);
    return tensor_sum(tensor_reshape(lp, DIMS(B, T - 1)), 1, false);              /* (B)   */
}

/* Base logits, features, log-probs (and the CLIP embeddings when the tower has them). */
static void check_base(llava_model *m, const char *what, bool want_clip_embeds)
{
    inputs in = fixture_inputs();
    bool prev = autograd_set_enabled(false);
    tensor *features = NULL, *clip_embeds = NULL;
    tensor *logits = forward_logits(m, &in, &features, &clip_embeds);
    CHECK(logits != NULL, "%s: forward: %s", what, aspo_error_message());
    double e = rel_err_fx(features, "image_features");
    CHECK(e <= F32_TOL, "%s: image_features relative error %.3g", what, e);
    /* HF gives padded positions position 1 and a zero embedding; only real ones compare. */
    e = rel_err_masked(logits, fx_entry(&out, "logits"), in.mask, in.T, 0);
    CHECK(e <= F32_TOL, "%s: logits relative error %.3g", what, e);
    e = rel_err_fx(answer_logprobs(logits, &in), "logprobs");
    CHECK(e <= F32_TOL, "%s: logprobs relative error %.3g", what, e);
    if (want_clip_embeds) {
        e = rel_err_fx(clip_embeds, "clip_image_embeds");
        CHECK(e <= F32_TOL, "%s: CLIP image embeddings relative error %.3g", what, e);
    } else {
        CHECK(clip_embeds == NULL, "%s: a tower without visual_projection gives no embeddings",
              what);
    }
    autograd_set_enabled(prev);
    aspo_error_clear();
    end_step();
}

/* Log-probs and the gradients of their sum w.r.t. every LoRA tensor against
 * <tag>_logprobs and <tag>_grad.base_model.model.<name>; returns how many were compared. */
static int check_lora_grads(llava_model *m, const char *tag)
{
    inputs in = fixture_inputs();
    char key[512];
    CHECK(param_store_zero_grad(&m->lm.ps) == ASPO_OK, "zero grad");
    tensor *lp = answer_logprobs(forward_logits(m, &in, NULL, NULL), &in);
    snprintf(key, sizeof key, "%s_logprobs", tag);
    double e = rel_err_fx(lp, key);
    CHECK(e <= F32_TOL, "%s: logprobs relative error %.3g", tag, e);
    CHECK(lp && tensor_backward(tensor_sum_all(lp)) == ASPO_OK, "%s backward: %s", tag,
          aspo_error_message());
    int n = 0;
    for (int i = 0; i < m->lm.ps.n; i++) {
        tensor *t = m->lm.ps.items[i];
        if (!strstr(t->name, ".lora_")) continue;
        snprintf(key, sizeof key, "%s_grad.base_model.model.%s", tag, t->name);
        e = t->grad ? rel_err_fx(t->grad, key) : INFINITY;
        CHECK(e <= GRAD_TOL, "%s: gradient of %s relative error %.3g", tag, t->name, e);
        n++;
    }
    end_step();
    return n;
}

/* ---- tests ---- */

static void test_detect(void)
{
    bool yes = false;
    CHECK(llava_detect(fx("llava/tiny_hf"), &yes) == ASPO_OK && yes, "tiny_hf is LLaVA");
    CHECK(llava_detect(fx("llava/tiny_orig"), &yes) == ASPO_OK && yes, "tiny_orig is LLaVA");
    CHECK(llava_detect(fx("llama/tiny"), &yes) == ASPO_OK && !yes, "a LLaMA is not");
    CHECK(llava_detect(fx("llava/clip"), &yes) == ASPO_OK && !yes, "a CLIP is not");
    expect_error(llava_detect(fx("llava/nowhere"), &yes), ASPO_ERR_IO, "no config",
                 "nowhere/config.json");
}

static void test_hf(void)
{
    llava_model m;
    CHECK(llava_open(fx("llava/tiny_hf"), NULL, &m) == ASPO_OK, "open tiny_hf: %s",
          aspo_error_message());
    aspo_error_clear();
    if (!m.vision) return;
    const llava_config *c = &m.cfg;
    CHECK(c->hf_layout && c->image_token_index == 1000 && c->vision_feature_layer == -2 &&
          !c->keep_cls && c->projector_act == CLIP_GELU && c->image_positions == 16, "config");
    CHECK(c->image.crop_size == 32 && c->image.shortest_edge == 32 && c->pad_to_square &&
          fabsf(c->image.std[2] - 0.27577711f) < 1e-7f, "preprocessor_config.json");
    /* text_config leaves out rms_norm_eps (= LlamaConfig's default 1e-6). */
    CHECK(m.lm.cfg.hidden_size == 32 && m.lm.cfg.num_kv_heads == 2 &&
          m.lm.cfg.vocab_size == 1024 && m.lm.cfg.rms_norm_eps == 1e-6, "text_config");
    CHECK(m.vision->cfg.vision.num_layers == 3 && !m.vision->cfg.has_text &&
          !m.vision->has_visual_projection && m.owns_vision, "vision tower");
    CHECK(m.proj1.in_features == 32 && m.proj1.bias && !m.proj1.lora_A &&
          param_find(&m.lm.ps, "multi_modal_projector.linear_2.bias") &&
          param_find(&m.lm.ps, "language_model.model.layers.1.self_attn.q_proj.weight"),
          "names as in the checkpoint");
    check_base(&m, "tiny_hf", false);

    /* Text only: no features, the same as the language model alone. */
    inputs in = fixture_inputs();
    bool prev = autograd_set_enabled(false);
    const int32_t text[] = {1, 17, 300, 999, 2};
    tensor *ids = tensor_from_host(DT_I32, DIMS(1, 5), text);
    tensor *a = llava_forward_hidden(&m, ids, NULL, NULL, NULL, NULL);
    tensor *b = llama_forward_hidden(&m.lm, ids, NULL, NULL);
    float ha[160], hb[160];
    CHECK(a && b && !tensor_to_host(a, ha) && !tensor_to_host(b, hb) &&
          !memcmp(ha, hb, sizeof ha), "text-only forward = the LLaMA's");
    /* Bad input on the open model. */
    tensor *fixture_ids = tensor_from_host(DT_I32, DIMS(in.B, in.T), in.ids);
    CHECK(!llava_forward_hidden(&m, fixture_ids, NULL, NULL, NULL, NULL), "image token without rows");
    expect_error(aspo_error_status(), ASPO_ERR_USAGE, "image token", "image token");
    int32_t *rows = malloc(sizeof(int32_t) * (size_t)(in.B * in.T));
    memcpy(rows, in.feature_row, sizeof(int32_t) * (size_t)(in.B * in.T));
    rows[5] = 32; /* the features have 32 rows: 0..31 */
    tensor *features = llava_image_features(&m, fx_tensor(&out, "pixel_values"), NULL);
    CHECK(!llava_forward_hidden(&m, fixture_ids, NULL, NULL, features, rows), "row 32 refused");
    expect_error(aspo_error_status(), ASPO_ERR_USAGE, "row out of range", "0..31");
    free(rows);
    autograd_set_enabled(prev);
    end_step();
    llava_close(&m);
}

static void test_orig(void)
{
    llava_model m;
    CHECK(llava_open(fx("llava/tiny_orig"), NULL, &m) == ASPO_OK, "open tiny_orig: %s",
          aspo_error_message());
    aspo_error_clear();
    if (!m.vision) return;
    const llava_config *c = &m.cfg;
    CHECK(!c->hf_layout && c->image_token_index == LLAVA_IMAGE_TOKEN_ORIGINAL &&
          c->vision_feature_layer == -2 && !c->keep_cls && c->image_positions == 16 &&
          c->pad_to_square && c->image.crop_size == 32, "config");
    CHECK(strstr(c->vision_tower_dir, "tiny_orig/../clip") != NULL, "tower dir %s",
          c->vision_tower_dir);
    /* The tower is the whole CLIP: its text tower is there for ASPO. */
    CHECK(m.vision->cfg.has_text && m.vision->has_visual_projection, "a full CLIP");
    CHECK(param_find(&m.lm.ps, "model.mm_projector.0.weight") &&
          param_find(&m.lm.ps, "model.layers.0.self_attn.q_proj.weight"), "original names");
    check_base(&m, "tiny_orig", true);
    llava_close(&m);
}

static void test_lora(void)
{
    llava_options o = llava_defaults();
    o.lm.adapter_dir = fx("llava/lora_adapter");
    llava_model m;
    CHECK(llava_open(fx("llava/tiny_hf"), &o, &m) == ASPO_OK, "open with lora_adapter: %s",
          aspo_error_message());
    aspo_error_clear();
    if (!m.vision) return;
    CHECK(m.lm.has_lora && m.lm.peft.target_regex && !m.proj1.lora_A, "LLM adapted only");
    inputs in = fixture_inputs();
    bool prev = autograd_set_enabled(false);
    tensor *logits = forward_logits(&m, &in, NULL, NULL);
    const st_entry *want = fx_entry(&out, "lora_logits"); /* positions 17.. only */
    double e = rel_err_masked(logits, want, in.mask, in.T, want ? in.T - want->shape[1] : 0);
    CHECK(e <= F32_TOL, "LoRA logits relative error %.3g", e);
    autograd_set_enabled(prev);
    end_step();
    /* 2 layers x 7 projections x (A, B). */
    CHECK(check_lora_grads(&m, "lora") == 28, "28 LoRA gradients");
    llava_close(&m);

    /* The same adapter with explicit, agreeing options. */
    o.lm.lora = (lora_config){.r = 4, .alpha = 8};
    o.lm.lora_targets = "all-linear";
    CHECK(llava_open(fx("llava/tiny_hf"), &o, &m) == ASPO_OK, "options + adapter: %s",
          aspo_error_message());
    aspo_error_clear();
    if (m.vision) CHECK(check_lora_grads(&m, "lora") == 28, "28 LoRA gradients");
    llava_close(&m);
    o.train_projector = true;
    expect_error(llava_open(fx("llava/tiny_hf"), &o, &m), ASPO_ERR_USAGE,
                 "projector asked, adapter without", "leaves the projector");
}

static void test_projector_lora(void)
{
    llava_options o = llava_defaults();
    o.lm.adapter_dir = fx("llava/proj_adapter");
    llava_model m;
    CHECK(llava_open(fx("llava/tiny_hf"), &o, &m) == ASPO_OK, "open with proj_adapter: %s",
          aspo_error_message());
    aspo_error_clear();
    if (!m.vision) return;
    CHECK(m.proj1.lora_A && m.proj2.lora_B, "the adapter adapts the projector");
    /* 2 layers x (q, v) + linear_1 + linear_2, each A and B. */
    CHECK(check_lora_grads(&m, "proj") == 12, "12 LoRA gradients");
    llava_close(&m);

    o.lm.lora = (lora_config){.r = 2, .alpha = 4};
    o.lm.lora_targets = "q_proj,v_proj";
    o.train_projector = true;
    CHECK(llava_open(fx("llava/tiny_hf"), &o, &m) == ASPO_OK, "train_projector + adapter: %s",
          aspo_error_message());
    aspo_error_clear();
    if (m.vision) CHECK(check_lora_grads(&m, "proj") == 12, "12 LoRA gradients");
    llava_close(&m);
    o.train_projector = false;
    expect_error(llava_open(fx("llava/tiny_hf"), &o, &m), ASPO_ERR_USAGE,
                 "adapter with projector, not asked", "adapts the projector");
    o = llava_defaults();
    o.train_projector = true;
    expect_error(llava_open(fx("llava/tiny_hf"), &o, &m), ASPO_ERR_USAGE,
                 "projector without LoRA", "needs LoRA");
}

static void test_shared_clip(void)
{
    clip_model clip, other;
    CHECK(clip_open(fx("llava/clip"), -1, &clip) == ASPO_OK, "open llava/clip: %s",
          aspo_error_message());
    CHECK(clip_open(fx("clip/model"), -1, &other) == ASPO_OK, "open clip/model: %s",
          aspo_error_message());
    aspo_error_clear();
    llava_options o = llava_defaults();
    o.shared_clip = &clip;
    llava_model m;
    CHECK(llava_open(fx("llava/tiny_hf"), &o, &m) == ASPO_OK, "open shared: %s",
          aspo_error_message());
    aspo_error_clear();
    if (m.vision) {
        CHECK(m.vision == &clip && !m.owns_vision, "llava-hf uses the shared CLIP");
        /* ... whose visual_projection now gives ASPO's image embeddings too. */
        check_base(&m, "tiny_hf shared", true);
    }
    llava_close(&m);
    CHECK(clip.patch_weight != NULL, "the shared CLIP stays open");
    CHECK(llava_open(fx("llava/tiny_orig"), &o, &m) == ASPO_OK, "open orig shared: %s",
          aspo_error_message());
    aspo_error_clear();
    if (m.vision) {
        CHECK(m.vision == &clip && !m.owns_vision, "the original layout uses it too");
        check_base(&m, "tiny_orig shared", true);
    }
    llava_close(&m);
    o.shared_clip = &other; /* a different tower: LLaVA loads its own */
    CHECK(llava_open(fx("llava/tiny_hf"), &o, &m) == ASPO_OK, "open not shared: %s",
          aspo_error_message());
    aspo_error_clear();
    if (m.vision) {
        CHECK(m.vision != &other && m.owns_vision, "a different CLIP is not used");
        check_base(&m, "tiny_hf not shared", false);
    }
    llava_close(&m);
    clip_close(&other);
    clip_close(&clip);
}

/* Logits (B,T,V) of the fixture batch on the host. */
static float *host_logits(llava_model *m, int64_t *n)
{
    inputs in = fixture_inputs();
    bool prev = autograd_set_enabled(false);
    tensor *logits = forward_logits(m, &in, NULL, NULL);
    *n = logits ? tensor_numel(logits) : 0;
    float *h = logits ? malloc(sizeof(float) * (size_t)*n) : NULL;
    if (h && tensor_to_host(logits, h)) {
        free(h);
        h = NULL;
    }
    autograd_set_enabled(prev);
    CHECK(h != NULL, "logits: %s", aspo_error_message());
    end_step();
    return h;
}

static char *read_target_modules(const char *dir)
{
    json_error_t err;
    json_t *root = json_load_file(join(dir, "adapter_config.json"), 0, &err);
    const char *t = json_string_value(json_object_get(root, "target_modules"));
    char *copy = t ? strdup(t) : NULL;
    json_decref(root);
    return copy;
}

/* Saves, reopens from the saved adapter and compares; the regex must match exactly the
 * adapted modules. */
static void round_trip(const char *model, llava_options *o, const char *save_to,
                       const char *want_regex)
{
    llava_model m;
    CHECK(llava_open(fx(model), o, &m) == ASPO_OK, "%s: open: %s", model, aspo_error_message());
    aspo_error_clear();
    if (!m.vision) return;
    /* B starts at zero; non-zero values make the adapter change the logits. */
    for (int i = 0; i < m.lm.ps.n; i++)
        if (strstr(m.lm.ps.items[i]->name, ".lora_B.")) tensor_fill(m.lm.ps.items[i], 0.05f);
    int64_t n = 0, n2 = 0;
    float *before = host_logits(&m, &n);
    CHECK(llava_save_adapter(&m, save_to) == ASPO_OK, "%s: save: %s", model,
          aspo_error_message());
    llava_close(&m);
    char *regex = read_target_modules(save_to);
    CHECK(regex && !strcmp(regex, want_regex), "%s: target_modules %s, want %s", model,
          regex ? regex : "(none)", want_regex);
    free(regex);
    llava_options back = llava_defaults();
    back.lm.adapter_dir = save_to;
    CHECK(llava_open(fx(model), &back, &m) == ASPO_OK, "%s: reopen: %s", model,
          aspo_error_message());
    aspo_error_clear();
    float *after = m.vision ? host_logits(&m, &n2) : NULL;
    CHECK(before && after && n == n2 && !memcmp(before, after, sizeof(float) * (size_t)n),
          "%s: the saved adapter gives the same logits", model);
    if (export_dir && after && m.cfg.hf_layout) {
        /* For make_llava_fixtures.py --check-adapter. */
        st_write_entry e = {"logits", DT_F32, 3, (const int64_t[]){2, n / 2 / 1024, 1024}, after};
        CHECK(st_write(join(export_dir, "saved_adapter_logits.safetensors"), &e, 1, NULL, NULL,
                       0) == ASPO_OK, "export logits");
    }
    free(before);
    free(after);
    llava_close(&m);
}

static void test_save_adapter(void)
{
    llava_options o = llava_defaults();
    o.lm.lora = (lora_config){.r = 4, .alpha = 8};
    o.lm.lora_targets = "q_proj,v_proj";
    o.train_projector = true;
    const char *hf_dir = export_dir ? join(export_dir, "saved_adapter") : tmp("saved_hf");
    if (export_dir) weights_make_dir(export_dir);
    round_trip("llava/tiny_hf", &o, hf_dir,
               "language_model\\.model\\.layers\\.[0-9]+\\.(self_attn\\.q_proj|"
               "self_attn\\.v_proj)|multi_modal_projector\\.linear_1|"
               "multi_modal_projector\\.linear_2");
    /* The regex PEFT will fullmatch: only the language model's and projector's linears. */
    peft_config c;
    CHECK(peft_config_load(hf_dir, &c) == ASPO_OK, "load saved config: %s",
          aspo_error_message());
    CHECK(peft_targets_module(&c, "language_model.model.layers.1.self_attn.v_proj", false) &&
          peft_targets_module(&c, "multi_modal_projector.linear_2", false) &&
          !peft_targets_module(&c, "language_model.model.layers.1.self_attn.k_proj", false) &&
          !peft_targets_module(&c, "vision_tower.vision_model.encoder.layers.0.self_attn.q_proj",
                               false) &&
          !peft_targets_module(&c, "language_model.lm_head", true), "regex matches");
    peft_config_free(&c);

    o.lm.lora_targets = "all-linear";
    o.train_projector = false;
    round_trip("llava/tiny_orig", &o, tmp("saved_orig"),
               "model\\.layers\\.[0-9]+\\.(mlp\\.down_proj|mlp\\.gate_proj|mlp\\.up_proj|"
               "self_attn\\.k_proj|self_attn\\.o_proj|self_attn\\.q_proj|self_attn\\.v_proj)");
    llava_model m;
    CHECK(llava_open(fx("llava/tiny_hf"), NULL, &m) == ASPO_OK, "open: %s", aspo_error_message());
    expect_error(llava_save_adapter(&m, tmp("none")), ASPO_ERR_USAGE, "no LoRA", "without a LoRA");
    llava_close(&m);
}

static void test_preprocess(void)
{
    llava_model m;
    CHECK(llava_open(fx("llava/tiny_hf"), NULL, &m) == ASPO_OK, "open: %s", aspo_error_message());
    aspo_error_clear();
    if (!m.vision) return;
    const st_entry *pv = fx_entry(&out, "pixel_values");
    const char *files[2] = {"image/photo.jpg", "image/wide.png"};
    for (int i = 0; pv && i < 2; i++) {
        image_rgb8 img;
        float px[3 * 32 * 32];
        CHECK(image_load(fx(files[i]), NULL, &img) == ASPO_OK, "load %s: %s", files[i],
              aspo_error_message());
        CHECK(llava_preprocess(&m, &img, px) == ASPO_OK, "preprocess %s: %s", files[i],
              aspo_error_message());
        /* Pillow's integer resampling is reproduced exactly; only the float normalisation
         * may round differently (see test_image). */
        const float *want = (const float *)pv->data + i * 3 * 32 * 32;
        double d = 0;
        for (int k = 0; k < 3 * 32 * 32; k++) d = fmax(d, fabs((double)px[k] - want[k]));
        CHECK(d <= 1e-6, "%s: max abs diff %g", files[i], d);
        image_free(&img);
    }
    llava_close(&m);
}

/* ---- bad input ---- */

/* dir/config.json from a fixture's config with one field set (value NULL = removed). */
static void write_config(const char *dir, const char *from, const char *key, json_t *value)
{
    CHECK(write_config_changed(dir, fx(from), key, value), "write %s", dir);
}

static void link_weights(const char *dir, const char *from)
{
    CHECK(link_into(dir, "model.safetensors", fx(from)), "link %s", from);
}

static void test_bad_input(void)
{
    llava_model m;
    llava_options o = llava_defaults();
    /* llava-hf without vision_tower.*: the language model alone. */
    const char *nv = tmp("no_vision"), *bad = tmp("strategy"), *orig = tmp("orig");
    write_config(nv, "llava/tiny_hf/config.json", "image_token_index", json_integer(1000));
    st_model st;
    CHECK(st_open(fx("llava/tiny_hf/model.safetensors"), &st) == ASPO_OK, "open weights");
    st_write_entry *e = calloc((size_t)st.n_entries, sizeof *e);
    int n = 0;
    for (int i = 0; e && i < st.n_entries; i++)
        if (strncmp(st.entries[i].name, "vision_tower.", 13) != 0)
            e[n++] = (st_write_entry){st.entries[i].name, st.entries[i].dt, st.entries[i].ndim,
                                      st.entries[i].shape, st.entries[i].data};
    CHECK(st_write(join(nv, "model.safetensors"), e, n, NULL, NULL, 0) == ASPO_OK, "write");
    free(e);
    st_close(&st);
    expect_error(llava_open(nv, NULL, &m), ASPO_ERR_FORMAT, "no vision weights",
                 "no vision tower weights", "vision_tower.vision_model");
    CHECK(m.vision == NULL && m.lm.layers == NULL, "closed after failure");

    write_config(bad, "llava/tiny_hf/config.json", "vision_feature_select_strategy",
                 json_string("cls"));
    expect_error(llava_open(bad, NULL, &m), ASPO_ERR_UNSUPPORTED, "select strategy",
                 "strategy/config.json", "vision_feature_select_strategy \"cls\"");
    write_config(bad, "llava/tiny_hf/config.json", "projector_hidden_act", json_string("relu"));
    expect_error(llava_open(bad, NULL, &m), ASPO_ERR_UNSUPPORTED, "projector act",
                 "strategy/config.json", "projector_hidden_act \"relu\"");
    write_config(bad, "llava/tiny_hf/config.json", "vision_feature_layer", json_integer(4));
    expect_error(llava_open(bad, NULL, &m), ASPO_ERR_FORMAT, "layer 4",
                 "vision_feature_layer 4", "0..3");

    /* The original layout: a tower directory that is not there, then given by the option. */
    write_config(orig, "llava/tiny_orig/config.json", "mm_vision_tower",
                 json_string("../nowhere"));
    link_weights(orig, "llava/tiny_orig/model.safetensors");
    expect_error(llava_open(orig, NULL, &m), ASPO_ERR_IO, "missing tower dir",
                 "not a directory", "orig/../nowhere");
    o.vision_tower_dir = fx("llava/clip");
    CHECK(llava_open(orig, &o, &m) == ASPO_OK, "tower from the option: %s",
          aspo_error_message());
    aspo_error_clear();
    if (m.vision) check_base(&m, "tower option", true);
    llava_close(&m);
    write_config(orig, "llava/tiny_orig/config.json", "mm_vision_tower", NULL);
    expect_error(llava_open(orig, NULL, &m), ASPO_ERR_FORMAT, "no tower named",
                 "mm_vision_tower");
    write_config(orig, "llava/tiny_orig/config.json", "mm_projector_type", json_string("linear"));
    expect_error(llava_open(orig, NULL, &m), ASPO_ERR_UNSUPPORTED, "linear projector",
                 "orig/config.json", "mm_projector_type \"linear\"");
    write_config(orig, "llava/tiny_orig/config.json", "mm_vision_select_feature",
                 json_string("cls"));
    expect_error(llava_open(orig, NULL, &m), ASPO_ERR_UNSUPPORTED, "select feature",
                 "mm_vision_select_feature \"cls\"");
    write_config(orig, "llava/tiny_orig/config.json", "mm_hidden_size", json_integer(64));
    expect_error(llava_open(orig, &o, &m), ASPO_ERR_FORMAT, "mm_hidden_size",
                 "mm_hidden_size 64");
    write_config(orig, "llava/tiny_orig/config.json", "model_type", json_string("llava_next"));
    expect_error(llava_open(orig, NULL, &m), ASPO_ERR_UNSUPPORTED, "llava_next",
                 "model_type \"llava_next\"");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_llava FIXTURE_DIR [EXPORT_DIR]\n");
        return 2;
    }
    fixtures = argv[1];
    export_dir = argc > 2 ? argv[2] : NULL;
    if (!(tmp_root = test_tmp_make("llava"))) return 1;
    runtime_init(backend_cpu(), 0);
    if (st_open(fx("llava/outputs.safetensors"), &out)) {
        CHECK(0, "outputs.safetensors: %s", aspo_error_message());
        return check_summary("llava");
    }
    test_detect();
    test_hf();
    test_orig();
    test_lora();
    test_projector_lora();
    test_shared_clip();
    test_save_adapter();
    test_preprocess();
    test_bad_input();
    st_close(&out);
    runtime_shutdown();
    test_tmp_remove();
    return check_summary("llava");
}
