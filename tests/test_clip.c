/* CLIP towers against transformers 4.44.2 (fixtures from tests/parity/make_clip_fixtures.py):
 * config parsing with save_pretrained's omitted defaults, image and text embeddings,
 * logits_per_image, vision hidden_states[0] and [-2], bf16 storage, a bare
 * CLIPVisionConfig directory, and bad input. argv[1] = tests/fixtures/clip. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/registry.h"
#include "models/clip.h"
#include "tensor/autograd.h"
#include "tensor/runtime.h"
#include "tensor/tensor_ops.h"
#include "tests/test_support.h"

static const char *fixtures, *tmp_root;
static st_model out; /* outputs.safetensors */

/* The tensor against the fixture's `key`: its shape, then rel_err within tol. */
static void check_close(tensor *got, const char *key, double tol, const char *what)
{
    const st_entry *e = fx_entry(&out, key);
    if (!e) return;
    int64_t n = 1;
    for (int i = 0; i < e->ndim; i++) n *= e->shape[i];
    CHECK(got != NULL, "%s %s: %s", what, key, aspo_error_message());
    if (!got) return;
    bool same = got->ndim == e->ndim;
    for (int i = 0; same && i < e->ndim; i++) same = got->shape[i] == e->shape[i];
    CHECK(same, "%s %s: shape differs from the fixture's", what, key);
    if (!same) return;
    float *h = malloc(sizeof(float) * (size_t)n);
    CHECK(tensor_to_host_f32(got, h) == ASPO_OK, "%s %s: to host", what, key);
    double err = rel_err(h, e->data, n);
    CHECK(err <= tol, "%s %s: relative error %.3g > %.3g", what, key, err, tol);
    free(h);
}

static void test_config(void)
{
    clip_config c;
    CHECK(clip_config_load(join(fixtures, "model/config.json"), &c) == ASPO_OK, "config: %s",
          aspo_error_message());
    CHECK(c.has_text && c.projection_dim == 16 && fabs(c.logit_scale_init_value - 2.0) < 1e-12,
          "CLIPConfig top level");
    CHECK(c.vision.hidden_size == 32 && c.vision.num_layers == 2 && c.vision.num_heads == 4 &&
          c.vision.head_dim == 8 && c.vision.image_size == 32 && c.vision.patch_size == 8 &&
          c.vision.num_channels == 3 && c.vision.act == CLIP_QUICK_GELU, "vision_config");
    /* Left out by save_pretrained as equal to the defaults. */
    CHECK(c.text.max_position_embeddings == 77 && c.text.pad_token_id == 1 &&
          fabs(c.text.layer_norm_eps - 1e-5) < 1e-15 && c.text.eos_token_id == 99 &&
          c.text.vocab_size == 100, "text_config with defaults");
    CHECK(clip_config_load(join(fixtures, "vision_config.json"), &c) == ASPO_OK && !c.has_text &&
          c.vision.hidden_size == 32 && c.vision.patch_size == 8, "bare vision config: %s",
          aspo_error_message());
    expect_error(clip_config_load(join(fixtures, "outputs.safetensors"), &c), ASPO_ERR_FORMAT,
                 "not JSON", "outputs.safetensors");
    expect_error(clip_config_load(join(fixtures, "missing.json"), &c), ASPO_ERR_IO, "missing",
                 "missing.json");
}

/* f32 weights, f32 compute, 2 layers: transformers and aspo differ by summation order
 * (~1e-7 per op), a few 1e-6 at most after the norms; 2e-5 of the tensor's scale. */
enum { F32_TOL_E6 = 20 };
#define F32_TOL (F32_TOL_E6 * 1e-6)

static void run_full(clip_model *m, double tol, const char *what)
{
    bool prev = autograd_set_enabled(false);
    tensor *pixels = fx_tensor(&out, "pixel_values"), *h_m2 = NULL, *h_0 = NULL;
    /* CLIPOutput's image_embeds / text_embeds are the normalised features. */
    tensor *img = clip_vision_forward(m, pixels, -2, &h_m2);
    check_close(tensor_l2_normalize(img, 1e-12f), "image_embeds", tol, what);
    check_close(h_m2, "vision_hidden_m2", tol, what);
    tensor *img2 = clip_vision_forward(m, pixels, 0, &h_0);
    check_close(h_0, "vision_hidden_0", tol, what);
    check_close(tensor_l2_normalize(img2, 1e-12f), "image_embeds", tol, what);
    tensor *h_last = NULL; /* index 2 == -1: the last layer's output */
    CHECK(clip_vision_forward(m, pixels, 2, &h_last) && h_last, "%s: hidden_states[2]", what);
    tensor *txt = clip_text_forward(m, fx_tensor(&out, "input_ids"),
                                    fx_tensor(&out, "attention_mask"));
    check_close(tensor_l2_normalize(txt, 1e-12f), "text_embeds", tol, what);
    /* Without the mask: causal attention already hides the trailing padding from the
     * pooled token. */
    tensor *unmasked = clip_text_forward(m, fx_tensor(&out, "input_ids"), NULL);
    check_close(tensor_l2_normalize(unmasked, 1e-12f), "text_embeds", tol, what);
    check_close(clip_logits(img, txt, m->logit_scale), "logits_per_image", tol, what);
    autograd_set_enabled(prev);
    end_step();
}

static void test_full(void)
{
    clip_model m;
    CHECK(clip_open(join(fixtures, "model"), -1, &m) == ASPO_OK, "open: %s",
          aspo_error_message());
    aspo_error_clear();
    if (!m.patch_weight) return;
    CHECK(m.storage_dt == DT_F32 && m.has_visual_projection && m.logit_scale, "f32 CLIPModel");
    CHECK(clip_vision_num_hidden(&m) == 3, "3 hidden states");
    run_full(&m, F32_TOL, "f32");

    /* Bad input, on the open model. */
    bool prev = autograd_set_enabled(false);
    tensor *h = NULL;
    tensor *small = tensor_fill(tensor_empty(DT_F32, DIMS(1, 3, 16, 16)), 0.5f);
    CHECK(!clip_vision_forward(&m, small, -1, NULL), "16x16 image refused");
    expect_error(aspo_error_status(), ASPO_ERR_SHAPE, "small image", "(B,3,32,32)");
    CHECK(!clip_vision_forward(&m, fx_tensor(&out, "pixel_values"), 3, &h) && !h,
          "layer 3 refused");
    expect_error(aspo_error_status(), ASPO_ERR_USAGE, "layer 3", "0..2");
    CHECK(!clip_vision_forward(&m, fx_tensor(&out, "pixel_values"), -4, &h),
          "layer -4 refused");
    expect_error(aspo_error_status(), ASPO_ERR_USAGE, "layer -4", "hidden state -4");
    const int32_t no_eos[] = {98, 5, 6, 7};
    CHECK(!clip_text_forward(&m, tensor_from_host(DT_I32, DIMS(1, 4), no_eos), NULL),
          "row without eos refused");
    expect_error(aspo_error_status(), ASPO_ERR_USAGE, "no eos", "no end token 99");
    const int32_t big[] = {98, 100, 99};
    CHECK(!clip_text_forward(&m, tensor_from_host(DT_I32, DIMS(1, 3), big), NULL),
          "id 100 refused");
    expect_error(aspo_error_status(), ASPO_ERR_USAGE, "big id", "outside the vocabulary");
    int32_t long_ids[78];
    for (int i = 0; i < 78; i++) long_ids[i] = 99;
    CHECK(!clip_text_forward(&m, tensor_from_host(DT_I32, DIMS(1, 78), long_ids), NULL),
          "78 tokens refused");
    expect_error(aspo_error_status(), ASPO_ERR_SHAPE, "too long", "T <= 77");
    autograd_set_enabled(prev);
    end_step();
    clip_close(&m);
}

/* bf16 storage: weights rounded to 8 bits of mantissa (relative 2^-9 each) through 2
 * layers and two norms; 3e-2 of the scale still catches a wrong layout or weight. */
static void test_bf16(void)
{
    clip_model m;
    CHECK(clip_open(join(fixtures, "model"), DT_BF16, &m) == ASPO_OK, "open bf16: %s",
          aspo_error_message());
    if (!m.patch_weight) return;
    CHECK(m.storage_dt == DT_BF16 && m.logit_scale->dt == DT_F32, "bf16 storage");
    run_full(&m, 3e-2, "bf16");
    clip_close(&m);
}

/* A LLaVA-style vision tower directory: bare CLIPVisionConfig + the CLIPModel weights
 * (text_model.* and logit_scale are ignored). */
static void test_vision_only(void)
{
    CHECK(copy_file(join(fixtures, "vision_config.json"), join(tmp_root, "config.json")) &&
          copy_file(join(fixtures, "model/model.safetensors"),
                    join(tmp_root, "model.safetensors")), "vision dir");
    clip_model m;
    CHECK(clip_open(tmp_root, -1, &m) == ASPO_OK, "open vision-only: %s", aspo_error_message());
    aspo_error_clear();
    if (!m.patch_weight) return;
    CHECK(!m.cfg.has_text && !m.logit_scale && m.has_visual_projection, "vision only");
    bool prev = autograd_set_enabled(false);
    tensor *h = NULL, *pixels = fx_tensor(&out, "pixel_values");
    check_close(tensor_l2_normalize(clip_vision_forward(&m, pixels, -2, &h), 1e-12f),
                "image_embeds", F32_TOL, "vision-only");
    check_close(h, "vision_hidden_m2", F32_TOL, "vision-only");
    CHECK(!clip_text_forward(&m, fx_tensor(&out, "input_ids"), NULL), "no text tower");
    expect_error(aspo_error_status(), ASPO_ERR_USAGE, "text on vision-only", "no text tower");
    autograd_set_enabled(prev);
    end_step();
    clip_close(&m);
}

static void test_bad_open(void)
{
    clip_model m;
    expect_error(clip_open(join(fixtures, "nowhere"), -1, &m), ASPO_ERR_IO, "no dir",
                 "nowhere/config.json");
    CHECK(m.patch_weight == NULL && m.vision_layers == NULL, "closed after failure");
    expect_error(clip_open(join(fixtures, "model"), DT_I32, &m), ASPO_ERR_USAGE, "i32 storage",
                 "storage dtype");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_clip FIXTURE_DIR\n");
        return 2;
    }
    fixtures = argv[1];
    if (!(tmp_root = test_tmp_make("clip"))) return 1;
    runtime_init(backend_cpu(), 0);
    if (st_open(join(fixtures, "outputs.safetensors"), &out)) {
        CHECK(0, "outputs.safetensors: %s", aspo_error_message());
        return check_summary("clip");
    }
    test_config();
    test_full();
    test_bf16();
    test_vision_only();
    test_bad_open();
    st_close(&out);
    runtime_shutdown();
    test_tmp_remove();
    return check_summary("clip");
}
