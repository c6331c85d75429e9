/* InstructBLIP against transformers 4.44.2 InstructBlipForConditionalGeneration (fixtures
 * from tests/parity/make_instructblip_fixtures.py): the vision encoder, the Q-Former with
 * the language projection, the whole model's logits, and LoRA on its LLM against PEFT 0.12
 * (log-probs and gradients); their configs (with the defaults save_pretrained leaves out)
 * and bad input. argv[1] = tests/fixtures; argv[2] (optional)
 * a backend to run on instead of the CPU (the same bounds: f32 kernels differ from the CPU's
 * only in summation order). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "backends/registry.h"
#include "models/blip_vision.h"
#include "models/image.h"
#include "models/instructblip.h"
#include "models/qformer.h"
#include "models/weights.h"
#include "tensor/json_file.h"
#include "tensor/autograd.h"
#include "tensor/runtime.h"
#include "tensor/tensor_ops.h"
#include "tests/test_support.h"

static const char *fixtures, *tmp_root;
static st_model out; /* instructblip/tiny_outputs.safetensors */

static const char *fx(const char *name) { return join(fixtures, name); }
static const char *tmp(const char *name) { return join(tmp_root, name); }

/* f32 weights and compute: transformers and aspo differ by summation order (~1e-7 relative
 * per op); through 2 vision layers, 3 Q-Former layers, the projection and 2 LLaMA layers
 * the measured worst is 1.1e-6 of the tensor's scale (the logits). 1e-5 leaves margin and
 * still catches a wrong weight, bias third, mask or norm (those move it by 1e-2 and more). */
#define F32_TOL 1e-5

/* The fixture's vision_config, read as aspo reads it. */
static aspo_status tiny_vision_config(blip_vision_config *c)
{
    const char *path = fx("instructblip/tiny/config.json");
    json_t *root = json_file_load(path, "model config");
    if (!root) return aspo_error_status();
    aspo_status s = blip_vision_config_from_json(json_object_get(root, "vision_config"), path, c);
    json_decref(root);
    return s;
}

static void test_vision_config(void)
{
    blip_vision_config c;
    CHECK(tiny_vision_config(&c) == ASPO_OK, "tiny vision_config: %s", aspo_error_message());
    /* Given in the file: */
    CHECK(c.tower.hidden_size == 32 && c.tower.num_layers == 2 && c.tower.num_heads == 4 &&
              c.tower.image_size == 28 && c.tower.patch_size == 14,
          "sizes from the file");
    /* Left out by save_pretrained (InstructBlipVisionConfig's defaults): */
    CHECK(c.tower.act == CLIP_GELU && c.tower.layer_norm_eps == 1e-6 && c.qkv_bias,
          "defaults: gelu, eps 1e-6, qkv_bias");
    CHECK(blip_vision_positions(&c) == 5, "positions: 4 patches + class");
    blip_vision_defaults(&c);
    CHECK(c.tower.hidden_size == 1408 && c.tower.num_layers == 39 && c.tower.num_heads == 16 &&
              c.tower.intermediate_size == 6144 && blip_vision_positions(&c) == 257,
          "released EVA ViT-g/14 defaults: 1408 wide, 39 layers, 257 positions");

    static const struct { const char *json, *key; aspo_status want; } bad[] = {
        {"{\"qkv_bias\": 1}", "qkv_bias", ASPO_ERR_FORMAT},
        {"{\"num_attention_heads\": 0}", "num_attention_heads", ASPO_ERR_FORMAT},
        {"{\"hidden_size\": 30, \"num_attention_heads\": 4}", "hidden_size", ASPO_ERR_FORMAT},
        {"{\"image_size\": 30}", "image_size", ASPO_ERR_FORMAT},
        {"{\"hidden_act\": \"swish\"}", "hidden_act", ASPO_ERR_UNSUPPORTED},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        json_t *o = json_loads(bad[i].json, 0, NULL);
        expect_error(blip_vision_config_from_json(o, "cfg.json: vision_config", &c), bad[i].want,
                     bad[i].json, "cfg.json: vision_config", bad[i].key);
        json_decref(o);
    }
}

/* Allocates ps (declared) and loads it from the tiny checkpoint; every tensor of the file
 * whose name starts with `prefix` must be one of ps's (none left unread). */
static aspo_status load_tiny(param_store *ps, const char *prefix)
{
    st_model st;
    aspo_status s = st_open(fx("instructblip/tiny"), &st);
    if (!s) s = param_store_allocate(ps);
    if (!s) s = weights_load_store(ps, &st, NULL, NULL, NULL);
    int unread = 0;
    for (int i = 0; !s && i < st.n_entries; i++)
        unread += !strncmp(st.entries[i].name, prefix, strlen(prefix)) &&
                  !param_find(ps, st.entries[i].name);
    CHECK(!s && unread == 0, "%s weights: %s; %d tensors of the file have no parameter", prefix,
          s ? aspo_error_message() : "read", unread);
    st_close(&st);
    return s;
}

static void test_vision_forward(void)
{
    blip_vision_config c;
    if (tiny_vision_config(&c)) return;
    param_store ps;
    param_store_init(&ps, runtime_backend());
    blip_vision v;
    aspo_status s = blip_vision_declare(&v, &ps, "vision_model", &c, DT_F32);
    if (!s) s = load_tiny(&ps, "vision_model.");
    if (!s) {
        tensor *h = blip_vision_forward(&v, fx_tensor(&out, "pixel_values")); /* (2,5,32) */
        const float *want = fx_f32(&out, "vision_hidden", 2 * 5 * 32);
        float got[2 * 5 * 32];
        CHECK(h && h->ndim == 3 && h->shape[0] == 2 && h->shape[1] == 5 && h->shape[2] == 32 &&
                  !tensor_to_host_f32(h, got), "vision forward: %s", aspo_error_message());
        double e = want ? rel_err(got, want, 2 * 5 * 32) : INFINITY;
        printf("  vision last_hidden_state: rel err %.2e vs transformers\n", e);
        CHECK(e <= F32_TOL, "vision last_hidden_state: rel err %g", e);
        /* Wrong shape in: an error naming the expected shape. */
        int64_t bad_shape[] = {1, 3, 14, 14};
        float zeros[3 * 14 * 14] = {0};
        CHECK(!blip_vision_forward(&v, tensor_from_host(DT_F32, 4, bad_shape, zeros)) &&
                  strstr(aspo_error_message(), "(B,3,28,28)"),
              "pixels of another size: %s", aspo_error_message());
        aspo_error_clear();
        end_step();
    }
    blip_vision_free(&v);
    param_store_free(&ps);
}

/* The fixture's qformer_config, read as aspo reads it (encoder width: the vision's 32). */
static aspo_status tiny_qformer_config(qformer_config *c)
{
    const char *path = fx("instructblip/tiny/config.json");
    json_t *root = json_file_load(path, "model config");
    if (!root) return aspo_error_status();
    aspo_status s = qformer_config_from_json(json_object_get(root, "qformer_config"), path, 32, c);
    json_decref(root);
    return s;
}

static void test_qformer_config(void)
{
    qformer_config c;
    CHECK(tiny_qformer_config(&c) == ASPO_OK, "tiny qformer_config: %s", aspo_error_message());
    CHECK(c.vocab_size == 206 && c.hidden_size == 32 && c.num_layers == 3 && c.num_heads == 4 &&
              c.max_position_embeddings == 24 && c.encoder_hidden_size == 32,
          "sizes from the file");
    CHECK(c.cross_attention_frequency == 2 && c.layer_norm_eps == 1e-12 && c.act == CLIP_GELU &&
              c.pad_token_id == 0,
          "defaults: cross-attention every 2nd layer, eps 1e-12, gelu, pad 0");
    static const struct { const char *json, *key; aspo_status want; } bad[] = {
        {"{\"cross_attention_frequency\": 0}", "cross_attention_frequency", ASPO_ERR_FORMAT},
        {"{\"num_attention_heads\": 5}", "hidden_size", ASPO_ERR_FORMAT},
        {"{\"vocab_size\": 10, \"pad_token_id\": 10}", "pad_token_id", ASPO_ERR_FORMAT},
        {"{\"layer_norm_eps\": \"small\"}", "layer_norm_eps", ASPO_ERR_FORMAT},
        {"{\"max_position_embeddings\": -1}", "max_position_embeddings", ASPO_ERR_FORMAT},
        {"{\"position_embedding_type\": \"relative_key\"}", "position_embedding_type",
         ASPO_ERR_UNSUPPORTED},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        json_t *o = json_loads(bad[i].json, 0, NULL);
        expect_error(qformer_config_from_json(o, "cfg.json: qformer_config", 32, &c),
                     bad[i].want, bad[i].json, "cfg.json: qformer_config", bad[i].key);
        json_decref(o);
    }
}

/* (B,L) i32 fixture values as an f32 mask tensor. */
static tensor *mask_f32(const char *key, int64_t B, int64_t L)
{
    const st_entry *e = fx_entry(&out, key);
    if (!e || e->dt != DT_I32) return NULL;
    float m[B * L];
    for (int64_t i = 0; i < B * L; i++) m[i] = (float)((const int32_t *)e->data)[i];
    return tensor_from_host(DT_F32, DIMS(B, L), m);
}

static void test_qformer_forward(void)
{
    qformer_config c;
    if (tiny_qformer_config(&c)) return;
    param_store ps;
    param_store_init(&ps, runtime_backend());
    qformer q;
    linear projection;
    aspo_status s = qformer_declare(&q, &ps, "qformer", &c, DT_F32);
    tensor *queries = s ? NULL : param_declare(&ps, "query_tokens", DT_F32, DIMS(1, 4, 32), false);
    if (!s && !queries) s = aspo_error_status();
    if (!s) s = linear_declare(&projection, &ps, "language_projection", 32, 48, true, DT_F32,
                               false);
    if (!s) s = load_tiny(&ps, "qformer.");
    if (!s) {
        /* The image features as transformers computed them: the Q-Former alone is tested. */
        tensor *image = fx_tensor(&out, "vision_hidden"); /* (2,5,32) */
        tensor *ids = fx_tensor(&out, "qformer_input_ids");  /* (2,6) */
        tensor *h = qformer_forward(&q, queries, ids, mask_f32("qformer_attention_mask", 2, 6),
                                    image);                  /* (2,10,32) */
        enum { N = 2 * 10 * 32 };
        float got[N], proj[2 * 4 * 48];
        const float *want = fx_f32(&out, "qformer_hidden", N);
        CHECK(h && h->shape[1] == 10 && !tensor_to_host_f32(h, got), "Q-Former forward: %s",
              aspo_error_message());
        double e = want ? rel_err(got, want, N) : INFINITY;
        printf("  Q-Former last_hidden_state: rel err %.2e vs transformers\n", e);
        CHECK(e <= F32_TOL, "Q-Former last_hidden_state: rel err %g", e);
        /* language_projection of the query outputs: what fills the LLM's image positions. */
        tensor *p = h ? linear_forward(&projection, tensor_contiguous(tensor_slice(h, 1, 0, 4)))
                      : NULL;
        const float *want_p = fx_f32(&out, "language_inputs", 2 * 4 * 48);
        CHECK(p && !tensor_to_host_f32(p, proj), "projection: %s", aspo_error_message());
        e = want_p ? rel_err(proj, want_p, 2 * 4 * 48) : INFINITY;
        printf("  language_projection(query outputs): rel err %.2e vs transformers\n", e);
        CHECK(e <= F32_TOL, "language inputs: rel err %g", e);
        /* An instruction longer than the position table: an error that says so. */
        int32_t long_ids[2 * 25] = {0};
        CHECK(!qformer_forward(&q, queries, tensor_from_host(DT_I32, DIMS(2, 25), long_ids), NULL,
                               image) &&
                  strstr(aspo_error_message(), "25 tokens is longer than the Q-Former's 24"),
              "too-long instruction: %s", aspo_error_message());
        aspo_error_clear();
        end_step();
    }
    qformer_free(&q);
    param_store_free(&ps);
}

/* max |got - want| / max |want| of a tensor against the fixture's `key`. */
static double err_vs(tensor *got, const char *key, int64_t n)
{
    const float *want = fx_f32(&out, key, n);
    float *h = malloc(sizeof(float) * (size_t)n);
    double e = got && want && h && tensor_numel(got) == n && !tensor_to_host_f32(got, h)
                   ? rel_err(h, want, n) : INFINITY;
    free(h);
    return e;
}

/* The LLM's hidden states (B,Q+T,C) over [queries; text] as a training batch lays them
 * out: Q image positions (any id) before the fixture's input_ids (B,T), filled with the rows
 * of inputs (B,Q,C), all attended; the text's mask after them. */
static tensor *hidden_with_queries(instructblip_model *m, tensor *inputs)
{
    const st_entry *ids_e = fx_entry(&out, "input_ids"), *mask_e = fx_entry(&out, "attention_mask");
    if (!inputs || !ids_e || !mask_e) return NULL;
    int64_t B = ids_e->shape[0], T = ids_e->shape[1], Q = m->cfg.num_query_tokens, W = Q + T;
    int32_t ids[B * W], row[B * W];
    float mask[B * W];
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < W; t++) {
            bool query = t < Q;
            ids[b * W + t] = query ? m->cfg.image_token : ((const int32_t *)ids_e->data)[b * T + t - Q];
            row[b * W + t] = query ? (int32_t)(b * Q + t) : -1;
            mask[b * W + t] = query ? 1.0f : (float)((const int32_t *)mask_e->data)[b * T + t - Q];
        }
    return instructblip_forward_hidden(m, tensor_from_host(DT_I32, DIMS(B, W), ids),
                                       tensor_from_host(DT_F32, DIMS(B, W), mask), NULL, inputs,
                                       row);
}

static void test_model(void)
{
    instructblip_model m;
    aspo_status s = instructblip_open(fx("instructblip/tiny"), NULL, &m);
    CHECK(!s, "open tiny: %s", aspo_error_message());
    if (s) return;
    CHECK(m.cfg.num_query_tokens == 4 && m.lm.cfg.hidden_size == 48 && m.lm.cfg.vocab_size == 1024,
          "config: 4 queries, a 48-wide LLaMA of 1024 tokens");
    CHECK(m.cfg.image_token == 1024, "no image_token_index (4.44): the Q positions' id is the "
          "vocabulary size, which no text token has: %d", m.cfg.image_token);
    CHECK(m.cfg.image.crop_size == 28 && m.cfg.image.shortest_edge == 0,
          "preprocessor_config.json: BlipImageProcessor at 28 px");
    tensor *inputs = instructblip_image_inputs(&m, fx_tensor(&out, "pixel_values"),
                                               fx_tensor(&out, "qformer_input_ids"),
                                               mask_f32("qformer_attention_mask", 2, 6));
    double e = err_vs(inputs, "language_inputs", 2 * 4 * 48);
    printf("  image -> LLM inputs (vision, Q-Former, projection): rel err %.2e\n", e);
    CHECK(e <= F32_TOL, "LLM inputs from pixels: rel err %g", e);
    tensor *h = hidden_with_queries(&m, inputs);
    tensor *logits = h ? llama_lm_head(&m.lm, h) : NULL; /* (2,4+9,1024) */
    e = err_vs(logits, "logits", 2 * 13 * 1024);
    printf("  logits over [queries; text]: rel err %.2e vs transformers\n", e);
    CHECK(e <= F32_TOL, "logits: rel err %g", e);
    end_step();
    instructblip_close(&m);
}

/* Per-row sums of log p(ids[t] | queries, ids[<t]) over the answer positions, (B): logits
 * (B,Q+T,V) of hidden_with_queries, the text's from position Q. */
static tensor *answer_logprobs(tensor *logits, int64_t Q)
{
    const st_entry *ids_e = fx_entry(&out, "input_ids"), *ans_e = fx_entry(&out, "answer_mask");
    if (!logits || !ids_e || !ans_e) return NULL;
    const int32_t *ids = ids_e->data, *answer = ans_e->data;
    int64_t B = ids_e->shape[0], T = ids_e->shape[1], V = logits->shape[2], N = B * (T - 1);
    int32_t targets[N];
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t + 1 < T; t++)
            targets[b * (T - 1) + t] = answer[b * T + t + 1] ? ids[b * T + t + 1] : -100;
    tensor *text = tensor_slice(logits, 1, Q, T - 1);                 /* (B,T-1,V) */
    tensor *lp = tensor_gather_logprobs(tensor_reshape(tensor_contiguous(text), DIMS(N, V)),
                                        tensor_from_host(DT_I32, DIMS(N), targets), -100);
    return tensor_sum(tensor_reshape(lp, DIMS(B, T - 1)), 1, false); /* (B) */
}

/* LoRA on the LLM's q/k/v from PEFT's adapter: the answer log-probs and every LoRA gradient
 * against PEFT 0.12. Gradients add the backward pass's rounding: the LLaVA suite measured
 * 1.6e-6 of the scale; 2e-5 as there. */
#define GRAD_TOL 2e-5

static void test_lora(void)
{
    llama_options o = llama_defaults();
    o.adapter_dir = fx("instructblip/lora_adapter");
    instructblip_model m;
    aspo_status s = instructblip_open(fx("instructblip/tiny"), &o, &m);
    CHECK(!s, "open with the PEFT adapter: %s", aspo_error_message());
    if (s) return;
    int adapted = 0;
    for (int i = 0; i < m.lm.ps.n; i++)
        adapted += strstr(m.lm.ps.items[i]->name, ".lora_A") != NULL;
    CHECK(adapted == 6, "2 layers x q, k, v adapted, nothing in the Q-Former or vision: %d",
          adapted);
    CHECK(param_store_zero_grad(&m.lm.ps) == ASPO_OK, "zero grad");
    /* The frozen image side without a tape, as training runs it. */
    bool prev = autograd_set_enabled(false);
    tensor *inputs = instructblip_image_inputs(&m, fx_tensor(&out, "pixel_values"),
                                               fx_tensor(&out, "qformer_input_ids"),
                                               mask_f32("qformer_attention_mask", 2, 6));
    autograd_set_enabled(prev);
    tensor *h = hidden_with_queries(&m, inputs);
    tensor *lp = answer_logprobs(h ? llama_lm_head(&m.lm, h) : NULL, 4);
    double e = err_vs(lp, "lora_logprobs", 2);
    printf("  LoRA answer log-probs: rel err %.2e vs PEFT\n", e);
    CHECK(e <= F32_TOL, "LoRA log-probs: rel err %g", e);
    CHECK(lp && tensor_backward(tensor_sum_all(lp)) == ASPO_OK, "backward: %s",
          aspo_error_message());
    double worst = 0;
    int n = 0;
    for (int i = 0; lp && i < m.lm.ps.n; i++) {
        tensor *t = m.lm.ps.items[i];
        if (!strstr(t->name, ".lora_")) continue;
        char key[512];
        snprintf(key, sizeof key, "lora_grad.base_model.model.%s", t->name);
        e = t->grad ? err_vs(t->grad, key, tensor_numel(t)) : INFINITY;
        worst = fmax(worst, e);
        CHECK(e <= GRAD_TOL, "gradient of %s: rel err %g", t->name, e);
        n++;
    }
    printf("  %d LoRA gradients: worst rel err %.2e vs PEFT\n", n, worst);
    CHECK(n == 12, "12 LoRA gradients (6 modules x A, B): %d", n);
    end_step();
    instructblip_close(&m);
}

/* Checkpoints of transformers 4.47 and later name an image token (config.json's
 * image_token_index) whose Q copies the processor puts before BOS; 4.44 concatenates the
 * queries there. Same sequence, same logits: only the id of the Q positions changes. */
static void test_image_token_layout(void)
{
    const char *dir = tmp("image_token");
    CHECK(write_config_changed(dir, fx("instructblip/tiny/config.json"), "image_token_index",
                               json_integer(1000)) &&
              link_into(dir, "model.safetensors", fx("instructblip/tiny/model.safetensors")),
          "write");
    instructblip_model m;
    aspo_status s = instructblip_open(dir, NULL, &m);
    CHECK(!s, "open with image_token_index: %s", aspo_error_message());
    if (s) return;
    CHECK(m.cfg.image_token == 1000, "the Q positions' id is image_token_index: %d",
          m.cfg.image_token);
    tensor *inputs = instructblip_image_inputs(&m, fx_tensor(&out, "pixel_values"),
                                               fx_tensor(&out, "qformer_input_ids"),
                                               mask_f32("qformer_attention_mask", 2, 6));
    tensor *h = hidden_with_queries(&m, inputs);
    double e = err_vs(h ? llama_lm_head(&m.lm, h) : NULL, "logits", 2 * 13 * 1024);
    printf("  image-token layout: logits rel err %.2e vs transformers 4.44's\n", e);
    CHECK(e <= F32_TOL, "image-token layout logits: rel err %g", e);
    end_step();
    instructblip_close(&m);
}

static void test_model_bad_input(void)
{
    instructblip_model m;
    const char *dir = tmp("bad"), *tiny = fx("instructblip/tiny/config.json");
    static const char *const parts[] = {"vision_config", "qformer_config", "text_config"};
    for (int i = 0; i < 3; i++) {
        CHECK(write_config_changed(dir, tiny, parts[i], NULL), "write");
        expect_error(instructblip_open(dir, NULL, &m), ASPO_ERR_FORMAT, parts[i],
                     "bad/config.json", parts[i]);
    }
    json_t *t5 = json_pack("{s:s}", "model_type", "t5");
    CHECK(write_config_changed(dir, tiny, "text_config", t5), "write");
    expect_error(instructblip_open(dir, NULL, &m), ASPO_ERR_UNSUPPORTED, "Flan-T5",
                 "bad/config.json", "\"t5\"", "LLaMA");
    /* num_query_tokens 5 against the file's 4 queries: the tensor is named. */
    CHECK(write_config_changed(dir, tiny, "num_query_tokens", json_integer(5)) &&
              link_into(dir, "model.safetensors", fx("instructblip/tiny/model.safetensors")),
          "write");
    expect_error(instructblip_open(dir, NULL, &m), ASPO_ERR_SHAPE, "5 queries", "query_tokens");
    CHECK(m.lm.layers == NULL && m.vision.layers == NULL, "closed after failure");
    /* A checkpoint without one Q-Former tensor: named. */
    const char *cut = tmp("cut");
    CHECK(write_config_changed(cut, tiny, "num_query_tokens", json_integer(4)), "write");
    st_model st;
    CHECK(st_open(fx("instructblip/tiny/model.safetensors"), &st) == ASPO_OK, "open");
    st_write_entry *e = calloc((size_t)st.n_entries, sizeof *e);
    int n = 0;
    const char *gone = "qformer.encoder.layer.0.crossattention.attention.key.weight";
    for (int i = 0; e && i < st.n_entries; i++)
        if (strcmp(st.entries[i].name, gone))
            e[n++] = (st_write_entry){st.entries[i].name, st.entries[i].dt, st.entries[i].ndim,
                                      st.entries[i].shape, st.entries[i].data};
    CHECK(e && st_write(join(cut, "model.safetensors"), e, n, NULL, NULL, 0) == ASPO_OK, "write");
    free(e);
    st_close(&st);
    expect_error(instructblip_open(cut, NULL, &m), ASPO_ERR_FORMAT, "missing tensor", gone);
}

/* BlipImageProcessor against transformers on the image fixtures. Tolerance as
 * test_image.c's for CLIP: the resize is integer arithmetic on uint8 with the same weights
 * as Pillow's, rescale is float64 rounded to float32, normalisation one float32 subtract
 * and divide: exact but for a compiler contracting (r-m)/s differently (an ulp of ~2 is
 * 2.4e-7), so 1e-6. */
static void test_preprocess(void)
{
    st_model ref;
    if (st_open(fx("instructblip/preprocess.safetensors"), &ref)) {
        CHECK(0, "preprocess.safetensors: %s", aspo_error_message());
        return;
    }
    static const char *const names[] = {"rgb.png", "wide.png", "photo.jpg", "grey.png",
                                        "palette.png", "rgba.png", "big.jpg"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        image_rgb8 img;
        float got[3 * 24 * 24];
        char key[64];
        snprintf(key, sizeof key, "%s.blip24", names[i]);
        const float *want = fx_f32(&ref, key, 3 * 24 * 24);
        clip_preprocess_config c = clip_config_default(24);
        aspo_status s = image_load(join(fx("image"), names[i]), NULL, &img);
        if (!s) s = blip_preprocess(&img, &c, got);
        CHECK(!s, "%s: %s", names[i], aspo_error_message());
        double worst = 0;
        for (int k = 0; !s && want && k < 3 * 24 * 24; k++)
            worst = fmax(worst, fabs((double)got[k] - want[k]));
        CHECK(!s && want && worst <= 1e-6, "%s blip24: max abs diff %g", names[i], worst);
        if (!s) image_free(&img);
        aspo_error_clear();
    }
    /* The released models' 224 (photo.jpg is 45x35: an upscale and a change of aspect),
     * on the committed every-97th-value sample. */
    image_rgb8 img;
    enum { N = 3 * 224 * 224 };
    float *got = malloc(sizeof(float) * N);
    const float *want = fx_f32(&ref, "photo.jpg.blip224_sample", (N + 96) / 97);
    clip_preprocess_config c = clip_config_default(224);
    aspo_status s = got ? image_load(fx("image/photo.jpg"), NULL, &img) : ASPO_ERR_OOM;
    if (!s) s = blip_preprocess(&img, &c, got);
    double worst = 0;
    for (int k = 0; !s && want && k < N; k += 97)
        worst = fmax(worst, fabs((double)got[k] - want[k / 97]));
    CHECK(!s && want && worst <= 1e-6, "photo.jpg blip224: max abs diff %g (%s)", worst,
          s ? aspo_error_message() : "ok");
    printf("  BlipImageProcessor at 224: max abs diff %.1e over every 97th value\n", worst);
    if (!s) image_free(&img);
    free(got);
    st_close(&ref);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_instructblip FIXTURE_DIR [BACKEND]\n");
        return 2;
    }
    fixtures = argv[1];
    /* argv[2]: another backend the model runs on, against the same transformers outputs. */
    backend *be = argc > 2 ? backend_get(argv[2]) : backend_cpu();
    if (!be) {
        printf("SKIP: %s\n", aspo_error_message());
        return 77;
    }
    if (!(tmp_root = test_tmp_make("instructblip"))) return 1;
    runtime_init(be, 0);
    if (st_open(fx("instructblip/tiny_outputs.safetensors"), &out)) {
        CHECK(0, "tiny_outputs.safetensors: %s", aspo_error_message());
        return check_summary("instructblip");
    }
    test_preprocess();
    test_vision_config();
    test_vision_forward();
    test_qformer_config();
    test_qformer_forward();
    test_model();
    test_lora();
    test_image_token_layout();
    test_model_bad_input();
    st_close(&out);
    runtime_shutdown();
    test_tmp_remove();
    return check_summary("instructblip");
}
