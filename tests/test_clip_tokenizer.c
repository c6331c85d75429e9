/* CLIP tokenizer parity with transformers' slow CLIPTokenizer (no ftfy):
 * tests/fixtures/clip_tokenizer/cases.jsonl holds 560 strings (ASCII, accents, CJK, emoji,
 * numbers, contractions, punctuation and whitespace runs, control characters, literal
 * special tokens, texts longer than 77 tokens) with HF's ids untruncated and with
 * truncation=True, max_length=77, made by tests/parity/make_clip_tokenizer_fixtures.py from
 * the first 4000 real CLIP merges. Tokenizing is integer work: everything must match
 * exactly. Also: padding, the vocab.json path form, pad_token from special_tokens_map.json,
 * unk for a symbol missing from the vocabulary, and bad input (issue 12: two tokens on one
 * id, a FIFO as merges.txt).
 *
 *   test_clip_tokenizer <fixture dir>     (tests/fixtures/clip_tokenizer) */
#define _XOPEN_SOURCE 700 /* mkdtemp, mkfifo */

#include "models/clip_tokenizer.h"

#include "check.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* CHECK with the last error message as context */
#define REQ(cond) CHECK(cond, "last error: %s", aspo_error_message())

static char fixtures[2048];
static char path_buf[4096];

static const char *fx(const char *name)
{
    snprintf(path_buf, sizeof path_buf, "%s/%s", fixtures, name);
    return path_buf;
}

static bool ids_equal(const int32_t *got, int n, const json_t *want)
{
    if ((size_t)n != json_array_size(want)) return false;
    for (int i = 0; i < n; i++)
        if (got[i] != json_integer_value(json_array_get(want, (size_t)i))) return false;
    return true;
}

static void print_mismatch(const char *what, const char *text, const int32_t *got, int n,
                           const json_t *want)
{
    fprintf(stderr, "  %s mismatch for \"%s\"\n    got :", what, text);
    for (int i = 0; i < n && i < 40; i++) fprintf(stderr, " %d", got[i]);
    fprintf(stderr, "\n    want:");
    for (size_t i = 0; i < json_array_size(want) && i < 40; i++)
        fprintf(stderr, " %lld", (long long)json_integer_value(json_array_get(want, i)));
    fprintf(stderr, "\n");
}

static void test_parity(const clip_tokenizer *t)
{
    FILE *f = fopen(fx("cases.jsonl"), "rb");
    REQ(f != NULL);
    if (!f) return;
    enum { BIG = 4096 };
    static int32_t ids[BIG];
    int cases = 0, bad = 0, fast_differs = 0, truncated = 0;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        json_error_t jerr;
        json_t *c = json_loads(line, JSON_ALLOW_NUL, &jerr) /* texts hold U+0000 */;
        REQ(c != NULL);
        if (!c) continue;
        const json_t *jt = json_object_get(c, "text");
        const char *text = json_string_value(jt);
        size_t len = json_string_length(jt);
        const json_t *want = json_object_get(c, "ids");
        const json_t *want77 = json_object_get(c, "ids77") ? json_object_get(c, "ids77") : want;
        fast_differs += json_is_true(json_object_get(c, "fast_differs"));
        truncated += json_object_get(c, "ids77") != NULL;
        int n = -1;
        bool ok = clip_tokenize(t, text, len, ids, BIG, &n) == ASPO_OK &&
                  ids_equal(ids, n, want);
        if (!ok && bad < 10) print_mismatch("untruncated", text, ids, n, want);
        bool ok77 = clip_tokenize(t, text, len, ids, CLIP_CONTEXT_LENGTH, &n) == ASPO_OK &&
                    ids_equal(ids, n, want77);
        if (!ok77 && bad < 10) print_mismatch("max_length=77", text, ids, n, want77);
        /* padding="max_length": the tail is the pad id, the tokens untouched */
        clip_pad(t, ids, n, CLIP_CONTEXT_LENGTH);
        bool okpad = ids_equal(ids, n, want77);
        for (int i = n; i < CLIP_CONTEXT_LENGTH; i++)
            okpad = okpad && ids[i] == clip_tokenizer_pad_id(t);
        bad += !ok || !ok77 || !okpad;
        cases++;
        json_decref(c);
    }
    free(line);
    fclose(f);
    printf("parity: %d strings (%d longer than 77 tokens; fast tokenizer differs on %d), "
           "%d mismatches\n", cases, truncated, fast_differs, bad);
    REQ(cases >= 500);
    REQ(truncated > 0);
    REQ(bad == 0);
}

static void test_api(const clip_tokenizer *t)
{
    REQ(clip_tokenizer_bos_id(t) == 4512);
    REQ(clip_tokenizer_eos_id(t) == 4513);
    REQ(clip_tokenizer_pad_id(t) == 4513);
    REQ(clip_tokenizer_vocab_size(t) == 4514);
    int32_t ids[8];
    int n = -1;
    REQ(clip_tokenize(t, "", 0, ids, 2, &n) == ASPO_OK && n == 2 && ids[0] == 4512 &&
          ids[1] == 4513);
    REQ(clip_tokenize(t, "a photo of a cat", 16, ids, 3, &n) == ASPO_OK && n == 3 &&
          ids[2] == 4513);
    REQ(clip_tokenize(t, "x", 1, ids, 1, &n) == ASPO_ERR_USAGE && n == 0);
    REQ(strstr(aspo_error_message(), "max_len") != NULL);
    aspo_error_clear();
    REQ(clip_tokenize(t, "a\xff" "b", 3, ids, 8, &n) == ASPO_ERR_USAGE);
    aspo_error_clear();
    REQ(clip_tokenize(t, "\xed\xa0\x80", 3, ids, 8, &n) == ASPO_ERR_USAGE); /* surrogate */
    aspo_error_clear();
    REQ(clip_tokenize(t, "\xc3", 1, ids, 8, &n) == ASPO_ERR_USAGE); /* cut short */
    aspo_error_clear();
    REQ(clip_tokenize(t, NULL, 3, ids, 8, &n) == ASPO_ERR_USAGE);
    aspo_error_clear();
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    REQ(f != NULL);
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

/* Hand-made tiny tokenizers in a temporary directory. */
static void test_files(void)
{
    char dir[] = "/tmp/clip_tok_XXXXXX", p[4200];
    REQ(mkdtemp(dir) != NULL);
    clip_tokenizer *t = NULL;
    /* "ab" has no "b</w>" entry: unk; pad from special_tokens_map.json */
    snprintf(p, sizeof p, "%s/vocab.json", dir);
    write_file(p, "{\"a\": 0, \"b\": 1, \"a</w>\": 2, \"ab</w>\": 3, \"!\": 4, "
                  "\"<|startoftext|>\": 5, \"<|endoftext|>\": 6}");
    snprintf(p, sizeof p, "%s/merges.txt", dir);
    write_file(p, "#version: 0.2\na b</w>\n");
    snprintf(p, sizeof p, "%s/special_tokens_map.json", dir);
    write_file(p, "{\"pad_token\": {\"content\": \"!\"}}");
    snprintf(p, sizeof p, "%s/vocab.json", dir);
    REQ(clip_tokenizer_load(p, &t) == ASPO_OK); /* vocab.json path form */
    if (t) {
        int32_t ids[8];
        int n = 0;
        REQ(clip_tokenize(t, "AB ba", 5, ids, 8, &n) == ASPO_OK && n == 5);
        REQ(ids[1] == 3 && ids[2] == 1 && ids[3] == 2 && ids[4] == 6); /* ab</w> b a</w> */
        REQ(clip_tokenizer_pad_id(t) == 4);
        clip_pad(t, ids, n, 8);
        REQ(ids[5] == 4 && ids[7] == 4);
        clip_tokenizer_free(t);
        t = NULL;
    }
    /* bad merges line */
    snprintf(p, sizeof p, "%s/merges.txt", dir);
    write_file(p, "#version: 0.2\na b\nonlyone\n");
    REQ(clip_tokenizer_load(dir, &t) == ASPO_ERR_FORMAT && t == NULL);
    REQ(strstr(aspo_error_message(), "merges.txt:3") != NULL);
    aspo_error_clear();
    /* specials missing */
    write_file(p, "#version: 0.2\n");
    snprintf(p, sizeof p, "%s/vocab.json", dir);
    write_file(p, "{\"a\": 0}");
    REQ(clip_tokenizer_load(dir, &t) == ASPO_ERR_FORMAT);
    aspo_error_clear();
    write_file(p, "{\"a\": 0,");
    REQ(clip_tokenizer_load(dir, &t) == ASPO_ERR_FORMAT);
    aspo_error_clear();
    REQ(clip_tokenizer_load("/nonexistent/clip", &t) == ASPO_ERR_IO);
    aspo_error_clear();
    /* Two tokens on one id: which one the id decodes to would be chance. */
    write_file(p, "{\"a\": 0, \"b\": 0, \"!\": 3, \"<|startoftext|>\": 1, "
                  "\"<|endoftext|>\": 2}");
    REQ(clip_tokenizer_load(dir, &t) == ASPO_ERR_FORMAT && t == NULL);
    REQ(strstr(aspo_error_message(), "\"a\" and \"b\" both have id 0") != NULL);
    aspo_error_clear();
    /* A FIFO as merges.txt is refused, not waited on; the alarm fails the suite if not. */
    write_file(p, "{\"a\": 0, \"!\": 3, \"<|startoftext|>\": 1, \"<|endoftext|>\": 2}");
    snprintf(p, sizeof p, "%s/merges.txt", dir);
    unlink(p);
    REQ(mkfifo(p, 0600) == 0);
    alarm(5);
    REQ(clip_tokenizer_load(dir, &t) == ASPO_ERR_IO && t == NULL);
    alarm(0);
    REQ(strstr(aspo_error_message(), "FIFO") != NULL && strstr(aspo_error_message(), p));
    aspo_error_clear();
    const char *names[] = {"vocab.json", "merges.txt", "special_tokens_map.json"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
    rmdir(dir);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s <fixture dir>\n", argv[0]);
        return 2;
    }
    snprintf(fixtures, sizeof fixtures, "%s", argv[1]);
    clip_tokenizer *t = NULL;
    aspo_status st = clip_tokenizer_load(fixtures, &t);
    REQ(st == ASPO_OK);
    if (st != ASPO_OK) {
        fprintf(stderr, "%s\n", aspo_error_message());
        return check_summary("clip_tokenizer");
    }
    test_parity(t);
    test_api(t);
    clip_tokenizer_free(t);
    test_files();
    return check_summary("clip_tokenizer");
}
