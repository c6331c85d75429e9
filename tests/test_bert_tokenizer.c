/* BERT tokenizer parity with transformers 4.44.2's slow BertTokenizer, made by
 * tests/parity/make_bert_tokenizer_fixtures.py with bert-base-uncased's real vocab.txt:
 *   cases.jsonl          620 strings (ASCII, punctuation, accents, case, CJK, emoji, control
 *                        and zero-width characters, combining marks, words over 100
 *                        characters, empty and whitespace-only texts, special tokens inside
 *                        text, numbers) through InstructBLIP's qformer tokenizer: ids with
 *                        [CLS]/[SEP], and truncated at max_length 16 on the left (its
 *                        truncation_side) and on the right; loaded from the config as
 *                        transformers 4.44 saves it and from the checkpoint's legacy files
 *   cases_options.jsonl  do_lower_case false, strip_accents true, no CJK spacing, never_split
 *   cases_nostrip.jsonl  do_lower_case true, strip_accents false (İ, NFC, marks kept)
 *   cases_added.jsonl    added tokens with lstrip / rstrip / single_word, normalized or not
 * Tokenizing is integer work: every id must match. Then the API, vocab.txt line endings,
 * and bad input: each refused with a message naming the file (and line).
 *
 *   test_bert_tokenizer <fixture dir>     (tests/fixtures/bert_tokenizer) */
#define _XOPEN_SOURCE 700 /* mkfifo, truncate */

#include "models/bert_tokenizer.h"

#include "test_support.h"

#include <jansson.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define REQ(cond) CHECK(cond, "last error: %s", aspo_error_message())
#define MAX_LEN 16 /* the fixtures' truncation length */
enum { BIG = 4096 };

static const char *fixtures, *scratch;

/* A JSON array of ids into want[]; its length. */
static int json_ids(const json_t *a, int32_t *want)
{
    size_t i;
    const json_t *v;
    json_array_foreach(a, i, v) want[i] = (int32_t)json_integer_value(v);
    return (int)json_array_size(a);
}

/* One encode against HF's ids want[0..nw); prints the first few mismatches. */
static bool same(const bert_tokenizer *t, const char *text, size_t len, bool specials,
                 int max_len, const int32_t *want, int nw, const char *what, int *shown)
{
    static int32_t got[BIG];
    int n = -1;
    aspo_status st = bert_encode(t, text, len, specials, got, max_len, &n);
    bool ok = st == ASPO_OK && n == nw && !memcmp(got, want, (size_t)n * sizeof *got);
    if (!ok && (*shown)++ < 10) {
        fprintf(stderr, "  %s: \"%s\" (%s)\n    got :", what, text, aspo_error_message());
        for (int i = 0; i < n && i < 40; i++) fprintf(stderr, " %d", got[i]);
        fprintf(stderr, "\n    want:");
        for (int i = 0; i < nw && i < 40; i++) fprintf(stderr, " %d", want[i]);
        fprintf(stderr, "\n");
    }
    return ok;
}

/* Every case of a cases file: with and without [CLS]/[SEP], and (truncation) cut to 16 on
 * both sides. Returns the number of strings; *bad counts those with any mismatch. */
static int run_cases(bert_tokenizer *t, const char *file, bool truncation, int *bad,
                     int *fast_differs)
{
    FILE *f = fopen(join(fixtures, file), "rb");
    REQ(f != NULL);
    if (!f) return 0;
    static int32_t want[BIG], cut[BIG];
    int cases = 0, shown = 0;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        json_error_t jerr;
        json_t *c = json_loads(line, JSON_ALLOW_NUL, &jerr); /* texts hold U+0000 */
        REQ(c != NULL);
        if (!c) continue;
        const json_t *jt = json_object_get(c, "text");
        const char *text = json_string_value(jt);
        size_t len = json_string_length(jt);
        int nw = json_ids(json_object_get(c, "ids"), want);
        bool ok = same(t, text, len, true, BIG, want, nw, file, &shown) &&
                  same(t, text, len, false, BIG, want + 1, nw - 2, "no specials", &shown);
        for (int side = 0; truncation && side < 2; side++) {
            bert_tokenizer_set_truncation_side(t, side ? BERT_TRUNCATE_RIGHT : BERT_TRUNCATE_LEFT);
            const json_t *jc = json_object_get(c, side ? "right16" : "left16");
            int nc = jc ? json_ids(jc, cut) : json_ids(json_object_get(c, "ids"), cut);
            /* without specials HF keeps 16 text tokens from the same side */
            int body = nw - 2, keep = body < MAX_LEN ? body : MAX_LEN;
            const int32_t *plain = want + 1 + (side ? 0 : body - keep);
            ok = ok && same(t, text, len, true, MAX_LEN, cut, nc, side ? "right16" : "left16",
                            &shown) &&
                 same(t, text, len, false, MAX_LEN, plain, keep, "no specials, 16", &shown);
        }
        bert_tokenizer_set_truncation_side(t, BERT_TRUNCATE_LEFT);
        if (fast_differs) *fast_differs += json_is_true(json_object_get(c, "fast_differs"));
        *bad += !ok;
        cases++;
        json_decref(c);
    }
    free(line);
    fclose(f);
    return cases;
}

/* dir/<scratch name> with vocab.txt and the JSON files of fixtures/<sub> ("" : the top). */
static const char *assemble(const char *name, const char *sub)
{
    const char *d = join(scratch, name);
    mkdir(d, 0700);
    REQ(copy_file(join(fixtures, "vocab.txt"), join(d, "vocab.txt")));
    const char *names[] = {"tokenizer_config.json", "special_tokens_map.json",
                           "added_tokens.json"};
    const char *src = *sub ? join(fixtures, sub) : fixtures;
    for (int i = 0; i < 3; i++)
        if (file_exists(join(src, names[i])))
            REQ(copy_file(join(src, names[i]), join(d, names[i])));
    return d;
}

static void test_parity(void)
{
    static const struct {
        const char *sub, *cases;
        bool truncation;
        int min;
    } sets[] = {{"", "cases.jsonl", true, 500},
                {"legacy", "cases.jsonl", true, 500},
                {"options", "cases_options.jsonl", false, 200},
                {"nostrip", "cases_nostrip.jsonl", false, 200},
                {"added", "cases_added.jsonl", false, 60}};
    for (size_t i = 0; i < sizeof sets / sizeof *sets; i++) {
        bert_tokenizer *t = NULL;
        const char *dir = *sets[i].sub ? assemble(sets[i].sub, sets[i].sub) : fixtures;
        REQ(bert_tokenizer_load(dir, &t) == ASPO_OK);
        if (!t) continue;
        int bad = 0, fast = 0;
        int n = run_cases(t, sets[i].cases, sets[i].truncation, &bad, &fast);
        printf("parity %s%s%s: %d strings (BertTokenizerFast differs on %d), %d mismatches\n",
               sets[i].cases, *sets[i].sub ? " with " : "", sets[i].sub, n, fast, bad);
        CHECK(n >= sets[i].min, "%s: %d strings", sets[i].cases, n);
        CHECK(bad == 0, "%s with %s: %d mismatches", sets[i].cases, dir, bad);
        bert_tokenizer_free(t);
    }
}

static void test_api(void)
{
    bert_tokenizer *t = NULL;
    REQ(bert_tokenizer_load(fixtures, &t) == ASPO_OK);
    if (!t) return;
    /* InstructBLIP's qformer tokenizer: bert-base-uncased plus [DEC] */
    CHECK(bert_tokenizer_cls_id(t) == 101 && bert_tokenizer_sep_id(t) == 102 &&
          bert_tokenizer_pad_id(t) == 0 && bert_tokenizer_unk_id(t) == 100, "special ids");
    CHECK(bert_tokenizer_vocab_size(t) == 30523, "vocab size %d", bert_tokenizer_vocab_size(t));
    CHECK(bert_tokenizer_model_max_length(t) == 512, "model_max_length");
    CHECK(bert_tokenizer_truncation_side(t) == BERT_TRUNCATE_LEFT, "truncation side");
    const char *dec = bert_tokenizer_id_to_token(t, 30522);
    const char *the = bert_tokenizer_id_to_token(t, 1996);
    CHECK(dec && !strcmp(dec, "[DEC]") && the && !strcmp(the, "the"), "id_to_token");
    CHECK(!bert_tokenizer_id_to_token(t, 30523) && !bert_tokenizer_id_to_token(t, -1), "no token");
    int32_t ids[8];
    int n = -1;
    REQ(bert_encode(t, "", 0, true, ids, 2, &n) == ASPO_OK && n == 2 && ids[0] == 101 &&
        ids[1] == 102);
    REQ(bert_encode(t, "a photo", 7, true, ids, 2, &n) == ASPO_OK && n == 2);
    REQ(bert_encode(t, NULL, 0, false, ids, 1, &n) == ASPO_OK && n == 0);
    expect_error(bert_encode(t, "x", 1, true, ids, 1, &n), ASPO_ERR_USAGE, "max_len 1",
                 "max_len 1");
    expect_error(bert_encode(t, "x", 1, false, ids, 0, &n), ASPO_ERR_USAGE, "max_len 0", NULL);
    expect_error(bert_encode(t, "a\xff" "b", 3, true, ids, 8, &n), ASPO_ERR_USAGE, "bad UTF-8",
                 "UTF-8", "byte 1");
    expect_error(bert_encode(t, "\xed\xa0\x80", 3, true, ids, 8, &n), ASPO_ERR_USAGE,
                 "surrogate", "UTF-8");
    expect_error(bert_encode(t, NULL, 3, true, ids, 8, &n), ASPO_ERR_USAGE, "NULL text", NULL);
    bert_tokenizer_free(t);
}

static bool write_bytes(const char *path, const char *bytes)
{
    FILE *f = fopen(path, "wb");
    bool ok = f && fputs(bytes, f) >= 0;
    if (f) ok = fclose(f) == 0 && ok;
    return ok;
}

/* vocab.txt as Python reads it: \r\n and a lone \r end lines too; no newline at the end. */
static void test_line_endings(void)
{
    const char *d = join(scratch, "crlf");
    mkdir(d, 0700);
    REQ(write_bytes(join(d, "vocab.txt"), "[PAD]\r\n[UNK]\r\n[CLS]\r[SEP]\nhello\r\n##s\rworld"));
    bert_tokenizer *t = NULL;
    REQ(bert_tokenizer_load(d, &t) == ASPO_OK);
    if (!t) return;
    int32_t ids[8];
    int n = 0;
    REQ(bert_encode(t, "Hellos WORLD x", 14, true, ids, 8, &n) == ASPO_OK && n == 6);
    CHECK(ids[0] == 2 && ids[1] == 4 && ids[2] == 5 && ids[3] == 6 && ids[4] == 1 &&
          ids[5] == 3, "crlf ids %d %d %d %d %d %d", ids[0], ids[1], ids[2], ids[3], ids[4],
          ids[5]);
    /* [MASK] is not in it: HF appends it with the next id, 7 */
    REQ(bert_encode(t, "[MASK]", 6, false, ids, 8, &n) == ASPO_OK && n == 1 && ids[0] == 7);
    CHECK(bert_tokenizer_vocab_size(t) == 8 && bert_tokenizer_pad_id(t) == 0, "crlf vocab");
    bert_tokenizer_free(t);
}

static aspo_status load_only(const char *dir)
{
    bert_tokenizer *t = NULL;
    aspo_status st = bert_tokenizer_load(dir, &t);
    bert_tokenizer_free(t);
    return st;
}

/* A directory holding vocab (NULL: none) and, when given, tokenizer_config.json. */
static const char *bad_dir(const char *name, const char *vocab, const char *config)
{
    const char *d = join(scratch, name);
    mkdir(d, 0700);
    if (vocab) REQ(write_bytes(join(d, "vocab.txt"), vocab));
    if (config) REQ(write_bytes(join(d, "tokenizer_config.json"), config));
    return d;
}

static void test_bad_input(void)
{
    static const char V[] = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\n";
    bert_tokenizer *t = NULL;
    const char *d = bad_dir("no_vocab", NULL, "{}");
    expect_error(bert_tokenizer_load(d, &t), ASPO_ERR_IO, "missing vocab.txt",
                 join(d, "vocab.txt"), "cannot open");
    CHECK(t == NULL, "no tokenizer on failure");
    expect_error(bert_tokenizer_load(join(d, "tokenizer_config.json"), &t), ASPO_ERR_IO,
                 "a file for a directory", "not a directory");
    d = bad_dir("empty", "", NULL);
    expect_error(bert_tokenizer_load(d, &t), ASPO_ERR_FORMAT, "empty vocab",
                 join(d, "vocab.txt"), "empty");
    d = bad_dir("dup", "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\nworld\nhello\n", NULL);
    expect_error(bert_tokenizer_load(d, &t), ASPO_ERR_FORMAT, "duplicate line",
                 "vocab.txt:7", "\"hello\" is already line 5");
    d = bad_dir("utf8", "[PAD]\n[UNK]\nab\xc3(\n[CLS]\n[SEP]\n", NULL);
    expect_error(bert_tokenizer_load(d, &t), ASPO_ERR_FORMAT, "bad UTF-8 line", "vocab.txt:3",
                 "UTF-8");
    d = bad_dir("no_sep", "[PAD]\n[UNK]\n[CLS]\n[MASK]\nhello\n", NULL);
    expect_error(bert_tokenizer_load(d, &t), ASPO_ERR_FORMAT, "[SEP] absent", "sep_token",
                 "\"[SEP]\"", join(d, "vocab.txt"));
    d = bad_dir("no_unk", "[PAD]\n[CLS]\n[SEP]\n[MASK]\n", "{\"model_max_length\": 512}");
    expect_error(bert_tokenizer_load(d, &t), ASPO_ERR_FORMAT, "[UNK] absent", "unk_token",
                 "\"[UNK]\"");
    d = bad_dir("no_cls", "[PAD]\n[UNK]\n[SEP]\n[MASK]\n", NULL);
    expect_error(bert_tokenizer_load(d, &t), ASPO_ERR_FORMAT, "[CLS] absent", "cls_token");
    d = bad_dir("renamed_unk", V, "{\"unk_token\": \"<unk>\"}");
    expect_error(bert_tokenizer_load(d, &t), ASPO_ERR_FORMAT, "unk renamed", "\"<unk>\"",
                 "tokenizer_config.json");
    d = bad_dir("null_cls", V, "{\"cls_token\": null}");
    expect_error(bert_tokenizer_load(d, &t), ASPO_ERR_FORMAT, "cls null", "cls_token is null");
    /* a field of the wrong type, named with its file */
    static const struct {
        const char *config, *word;
    } fields[] = {{"{\"do_lower_case\": \"yes\"}", "\"do_lower_case\" must be true or false"},
                  {"{\"strip_accents\": 1}", "strip_accents"},
                  {"{\"truncation_side\": \"middle\"}", "truncation_side"},
                  {"{\"model_max_length\": \"512\"}", "model_max_length"},
                  {"{\"never_split\": \"abc\"}", "never_split"},
                  {"{\"cls_token\": 5}", "cls_token"},
                  {"{\"additional_special_tokens\": {}}", "additional_special_tokens"},
                  {"{\"added_tokens_decoder\": {\"x\": {\"content\": \"a\"}}}", "\"x\""},
                  {"{\"added_tokens_decoder\": {\"9\": {\"content\": \"a\", \"lstrip\": 1}}}",
                   "lstrip"},
                  {"{\"added_tokens_decoder\": {\"-1\": {\"content\": \"a\"}}}", "id -1"},
                  {"{\"added_tokens_decoder\": {\"7\": {\"content\": \"a\"}, \"8\": "
                   "{\"content\": \"a\"}}}", "given twice"},
                  {"{\"do_lower_case\": true,\n \"do_lower_case\": false}", "line 2"},
                  {"{\"do_lower_case\": tru}", "not valid JSON"},
                  {"[1, 2]", "expected a JSON object"}};
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
        char name[32];
        snprintf(name, sizeof name, "field%zu", i);
        d = bad_dir(name, V, fields[i].config);
        expect_error(bert_tokenizer_load(d, &t), ASPO_ERR_FORMAT, fields[i].config,
                     join(d, "tokenizer_config.json"), fields[i].word);
    }
    d = bad_dir("split_special", V, "{\"split_special_tokens\": true}");
    expect_error(bert_tokenizer_load(d, &t), ASPO_ERR_UNSUPPORTED, "split_special_tokens",
                 "split_special_tokens");
    d = bad_dir("legacy_added", V, "{}");
    REQ(write_bytes(join(d, "added_tokens.json"), "{\"[DEC]\": 6.5}"));
    expect_error(bert_tokenizer_load(d, &t), ASPO_ERR_FORMAT, "added_tokens.json id",
                 join(d, "added_tokens.json"), "whole number");
    /* over the size limit: a sparse file, refused before reading */
    d = bad_dir("big", V, NULL);
    REQ(truncate(join(d, "vocab.txt"), ((off_t)16 << 20) + 1) == 0);
    expect_error(bert_tokenizer_load(d, &t), ASPO_ERR_FORMAT, "big vocab", join(d, "vocab.txt"),
                 "over the limit");
    /* a FIFO is refused, not waited on (in a child that must answer within 5 s) */
    d = bad_dir("fifo", NULL, NULL);
    REQ(mkfifo(join(d, "vocab.txt"), 0600) == 0);
    CHECK(test_load_in_child("bert_tokenizer_load", load_only, d, "FIFO") == ASPO_ERR_IO,
          "FIFO as vocab.txt");
    d = bad_dir("fifo_config", V, NULL);
    REQ(mkfifo(join(d, "tokenizer_config.json"), 0600) == 0);
    CHECK(test_load_in_child("bert_tokenizer_load", load_only, d, "FIFO") == ASPO_ERR_IO,
          "FIFO as tokenizer_config.json");
    CHECK(t == NULL, "no tokenizer after failures");
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s <fixture dir>\n", argv[0]);
        return 2;
    }
    fixtures = argv[1];
    scratch = test_tmp_make("bert_tokenizer");
    if (!scratch) return 1;
    test_parity();
    test_api();
    test_line_endings();
    test_bad_input();
    test_tmp_remove();
    return check_summary("bert_tokenizer");
}
