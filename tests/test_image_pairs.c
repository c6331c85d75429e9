/* Image rows through tokenization and batching: the prompt ids of image rows against
 * llava-hf's tokenizer and LLaVA's tokenizer_image_token (tests/parity/
 * make_image_pair_fixtures.py), the expansion of the image placeholder into image positions
 * in a pair batch (feature rows, targets, response offsets), and the errors around it.
 * Usage: test_image_pairs <fixture dir> */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aspo/data/dataset.h"
#include "aspo/data/pair_batch.h"
#include "aspo/data/pair_tokens.h"
#include "models/tokenizer.h"
#include "tests/test_support.h"

static const char *FIX;

static preference_row image_row(const char *prompt, const char *chosen, const char *image)
{
    preference_row r = {0};
    r.source = "rows.jsonl";
    r.line = 7;
    r.prompt = (char *)prompt, r.prompt_len = strlen(prompt);
    r.chosen = (char *)chosen, r.chosen_len = strlen(chosen);
    r.rejected = "A dog.", r.rejected_len = 6;
    r.image = (char *)image;
    return r;
}

static tokenize_options vision_options(int32_t image_token)
{
    tokenize_options o = tokenize_options_default();
    o.template = CHAT_TEMPLATE_VICUNA_V1;
    o.images = true;
    o.image_token = image_token;
    return o;
}

static tokenizer *load_tokenizer(const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/tokenizer/%s", FIX, name);
    tokenizer *t = NULL;
    if (tokenizer_load(path, &t)) {
        fprintf(stderr, "%s: %s\n", path, aspo_error_message());
        exit(2);
    }
    return t;
}

/* Prompt ids of image rows equal the references' for both kinds of tokenizer. */
static void test_prompt_ids(void)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/image_pairs/expected.json", FIX);
    json_error_t err;
    json_t *root = json_load_file(path, 0, &err);
    CHECK(root != NULL, "%s: %s", path, err.text);
    if (!root) return;
    json_t *cases = json_object_get(root, "cases"), *c;
    size_t i;
    int checked = 0;
    json_array_foreach(cases, i, c)
    {
        tokenizer *tok = load_tokenizer(json_string_value(json_object_get(c, "tokenizer")));
        int32_t image_token = (int32_t)json_integer_value(json_object_get(c, "image_token"));
        const char *q = json_string_value(json_object_get(c, "question"));
        preference_row row = image_row(q, "A cat. It sleeps.", "cat.png");
        tokenize_options o = vision_options(image_token);
        tokenized_pair p;
        aspo_status s = pair_tokenize(tok, &row, &o, &p, NULL);
        CHECK(s == ASPO_OK, "case %zu: %s", i, aspo_error_message());
        json_t *want = json_object_get(c, "prompt_ids");
        bool same = s == ASPO_OK && (int64_t)json_array_size(want) == p.n_prompt_ids;
        for (int64_t k = 0; same && k < p.n_prompt_ids; k++)
            same = p.prompt_ids[k] == json_integer_value(json_array_get(want, (size_t)k));
        CHECK(same, "case %zu (%s, %s): prompt ids differ from the reference (%lld vs %zu)", i,
              json_string_value(json_object_get(c, "tokenizer")), q,
              (long long)(s ? -1 : p.n_prompt_ids), json_array_size(want));
        checked += same;
        if (!s) tokenized_pair_free(&p);
        tokenizer_free(tok);
    }
    CHECK(checked == 8, "8 reference cases, %d matched", checked);
    json_decref(root);
}

/* One placeholder becomes N positions with feature rows slot*N + j, no targets on them,
 * and the response offsets move by N - 1. */
static void test_batch_expansion(void)
{
    tokenized_pair a = {0}, b = {0};
    int32_t ca[] = {1, 9, 1000, 8, 5, 6, 2}, ra[] = {1, 9, 1000, 8, 7, 2};
    int32_t cb[] = {1, 4, 3, 2}, rb[] = {1, 4, 5, 5, 2}; /* a text pair */
    a.chosen = (pair_sequence){.ids = ca, .n = 7, .n_prompt = 4};
    a.rejected = (pair_sequence){.ids = ra, .n = 6, .n_prompt = 4};
    b.chosen = (pair_sequence){.ids = cb, .n = 4, .n_prompt = 2};
    b.rejected = (pair_sequence){.ids = rb, .n = 5, .n_prompt = 2};
    const tokenized_pair *pairs[2] = {&b, &a};
    pair_batch_images img = {1000, 3, false};
    pair_batch pb;
    aspo_status s = pair_batch_build(pairs, 2, 0, &img, &pb);
    CHECK(s == ASPO_OK, "build: %s", aspo_error_message());
    if (s) return;
    CHECK(pb.T == 9 && pb.n_images == 1, "T %lld (want 7 + 2), images %d", (long long)pb.T,
          pb.n_images);
    CHECK(pb.image_slot[0] == -1 && pb.image_slot[1] == 0, "slots %d %d", pb.image_slot[0],
          pb.image_slot[1]);
    /* Row 1 = pair a's chosen: 1 9 [img img img] 8 5 6 2 */
    const int32_t *ids = pb.ids + pb.T, *fr = pb.feature_row + pb.T, *tg = pb.targets + pb.T;
    int32_t want_ids[] = {1, 9, 0, 0, 0, 8, 5, 6, 2};
    int32_t want_fr[] = {-1, -1, 0, 1, 2, -1, -1, -1, -1};
    int32_t want_tg[] = {-100, -100, -100, -100, -100, 5, 6, 2, -100};
    bool ok = true;
    for (int t = 0; t < 9; t++) ok &= ids[t] == want_ids[t] && fr[t] == want_fr[t] && tg[t] == want_tg[t];
    CHECK(ok, "expanded chosen row: ids, feature rows or targets differ");
    CHECK(pb.first[1] == 5 && pb.count[1] == 3, "first %lld count %lld", (long long)pb.first[1],
          (long long)pb.count[1]);
    /* Row 3 = pair a's rejected, the same image rows; row 0 (text) has none. */
    fr = pb.feature_row + 3 * pb.T;
    CHECK(fr[2] == 0 && fr[4] == 2 && pb.first[3] == 5 && pb.count[3] == 2, "rejected row");
    bool none = true;
    for (int t = 0; t < pb.T; t++) none &= pb.feature_row[t] == -1;
    CHECK(none, "a text row has no feature rows");
    CHECK(pb.mask[pb.T + 8] == 1 && pb.mask[3 * pb.T + 8] == 0, "mask after expansion");
    pair_batch_free(&pb);
}

static void test_errors(void)
{
    tokenizer *hf = load_tokenizer("llava");
    tokenized_pair p;
    tokenize_options o = vision_options(1000);
    preference_row row = image_row("What is it?", "A cat.", "cat.png");

    tokenize_options text_only = tokenize_options_default();
    expect_error(pair_tokenize(hf, &row, &text_only, &p, NULL), ASPO_ERR_USAGE,
                 "an image row for a text model", "text only");

    o.max_prompt_length = 8; /* keep_end: the system text and the image go */
    expect_error(pair_tokenize(hf, &row, &o, &p, NULL), ASPO_ERR_FORMAT,
                 "image cut by max_prompt_length", "cut the image token");
    o = vision_options(1000);

    preference_row text = image_row("<image>\nWhat is it?", "A cat.", NULL);
    expect_error(pair_tokenize(hf, &text, &o, &p, NULL), ASPO_ERR_FORMAT,
                 "<image> in a text row", "no image");

    preference_row twice = image_row("<image> and <image>", "A cat.", "cat.png");
    expect_error(pair_tokenize(hf, &twice, &o, &p, NULL), ASPO_ERR_FORMAT,
                 "two images in one prompt", "image tokens");

    preference_row in_answer = image_row("What?", "It is <image>.", "cat.png");
    expect_error(pair_tokenize(hf, &in_answer, &o, &p, NULL), ASPO_ERR_FORMAT,
                 "<image> in the response", "response holds the image");

    o.image_token = 999; /* the tokenizer's <image> is 1000 */
    expect_error(pair_tokenize(hf, &row, &o, &p, NULL), ASPO_ERR_USAGE,
                 "tokenizer and model disagree on the image token", "do not belong together");
    tokenizer_free(hf);

    tokenizer *orig = load_tokenizer("vicuna");
    o = vision_options(-200);
    expect_error(pair_tokenize(orig, &twice, &o, &p, NULL), ASPO_ERR_FORMAT,
                 "two images, original tokenizer", "exactly once");
    CHECK(pair_tokenize(orig, &row, &o, &p, NULL) == ASPO_OK, "original: %s",
          aspo_error_message());
    tokenized_pair_free(&p);
    tokenizer_free(orig);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FIXTURES_DIR\n", argv[0]);
        return 2;
    }
    FIX = argv[1];
    test_prompt_ids();
    test_batch_expansion();
    test_errors();
    return check_summary("image_pairs");
}
