/* Data part: JSONL preference files (good rows and one error per kind of bad input), image
 * rows in JSONL and in SeVa's JSON list (tests/parity/make_llava_data.py), chat templates,
 * TRL-style truncation on hand-made ids, and token ids against TRL 0.14.0's DPOTrainer on
 * the tokenizer fixture (tests/parity/make_data_fixtures.py).
 * Usage: test_data <fixture dir> */
#define _XOPEN_SOURCE 700 /* mkdtemp */

#include <ftw.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "aspo/data/chat_template.h"
#include "models/weights.h"
#include "aspo/data/dataset.h"
#include "aspo/data/pair_tokens.h"
#include "check.h"
#include "models/tokenizer.h"

static char tmp_dir[64];

static const char *write_file(const char *name, const char *text)
{
    static char buf[4][256];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", tmp_dir, name);
    FILE *f = fopen(p, "wb");
    if (!f || fwrite(text, 1, strlen(text), f) != strlen(text)) {
        fprintf(stderr, "cannot write %s\n", p);
        exit(2);
    }
    fclose(f);
    return p;
}

static bool contains(const char *hay, const char *needle) { return strstr(hay, needle); }

static bool ids_equal(const int32_t *a, int64_t na, const int32_t *b, int64_t nb)
{
    if (na != nb) return false;
    for (int64_t i = 0; i < na; i++)
        if (a[i] != b[i]) return false;
    return true;
}

/* IDS(1, 2, 3) -> the array and its length, as two arguments. */
#define IDS(...)                                                                           \
    ((const int32_t[]){__VA_ARGS__}),                                                      \
        (int64_t)(sizeof((const int32_t[]){__VA_ARGS__}) / sizeof(int32_t))

/* ---------------------------------------------------------------- chat templates */

static void test_chat_template(void)
{
    chat_template t;
    CHECK(chat_template_parse("raw", &t) == ASPO_OK && t == CHAT_TEMPLATE_RAW, "raw");
    CHECK(chat_template_parse("vicuna_v1", &t) == ASPO_OK && t == CHAT_TEMPLATE_VICUNA_V1, "v1");
    aspo_error_clear();
    CHECK(chat_template_parse("vicuna", &t) == ASPO_ERR_USAGE, "unknown name accepted");
    CHECK(contains(aspo_error_message(), "'vicuna'") && contains(aspo_error_message(), "vicuna_v1"),
          "message: %s", aspo_error_message());
    aspo_error_clear();
    CHECK(strcmp(chat_template_name(CHAT_TEMPLATE_VICUNA_V1), "vicuna_v1") == 0, "name");

    char *s;
    size_t n;
    CHECK(chat_template_apply(CHAT_TEMPLATE_RAW, " What? \n", 8, &s, &n) == ASPO_OK, "raw");
    CHECK(n == 8 && strcmp(s, " What? \n") == 0, "raw changed the prompt: '%s'", s);
    free(s);
    /* LLaVA conv_vicuna_v1.get_prompt() with messages [[USER, q], [ASSISTANT, None]]. */
    const char *want = "A chat between a curious user and an artificial intelligence assistant. "
                       "The assistant gives helpful, detailed, and polite answers to the user's "
                       "questions. USER: <image>\nWhat is shown? ASSISTANT:";
    CHECK(chat_template_apply(CHAT_TEMPLATE_VICUNA_V1, "<image>\nWhat is shown?", 22, &s, &n) ==
              ASPO_OK,
          "vicuna_v1");
    CHECK(n == strlen(want) && strcmp(s, want) == 0, "vicuna_v1: '%s'", s);
    free(s);
    CHECK(chat_template_apply(CHAT_TEMPLATE_VICUNA_V1, "", 0, &s, &n) == ASPO_OK, "empty");
    /* LLaVA skips a falsy (empty) message's ": " + text + sep. */
    CHECK(n == strlen(s) && contains(s, "questions. USER:ASSISTANT:"), "empty prompt: '%s'", s);
    free(s);
}

/* ---------------------------------------------------------------- JSONL loading */

static void test_load_good(void)
{
    /* BOM, CRLF, blank lines, unknown fields, every optional field, both row kinds. */
    const char *path = write_file(
        "good.jsonl",
        "\xEF\xBB\xBF{\"prompt\": \"Q1\", \"chosen\": \"A \\u00e9\", \"rejected\": \"B\"}\r\n"
        "\n"
        "   \t\n"
        "{\"id\": \"row-2\", \"prompt\": \"\", \"chosen\": \"x\", \"rejected\": \"y\", "
        "\"image\": \"a.png\", \"extra\": {\"nested\": [1, 2]}, \"ref_chosen_logps\": -3.5, "
        "\"ref_rejected_logps\": -7}\n"
        "{\"id\": 17, \"prompt_input_ids\": [1, 5, 6], \"chosen_input_ids\": [7, 2], "
        "\"rejected_input_ids\": [8, 9, 2], \"ref_chosen_logps\": null, \"id_note\": 1}\n"
        "{\"prompt_input_ids\": [1], \"chosen_input_ids\": [2147483647], "
        "\"rejected_input_ids\": [0]}");
    preference_dataset ds;
    aspo_error_clear();
    CHECK(dataset_load_jsonl(path, NULL, &ds) == ASPO_OK, "load: %s", aspo_error_message());
    CHECK(ds.n_rows == 4 && ds.n_lines == 6 && ds.n_skipped == 0, "%lld rows %lld lines",
          (long long)ds.n_rows, (long long)ds.n_lines);
    if (ds.n_rows != 4) {
        dataset_free(&ds);
        return;
    }
    const preference_row *r = ds.rows;
    CHECK(r[0].line == 1 && r[0].id == NULL && !preference_row_is_tokenized(&r[0]) &&
              r[0].image == NULL && !r[0].in_list,
          "row 0");
    CHECK(strcmp(r[0].prompt, "Q1") == 0 && strcmp(r[0].chosen, "A \xC3\xA9") == 0 &&
              r[0].chosen_len == 4 && strcmp(r[0].rejected, "B") == 0 && !r[0].has_ref_logps,
          "row 0 text");
    CHECK(strcmp(r[0].source, path) == 0, "source %s", r[0].source);
    CHECK(r[1].line == 4 && r[1].id && strcmp(r[1].id, "row-2") == 0, "row 1 id");
    CHECK(r[1].image && strcmp(r[1].image, "a.png") == 0, "row 1 image");
    CHECK(ds.format == DATASET_JSONL && strcmp(preference_row_unit(&r[1]), "line") == 0,
          "JSONL format");
    CHECK(r[1].prompt_len == 0 && r[1].has_ref_logps && r[1].ref_chosen_logps == -3.5 &&
              r[1].ref_rejected_logps == -7.0,
          "row 1 ref logps");
    CHECK(r[2].line == 5 && r[2].id && strcmp(r[2].id, "17") == 0 &&
              preference_row_is_tokenized(&r[2]) && !r[2].has_ref_logps && r[2].prompt == NULL,
          "row 2");
    CHECK(ids_equal(r[2].prompt_ids, r[2].n_prompt_ids, IDS(1, 5, 6)) &&
              ids_equal(r[2].chosen_ids, r[2].n_chosen_ids, IDS(7, 2)) &&
              ids_equal(r[2].rejected_ids, r[2].n_rejected_ids, IDS(8, 9, 2)),
          "row 2 ids");
    CHECK(r[3].line == 6 && r[3].n_prompt_ids == 1 && r[3].chosen_ids[0] == INT32_MAX,
          "row 3 (no newline at the end)");
    dataset_free(&ds);
    dataset_free(&ds); /* a second free is a no-op */
}

/* Loads the file at `path` and expects failure with `status` and every needle in the
 * message. */
static void expect_file_error(const char *path, const dataset_options *opt, aspo_status status,
                              const char *n1, const char *n2)
{
    const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    preference_dataset ds;
    aspo_error_clear();
    aspo_status st = dataset_load_jsonl(path, opt, &ds);
    const char *msg = aspo_error_message();
    CHECK(st == status, "%s: status %s, want %s (%s)", name, aspo_status_name(st),
          aspo_status_name(status), msg);
    CHECK(contains(msg, path), "%s: message lacks the path: %s", name, msg);
    CHECK(contains(msg, n1) && (!n2 || contains(msg, n2)), "%s: message '%s' lacks '%s' / '%s'",
          name, msg, n1, n2 ? n2 : "");
    CHECK(ds.n_rows == 0 && ds.rows == NULL && ds.path == NULL, "%s: dataset not empty", name);
    aspo_error_clear();
}

/* Writes `text` to the temp dir as `name`, then as expect_file_error. */
static void expect_load_error(const char *name, const char *text, aspo_status status,
                              const char *n1, const char *n2)
{
    expect_file_error(write_file(name, text), NULL, status, n1, n2);
}

#define GOOD "{\"prompt\": \"p\", \"chosen\": \"c\", \"rejected\": \"r\"}\n"

/* Rows from JSON values: TEXT_ROW("\"p\"", ...) and IDS_ROW("[1]", ...). */
#define TEXT_ROW(p, c, r) "{\"prompt\": " p ", \"chosen\": " c ", \"rejected\": " r
#define IDS_ROW(p, c, r) \
    "{\"prompt_input_ids\": " p ", \"chosen_input_ids\": " c ", \"rejected_input_ids\": " r "}\n"

static void test_load_errors(void)
{
    static const struct { const char *text, *n1, *n2; } bad[] = {
        {GOOD GOOD TEXT_ROW("\"p\"", "\"c\"", "\n") GOOD, ":3:", "malformed JSON"},
        {GOOD "{\"prompt\": \"p\"} x\n", ":2:", "malformed JSON"}, /* trailing text */
        {"{\"prompt\": \"p\", \"prompt\": \"q\"}\n", ":1:", "malformed JSON"}, /* duplicate key */
        {TEXT_ROW("\"a\\u0000b\"", "\"c\"", "\"r\"}\n"), ":1:", "malformed JSON"},
        {TEXT_ROW("\"\xC3\x28\"", "\"c\"", "\"r\"}\n"), ":1:", "malformed JSON"}, /* bad UTF-8 */
        {GOOD "[1, 2]\n", ":2:", "an array"},
        {GOOD "{\"prompt\": \"p\", \"rejected\": \"r\"}\n", ":2:", "missing field 'chosen'"},
        {"{\"question\": \"p\"}\n", ":1:", "missing field 'prompt'"},
        {GOOD GOOD GOOD TEXT_ROW("\"p\"", "\"\"", "\"r\"}\n"), ":4:", "field 'chosen' is empty"},
        {IDS_ROW("[1]", "[2]", "[]"), ":1:", "field 'rejected_input_ids' is empty"},
        {IDS_ROW("[]", "[2]", "[3]"), "field 'prompt_input_ids' is empty", "BOS"},
        {TEXT_ROW("5", "\"c\"", "\"r\"}\n"), "field 'prompt' is an integer", "expected a string"},
        {TEXT_ROW("\"p\"", "null", "\"r\"}\n"), "field 'chosen' is null", NULL},
        {TEXT_ROW("\"p\"", "\"c\"", "\"r\", \"id\": [1]}\n"), "field 'id' is an array", NULL},
        {TEXT_ROW("\"p\"", "\"c\"",
                  "\"r\", \"ref_chosen_logps\": \"-1\", \"ref_rejected_logps\": -2}\n"),
         "field 'ref_chosen_logps' is a string", NULL},
        {TEXT_ROW("\"p\"", "\"c\"", "\"r\", \"ref_rejected_logps\": -2}\n"),
         "'ref_rejected_logps' is given without 'ref_chosen_logps'", NULL},
        {IDS_ROW("[1]", "[2, \"3\"]", "[4]"), "'chosen_input_ids' element 1 is a string", NULL},
        {IDS_ROW("\"1 2\"", "[2]", "[4]"), "field 'prompt_input_ids' is a string", NULL},
        {IDS_ROW("[1]", "[2]", "[-4]"), "'rejected_input_ids' element 0 is -4", NULL},
        {IDS_ROW("[1]", "[2147483648]", "[4]"), "element 0 is 2147483648", NULL},
        {TEXT_ROW("\"p\"", "\"c\"", "\"r\", \"chosen_input_ids\": [2]}\n"),
         "both text ('prompt') and pre-tokenized ('chosen_input_ids')", NULL},
        {"", "no rows", NULL},
        {"\n \n", "no rows", "2 lines"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "bad%zu.jsonl", i);
        expect_load_error(name, bad[i].text, ASPO_ERR_FORMAT, bad[i].n1, bad[i].n2);
    }

    preference_dataset ds;
    aspo_error_clear();
    CHECK(dataset_load_jsonl("/nonexistent/x.jsonl", NULL, &ds) == ASPO_ERR_IO, "missing file");
    CHECK(contains(aspo_error_message(), "/nonexistent/x.jsonl: cannot open"), "%s",
          aspo_error_message());
    aspo_error_clear();
    CHECK(dataset_load_jsonl(NULL, NULL, &ds) == ASPO_ERR_USAGE, "NULL path");
    aspo_error_clear();

    /* A row error through dataset_parse_line names source and line the same way. */
    preference_row row;
    const char *line = "{\"prompt\": \"p\", \"chosen\": \"c\"}";
    CHECK(dataset_parse_line(line, strlen(line), "mem", 9, &row) == ASPO_ERR_FORMAT, "parse_line");
    CHECK(contains(aspo_error_message(), "mem:9: missing field 'rejected'"), "%s",
          aspo_error_message());
    aspo_error_clear();
}

static void test_skip_bad_lines(void)
{
    const char *path = write_file("skip.jsonl", GOOD "{oops\n" GOOD
                                  TEXT_ROW("\"p\"", "\"c\"", "\"\"}\n") /* empty */
                                  TEXT_ROW("1", "\"c\"", "\"r\"}\n") GOOD);
    dataset_options opt = {.skip_bad_lines = true};
    preference_dataset ds;
    aspo_error_clear();
    CHECK(dataset_load_jsonl(path, &opt, &ds) == ASPO_OK, "skip: %s", aspo_error_message());
    CHECK(aspo_error_status() == ASPO_OK, "a skipped line set the error: %s", aspo_error_message());
    CHECK(ds.n_rows == 3 && ds.n_skipped == 3 && ds.n_lines == 6, "%lld rows, %lld skipped",
          (long long)ds.n_rows, (long long)ds.n_skipped);
    CHECK(contains(ds.first_skip, ":2:") && contains(ds.first_skip, "malformed JSON"),
          "first skip: %s", ds.first_skip);
    CHECK(ds.n_rows == 3 && ds.rows[0].line == 1 && ds.rows[1].line == 3 && ds.rows[2].line == 6,
          "kept lines");
    dataset_free(&ds);

    /* Only bad lines: still an error, with the count and the first cause. */
    path = write_file("allbad.jsonl", "{\n[]\n");
    aspo_error_clear();
    CHECK(dataset_load_jsonl(path, &opt, &ds) == ASPO_ERR_FORMAT, "all bad");
    CHECK(contains(aspo_error_message(), "all 2 non-blank lines were bad") &&
              contains(aspo_error_message(), ":1:"),
          "%s", aspo_error_message());
    aspo_error_clear();
}

/* A large file with long lines streams through getline. */
static void test_large_file(void)
{
    char path[256];
    snprintf(path, sizeof path, "%s/large.jsonl", tmp_dir);
    FILE *f = fopen(path, "wb");
    size_t long_len = 200000;
    char *big = malloc(long_len + 1);
    memset(big, 'a', long_len);
    big[long_len] = 0;
    for (int i = 0; i < 2000; i++)
        fprintf(f, "{\"id\": %d, \"prompt\": \"%s\", \"chosen\": \"c\", \"rejected\": \"r\"}\n", i,
                i % 500 == 0 ? big : "short");
    fclose(f);
    free(big);
    preference_dataset ds;
    aspo_error_clear();
    CHECK(dataset_load_jsonl(path, NULL, &ds) == ASPO_OK, "large: %s", aspo_error_message());
    CHECK(ds.n_rows == 2000 && ds.rows[500].prompt_len == long_len &&
              strcmp(ds.rows[1999].id, "1999") == 0,
          "large rows");
    dataset_free(&ds);
}

/* ---------------------------------------------------------------- image datasets */

static bool streq(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

/* fixtures/llava_data: the same 8 pairs as JSONL and as SeVa's JSON list load to the same
 * rows; only what `line` counts differs. */
static void test_image_formats(const char *fixtures)
{
    char jsonl[512], seva[512];
    snprintf(jsonl, sizeof jsonl, "%s/llava_data/pairs.jsonl", fixtures);
    snprintf(seva, sizeof seva, "%s/llava_data/seva.json", fixtures);
    preference_dataset a, b;
    aspo_error_clear();
    CHECK(dataset_load_jsonl(jsonl, NULL, &a) == ASPO_OK, "%s", aspo_error_message());
    aspo_error_clear();
    CHECK(dataset_load_jsonl(seva, NULL, &b) == ASPO_OK, "%s", aspo_error_message());
    aspo_error_clear();
    CHECK(a.format == DATASET_JSONL && b.format == DATASET_JSON_LIST, "formats %d %d", a.format,
          b.format);
    CHECK(a.n_rows == 8 && b.n_rows == 8 && a.n_lines == 8 && b.n_lines == 8,
          "%lld / %lld rows, %lld / %lld lines", (long long)a.n_rows, (long long)b.n_rows,
          (long long)a.n_lines, (long long)b.n_lines);
    if (a.n_rows != 8 || b.n_rows != 8) {
        dataset_free(&a);
        dataset_free(&b);
        return;
    }
    for (int i = 0; i < 8; i++) {
        const preference_row *x = &a.rows[i], *y = &b.rows[i];
        CHECK(streq(x->prompt, y->prompt) && x->prompt_len == y->prompt_len &&
                  streq(x->chosen, y->chosen) && x->chosen_len == y->chosen_len &&
                  streq(x->rejected, y->rejected) && x->rejected_len == y->rejected_len &&
                  streq(x->image, y->image) && x->image != NULL,
              "row %d differs: '%s' / '%s', image %s / %s", i, x->prompt, y->prompt,
              x->image ? x->image : "(none)", y->image ? y->image : "(none)");
        CHECK(x->line == i + 1 && !x->in_list && y->line == i + 1 && y->in_list &&
                  strcmp(preference_row_unit(y), "entry") == 0 && streq(y->source, seva) &&
                  y->id == NULL,
              "row %d: line %lld, entry %lld", i, (long long)x->line, (long long)y->line);
    }
    /* Spot values, so that two equally wrong loads cannot pass. */
    CHECK(streq(b.rows[0].prompt, "<image>\nWhat shape is in the picture?") &&
              streq(b.rows[0].rejected, "It is a blue square.") &&
              streq(b.rows[0].image, "red_circle.png"),
          "SeVa entry 1: '%s' '%s'", b.rows[0].prompt, b.rows[0].rejected);
    CHECK(streq(b.rows[1].prompt, "What colour is the square?") &&
              streq(b.rows[1].image, "blue_square.jpg"),
          "entry 2: '%s'", b.rows[1].prompt);
    /* seva.json writes the dash as \u2014, pairs.jsonl as raw UTF-8. */
    CHECK(b.rows[6].chosen && strstr(b.rows[6].chosen, "smooth \xE2\x80\x94 the"), "entry 7: %s",
          b.rows[6].chosen);
    dataset_free(&a);
    dataset_free(&b);
}

static void test_image_errors(const char *fixtures)
{
    char path[512];
    preference_dataset ds;
    dataset_options skip = {.skip_bad_lines = true};

    /* A missing image file is the trainer's to report: the row itself is fine. */
    snprintf(path, sizeof path, "%s/llava_data/bad/missing_image.jsonl", fixtures);
    aspo_error_clear();
    CHECK(dataset_load_jsonl(path, NULL, &ds) == ASPO_OK, "%s", aspo_error_message());
    CHECK(ds.n_rows == 2 && streq(ds.rows[1].image, "no_such_image.png"), "missing_image rows");
    dataset_free(&ds);

    snprintf(path, sizeof path, "%s/llava_data/bad/image_not_string.jsonl", fixtures);
    expect_file_error(path, NULL, ASPO_ERR_FORMAT, "image_not_string.jsonl:2: ",
                      "field 'image' is an integer, expected a string");

    snprintf(path, sizeof path, "%s/llava_data/bad/seva_bad_entry.json", fixtures);
    expect_file_error(path, NULL, ASPO_ERR_FORMAT, "seva_bad_entry.json: entry 2: ",
                      "missing field 'reject'");
    aspo_error_clear();
    CHECK(dataset_load_jsonl(path, &skip, &ds) == ASPO_OK, "skip: %s", aspo_error_message());
    CHECK(aspo_error_status() == ASPO_OK, "a skipped entry set the error");
    CHECK(ds.n_rows == 2 && ds.n_skipped == 1 && ds.n_lines == 3 && ds.rows[0].line == 1 &&
              ds.rows[1].line == 3 && streq(ds.rows[1].image, "green_triangle.png"),
          "skip: %lld rows, %lld skipped, %lld entries", (long long)ds.n_rows,
          (long long)ds.n_skipped, (long long)ds.n_lines);
    CHECK(contains(ds.first_skip, "entry 2: missing field 'reject'"), "first skip: %s",
          ds.first_skip);
    dataset_free(&ds);

    snprintf(path, sizeof path, "%s/llava_data/bad/seva_not_list.json", fixtures);
    expect_file_error(path, NULL, ASPO_ERR_FORMAT, "one JSON object over several lines",
                      "SeVa's format");
    expect_file_error(path, &skip, ASPO_ERR_FORMAT, "one JSON object over several lines", NULL);

    /* Hand-made lists: each error names the entry, or line:column for bad JSON. */
#define SEVA(q, c, r, i) "{\"question\": " q ", \"chosen\": " c ", \"reject\": " r ", \"image_id\": " i
#define SEVA_GOOD SEVA("\"q\"", "\"c\"", "\"r\"", "\"a.jpg\"") "}"
    static const struct { const char *text, *n1, *n2; } bad[] = {
        /* Blank lines before the list count: the bad value is on line 5, column 12. */
        {"\n\n[" SEVA_GOOD ",\n" SEVA_GOOD ",\n{\"chosen\": }\n]\n", ":5:12: malformed JSON",
         "even with skip_bad_lines"},
        {"[" SEVA_GOOD "] x", ":1:", "malformed JSON"}, /* trailing text */
        {"[{\"question\": \"a\", \"question\": \"b\"}]", ":1:", "malformed JSON"},
        {"[" SEVA_GOOD ", \"text\"]", ": entry 2: ", "the entry is a string; each entry must"},
        {"[" SEVA_GOOD ", " SEVA("\"q\"", "\"c\"", "\"r\"", "7") "}]", ": entry 2: ",
         "field 'image_id' is an integer"},
        {"[" SEVA("\"q\"", "\"c\"", "\"r\"", "\"\"") "}]", ": entry 1: ",
         "field 'image_id' is empty"},
        {"[{\"question\": \"q\", \"chosen\": \"c\", \"reject\": \"r\"}]", ": entry 1: ",
         "missing field 'image_id'"},
        {"[" SEVA("\"q\"", "\"\"", "\"r\"", "\"a.jpg\"") "}]", ": entry 1: ",
         "field 'chosen' is empty"},
        /* SeVa's keys only: TRL's names and pre-tokenized ids are not its format. */
        {"[{\"prompt\": \"q\", \"chosen\": \"c\", \"rejected\": \"r\", \"image_id\": \"a\"}]",
         ": entry 1: ", "missing field 'question'"},
        {"[{\"prompt_input_ids\": [1], \"chosen_input_ids\": [2], \"rejected_input_ids\": [3]}]",
         ": entry 1: ", "missing field 'question'"},
        {"[" SEVA_GOOD ", " SEVA("\"q\"", "\"c\"", "\"r\"", "\"b\"") ", \"id\": 1.5}]",
         ": entry 2: ", "field 'id' is a real number"},
        {" [ ]\n", "no rows", "the JSON list is empty"},
        /* JSONL images: the same checks, by line. */
        {GOOD TEXT_ROW("\"p\"", "\"c\"", "\"r\", \"image\": \"\"}\n"), ":2: ",
         "field 'image' is empty; name the image file or leave the field out"},
        {TEXT_ROW("\"p\"", "\"c\"", "\"r\", \"image\": [\"a.png\"]}\n"), ":1: ",
         "field 'image' is an array"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "bad_list%zu.json", i);
        expect_load_error(name, bad[i].text, ASPO_ERR_FORMAT, bad[i].n1, bad[i].n2);
    }
    /* A malformed list fails even when skipping: it is one document. */
    expect_file_error(write_file("bad_list_skip.json", "[" SEVA_GOOD ",\n{\"chosen\" 1}]"), &skip,
                      ASPO_ERR_FORMAT, ":2:", "malformed JSON");
    /* All entries bad: still an error, counting entries. */
    expect_file_error(write_file("all_bad.json", "[1, {\"question\": \"q\"}]"), &skip,
                      ASPO_ERR_FORMAT, "all 2 entries were bad", "entry 1: the entry is an integer");

    /* Good edge cases: a byte order mark, an optional id, reference log-probs, an absolute
     * image path, a null JSONL image (a text-only row). */
    const char *good = write_file(
        "good_list.json",
        "\xEF\xBB\xBF\n  [" SEVA("\"\"", "\"c\"", "\"r\"", "\"/data/img/x.jpg\"")
        ", \"id\": 12, \"ref_chosen_logps\": -1.5, \"ref_rejected_logps\": -2}]\n");
    aspo_error_clear();
    CHECK(dataset_load_jsonl(good, NULL, &ds) == ASPO_OK, "good list: %s", aspo_error_message());
    CHECK(ds.n_rows == 1 && ds.format == DATASET_JSON_LIST && streq(ds.rows[0].id, "12") &&
              streq(ds.rows[0].image, "/data/img/x.jpg") && ds.rows[0].prompt_len == 0 &&
              ds.rows[0].has_ref_logps && ds.rows[0].ref_chosen_logps == -1.5,
          "good list row");
    dataset_free(&ds);
    good = write_file("null_image.jsonl", TEXT_ROW("\"p\"", "\"c\"", "\"r\", \"image\": null}\n"));
    aspo_error_clear();
    CHECK(dataset_load_jsonl(good, NULL, &ds) == ASPO_OK && ds.n_rows == 1 &&
              ds.rows[0].image == NULL,
          "null image: %s", aspo_error_message());
    dataset_free(&ds);
    aspo_error_clear();
#undef SEVA
#undef SEVA_GOOD
}

/* ---------------------------------------------------------------- truncation on hand-made ids */

static void check_seq(const char *what, const pair_sequence *s, const int32_t *ids, int64_t n,
                      int64_t n_prompt, int64_t skip)
{
    CHECK(ids_equal(s->ids, s->n, ids, n), "%s: ids differ (n %lld, want %lld)", what,
          (long long)s->n, (long long)n);
    CHECK(s->n_prompt == n_prompt && s->response_skip == skip, "%s: n_prompt %lld skip %lld", what,
          (long long)s->n_prompt, (long long)s->response_skip);
}

static void test_truncation(void)
{
    /* Encoded texts (no specials yet); BOS 1, EOS 2. The chosen response spans bytes 0..3. */
    const int32_t p[] = {10, 11, 12, 13}, c[] = {20, 21, 22}, r[] = {30};
    const int32_t cb[] = {0, 1, 2}, ce[] = {1, 2, 3}, rb[] = {0}, re[] = {4};
    pair_ids in = {p, c, r, 4, 3, 1, cb, ce, rb, re};
    tokenize_options o = tokenize_options_default();
    CHECK(o.max_length == 1024 && o.max_prompt_length == 512 && o.max_completion_length == 0 &&
              o.mode == TRUNCATE_KEEP_END && o.add_bos && o.template == CHAT_TEMPLATE_RAW,
          "TRL 0.14 defaults");
    tokenized_pair tp;
    truncation_counts tc = {0};

    /* No cut: [BOS] + prompt, response + [EOS]; EOS has no span. */
    o.max_length = o.max_prompt_length = 0;
    aspo_error_clear();
    CHECK(pair_assemble(&in, true, 1, 2, &o, "f", 1, &tp, &tc) == ASPO_OK, "%s",
          aspo_error_message());
    CHECK(ids_equal(tp.prompt_ids, tp.n_prompt_ids, IDS(1, 10, 11, 12, 13)), "prompt_ids");
    check_seq("plain chosen", &tp.chosen, IDS(1, 10, 11, 12, 13, 20, 21, 22, 2), 5, 0);
    check_seq("plain rejected", &tp.rejected, IDS(1, 10, 11, 12, 13, 30, 2), 5, 0);
    CHECK(tp.chosen.span_begin[0] == 0 && tp.chosen.span_end[2] == 3 &&
              tp.chosen.span_begin[3] == -1 && tp.chosen.span_end[3] == -1 &&
              tp.rejected.span_end[0] == 4 && tp.rejected.span_begin[1] == -1,
          "spans");
    tokenized_pair_free(&tp);
    CHECK(tc.pairs == 1 && tc.prompts_cut == 0 && tc.tokens_dropped == 0, "no-cut counts");

    /* max_prompt_length keeps the prompt's end, BOS included in what may be cut. */
    o.max_prompt_length = 3;
    CHECK(pair_assemble(&in, true, 1, 2, &o, "f", 1, &tp, &tc) == ASPO_OK, "mpl");
    CHECK(ids_equal(tp.prompt_ids, tp.n_prompt_ids, IDS(11, 12, 13)), "mpl prompt");
    check_seq("mpl chosen", &tp.chosen, IDS(11, 12, 13, 20, 21, 22, 2), 3, 0);
    tokenized_pair_free(&tp);
    CHECK(tc.pairs == 2 && tc.prompts_cut == 1 && tc.tokens_dropped == 2, "mpl counts");

    /* max_completion_length keeps each response's start (EOS is cut first). */
    o.max_prompt_length = 0;
    o.max_completion_length = 2;
    CHECK(pair_assemble(&in, true, 1, 2, &o, "f", 1, &tp, &tc) == ASPO_OK, "mcl");
    check_seq("mcl chosen", &tp.chosen, IDS(1, 10, 11, 12, 13, 20, 21), 5, 0);
    check_seq("mcl rejected", &tp.rejected, IDS(1, 10, 11, 12, 13, 30, 2), 5, 0);
    tokenized_pair_free(&tp);
    CHECK(tc.responses_cut == 1 && tc.tokens_dropped == 4, "mcl counts");

    /* max_length, keep_start: the sequence's first max_length tokens. */
    o.max_completion_length = 0;
    o.max_length = 7;
    o.mode = TRUNCATE_KEEP_START;
    CHECK(pair_assemble(&in, true, 1, 2, &o, "f", 1, &tp, &tc) == ASPO_OK, "keep_start");
    check_seq("keep_start chosen", &tp.chosen, IDS(1, 10, 11, 12, 13, 20, 21), 5, 0);
    check_seq("keep_start rejected", &tp.rejected, IDS(1, 10, 11, 12, 13, 30, 2), 5, 0);
    CHECK(tp.chosen.span_end[1] == 2, "keep_start spans");
    tokenized_pair_free(&tp);
    CHECK(tc.sequences_cut == 1 && tc.tokens_dropped == 6, "keep_start counts");

    /* keep_end: the last max_length tokens; the prompt loses its start (and BOS). */
    o.mode = TRUNCATE_KEEP_END;
    CHECK(pair_assemble(&in, true, 1, 2, &o, "f", 1, &tp, &tc) == ASPO_OK, "keep_end");
    CHECK(tp.n_prompt_ids == 5, "prompt_ids stay TRL's tokenize_row output");
    check_seq("keep_end chosen", &tp.chosen, IDS(11, 12, 13, 20, 21, 22, 2), 3, 0);
    check_seq("keep_end rejected", &tp.rejected, IDS(1, 10, 11, 12, 13, 30, 2), 5, 0);
    tokenized_pair_free(&tp);

    /* keep_end with a response longer than max_length would keep no prompt token, and
     * nothing would predict the response's first token: an error at load naming file:line
     * (it once surfaced only at the batch that held the row). */
    const int32_t c7[] = {40, 41, 42, 43, 44, 45, 46};
    const int32_t b7[] = {0, 1, 2, 3, 4, 5, 6}, e7[] = {1, 2, 3, 4, 5, 6, 7};
    pair_ids in7 = {p, c7, r, 1, 7, 1, b7, e7, rb, re};
    o.max_length = 6;
    CHECK(pair_assemble(&in7, true, 1, 2, &o, "f", 1, &tp, &tc) == ASPO_ERR_FORMAT &&
              strstr(aspo_error_message(), "f:1: the chosen response is 8 tokens, so max_length 6"),
          "long response: %s", aspo_error_message());
    aspo_error_clear();

    /* A prompt that leaves no room for a response token is an error naming file:line. */
    o.max_length = 5;
    truncation_counts before = tc;
    aspo_error_clear();
    CHECK(pair_assemble(&in, true, 1, 2, &o, "data.jsonl", 12, &tp, &tc) == ASPO_ERR_FORMAT,
          "prompt == max_length accepted");
    CHECK(contains(aspo_error_message(), "data.jsonl:12: the prompt is 5 tokens") &&
              contains(aspo_error_message(), "max_length is 5"),
          "%s", aspo_error_message());
    CHECK(tp.prompt_ids == NULL && tc.pairs == before.pairs &&
              tc.tokens_dropped == before.tokens_dropped,
          "failed pair left output or counts");
    aspo_error_clear();
    o.max_prompt_length = 4; /* the documented fix */
    CHECK(pair_assemble(&in, true, 1, 2, &o, "data.jsonl", 12, &tp, &tc) == ASPO_OK, "fixed");
    check_seq("fixed", &tp.chosen, IDS(13, 20, 21, 22, 2), 1, 0);
    tokenized_pair_free(&tp);

    /* BOS: a tokenizer without one needs add_bos off. */
    o = tokenize_options_default();
    CHECK(pair_assemble(&in, true, -1, 2, &o, "f", 3, &tp, NULL) == ASPO_ERR_USAGE, "no BOS");
    CHECK(contains(aspo_error_message(), "f:3: the tokenizer has no BOS"), "%s",
          aspo_error_message());
    aspo_error_clear();
    o.add_bos = false;
    CHECK(pair_assemble(&in, true, -1, 2, &o, "f", 3, &tp, NULL) == ASPO_OK, "add_bos off");
    check_seq("no bos", &tp.rejected, IDS(10, 11, 12, 13, 30, 2), 4, 0);
    tokenized_pair_free(&tp);

    /* An empty prompt without BOS leaves nothing to predict the first response token. */
    pair_ids empty = {p, c, r, 0, 3, 1, NULL, NULL, NULL, NULL};
    CHECK(pair_assemble(&empty, true, -1, 2, &o, "f", 8, &tp, NULL) == ASPO_ERR_FORMAT,
          "no prompt");
    CHECK(contains(aspo_error_message(), "f:8: the prompt has no tokens"), "%s",
          aspo_error_message());
    aspo_error_clear();
    o.add_bos = true;
    CHECK(pair_assemble(&empty, true, 1, 2, &o, "f", 8, &tp, NULL) == ASPO_OK, "BOS-only prompt");
    check_seq("bos only", &tp.rejected, IDS(1, 30, 2), 1, 0);
    tokenized_pair_free(&tp);

    /* Bad options. */
    o.max_length = -1;
    CHECK(pair_assemble(&in, true, 1, 2, &o, "f", 3, &tp, NULL) == ASPO_ERR_USAGE, "negative");
    aspo_error_clear();
    truncation_mode m;
    CHECK(truncation_mode_parse("keep_start", &m) == ASPO_OK && m == TRUNCATE_KEEP_START, "mode");
    CHECK(truncation_mode_parse("keep_middle", &m) == ASPO_ERR_USAGE, "bad mode");
    CHECK(contains(aspo_error_message(), "keep_middle"), "%s", aspo_error_message());
    aspo_error_clear();

    char line[256];
    truncation_counts_format(&(truncation_counts){10, 1, 2, 3, 40}, line, sizeof line);
    CHECK(strcmp(line,
                 "10 pairs: 1 prompts cut by max_prompt_length, 2 responses cut by "
                 "max_completion_length, 3 sequences cut by max_length; 40 tokens dropped") == 0,
          "format: %s", line);
}

/* Pre-tokenized rows: ids as given (no BOS/EOS, no prompt/completion limits), max_length. */
static void test_pretokenized(void)
{
    const char *text = "{\"prompt_input_ids\": [1, 5, 6], \"chosen_input_ids\": [7, 2], "
                       "\"rejected_input_ids\": [8, 9, 2]}";
    preference_row row;
    aspo_error_clear();
    CHECK(dataset_parse_line(text, strlen(text), "pre.jsonl", 4, &row) == ASPO_OK, "%s",
          aspo_error_message());
    tokenize_options o = tokenize_options_default();
    o.template = CHAT_TEMPLATE_VICUNA_V1;
    o.max_prompt_length = 1;
    o.max_completion_length = 1;
    o.max_length = 5;
    o.mode = TRUNCATE_KEEP_START;
    tokenized_pair tp;
    truncation_counts tc = {0};
    CHECK(pair_tokenize(NULL, &row, &o, &tp, &tc) == ASPO_OK, "%s", aspo_error_message());
    CHECK(ids_equal(tp.prompt_ids, tp.n_prompt_ids, IDS(1, 5, 6)), "prompt as given");
    check_seq("pre chosen", &tp.chosen, IDS(1, 5, 6, 7, 2), 3, 0);
    check_seq("pre rejected", &tp.rejected, IDS(1, 5, 6, 8, 9), 3, 0);
    CHECK(tp.chosen.span_begin[0] == -1 && tp.rejected.span_end[1] == -1, "no spans");
    CHECK(tc.pairs == 1 && tc.sequences_cut == 1 && tc.tokens_dropped == 1 && tc.prompts_cut == 0,
          "pre counts");
    tokenized_pair_free(&tp);
    o.max_length = 3;
    CHECK(pair_tokenize(NULL, &row, &o, &tp, &tc) == ASPO_ERR_FORMAT, "pre prompt too long");
    CHECK(contains(aspo_error_message(), "pre.jsonl:4: the prompt is 3 tokens but max_length is 3"),
          "%s", aspo_error_message());
    aspo_error_clear();
    preference_row_free(&row);

    text = "{\"prompt\": \"p\", \"chosen\": \"c\", \"rejected\": \"r\"}";
    CHECK(dataset_parse_line(text, strlen(text), "t.jsonl", 2, &row) == ASPO_OK, "text row");
    CHECK(pair_tokenize(NULL, &row, &o, &tp, NULL) == ASPO_ERR_USAGE, "text row without tokenizer");
    CHECK(contains(aspo_error_message(), "t.jsonl:2: a text row needs a tokenizer"), "%s",
          aspo_error_message());
    aspo_error_clear();
    preference_row_free(&row);
}

/* ---------------------------------------------------------------- TRL parity on the fixture */

static int64_t jint(json_t *o, const char *key)
{
    return (int64_t)json_integer_value(json_object_get(o, key));
}

static bool ids_match_json(const int32_t *ids, int64_t n, json_t *arr)
{
    if (!json_is_array(arr) || (int64_t)json_array_size(arr) != n) return false;
    for (int64_t i = 0; i < n; i++)
        if (json_integer_value(json_array_get(arr, (size_t)i)) != ids[i]) return false;
    return true;
}

/* One side of one row: the model input, its prompt count, the response tokens as TRL's
 * completion ids, and each response token's byte span against HF's offsets. */
static void check_side(const char *what, const pair_sequence *s, json_t *row, const char *side)
{
    char key[64];
    snprintf(key, sizeof key, "%s_sequence", side);
    CHECK(ids_match_json(s->ids, s->n, json_object_get(row, key)), "%s: %s differs (n %lld)", what,
          key, (long long)s->n);
    snprintf(key, sizeof key, "%s_n_prompt", side);
    CHECK(s->n_prompt == jint(row, key), "%s: n_prompt %lld, want %lld", what,
          (long long)s->n_prompt, (long long)jint(row, key));
    snprintf(key, sizeof key, "%s_input_ids", side);
    json_t *completion = json_object_get(row, key);
    snprintf(key, sizeof key, "%s_offsets", side);
    json_t *offsets = json_object_get(row, key);
    int64_t nr = s->n - s->n_prompt, n_text = (int64_t)json_array_size(offsets);
    bool ok_ids = (int64_t)json_array_size(completion) >= s->response_skip + nr, ok_spans = true;
    for (int64_t j = 0; j < nr && ok_ids; j++) {
        int64_t k = s->response_skip + j; /* index among TRL's completion ids */
        json_int_t want = json_integer_value(json_array_get(completion, (size_t)k));
        ok_ids = want == s->ids[s->n_prompt + j];
        int64_t b = -1, e = -1;
        if (k < n_text) {
            json_t *pair = json_array_get(offsets, (size_t)k);
            b = (int64_t)json_integer_value(json_array_get(pair, 0));
            e = (int64_t)json_integer_value(json_array_get(pair, 1));
        }
        if (s->span_begin[j] != b || s->span_end[j] != e) {
            if (ok_spans)
                fprintf(stderr, "%s: token %lld span [%lld,%lld), want [%lld,%lld)\n", what,
                        (long long)k, (long long)s->span_begin[j], (long long)s->span_end[j],
                        (long long)b, (long long)e);
            ok_spans = false;
        }
    }
    CHECK(ok_ids, "%s: response tokens are not TRL's completion ids", what);
    CHECK(ok_spans, "%s: byte spans differ from HF offsets", what);
}

static void test_trl_fixture(const char *dir)
{
    char path[512], rows_path[512];
    snprintf(path, sizeof path, "%s/data/trl_tokenize.json", dir);
    snprintf(rows_path, sizeof rows_path, "%s/data/rows.jsonl", dir);
    json_error_t jerr;
    json_t *doc = json_load_file(path, 0, &jerr);
    CHECK(doc != NULL, "%s: %s", path, jerr.text);
    preference_dataset ds;
    aspo_error_clear();
    CHECK(dataset_load_jsonl(rows_path, NULL, &ds) == ASPO_OK, "%s", aspo_error_message());
    if (!doc || ds.n_rows != 6) {
        CHECK(0, "fixture rows: %lld", (long long)ds.n_rows);
        json_decref(doc);
        dataset_free(&ds);
        return;
    }
    CHECK(strcmp(ds.rows[0].id, "short") == 0 && strcmp(ds.rows[1].id, "2") == 0 &&
              ds.rows[1].has_ref_logps && ds.rows[1].ref_rejected_logps == -20.25 &&
              ds.rows[2].id == NULL && ds.rows[4].prompt_len == 0,
          "fixture row fields");

    size_t ci;
    json_t *cs;
    json_array_foreach(json_object_get(doc, "cases"), ci, cs) {
        const char *name = json_string_value(json_object_get(cs, "name"));
        char tok_path[512];
        snprintf(tok_path, sizeof tok_path, "%s/tokenizer/%s/tokenizer.json", dir,
                 json_string_value(json_object_get(cs, "tokenizer")));
        tokenizer *tok = NULL;
        aspo_error_clear();
        CHECK(tokenizer_load(tok_path, &tok) == ASPO_OK, "%s: %s", name, aspo_error_message());
        if (!tok) continue;
        CHECK(tokenizer_bos_id(tok) == jint(cs, "bos_id") &&
                  tokenizer_eos_id(tok) == jint(cs, "eos_id"),
              "%s: BOS/EOS ids", name);

        if (ci == 0) {
            /* Pre-tokenized ids beyond the vocabulary have no embedding row. */
            char text[160];
            preference_row pre;
            tokenized_pair tp;
            snprintf(text, sizeof text, IDS_ROW("[1]", "[5, %d]", "[2]"),
                     (int)tokenizer_vocab_size(tok));
            CHECK(dataset_parse_line(text, strlen(text), "v.jsonl", 3, &pre) == ASPO_OK,
                  "vocab row");
            tokenize_options d = tokenize_options_default();
            CHECK(pair_tokenize(tok, &pre, &d, &tp, NULL) == ASPO_ERR_FORMAT,
                  "id past the vocabulary");
            CHECK(contains(aspo_error_message(), "v.jsonl:3: field 'chosen_input_ids' element 1"),
                  "%s", aspo_error_message());
            aspo_error_clear();
            preference_row_free(&pre);
        }

        tokenize_options o = tokenize_options_default();
        const char *template = json_string_value(json_object_get(cs, "template"));
        const char *mode = json_string_value(json_object_get(cs, "truncation_mode"));
        CHECK(chat_template_parse(template, &o.template) == ASPO_OK &&
                  truncation_mode_parse(mode, &o.mode) == ASPO_OK,
              "%s: options", name);
        o.max_length = jint(cs, "max_length");
        o.max_prompt_length = jint(cs, "max_prompt_length");
        o.max_completion_length = jint(cs, "max_completion_length");
        o.add_bos = json_is_true(json_object_get(cs, "add_bos"));

        truncation_counts tc = {0};
        size_t ri;
        json_t *row;
        int64_t refused = 0; /* rows TRL keeps with no prompt token left; aspo refuses them */
        json_array_foreach(json_object_get(cs, "rows"), ri, row) {
            int64_t line = jint(row, "line");
            char what[256], where[600];
            snprintf(what, sizeof what, "%s, line %lld", name, (long long)line);
            snprintf(where, sizeof where, "%s:%lld: ", rows_path, (long long)line);
            tokenized_pair tp;
            aspo_error_clear();
            aspo_status st = pair_tokenize(tok, &ds.rows[line - 1], &o, &tp, &tc);
            if (json_object_get(row, "error")) {
                CHECK(st == ASPO_ERR_FORMAT && contains(aspo_error_message(), where),
                      "%s: want an error, got %s (%s)", what, aspo_status_name(st),
                      aspo_error_message());
                aspo_error_clear();
                continue;
            }
            /* keep_end cut a response longer than max_length together with the whole
             * prompt: TRL trains on it (the first response token unscored), aspo refuses it
             * at load, naming the row, since no token would predict that response's start. */
            if (jint(row, "chosen_n_prompt") == 0 || jint(row, "rejected_n_prompt") == 0) {
                CHECK(st == ASPO_ERR_FORMAT && contains(aspo_error_message(), where) &&
                          contains(aspo_error_message(), "cuts the whole"),
                      "%s: want the no-prompt error, got %s (%s)", what, aspo_status_name(st),
                      aspo_error_message());
                aspo_error_clear();
                refused++;
                continue;
            }
            CHECK(st == ASPO_OK, "%s: %s", what, aspo_error_message());
            if (st) continue;
            json_t *want_prompt = json_object_get(row, "prompt_input_ids");
            CHECK(ids_match_json(tp.prompt_ids, tp.n_prompt_ids, want_prompt),
                  "%s: prompt_input_ids differ", what);
            check_side(what, &tp.chosen, row, "chosen");
            check_side(what, &tp.rejected, row, "rejected");
            tokenized_pair_free(&tp);
        }
        json_t *want = json_object_get(cs, "counts");
        /* TRL's counts include the refused rows: with any, only the pairs compare. */
        CHECK(tc.pairs == jint(want, "pairs") - refused &&
                  (refused || (tc.prompts_cut == jint(want, "prompts_cut") &&
                               tc.responses_cut == jint(want, "responses_cut") &&
                               tc.sequences_cut == jint(want, "sequences_cut") &&
                               tc.tokens_dropped == jint(want, "tokens_dropped"))),
              "%s: counts %lld %lld %lld %lld %lld", name, (long long)tc.pairs,
              (long long)tc.prompts_cut, (long long)tc.responses_cut, (long long)tc.sequences_cut,
              (long long)tc.tokens_dropped);
        tokenizer_free(tok);
    }
    json_decref(doc);
    dataset_free(&ds);
}

/* Per-token reference log-probs (aspo score --token-logps) ride along with the sums. */
static void test_token_logps(void)
{
    const char *good = "{\"prompt\": \"p\", \"chosen\": \"c\", \"rejected\": \"r\", "
                       "\"ref_chosen_logps\": -3, \"ref_rejected_logps\": -4, "
                       "\"ref_chosen_token_logps\": [-1, -2], \"ref_rejected_token_logps\": [-4]}";
    preference_row row;
    CHECK(dataset_parse_line(good, strlen(good), "t.jsonl", 7, &row) == ASPO_OK, "%s",
          aspo_error_message());
    CHECK(row.n_ref_chosen_tokens == 2 && row.ref_chosen_tokens[1] == -2.0f &&
              row.n_ref_rejected_tokens == 1 && row.ref_rejected_tokens[0] == -4.0f,
          "token arrays parsed");
    preference_row_free(&row);
    const char *bad[] = {
        "{\"prompt\": \"p\", \"chosen\": \"c\", \"rejected\": \"r\", "
        "\"ref_chosen_token_logps\": [-1], \"ref_rejected_token_logps\": [-4]}",
        "{\"prompt\": \"p\", \"chosen\": \"c\", \"rejected\": \"r\", "
        "\"ref_chosen_logps\": -3, \"ref_rejected_logps\": -4, "
        "\"ref_chosen_token_logps\": [-1, \"x\"], \"ref_rejected_token_logps\": [-4]}",
    };
    for (int i = 0; i < 2; i++) {
        aspo_error_clear();
        CHECK(dataset_parse_line(bad[i], strlen(bad[i]), "t.jsonl", 9, &row) == ASPO_ERR_FORMAT &&
                  strstr(aspo_error_message(), "t.jsonl") && strstr(aspo_error_message(), "9"),
              "bad token log-probs %d: %s", i, aspo_error_message());
    }
    aspo_error_clear();
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s <fixture dir>\n", argv[0]);
        return 2;
    }
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/aspo_data_XXXXXX");
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 2;
    }
    test_chat_template();
    test_load_good();
    test_load_errors();
    test_skip_bad_lines();
    test_large_file();
    test_image_formats(argv[1]);
    test_image_errors(argv[1]);
    test_truncation();
    test_pretokenized();
    test_token_logps();
    test_trl_fixture(argv[1]);
    weights_remove_dir(tmp_dir);
    return check_summary("data");
}
