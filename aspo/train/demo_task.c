/* The demo's generated task: animal facts with one sentence made false, and the word-level
 * BPE tokenizer that spells them. See demo_task.h for an example pair. */
#include "aspo/train/demo_task.h"

#include <ctype.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "models/tokenizer.h"
#include "tensor/rng.h"

enum { ATTRS = 3, ORDERS = 6, MAX_VALUES = 16, MAX_WORDS = 128, MAX_WORD = 32 };
enum { LEGS, HOME, FOOD };

/* The values each attribute can take; a false sentence uses another value of its kind. */
static const char *const VALUES[ATTRS][MAX_VALUES] = {
    {"no", "two", "four", "six", "eight", "ten"},
    {"web", "house", "coop", "hive", "river", "sea", "kennel", "tree", "anthill", "desert",
     "pond", "burrow", "field", "stable", "hole"},
    {"flies", "fish", "seeds", "nectar", "worms", "algae", "bones", "mice", "crumbs", "eggs",
     "carrots", "grass", "hay", "weeds", "cheese"},
};

typedef struct animal {
    const char *name;
    const char *fact[ATTRS]; /* legs, home, food */
} animal;

/* Ordered so that the first few (the quick mode's world) already differ in every fact. */
static const animal ANIMALS[] = {
    {"spider", {"eight", "web", "flies"}}, {"cat", {"four", "house", "fish"}},
    {"hen", {"two", "coop", "seeds"}},     {"bee", {"six", "hive", "nectar"}},
    {"fish", {"no", "river", "worms"}},    {"crab", {"ten", "sea", "algae"}},
    {"dog", {"four", "kennel", "bones"}},  {"owl", {"two", "tree", "mice"}},
    {"ant", {"six", "anthill", "crumbs"}}, {"snake", {"no", "desert", "eggs"}},
    {"frog", {"four", "pond", "flies"}},   {"rabbit", {"four", "burrow", "carrots"}},
    {"cow", {"four", "field", "grass"}},   {"horse", {"four", "stable", "hay"}},
    {"duck", {"two", "pond", "weeds"}},    {"mouse", {"four", "hole", "cheese"}},
};
enum { N_ANIMALS = sizeof ANIMALS / sizeof ANIMALS[0] };

static const int ORDER[ORDERS][ATTRS] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2},
                                         {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};

int demo_task_animals(void) { return N_ANIMALS; }

static int n_values(int attr)
{
    int n = 0;
    while (n < MAX_VALUES && VALUES[attr][n]) n++;
    return n;
}

static int value_index(int attr, const char *v)
{
    for (int i = 0; i < n_values(attr); i++)
        if (!strcmp(VALUES[attr][i], v)) return i;
    ASPO_ASSERT(!"an animal's fact is missing from VALUES");
    return -1;
}

/* One pair: which animal, the sentence order, which fact is false and its false value. */
typedef struct pair_spec {
    int animal, order, bad, wrong; /* wrong: index into VALUES[bad] */
} pair_spec;

/* Appends the sentence stating `value` for fact `attr` of animal a. */
static void sentence(char *dst, size_t cap, int a, int attr, const char *value)
{
    static const char *const TEMPLATE[ATTRS] = {"The %s has %s legs.", "The %s lives in the %s.",
                                               "The %s eats %s."};
    size_t len = strlen(dst);
    if (len && len + 1 < cap) dst[len++] = ' ', dst[len] = '\0';
    snprintf(dst + len, cap - len, TEMPLATE[attr], ANIMALS[a].name, value);
}

static void render(const pair_spec *p, char *prompt, char *chosen, char *rejected, size_t cap)
{
    snprintf(prompt, cap, "Tell me about the %s.", ANIMALS[p->animal].name);
    chosen[0] = rejected[0] = '\0';
    for (int i = 0; i < ATTRS; i++) {
        int attr = ORDER[p->order][i];
        const char *right = ANIMALS[p->animal].fact[attr];
        sentence(chosen, cap, p->animal, attr, right);
        sentence(rejected, cap, p->animal, attr, attr == p->bad ? VALUES[attr][p->wrong] : right);
    }
}

/* Distinct pairs by rejection sampling over Philox draws: (seed, draw j) decides draw j. */
static aspo_status generate(uint64_t seed, int n_animals, int n_pairs, pair_spec *out)
{
    if (n_animals < 1 || n_animals > N_ANIMALS)
        return aspo_fail(ASPO_ERR_USAGE, "demo task: %d animals asked for; the world has 1 to %d",
                         n_animals, N_ANIMALS);
    int distinct = 0;
    for (int attr = 0; attr < ATTRS; attr++) distinct += n_values(attr) - 1;
    distinct *= n_animals * ORDERS;
    if (n_pairs < 1 || n_pairs > distinct / 2)
        return aspo_fail(ASPO_ERR_USAGE,
                         "demo task: %d pairs asked for; %d animals allow 1 to %d (half of "
                         "the %d distinct pairs, so that drawing them stays quick)",
                         n_pairs, n_animals, distinct / 2, distinct);
    bool *seen = calloc((size_t)N_ANIMALS * ORDERS * ATTRS * MAX_VALUES, sizeof(bool));
    if (!seen) return aspo_fail(ASPO_ERR_OOM, "demo task: no memory");
    const uint64_t stream = (uint64_t)0xde70 << 32;
    int made = 0;
    for (uint64_t j = 0; made < n_pairs; j++) {
        float u[4];
        for (int k = 0; k < 4; k++) u[k] = rng_uniform(seed, stream, 4 * j + (uint64_t)k);
        pair_spec p;
        p.animal = (int)(u[0] * (float)n_animals) % n_animals;
        p.order = (int)(u[1] * ORDERS) % ORDERS;
        p.bad = (int)(u[2] * ATTRS) % ATTRS;
        /* one of the n-1 other values of the false fact's kind */
        int n = n_values(p.bad), right = value_index(p.bad, ANIMALS[p.animal].fact[p.bad]);
        p.wrong = (int)(u[3] * (float)(n - 1)) % (n - 1);
        if (p.wrong >= right) p.wrong++;
        size_t key = (((size_t)p.animal * ORDERS + (size_t)p.order) * ATTRS + (size_t)p.bad) *
                         MAX_VALUES + (size_t)p.wrong;
        if (seen[key]) continue;
        seen[key] = true;
        out[made++] = p;
    }
    free(seen);
    return ASPO_OK;
}

aspo_status demo_task_pair(uint64_t seed, int n_animals, int index, char *prompt,
                           char *chosen, char *rejected, size_t cap)
{
    if (index < 0) return aspo_fail(ASPO_ERR_USAGE, "demo task: pair %d does not exist", index);
    pair_spec *p = malloc(sizeof *p * (size_t)(index + 1));
    if (!p) return aspo_fail(ASPO_ERR_OOM, "demo task: no memory");
    aspo_status s = generate(seed, n_animals, index + 1, p);
    if (!s) render(&p[index], prompt, chosen, rejected, cap);
    free(p);
    return s;
}

aspo_status demo_task_write_data(const char *path, uint64_t seed, int n_animals, int n_pairs)
{
    pair_spec *p = malloc(sizeof *p * (size_t)(n_pairs > 0 ? n_pairs : 1));
    if (!p) return aspo_fail(ASPO_ERR_OOM, "demo task: no memory for %d pairs", n_pairs);
    aspo_status s = generate(seed, n_animals, n_pairs, p);
    FILE *f = s ? NULL : fopen(path, "w");
    if (!s && !f) s = aspo_fail(ASPO_ERR_IO, "%s: cannot write the demo's pairs", path);
    char prompt[256], chosen[256], rejected[256];
    for (int i = 0; i < n_pairs && !s; i++) {
        render(&p[i], prompt, chosen, rejected, sizeof prompt);
        json_t *row = json_pack("{s:s, s:s, s:s}", "prompt", prompt, "chosen", chosen,
                                "rejected", rejected);
        char *line = row ? json_dumps(row, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        if (!line || fprintf(f, "%s\n", line) < 0)
            s = aspo_fail(ASPO_ERR_IO, "%s: cannot write pair %d", path, i + 1);
        free(line);
        json_decref(row);
    }
    if (f && fclose(f) && !s) s = aspo_fail(ASPO_ERR_IO, "%s: cannot write", path);
    free(p);
    return s;
}

/* ---- the tokenizer ---- */

/* Every text the world can produce: prompts, and each fact sentence with every value of
 * its kind (true or false). fn sees each once; it returns non-zero to stop. */
static aspo_status each_text(aspo_status (*fn)(const char *text, void *ctx), void *ctx)
{
    char text[256];
    aspo_status s = ASPO_OK;
    for (int a = 0; a < N_ANIMALS && !s; a++) {
        snprintf(text, sizeof text, "Tell me about the %s.", ANIMALS[a].name);
        s = fn(text, ctx);
        for (int attr = 0; attr < ATTRS && !s; attr++)
            for (int v = 0; v < n_values(attr) && !s; v++) {
                text[0] = '\0';
                sentence(text, sizeof text, a, attr, VALUES[attr][v]);
                s = fn(text, ctx);
            }
    }
    return s;
}

typedef struct word_set {
    char words[MAX_WORDS][MAX_WORD];
    int n;
} word_set;

static int compare_words(const void *a, const void *b) { return strcmp(a, b); }

/* The runs of ASCII letters of text: the words the tokenizer spells as single tokens. */
static aspo_status collect_words(const char *text, void *ctx)
{
    word_set *w = ctx;
    for (const char *c = text; *c;) {
        if (!isalpha((unsigned char)*c)) {
            c++;
            continue;
        }
        size_t len = 0;
        while (isalpha((unsigned char)c[len])) len++;
        ASPO_ASSERT(len < MAX_WORD);
        bool known = false;
        for (int i = 0; i < w->n && !known; i++)
            known = strlen(w->words[i]) == len && !strncmp(w->words[i], c, len);
        if (!known) {
            ASPO_ASSERT(w->n < MAX_WORDS);
            memcpy(w->words[w->n], c, len);
            w->words[w->n++][len] = '\0';
        }
        c += len;
    }
    return ASPO_OK;
}

#define METASPACE "\xe2\x96\x81" /* U+2581, SentencePiece's word boundary */

static json_t *special_token(int id, const char *content)
{
    return json_pack("{s:i, s:s, s:b, s:b, s:b, s:b, s:b}", "id", id, "content", content,
                     "single_word", 0, "lstrip", 0, "rstrip", 0, "normalized", 0, "special", 1);
}

/* normalizer, post_processor and decoder as transformers writes them for a legacy LLaMA
 * tokenizer: prepend "▁", spaces to "▁", BOS before the text. */
static json_t *pipeline(json_t *tok)
{
    json_object_set_new(tok, "normalizer", json_pack(
        "{s:s, s:[{s:s, s:s}, {s:s, s:{s:s}, s:s}]}", "type", "Sequence", "normalizers",
        "type", "Prepend", "prepend", METASPACE,
        "type", "Replace", "pattern", "String", " ", "content", METASPACE));
    json_object_set_new(tok, "pre_tokenizer", json_null());
    json_object_set_new(tok, "post_processor", json_pack(
        "{s:s, s:[{s:{s:s, s:i}}, {s:{s:s, s:i}}], s:[{s:{s:s, s:i}}, {s:{s:s, s:i}}, "
        "{s:{s:s, s:i}}, {s:{s:s, s:i}}], s:{s:{s:s, s:[i], s:[s]}}}",
        "type", "TemplateProcessing",
        "single", "SpecialToken", "id", "<s>", "type_id", 0, "Sequence", "id", "A", "type_id", 0,
        "pair", "SpecialToken", "id", "<s>", "type_id", 0, "Sequence", "id", "A", "type_id", 0,
        "SpecialToken", "id", "<s>", "type_id", 1, "Sequence", "id", "B", "type_id", 1,
        "special_tokens", "<s>", "id", "<s>", "ids", 1, "tokens", "<s>"));
    json_object_set_new(tok, "decoder", json_pack(
        "{s:s, s:[{s:s, s:{s:s}, s:s}, {s:s}, {s:s}, {s:s, s:s, s:i, s:i}]}", "type", "Sequence",
        "decoders", "type", "Replace", "pattern", "String", METASPACE, "content", " ",
        "type", "ByteFallback", "type", "Fuse", "type", "Strip", "content", " ", "start", 1,
        "stop", 0));
    return tok;
}

static void add_piece(json_t *vocab, const char *piece)
{
    if (!json_object_get(vocab, piece))
        json_object_set_new(vocab, piece, json_integer((json_int_t)json_object_size(vocab)));
}

/* The BPE model: ids 0-2 special, 3-258 the bytes, then single characters, then one piece
 * per merge. Each word "▁w1..wn" is built left to right ("▁ w1", "▁w1 w2", ...): every
 * merge joins a "▁"-led piece with the letter after it, so a word can only ever merge into
 * itself, and the order of the merges does not matter. */
static json_t *bpe_model(const word_set *w)
{
    json_t *vocab = json_object(), *merges = json_array();
    add_piece(vocab, "<unk>");
    add_piece(vocab, "<s>");
    add_piece(vocab, "</s>");
    char piece[2 * MAX_WORD + 16]; /* a "▁"-led prefix, a space and a letter */
    for (int b = 0; b < 256; b++) {
        snprintf(piece, sizeof piece, "<0x%02X>", b);
        add_piece(vocab, piece);
    }
    add_piece(vocab, METASPACE);
    add_piece(vocab, ".");
    for (int c = 'A'; c <= 'z'; c++) {
        bool used = false;
        for (int i = 0; i < w->n && !used && isalpha(c); i++) used = strchr(w->words[i], c) != NULL;
        piece[0] = (char)c, piece[1] = '\0';
        if (used) add_piece(vocab, piece);
    }
    for (int i = 0; i < w->n; i++) {
        char left[2 * MAX_WORD + 8] = METASPACE;
        for (const char *c = w->words[i]; *c; c++) {
            snprintf(piece, sizeof piece, "%s %c", left, *c);
            size_t len = strlen(left);
            left[len] = *c, left[len + 1] = '\0';
            if (json_object_get(vocab, left)) continue; /* a prefix of an earlier word */
            add_piece(vocab, left);
            json_array_append_new(merges, json_string(piece));
        }
    }
    return json_pack("{s:s, s:n, s:s, s:n, s:n, s:b, s:b, s:b, s:o, s:o}", "type", "BPE",
                     "dropout", "unk_token", "<unk>", "continuing_subword_prefix",
                     "end_of_word_suffix", "fuse_unk", 1, "byte_fallback", 1, "ignore_merges",
                     0, "vocab", vocab, "merges", merges);
}

aspo_status demo_task_write_tokenizer(const char *path, int *vocab_size)
{
    word_set *w = calloc(1, sizeof *w);
    if (!w) return aspo_fail(ASPO_ERR_OOM, "demo task: no memory");
    each_text(collect_words, w);
    qsort(w->words, (size_t)w->n, MAX_WORD, compare_words);
    json_t *model = bpe_model(w);
    free(w);
    json_t *tok = json_pack("{s:s, s:n, s:n, s:[o, o, o]}", "version", "1.0", "truncation",
                            "padding", "added_tokens", special_token(0, "<unk>"),
                            special_token(1, "<s>"), special_token(2, "</s>"));
    aspo_status s = ASPO_OK;
    if (!model || !tok) {
        json_decref(model);
        s = aspo_fail(ASPO_ERR_OOM, "demo task: no memory for the tokenizer");
    } else {
        *vocab_size = (int)json_object_size(json_object_get(model, "vocab"));
        pipeline(tok);
        json_object_set_new(tok, "model", model);
        if (json_dump_file(tok, path, JSON_INDENT(1) | JSON_PRESERVE_ORDER))
            s = aspo_fail(ASPO_ERR_IO, "%s: cannot write the demo's tokenizer", path);
    }
    json_decref(tok);
    return s;
}

typedef struct check_ctx {
    const tokenizer *tok;
    token_list ids;
} check_ctx;

static aspo_status check_text(const char *text, void *ctx)
{
    check_ctx *c = ctx;
    token_list_clear(&c->ids);
    aspo_status s = tokenizer_encode(c->tok, text, strlen(text), &c->ids);
    for (int i = 0; i < c->ids.n && !s; i++) {
        const char *piece = tokenizer_id_to_piece(c->tok, c->ids.ids[i]);
        if (!piece || !strcmp(piece, "<unk>") || !strncmp(piece, "<0x", 3))
            s = aspo_fail(ASPO_ERR_FORMAT,
                          "demo tokenizer: \"%s\" encodes with %s at token %d; every word "
                          "of the task should be one token",
                          text, piece ? piece : "an unknown id", i);
    }
    return s;
}

aspo_status demo_task_check_tokenizer(const char *tokenizer_path)
{
    check_ctx c = {0};
    tokenizer *tok = NULL;
    aspo_status s = tokenizer_load(tokenizer_path, &tok);
    if (s) return s;
    c.tok = tok;
    s = each_text(check_text, &c);
    token_list_free(&c.ids);
    tokenizer_free(tok);
    return s;
}

void demo_task_describe(FILE *f, int n_animals)
{
    fprintf(f, "task: preference pairs about %d animals (legs, home, food). The chosen answer "
               "states\n      three true facts; the rejected one repeats it with one fact made "
               "false.\n", n_animals);
}
