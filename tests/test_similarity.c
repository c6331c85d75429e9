/* ASPO's CLIP similarities S_i against transformers 4.44.2 (fixtures from
 * tests/parity/make_similarity_fixtures.py: a tiny random CLIPModel whose text vocabulary
 * is tests/fixtures/clip_tokenizer's, 9 unit texts incl. an empty one, one over 77 tokens,
 * one with upper case and odd whitespace, and 2 images). Also: truncation, batching,
 * texts given by pointer + length, a bare vision tower, bad input.
 * argv[1] = tests/fixtures/similarity. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/registry.h"
#include "aspo/train/similarity.h"
#include "tensor/json_file.h"
#include "tensor/runtime.h"
#include "tensor/safetensors.h"
#include "tests/test_support.h"

enum { MAX_TEXTS = 16, E = 16 };

static const char *fixtures, *tmp_root;
static st_model tensors;  /* tensors.safetensors */
static json_t *cases;     /* cases.json */
static int n_texts;
static const char *texts[MAX_TEXTS];
static size_t lens[MAX_TEXTS];
static double want_S[2][MAX_TEXTS];
static const float *pixels, *image_features; /* (2,3,32,32), (2,E) from transformers */

static bool load_fixtures(void)
{
    if (st_open(join(fixtures, "tensors.safetensors"), &tensors) ||
        !(cases = json_file_load(join(fixtures, "cases.json"), "similarity cases"))) {
        CHECK(0, "fixtures: %s", aspo_error_message());
        return false;
    }
    json_t *jt = json_object_get(cases, "texts"), *jS = json_object_get(cases, "S");
    n_texts = (int)json_array_size(jt);
    CHECK(n_texts >= 8 && n_texts <= MAX_TEXTS && json_array_size(jS) == 2, "cases.json shape");
    if (n_texts < 8 || n_texts > MAX_TEXTS || json_array_size(jS) != 2) return false;
    for (int i = 0; i < n_texts; i++) {
        texts[i] = json_string_value(json_array_get(jt, (size_t)i));
        lens[i] = json_string_length(json_array_get(jt, (size_t)i));
        for (int j = 0; j < 2; j++)
            want_S[j][i] = json_real_value(json_array_get(json_array_get(jS, (size_t)j),
                                                          (size_t)i));
    }
    pixels = fx_f32(&tensors, "pixel_values", 2 * 3 * 32 * 32);
    image_features = fx_f32(&tensors, "image_features", 2 * E);
    return pixels && image_features;
}

/* The C tokenizer gives transformers' ids for every unit (integer work: exact), so the
 * texts reach the tower as they did in Python; text 3 is cut to 77 with the end kept. */
static void test_tokens(const clip_tokenizer *tok)
{
    json_t *jids = json_object_get(cases, "ids");
    for (int i = 0; i < n_texts; i++) {
        int32_t ids[CLIP_CONTEXT_LENGTH];
        int n = 0;
        CHECK(clip_tokenize(tok, texts[i], lens[i], ids, CLIP_CONTEXT_LENGTH, &n) == ASPO_OK,
              "tokenize %d: %s", i, aspo_error_message());
        json_t *w = json_array_get(jids, (size_t)i);
        bool same = (size_t)n == json_array_size(w);
        for (int k = 0; same && k < n; k++)
            same = ids[k] == json_integer_value(json_array_get(w, (size_t)k));
        CHECK(same, "text %d: ids differ from CLIPTokenizer's (%d vs %zu tokens)", i, n,
              json_array_size(w));
    }
    CHECK(json_array_size(json_array_get(jids, 3)) == CLIP_CONTEXT_LENGTH,
          "text 3 is the truncated one");
}

/* f32 weights and compute through 2 layers: aspo and transformers differ by summation
 * order, ~1e-7 per op, a few 1e-6 of the scale at the features (test_clip allows 2e-5).
 * A cosine of unit vectors moves by at most the sum of the two relative errors: 1e-5
 * absolute, while the fixture's S of different units are >= 1.8e-3 apart. */
#define S_TOL 1e-5
#define FEATURE_TOL 2e-5

static double worst_S_error; /* printed: how much of S_TOL is used */

static void check_S(const float *got, const double *want, int n, double tol, const char *what)
{
    for (int i = 0; i < n; i++) {
        worst_S_error = fmax(worst_S_error, fabs((double)got[i] - want[i]));
        char label[96];
        snprintf(label, sizeof label, "%s: S[%d]", what, i);
        CHECK(fabs((double)got[i] - want[i]) <= tol, "%s: got %.9g, want %.9g (tol %g)", label,
              (double)got[i], want[i], tol);
    }
}

static void test_image(clip_scorer *sc, float *own /* (2,E) out */)
{
    float one[2 * E];
    sc->max_batch = 0; /* the default: both images in one pass */
    CHECK(clip_image_embedding(sc, 2, pixels, own) == ASPO_OK, "image embedding: %s",
          aspo_error_message());
    double err = rel_err(own, image_features, 2 * E);
    CHECK(err <= FEATURE_TOL, "image features: relative error %.3g > %.3g", err, FEATURE_TOL);
    sc->max_batch = 1;
    CHECK(clip_image_embedding(sc, 2, pixels, one) == ASPO_OK, "one image a pass: %s",
          aspo_error_message());
    for (int i = 0; i < 2 * E; i++)
        CHECK(fabs(one[i] - own[i]) <= 1e-6 * fmax(1.0, fabs(own[i])), "image batch 1 vs 2: "
              "feature %d: %.9g vs %.9g", i, (double)one[i], (double)own[i]);
    CHECK(runtime_current()->data.used == 0, "the step arena is left reset");
}

static void test_similarities(clip_scorer *sc, const float *own)
{
    float S[MAX_TEXTS];
    for (int j = 0; j < 2; j++) {
        char what[64];
        sc->max_batch = 3;
        snprintf(what, sizeof what, "image %d, transformers' embedding", j);
        CHECK(clip_similarities(sc, n_texts, texts, lens, image_features + j * E, E, S) ==
              ASPO_OK, "%s: %s", what, aspo_error_message());
        check_S(S, want_S[j], n_texts, S_TOL, what);
        snprintf(what, sizeof what, "image %d, aspo's embedding", j);
        CHECK(clip_similarities(sc, n_texts, texts, lens, own + j * E, E, S) == ASPO_OK,
              "%s: %s", what, aspo_error_message());
        check_S(S, want_S[j], n_texts, S_TOL, what);
    }
    CHECK(runtime_current()->data.used == 0 && runtime_current()->host.used == 0,
          "the step arenas are left reset");
    printf("S against transformers: max |diff| %.3g (tolerance %g)\n", worst_S_error, S_TOL);
}

/* Batches pad to their longest text; padding sits after the pooled end token behind a
 * causal mask, so only matmul blocking can differ: within 1e-6. */
static void test_batching(clip_scorer *sc)
{
    float ref[MAX_TEXTS], got[MAX_TEXTS];
    sc->max_batch = 100;
    CHECK(clip_similarities(sc, n_texts, texts, lens, image_features, E, ref) == ASPO_OK,
          "max_batch 100: %s", aspo_error_message());
    const int sizes[] = {1, 2, 3, 8};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        sc->max_batch = sizes[k];
        CHECK(clip_similarities(sc, n_texts, texts, lens, image_features, E, got) == ASPO_OK,
              "max_batch %d: %s", sizes[k], aspo_error_message());
        int bitwise = 0;
        double worst = 0;
        for (int i = 0; i < n_texts; i++) {
            bitwise += got[i] == ref[i];
            worst = fmax(worst, fabs((double)got[i] - ref[i]));
            CHECK(fabs((double)got[i] - ref[i]) <= 1e-6, "max_batch %d vs 100: S[%d] %.9g vs "
                  "%.9g", sizes[k], i, (double)got[i], (double)ref[i]);
        }
        printf("max_batch %d: %d of %d S bitwise equal to max_batch 100's, max |diff| %.3g\n",
               sizes[k], bitwise, n_texts, worst);
    }
}

/* Only the first 75 tokens of a unit count; tokens before the cut do. Texts are given by
 * pointer and length inside larger buffers (no NUL at the end). */
static void test_truncation_and_spans(clip_scorer *sc)
{
    char longer[1024], buf[256];
    snprintf(longer, sizeof longer, "%s And then a blue boat sails past the bridge.", texts[3]);
    const char *t[4] = {texts[3], longer, texts[3], texts[0]};
    size_t l[4] = {lens[3], strlen(longer), lens[3] / 3, lens[0]};
    /* Unit 0 from the middle of a buffer, with bytes around it that would change it. */
    snprintf(buf, sizeof buf, "XX%sYY", texts[0]);
    const char *t2[2] = {buf + 2, ""};
    size_t l2[2] = {lens[0], 0};
    float S[4], S2[2];
    sc->max_batch = 1; /* same shapes for the long texts: bitwise comparable */
    CHECK(clip_similarities(sc, 4, t, l, image_features, E, S) == ASPO_OK, "truncation: %s",
          aspo_error_message());
    CHECK(S[0] == S[1], "text after the 75th token is ignored: %.9g vs %.9g", (double)S[0],
          (double)S[1]);
    CHECK(fabs(S[0] - S[2]) > 1e-4, "a shorter prefix is another text: %.9g vs %.9g",
          (double)S[0], (double)S[2]);
    CHECK(fabs(S[3] - want_S[0][0]) <= S_TOL, "unit 0 alone");
    CHECK(clip_similarities(sc, 2, t2, l2, image_features, E, S2) == ASPO_OK, "spans: %s",
          aspo_error_message());
    CHECK(S2[0] == S[3], "unit 0 as a span inside a buffer: %.9g vs %.9g", (double)S2[0],
          (double)S[3]);
    /* Empty and whitespace-only units are both <|startoftext|><|endoftext|>. */
    const char *blank[2] = {"", " \t\n "};
    size_t blank_len[2] = {0, 4};
    float Sb[2];
    CHECK(clip_similarities(sc, 2, blank, blank_len, image_features, E, Sb) == ASPO_OK,
          "blank: %s", aspo_error_message());
    CHECK(fabs(Sb[0] - want_S[0][2]) <= S_TOL && Sb[0] == Sb[1] && S2[1] == Sb[0],
          "empty unit: %.9g, blank %.9g, want %.9g", (double)Sb[0], (double)Sb[1], want_S[0][2]);
}

static void test_bad_input(clip_scorer *sc)
{
    float S[3] = {-7, -7, -7}, zero[E] = {0};
    sc->max_batch = 2;
    CHECK(clip_similarities(sc, 0, NULL, NULL, image_features, E, S) == ASPO_OK && S[0] == -7,
          "n = 0 does nothing");
    expect_error(clip_similarities(sc, 1, texts, lens, image_features, 8, S), ASPO_ERR_SHAPE,
                 "E 8", "has 8 values but the CLIP model's embedding space has 16");
    expect_error(clip_similarities(sc, 1, texts, lens, zero, E, S), ASPO_ERR_NUMERIC,
                 "zero image", "image embedding is zero");
    const char *bad[3] = {"fine.", "also fine.", "broken \xff utf-8"};
    size_t bad_len[3] = {5, 10, strlen(bad[2])};
    expect_error(clip_similarities(sc, 3, bad, bad_len, image_features, E, S), ASPO_ERR_USAGE,
                 "invalid UTF-8", "unit 2");
    CHECK(runtime_current()->data.used == 0, "the step arena is reset after a failure too");

    /* A CLIP whose text tower does not fit the tokenizer. */
    clip_tower_config saved = sc->clip->cfg.text;
    sc->clip->cfg.text.eos_token_id = 4000;
    expect_error(clip_similarities(sc, 1, texts, lens, image_features, E, S), ASPO_ERR_USAGE,
                 "other eos", "end token is id 4513 but the CLIP text tower pools at "
                 "eos_token_id 4000");
    sc->clip->cfg.text.eos_token_id = 2; /* legacy argmax pooling: fine, 4513 is the largest */
    CHECK(clip_similarities(sc, 1, texts, lens, image_features, E, S) == ASPO_OK &&
          fabs(S[0] - want_S[0][0]) <= S_TOL, "legacy eos 2: %s", aspo_error_message());
    sc->clip->cfg.text = saved;
    sc->clip->cfg.text.vocab_size = 100;
    expect_error(clip_similarities(sc, 1, texts, lens, image_features, E, S), ASPO_ERR_USAGE,
                 "small vocab", "the tokenizer has 4514 tokens but the CLIP text tower only 100");
    sc->clip->cfg.text = saved;
    clip_scorer none = {.clip = sc->clip, .tok = NULL};
    expect_error(clip_similarities(&none, 1, texts, lens, image_features, E, S), ASPO_ERR_USAGE,
                 "no tokenizer", "no CLIP model or tokenizer");
}

/* A LLaVA-style vision tower directory (bare CLIPVisionConfig) with the same weights: its
 * image embedding is the full model's, but it has no text tower to score units with. */
static void test_bare_vision(const clip_tokenizer *tok, const float *own)
{
    CHECK(write_file_text(join(tmp_root, "config.json"),
                          "{\"model_type\": \"clip_vision_model\", \"hidden_size\": 32, "
                          "\"intermediate_size\": 64, \"num_hidden_layers\": 2, "
                          "\"num_attention_heads\": 4, \"image_size\": 32, \"patch_size\": 8}\n") &&
          copy_file(join(fixtures, "model/model.safetensors"),
                    join(tmp_root, "model.safetensors")), "vision tower dir");
    clip_model m;
    CHECK(clip_open(tmp_root, -1, &m) == ASPO_OK, "open bare vision: %s", aspo_error_message());
    aspo_error_clear();
    if (!m.patch_weight) return;
    clip_scorer sc = {.clip = &m, .tok = tok, .max_batch = 2};
    float emb[2 * E], S[1];
    CHECK(clip_scorer_dim(&sc) == 0, "no text embedding space");
    CHECK(clip_image_embedding(&sc, 2, pixels, emb) == ASPO_OK && !memcmp(emb, own, sizeof emb),
          "bare tower image embedding = the full model's: %s", aspo_error_message());
    expect_error(clip_similarities(&sc, 1, texts, lens, emb, E, S), ASPO_ERR_USAGE,
                 "bare vision tower", "has no text tower");
    m.has_visual_projection = false; /* as a tower saved without visual_projection */
    expect_error(clip_image_embedding(&sc, 2, pixels, emb), ASPO_ERR_USAGE, "no projection",
                 "no visual_projection");
    clip_close(&m);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_similarity FIXTURE_DIR\n");
        return 2;
    }
    fixtures = argv[1];
    if (!(tmp_root = test_tmp_make("similarity"))) return 1;
    runtime_init(backend_cpu(), 0);
    clip_model m;
    clip_tokenizer *tok = NULL;
    if (load_fixtures() && clip_open(join(fixtures, "model"), -1, &m) == ASPO_OK &&
        clip_tokenizer_load(fixtures, &tok) == ASPO_OK) {
        clip_scorer sc = {.clip = &m, .tok = tok};
        float own[2 * E];
        CHECK(clip_scorer_dim(&sc) == E, "E = projection_dim");
        test_tokens(tok);
        test_image(&sc, own);
        test_similarities(&sc, own);
        test_batching(&sc);
        test_truncation_and_spans(&sc);
        test_bad_input(&sc);
        test_bare_vision(tok, own);
        clip_close(&m);
    } else {
        CHECK(0, "fixtures: %s", aspo_error_message());
    }
    clip_tokenizer_free(tok);
    json_decref(cases);
    st_close(&tensors);
    runtime_shutdown();
    test_tmp_remove();
    return check_summary("similarity");
}
