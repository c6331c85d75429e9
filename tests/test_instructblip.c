/* InstructBLIP against transformers 4.44.2 InstructBlipForConditionalGeneration (fixtures
 * from tests/parity/make_instructblip_fixtures.py): so far the vision encoder, its config
 * (with the defaults save_pretrained leaves out) and its bad input. argv[1] =
 * tests/fixtures. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "backends/registry.h"
#include "models/blip_vision.h"
#include "models/weights.h"
#include "tensor/json_file.h"
#include "tensor/runtime.h"
#include "tensor/tensor_ops.h"
#include "tests/test_support.h"

static const char *fixtures;
static st_model out; /* instructblip/tiny_outputs.safetensors */

static const char *fx(const char *name) { return join(fixtures, name); }

/* f32 weights and compute through 2 encoder layers and the post-layernorm: transformers and
 * aspo differ by summation order (~1e-7 relative per op); 1e-5 of the tensor's scale leaves
 * margin and still catches a wrong weight, bias third or norm (those move it by 1e-2 and
 * more). */
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

static void test_vision_forward(void)
{
    blip_vision_config c;
    if (tiny_vision_config(&c)) return;
    st_model st;
    if (st_open(fx("instructblip/tiny"), &st)) {
        CHECK(0, "tiny model: %s", aspo_error_message());
        return;
    }
    param_store ps;
    param_store_init(&ps, runtime_backend());
    blip_vision v;
    aspo_status s = blip_vision_declare(&v, &ps, "vision_model", &c, DT_F32);
    if (!s) s = param_store_allocate(&ps);
    if (!s) s = weights_load_store(&ps, &st, NULL, NULL, NULL);
    CHECK(!s, "vision weights: %s", aspo_error_message());
    /* Every vision tensor of the checkpoint is one of ours (none is left unread). */
    int unread = 0;
    for (int i = 0; i < st.n_entries; i++)
        unread += !strncmp(st.entries[i].name, "vision_model.", 13) &&
                  !param_find(&ps, st.entries[i].name);
    CHECK(unread == 0, "%d vision_model tensors of the file have no parameter", unread);
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
    st_close(&st);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_instructblip FIXTURE_DIR\n");
        return 2;
    }
    fixtures = argv[1];
    runtime_init(backend_cpu(), 0);
    if (st_open(fx("instructblip/tiny_outputs.safetensors"), &out)) {
        CHECK(0, "tiny_outputs.safetensors: %s", aspo_error_message());
        return check_summary("instructblip");
    }
    test_vision_config();
    test_vision_forward();
    st_close(&out);
    runtime_shutdown();
    return check_summary("instructblip");
}
