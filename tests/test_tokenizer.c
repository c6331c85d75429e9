/* Tokenizer parity with Hugging Face: tests/fixtures/tokenizer/corpus.json holds 560 strings
 * (ASCII, accents, CJK, emoji, runs of spaces/tabs/newlines, special tokens inside text)
 * with HF fast tokenizer ids, offsets and decodes for each fixture variant, made by
 * tests/parity/make_tokenizer_fixtures.py; features.json does the same for three tiny
 * tokenizers built with HF tokenizers directly. Everything must match exactly: tokenizing
 * is integer work, there is no tolerance. Also: special ids, tokenizer.model loading, and
 * bad input (missing and corrupt files, unknown model type, bad merges, truncated .model;
 * issue 12: a FIFO, /dev/zero, a file over the size limit, ids in conflict).
 *
 *   test_tokenizer <fixture dir>     (tests/fixtures/tokenizer) */
#define _GNU_SOURCE /* mkdtemp, nftw, mkfifo, setrlimit */

#include "models/tokenizer.h"

#include "check.h"
#include "test_support.h"

#include <ftw.h>
#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char fixtures[2048];
static char tmp_dir[64];
static char path_buf[4096];

static const char *fx(const char *name)
{
    snprintf(path_buf, sizeof path_buf, "%s/%s", fixtures, name);
    return path_buf;
}

static char *tmp_path(const char *name)
{
    static char p[4][4096];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", tmp_dir, name);
    return p[k];
}

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(2);
    }
    fwrite(data, 1, n, f);
    fclose(f);
}

static void *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(2);
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *p = malloc((size_t)size + 1);
    if (!p || fread(p, 1, (size_t)size, f) != (size_t)size) exit(2);
    fclose(f);
    *n = (size_t)size;
    return p;
}

static json_t *load_json(const char *path)
{
    json_error_t err;
    json_t *j = json_load_file(path, 0, &err);
    if (!j) {
        fprintf(stderr, "%s:%d:%d: %s\n", path, err.line, err.column, err.text);
        exit(2);
    }
    return j;
}

static tokenizer *must_load(const char *path)
{
    tokenizer *t = NULL;
    aspo_status s = tokenizer_load(path, &t);
    CHECK(s == ASPO_OK, "load %s: %s", path, aspo_error_message());
    aspo_error_clear();
    return t;
}

/* ---- corpus parity --------------------------------------------------------------------- */

static void print_ids(const char *what, const int32_t *ids, const int32_t *st, const int32_t *en,
                      int n)
{
    fprintf(stderr, "    %s:", what);
    for (int i = 0; i < n; i++) fprintf(stderr, " %d[%d,%d)", ids[i], st[i], en[i]);
    fputc('\n', stderr);
}

/* One HF result: [ids, offset deltas, decode|null|false, decode_skip|null|false]. */
static bool check_entry(const char *name, tokenizer *t, const char *text, json_t *e,
                        int *reported)
{
    json_t *ids = json_array_get(e, 0), *deltas = json_array_get(e, 1);
    int n = (int)json_array_size(ids);
    int32_t *want = malloc(sizeof(int32_t) * 3 * (size_t)(n + 1)), *ws = want + n + 1,
            *we = ws + n + 1;
    for (int i = 0, prev = 0; i < n; i++) {
        want[i] = (int32_t)json_integer_value(json_array_get(ids, (size_t)i));
        ws[i] = prev + (int32_t)json_integer_value(json_array_get(deltas, 2 * (size_t)i));
        we[i] = ws[i] + (int32_t)json_integer_value(json_array_get(deltas, 2 * (size_t)i + 1));
        prev = we[i];
    }
    token_list got = {0};
    aspo_status s = tokenizer_encode(t, text, strlen(text), &got);
    bool ok = s == ASPO_OK && got.n == n;
    for (int i = 0; ok && i < n; i++)
        ok = got.ids[i] == want[i] && got.start[i] == ws[i] && got.end[i] == we[i];
    const char *dec_want[2];
    char *dec_got[2] = {NULL, NULL};
    for (int k = 0; k < 2; k++) {
        json_t *d = json_array_get(e, 2 + (size_t)k);
        dec_want[k] = json_is_string(d) ? json_string_value(d)
                    : json_is_null(d) ? (k == 0 ? text : dec_want[0]) : NULL; /* false: HF failed */
        if (!dec_want[k]) continue;
        aspo_status ds = tokenizer_decode(t, want, n, k == 1, &dec_got[k]);
        ok = ok && ds == ASPO_OK && strcmp(dec_got[k], dec_want[k]) == 0;
    }
    if (!ok && (*reported)++ < 4) {
        fprintf(stderr, "  [%s] \"%s\" (status %s: %s)\n", name, text, aspo_status_name(s),
                s ? aspo_error_message() : "");
        print_ids("want", want, ws, we, n);
        print_ids("got ", got.ids, got.start, got.end, got.n);
        for (int k = 0; k < 2; k++)
            if (dec_want[k] && dec_got[k] && strcmp(dec_got[k], dec_want[k]))
                fprintf(stderr, "    decode(skip=%d): want \"%s\" got \"%s\"\n", k, dec_want[k],
                        dec_got[k]);
    }
    aspo_error_clear();
    free(dec_got[0]), free(dec_got[1]);
    token_list_free(&got);
    free(want);
    return ok;
}

static json_t *variant(json_t *corpus, const char *name)
{
    json_t *vs = json_object_get(corpus, "variants");
    for (size_t i = 0; i < json_array_size(vs); i++)
        if (!strcmp(json_string_value(json_object_get(json_array_get(vs, i), "name")), name))
            return json_array_get(vs, i);
    fprintf(stderr, "corpus.json has no variant %s\n", name);
    exit(2);
}

/* The entry of string i for a variant: null entries are the base variant's. */
static json_t *entry_of(json_t *corpus, const char *name, size_t i)
{
    for (;;) {
        json_t *v = variant(corpus, name), *e = json_array_get(json_object_get(v, "results"), i);
        if (!json_is_null(e)) return e;
        name = json_string_value(json_object_get(v, "base"));
    }
}

static void check_corpus(json_t *corpus, const char *label, const char *expect, tokenizer *t)
{
    if (!t) return;
    json_t *strings = json_object_get(corpus, "strings");
    int bad = 0, reported = 0;
    for (size_t i = 0; i < json_array_size(strings); i++) {
        const char *text = json_string_value(json_array_get(strings, i));
        if (!check_entry(label, t, text, entry_of(corpus, expect, i), &reported)) bad++;
    }
    CHECK(bad == 0, "%s: %d of %zu corpus strings differ from HF (%s)", label, bad,
          json_array_size(strings), expect);
    json_t *sp = json_object_get(variant(corpus, expect), "special");
    CHECK(tokenizer_bos_id(t) == json_integer_value(json_object_get(sp, "bos")), "%s bos %d",
          label, tokenizer_bos_id(t));
    CHECK(tokenizer_eos_id(t) == json_integer_value(json_object_get(sp, "eos")), "%s eos %d",
          label, tokenizer_eos_id(t));
    CHECK(tokenizer_pad_id(t) == json_integer_value(json_object_get(sp, "pad")), "%s pad %d",
          label, tokenizer_pad_id(t));
    CHECK(tokenizer_unk_id(t) == json_integer_value(json_object_get(sp, "unk")), "%s unk %d",
          label, tokenizer_unk_id(t));
    CHECK(tokenizer_vocab_size(t) == json_integer_value(json_object_get(sp, "vocab_size")),
          "%s vocab size %d", label, tokenizer_vocab_size(t));
}

static void check_decode_cases(json_t *corpus, const char *label, const char *expect,
                               tokenizer *t)
{
    if (!t) return;
    json_t *dc = json_object_get(corpus, "decode_cases"), *lists = json_object_get(dc, "ids");
    char key[64];
    int bad = 0;
    for (int skip = 0; skip < 2; skip++) {
        snprintf(key, sizeof key, "%s%s", expect, skip ? "_skip" : "");
        json_t *want = json_object_get(dc, key);
        for (size_t i = 0; i < json_array_size(lists); i++) {
            json_t *l = json_array_get(lists, i);
            int32_t ids[64];
            int n = (int)json_array_size(l);
            for (int k = 0; k < n && k < 64; k++)
                ids[k] = (int32_t)json_integer_value(json_array_get(l, (size_t)k));
            char *got = NULL;
            aspo_status s = tokenizer_decode(t, ids, n, skip, &got);
            const char *w = json_string_value(json_array_get(want, i));
            if (s || strcmp(got, w)) {
                if (bad++ < 4)
                    fprintf(stderr, "  [%s] decode case %zu skip=%d: want \"%s\" got \"%s\"\n",
                            label, i, skip, w, got ? got : aspo_error_message());
            }
            free(got);
        }
    }
    CHECK(bad == 0, "%s: %d decode cases differ from HF", label, bad);
}

static void test_corpus(void)
{
    json_t *corpus = load_json(fx("corpus.json"));
    CHECK(json_array_size(json_object_get(corpus, "strings")) >= 500, "corpus size");
    const char *dirs[] = {"legacy", "nonlegacy", "vicuna", "llava"};
    for (int k = 0; k < 4; k++) {
        tokenizer *t = must_load(fx(dirs[k]));
        check_corpus(corpus, dirs[k], dirs[k], t);
        check_decode_cases(corpus, dirs[k], k == 2 ? "nonlegacy" : dirs[k], t);
        tokenizer_free(t);
    }
    /* tokenizer.model named directly: vicuna's config beside it still applies. */
    char model[4096];
    snprintf(model, sizeof model, "%s/vicuna/tokenizer.model", fixtures);
    tokenizer *t = must_load(model);
    check_corpus(corpus, "vicuna/tokenizer.model", "vicuna", t);
    tokenizer_free(t);
    /* A directory with only tokenizer.model: HF's default is the legacy layout. */
    mkdir(tmp_path("only_model"), 0755);
    copy_file(model, tmp_path("only_model/tokenizer.model"));
    t = must_load(tmp_path("only_model"));
    check_corpus(corpus, "tokenizer.model alone", "legacy", t);
    check_decode_cases(corpus, "tokenizer.model alone", "legacy", t);
    /* Lookups. */
    if (t) {
        CHECK(tokenizer_piece_to_id(t, "<s>") == 1, "<s> id");
        CHECK(tokenizer_piece_to_id(t, "<0x41>") >= 3, "<0x41> present");
        CHECK(tokenizer_piece_to_id(t, "no such piece") == -1, "absent piece");
        CHECK(tokenizer_id_to_piece(t, 2) && !strcmp(tokenizer_id_to_piece(t, 2), "</s>"),
              "id 2 piece");
        CHECK(tokenizer_id_to_piece(t, -1) == NULL && tokenizer_id_to_piece(t, tokenizer_vocab_size(t)) == NULL,
              "out-of-range ids");
        int32_t id = tokenizer_piece_to_id(t, "\xE2\x96\x81");
        CHECK(id >= 0 && !strcmp(tokenizer_id_to_piece(t, id), "\xE2\x96\x81"), "piece round trip");
    }
    tokenizer_free(t);
    json_decref(corpus);
}

static void test_features(void)
{
    json_t *f = load_json(fx("features.json"));
    json_t *strings = json_object_get(f, "strings"), *toks = json_object_get(f, "tokenizers");
    const char *name;
    json_t *results;
    json_object_foreach(toks, name, results) {
        char file[256];
        snprintf(file, sizeof file, "features/%s.json", name);
        tokenizer *t = must_load(fx(file));
        if (!t) continue;
        int bad = 0, reported = 0;
        for (size_t i = 0; i < json_array_size(strings); i++)
            if (!check_entry(name, t, json_string_value(json_array_get(strings, i)),
                             json_array_get(results, i), &reported))
                bad++;
        CHECK(bad == 0, "%s: %d of %zu strings differ from HF", name, bad,
              json_array_size(strings));
        tokenizer_free(t);
    }
    json_decref(f);
}

/* ---- small hand-made tokenizers -------------------------------------------------------- */

static tokenizer *load_text(const char *name, const char *json)
{
    write_file(tmp_path(name), json, strlen(json));
    return must_load(tmp_path(name));
}

static void expect_ids(tokenizer *t, const char *text, const int32_t *ids, int n,
                       const char *what)
{
    token_list l = {0};
    aspo_status s = tokenizer_encode(t, text, strlen(text), &l);
    bool ok = s == ASPO_OK && l.n == n;
    for (int i = 0; ok && i < n; i++) ok = l.ids[i] == ids[i];
    CHECK(ok, "%s: \"%s\" gives %d tokens (first %d)", what, text, l.n, l.n ? l.ids[0] : -1);
    token_list_free(&l);
}

static void test_hand_made(void)
{
    /* ignore_merges: a word that is in the vocabulary is one token, whatever the merges. */
    const char *fmt = "{\"version\":\"1.0\",\"model\":{\"type\":\"BPE\",\"ignore_merges\":%s,"
                      "\"vocab\":{\"a\":0,\"b\":1,\"c\":2,\"bc\":3,\"abc\":4},"
                      "\"merges\":[[\"b\",\"c\"]]}}";
    char json[512];
    snprintf(json, sizeof json, fmt, "true");
    tokenizer *t = load_text("ignore.json", json);
    if (t) {
        expect_ids(t, "abc", (int32_t[]){4}, 1, "ignore_merges");
        expect_ids(t, "bca", (int32_t[]){3, 0}, 2, "ignore_merges, not in vocab");
        /* No decoder: HF joins the pieces with spaces. */
        char *d = NULL;
        CHECK(tokenizer_decode(t, (int32_t[]){0, 3, 99}, 3, false, &d) == ASPO_OK &&
              !strcmp(d, "a bc"), "join without decoder: \"%s\"", d ? d : "");
        free(d);
        /* Unknown characters without an unk token are dropped, as HF does. */
        expect_ids(t, "axb", (int32_t[]){0, 1}, 2, "no unk token");
        /* Appends to what the list holds. */
        token_list l = {0};
        CHECK(token_list_push(&l, 7, 0, 0) == ASPO_OK, "push");
        CHECK(tokenizer_encode(t, "abc", 3, &l) == ASPO_OK && l.n == 2 && l.ids[0] == 7 &&
              l.ids[1] == 4 && l.start[1] == 0 && l.end[1] == 3, "encode appends");
        token_list_clear(&l);
        CHECK(l.n == 0, "clear");
        /* Invalid UTF-8 is a usage error naming the byte. */
        aspo_status s = tokenizer_encode(t, "ab\xC3(", 4, &l);
        CHECK(s == ASPO_ERR_USAGE && strstr(aspo_error_message(), "byte 2"), "bad UTF-8: %s",
              aspo_error_message());
        aspo_error_clear();
        token_list_free(&l);
    }
    tokenizer_free(t);
    snprintf(json, sizeof json, fmt, "false");
    t = load_text("merges.json", json);
    if (t) expect_ids(t, "abc", (int32_t[]){0, 3}, 2, "merges");
    tokenizer_free(t);
}

/* ---- bad input ------------------------------------------------------------------------- */

static void expect_fail(const char *path, aspo_status want, const char *needle1,
                        const char *needle2)
{
    tokenizer *t = NULL;
    aspo_error_clear();
    aspo_status s = tokenizer_load(path, &t);
    const char *msg = aspo_error_message();
    CHECK(s == want && t == NULL, "%s: status %s, want %s (%s)", path, aspo_status_name(s),
          aspo_status_name(want), msg);
    CHECK(strstr(msg, needle1) != NULL, "message \"%s\" lacks \"%s\"", msg, needle1);
    if (needle2) CHECK(strstr(msg, needle2) != NULL, "message \"%s\" lacks \"%s\"", msg, needle2);
    tokenizer_free(t);
    aspo_error_clear();
}

static void expect_json_fail(const char *name, const char *json, aspo_status want,
                             const char *needle)
{
    write_file(tmp_path(name), json, strlen(json));
    expect_fail(tmp_path(name), want, tmp_path(name), needle);
}

static void test_bad_input(void)
{
    expect_fail(tmp_path("missing.json"), ASPO_ERR_IO, tmp_path("missing.json"),
                "No such file");
    mkdir(tmp_path("empty_dir"), 0755);
    expect_fail(tmp_path("empty_dir"), ASPO_ERR_IO, tmp_path("empty_dir"), "neither");
    /* Corrupt JSON: file, line and column. */
    expect_json_fail("syntax.json", "{\n  \"version\": \"1.0\",\n  \"model\": {\"type\": ,}\n}\n",
                     ASPO_ERR_FORMAT, "line 3, column 21");
    size_t n;
    char *full = read_all(fx("legacy/tokenizer.json"), &n);
    write_file(tmp_path("truncated.json"), full, n / 2);
    expect_fail(tmp_path("truncated.json"), ASPO_ERR_FORMAT, tmp_path("truncated.json"),
                "line 1, column");
    free(full);
    expect_json_fail("wordpiece.json", "{\"version\":\"1.0\",\"model\":{\"type\":\"WordPiece\","
                     "\"vocab\":{\"a\":0}}}", ASPO_ERR_UNSUPPORTED, "'WordPiece'");
    expect_json_fail("unigram.json", "{\"model\":{\"type\":\"Unigram\",\"vocab\":[]}}",
                     ASPO_ERR_UNSUPPORTED, "'Unigram'");
    expect_json_fail("no_model.json", "{\"version\":\"1.0\"}", ASPO_ERR_FORMAT, "model");
    expect_json_fail("bad_merge.json", "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,"
                     "\"b\":1,\"ab\":2},\"merges\":[\"a b\",\"a zz\"]}}", ASPO_ERR_FORMAT,
                     "model.merges[1] names 'zz'");
    expect_json_fail("bad_merge2.json", "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,"
                     "\"b\":1},\"merges\":[[\"a\",\"b\"]]}}", ASPO_ERR_FORMAT, "makes 'ab'");
    expect_json_fail("bad_merge3.json", "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},"
                     "\"merges\":[\"a\"]}}", ASPO_ERR_FORMAT, "model.merges[0]");
    expect_json_fail("bad_id.json", "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":\"x\"},"
                     "\"merges\":[]}}", ASPO_ERR_FORMAT, "model.vocab[\"a\"]");
    expect_json_fail("nfkc.json", "{\"normalizer\":{\"type\":\"NFKC\"},\"model\":{\"type\":"
                     "\"BPE\",\"vocab\":{},\"merges\":[]}}", ASPO_ERR_UNSUPPORTED, "'NFKC'");
    expect_json_fail("version.json", "{\"version\":\"2.0\",\"model\":{\"type\":\"BPE\","
                     "\"vocab\":{},\"merges\":[]}}", ASPO_ERR_FORMAT, "version");
    expect_json_fail("added.json", "{\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]},"
                     "\"added_tokens\":[{\"id\":0}]}", ASPO_ERR_FORMAT, "added_tokens[0]");
    /* Corrupt config beside a good tokenizer.json. */
    mkdir(tmp_path("bad_config"), 0755);
    copy_file(fx("legacy/tokenizer.json"), tmp_path("bad_config/tokenizer.json"));
    write_file(tmp_path("bad_config/tokenizer_config.json"), "{\"legacy\": tru}", 15);
    expect_fail(tmp_path("bad_config"), ASPO_ERR_FORMAT, "tokenizer_config.json", "line 1");
    /* tokenizer.model: truncated, not protobuf, unigram. */
    char *model = read_all(fx("vicuna/tokenizer.model"), &n);
    write_file(tmp_path("truncated.model"), model, n / 2);
    expect_fail(tmp_path("truncated.model"), ASPO_ERR_FORMAT, tmp_path("truncated.model"),
                NULL);
    write_file(tmp_path("short.model"), model, 7);
    expect_fail(tmp_path("short.model"), ASPO_ERR_FORMAT, tmp_path("short.model"), NULL);
    free(model);
    write_file(tmp_path("text.model"), "hello, world\n", 13);
    expect_fail(tmp_path("text.model"), ASPO_ERR_FORMAT, tmp_path("text.model"), NULL);
    /* pieces { piece: "a" } trainer_spec { model_type: UNIGRAM } */
    static const unsigned char unigram[] = {0x0A, 0x03, 0x0A, 0x01, 'a', 0x12, 0x02, 0x18, 0x01};
    write_file(tmp_path("unigram.model"), unigram, sizeof unigram);
    expect_fail(tmp_path("unigram.model"), ASPO_ERR_UNSUPPORTED, "UNIGRAM", NULL);
    /* NULL arguments are usage errors, not crashes. */
    tokenizer *t = NULL;
    CHECK(tokenizer_load(NULL, &t) == ASPO_ERR_USAGE, "load NULL");
    CHECK(tokenizer_encode(NULL, "a", 1, NULL) == ASPO_ERR_USAGE, "encode NULL");
    aspo_error_clear();
}

/* ---- hostile files and conflicting ids (issue 12) -------------------------------------- */

/* tokenizer_load in test_load_in_child: a FIFO or /dev/zero must be refused, not hang. */
static aspo_status load_tokenizer(const char *path)
{
    tokenizer *t = NULL;
    aspo_status s = tokenizer_load(path, &t);
    tokenizer_free(t);
    return s;
}

static void expect_child(const char *path, const char *word, aspo_status want)
{
    int got = test_load_in_child("tokenizer_load", load_tokenizer, path, word);
    CHECK(got == (int)want, "%s: child exit %d, want %s (%d)", path, got,
          aspo_status_name(want), (int)want);
}

static void test_hostile_files(void)
{
    /* FIFOs with no writer: as the file, as a directory's tokenizer.json, and as the
     * tokenizer_config.json beside a good tokenizer.json (skipped silently before). */
    mkfifo(tmp_path("pipe.json"), 0600);
    expect_child(tmp_path("pipe.json"), "FIFO", ASPO_ERR_IO);
    mkdir(tmp_path("pipe_dir"), 0755);
    mkfifo(tmp_path("pipe_dir/tokenizer.json"), 0600);
    expect_child(tmp_path("pipe_dir"), "FIFO", ASPO_ERR_IO);
    mkdir(tmp_path("pipe_config"), 0755);
    copy_file(fx("legacy/tokenizer.json"), tmp_path("pipe_config/tokenizer.json"));
    mkfifo(tmp_path("pipe_config/tokenizer_config.json"), 0600);
    expect_child(tmp_path("pipe_config"), "FIFO", ASPO_ERR_IO);
    /* A device that never ends, read as a tokenizer.model. */
    expect_child("/dev/zero", "character device", ASPO_ERR_IO);
    /* A sparse 300 MiB tokenizer.model: over the 256 MiB limit, refused before reading. */
    FILE *f = fopen(tmp_path("big.model"), "wb");
    CHECK(f && ftruncate(fileno(f), (off_t)300 << 20) == 0, "sparse big.model");
    if (f) fclose(f);
    expect_child(tmp_path("big.model"), "over the limit", ASPO_ERR_FORMAT);
}

/* A tokenizer.json with vocabulary a..d (ids 0..3) and the given added_tokens array. */
static void expect_added_fail(const char *name, const char *added, const char *needle1,
                              const char *needle2)
{
    char json[1024];
    snprintf(json, sizeof json, "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,"
             "\"c\":2,\"d\":3},\"merges\":[]},\"added_tokens\":%s}", added);
    write_file(tmp_path(name), json, strlen(json));
    expect_fail(tmp_path(name), ASPO_ERR_FORMAT, tmp_path(name), needle1);
    expect_fail(tmp_path(name), ASPO_ERR_FORMAT, tmp_path(name), needle2);
}

static void test_conflicting_ids(void)
{
    /* HF gives an added token the id of its vocabulary piece, else the next free id, and
     * only logs a warning when the file says otherwise; each case is an error here, naming
     * the file, the token and the id. */
    expect_added_fail("added_taken.json", "[{\"id\":1,\"content\":\"<x>\"}]",
                      "\"<x>\"", "id 1 already belongs to \"b\"");
    expect_added_fail("added_negative.json", "[{\"id\":-1,\"content\":\"<x>\"}]",
                      "\"<x>\"", "-1");
    expect_added_fail("added_beyond.json", "[{\"id\":9,\"content\":\"<x>\"}]", "\"<x>\"",
                      "next free id is 4");
    expect_added_fail("added_huge.json", "[{\"id\":4294967296,\"content\":\"<x>\"}]",
                      "\"<x>\"", "4294967296");
    expect_added_fail("added_moved.json", "[{\"id\":0,\"content\":\"c\"}]", "\"c\"",
                      "the vocabulary has it at id 2");
    expect_added_fail("added_no_id.json", "[{\"content\":\"<x>\"}]", "added_tokens[0]",
                      "\"id\"");
    expect_added_fail("added_empty.json", "[{\"id\":4,\"content\":\"\"}]", "added_tokens[0]",
                      "empty content (id 4)");
    expect_added_fail("added_twice.json", "[{\"id\":4,\"content\":\"<x>\"},{\"id\":5,"
                      "\"content\":\"<x>\"}]", "\"<x>\"", "id 5");
    /* The same content at the same id (LLaMA's <s>, </s>, <unk>) is normal. */
    tokenizer *t = load_text("added_same.json", "{\"model\":{\"type\":\"BPE\",\"vocab\":"
                             "{\"a\":0,\"b\":1},\"merges\":[]},\"added_tokens\":[{\"id\":1,"
                             "\"content\":\"b\",\"special\":true},{\"id\":2,\"content\":"
                             "\"<x>\"},{\"id\":2,\"content\":\"<x>\"}]}");
    CHECK(t && tokenizer_piece_to_id(t, "b") == 1 && tokenizer_piece_to_id(t, "<x>") == 2 &&
          tokenizer_vocab_size(t) == 3, "same content, same id");
    tokenizer_free(t);
    /* A vocabulary with a gap (ids 0 and 2): the next free id, 2, is taken. */
    expect_json_fail("vocab_gap.json", "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,"
                     "\"b\":2},\"merges\":[]},\"added_tokens\":[{\"id\":2,\"content\":"
                     "\"<x>\"}]}", ASPO_ERR_FORMAT, "\"<x>\" gets id 2, the next free one, but "
                     "vocabulary piece \"b\" has it");
    /* Two pieces on one id, and one piece twice, in model.vocab. */
    expect_json_fail("vocab_shared_id.json", "{\"model\":{\"type\":\"BPE\",\"vocab\":{"
                     "\"a\":0,\"b\":0},\"merges\":[]}}", ASPO_ERR_FORMAT,
                     "\"a\" and \"b\" both have id 0");
    expect_json_fail("vocab_twice.json", "{\"model\":{\"type\":\"BPE\",\"vocab\":{"
                     "\"a\":0,\"a\":1},\"merges\":[]}}", ASPO_ERR_FORMAT, "duplicate");
    /* tokenizer_config.json's added_tokens_decoder: its keys are ids too. */
    mkdir(tmp_path("config_id"), 0755);
    copy_file(fx("legacy/tokenizer.json"), tmp_path("config_id/tokenizer.json"));
    const char *cfg = "{\"added_tokens_decoder\": {\"5\": {\"content\": \"<new>\"}}}";
    write_file(tmp_path("config_id/tokenizer_config.json"), cfg, strlen(cfg));
    expect_fail(tmp_path("config_id"), ASPO_ERR_FORMAT, "tokenizer_config.json",
                "\"<new>\" has id 5");
    cfg = "{\"added_tokens_decoder\": {\"x\": {\"content\": \"<new>\"}}}";
    write_file(tmp_path("config_id/tokenizer_config.json"), cfg, strlen(cfg));
    expect_fail(tmp_path("config_id"), ASPO_ERR_FORMAT, "tokenizer_config.json", "\"x\"");
    cfg = "{\"added_tokens_decoder\": {\"1000\": {\"content\": \"<new>\"}}}";
    write_file(tmp_path("config_id/tokenizer_config.json"), cfg, strlen(cfg));
    t = must_load(tmp_path("config_id"));
    CHECK(t && tokenizer_piece_to_id(t, "<new>") == 1000, "config token at the next id");
    tokenizer_free(t);
    /* tokenizer.model: pieces { piece: "a" } twice, trainer_spec { model_type: BPE };
     * SentencePiece itself refuses this ("a is already defined"). */
    static const unsigned char twice[] = {0x0A, 0x03, 0x0A, 0x01, 'a', 0x0A, 0x03, 0x0A, 0x01,
                                          'a', 0x12, 0x02, 0x18, 0x02};
    write_file(tmp_path("twice.model"), twice, sizeof twice);
    expect_fail(tmp_path("twice.model"), ASPO_ERR_FORMAT, tmp_path("twice.model"),
                "\"a\" at ids 0 and 1");
}

/* ---- throughput (printed, not asserted) ------------------------------------------------ */

static void test_speed(void)
{
    json_t *corpus = load_json(fx("corpus.json")), *strings = json_object_get(corpus, "strings");
    size_t cap = 1 << 20, n = 0;
    char *text = malloc(cap + 4096);
    for (size_t i = 0; n < cap; i = (i + 1) % json_array_size(strings)) {
        const char *s = json_string_value(json_array_get(strings, i));
        size_t l = strlen(s);
        memcpy(text + n, s, l);
        n += l;
        text[n++] = '\n';
    }
    text[n] = 0;
    const char *dirs[] = {"legacy", "nonlegacy"};
    for (int k = 0; k < 2; k++) {
        tokenizer *t = must_load(fx(dirs[k]));
        if (!t) continue;
        token_list l = {0};
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        aspo_status s = tokenizer_encode(t, text, n, &l);
        clock_gettime(CLOCK_MONOTONIC, &b);
        double ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
        CHECK(s == ASPO_OK && l.n > 0, "encode 1 MB (%s)", dirs[k]);
        /* Offsets stay inside the text and never go backwards by more than a character. */
        bool ok = true;
        for (int i = 0; i < l.n && ok; i++)
            ok = l.start[i] >= 0 && l.start[i] <= l.end[i] && (size_t)l.end[i] <= n &&
                 (i == 0 || l.start[i] + 4 >= l.end[i - 1]);
        CHECK(ok, "offsets of the 1 MB text (%s)", dirs[k]);
        printf("tokenizer: %s: encoded %zu bytes into %d tokens in %.1f ms\n", dirs[k], n, l.n,
               ms);
        token_list_free(&l);
        tokenizer_free(t);
    }
    free(text);
    json_decref(corpus);
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s <fixture dir>\n", argv[0]);
        return 2;
    }
    snprintf(fixtures, sizeof fixtures, "%s", argv[1]);
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/aspo_tok_XXXXXX");
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 2;
    }
    test_corpus();
    test_features();
    test_hand_made();
    test_bad_input();
    test_hostile_files();
    test_conflicting_ids();
    test_speed();
    nftw(tmp_dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    return check_summary("tokenizer");
}
