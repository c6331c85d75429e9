/* Loading a BERT tokenizer directory as transformers 4.44's from_pretrained reads it:
 * vocab.txt, tokenizer_config.json, and (the legacy files, when the config has no
 * added_tokens_decoder) special_tokens_map.json and added_tokens.json. See bert_tokenizer.h. */
#include "models/bert_tokenizer_internal.h"

#include "tensor/file_open.h"
#include "tensor/json_file.h"

#include <jansson.h>
#include <stdlib.h>
#include <sys/stat.h>

/* bert-base-uncased's vocab.txt is 231 KB, the multilingual one 872 KB; the configs are a
 * few KB (a tokenizer_config.json listing thousands of added tokens stays far below). */
#define BERT_VOCAB_MAX_BYTES ((uint64_t)16 << 20)
#define BERT_CONFIG_MAX_BYTES ((uint64_t)16 << 20)

static const char OOM[] = BERT_OOM;

/* HF's SPECIAL_TOKENS_ATTRIBUTES order, which is all_special_tokens' order. */
enum { SP_BOS, SP_EOS, SP_UNK, SP_SEP, SP_PAD, SP_CLS, SP_MASK, SP_KEYS };
static const char *const SPECIAL_KEYS[SP_KEYS] = {"bos_token", "eos_token", "unk_token",
    "sep_token", "pad_token", "cls_token", "mask_token"};
static const char *const SPECIAL_DEFAULTS[SP_KEYS] = {NULL, NULL, "[UNK]", "[SEP]", "[PAD]",
    "[CLS]", "[MASK]"};

static aspo_status cpstr_from(const char *s, cpstr *out)
{
    size_t len = strlen(s);
    out->c = malloc((len + 1) * sizeof *out->c);
    if (!out->c) return aspo_fail(ASPO_ERR_OOM, OOM);
    out->n = bert_utf8_to_cps(s, len, out->c);
    return ASPO_OK; /* jansson gives valid UTF-8 only */
}

/* vocab.txt as Python's readlines() in text mode sees it: lines end at \n, \r\n or \r. */
static aspo_status load_vocab(bert_tokenizer *t, const char *path)
{
    uint64_t size = 0;
    FILE *f = file_open_regular(path, "BERT vocab.txt", BERT_VOCAB_MAX_BYTES, &size);
    if (!f) return aspo_error_status();
    char *buf = t->vocab_text = malloc(size + 1);
    if (!buf) {
        fclose(f);
        return aspo_fail(ASPO_ERR_OOM, OOM);
    }
    size_t got = fread(buf, 1, size, f);
    fclose(f);
    if (got != size) return aspo_fail(ASPO_ERR_IO, "%s: read %zu of %llu bytes", path, got,
                                      (unsigned long long)size);
    buf[size] = '\0';
    size_t cap = 0;
    for (size_t i = 0; i <= size;) {
        size_t e = i;
        while (e < size && buf[e] != '\n' && buf[e] != '\r') e++;
        if (e == size && i == size) break; /* nothing after the last line end */
        size_t next = e + (e < size && buf[e] == '\r' && buf[e + 1] == '\n' ? 2 : 1);
        buf[e] = '\0';
        long line = (long)t->n_lines + 1;
        if (tok_utf8_valid_prefix(buf + i, e - i) != e - i)
            return aspo_fail(ASPO_ERR_FORMAT, "%s:%ld: not valid UTF-8", path, line);
        int32_t before = tok_strmap_get(&t->vocab, buf + i, e - i);
        if (before >= 0)
            return aspo_fail(ASPO_ERR_FORMAT, "%s:%ld: token \"%s\" is already line %d; each "
                             "token stands once (HF would give both lines' ids to the later "
                             "one)", path, line, buf + i, before + 1);
        if (t->n_lines >= TOK_MAX_ID)
            return aspo_fail(ASPO_ERR_FORMAT, "%s: more than %d lines", path, TOK_MAX_ID);
        if ((size_t)t->n_lines == cap) {
            cap = cap ? 2 * cap : 4096;
            char **l = realloc(t->lines, cap * sizeof *l);
            if (!l) return aspo_fail(ASPO_ERR_OOM, OOM);
            t->lines = l;
        }
        aspo_status st = tok_strmap_put(&t->vocab, buf + i, e - i, t->n_lines);
        if (st) return st;
        t->lines[t->n_lines++] = buf + i;
        i = next;
    }
    if (t->n_lines == 0)
        return aspo_fail(ASPO_ERR_FORMAT, "%s: empty; a BERT vocabulary has one token a line",
                         path);
    return ASPO_OK;
}

/* path into *obj when it exists (NULL when not). HF writes model_max_length "no limit"
 * as the integer 1e30, beyond jansson's integers: numbers are read as reals. */
static aspo_status read_json(const char *path, json_t **obj)
{
    return json_file_load_object_if_present(path, "BERT tokenizer config",
                                            BERT_CONFIG_MAX_BYTES, JSON_DECODE_INT_AS_REAL, obj);
}

static const char *json_kind(const json_t *v)
{
    static const char *names[] = {"an object", "an array", "a string", "an integer",
                                  "a number", "true", "false", "null"};
    return names[json_typeof(v)];
}

static aspo_status bad_type(const char *path, const char *key, const char *want, const json_t *v)
{
    return aspo_fail(ASPO_ERR_FORMAT, "%s: \"%s\" must be %s, not %s", path, key, want,
                     json_kind(v));
}

/* A boolean field; null reads as false (Python's None), absence as the default. */
static aspo_status cfg_bool(const json_t *obj, const char *path, const char *key, bool dflt,
                            bool *out)
{
    const json_t *v = obj ? json_object_get(obj, key) : NULL;
    *out = v ? json_is_true(v) : dflt;
    if (v && !json_is_boolean(v) && !json_is_null(v))
        return bad_type(path, key, "true or false", v);
    return ASPO_OK;
}

/* A special token's value: "text", {"content": "text", ...} or null. */
static aspo_status cfg_token(const json_t *v, const char *path, const char *key,
                             const char **content, const json_t **flags)
{
    *content = NULL;
    *flags = json_is_object(v) ? v : NULL;
    if (json_is_string(v)) *content = json_string_value(v);
    else if (json_is_object(v) && json_is_string(json_object_get(v, "content")))
        *content = json_string_value(json_object_get(v, "content"));
    else if (!json_is_null(v))
        return bad_type(path, key, "a string, {\"content\": ...} or null", v);
    if (*content && !**content)
        return aspo_fail(ASPO_ERR_FORMAT, "%s: \"%s\" is empty", path, key);
    return ASPO_OK;
}

/* What the loader gathers from the files before building the tokenizer. */
typedef struct special_spec {
    const char *content[SP_KEYS + 64]; /* per key, then additional_special_tokens */
    const json_t *flags[SP_KEYS + 64];
    const char *file[SP_KEYS + 64];    /* where each was named, for messages */
    int n_additional;
} special_spec;

static aspo_status read_specials(const json_t *obj, const char *path, special_spec *sp,
                                 bool dflt)
{
    for (int k = 0; k < SP_KEYS; k++) {
        const json_t *v = obj ? json_object_get(obj, SPECIAL_KEYS[k]) : NULL;
        if (!v) {
            if (dflt) sp->content[k] = SPECIAL_DEFAULTS[k], sp->file[k] = path;
            continue;
        }
        aspo_status st = cfg_token(v, path, SPECIAL_KEYS[k], &sp->content[k], &sp->flags[k]);
        if (st) return st;
        sp->file[k] = path;
    }
    const json_t *add = obj ? json_object_get(obj, "additional_special_tokens") : NULL;
    if (!add || json_is_null(add)) return ASPO_OK;
    if (!json_is_array(add)) return bad_type(path, "additional_special_tokens", "an array", add);
    size_t i;
    const json_t *v;
    json_array_foreach(add, i, v) {
        if (sp->n_additional >= 64)
            return aspo_fail(ASPO_ERR_UNSUPPORTED, "%s: more than 64 additional special "
                             "tokens", path);
        int k = SP_KEYS + sp->n_additional;
        aspo_status st = cfg_token(v, path, "additional_special_tokens", &sp->content[k],
                                   &sp->flags[k]);
        if (st) return st;
        bool dup = !sp->content[k];
        for (int j = SP_KEYS; j < k && !dup; j++) dup = !strcmp(sp->content[j], sp->content[k]);
        if (!dup) sp->file[k] = path, sp->n_additional++;
    }
    return ASPO_OK;
}

static aspo_status add_token(bert_tokenizer *t, const char *path, const char *content,
                             int64_t id, const json_t *flags, bool special, bool normalized)
{
    if (id < 0 || id >= TOK_MAX_ID)
        return aspo_fail(ASPO_ERR_FORMAT, "%s: added token \"%s\": id %lld is outside [0, %d)",
                         path, content, (long long)id, TOK_MAX_ID);
    if (!*content) return aspo_fail(ASPO_ERR_FORMAT, "%s: added token %lld is empty", path,
                                    (long long)id);
    if (tok_strmap_get(&t->added_map, content, strlen(content)) >= 0)
        return aspo_fail(ASPO_ERR_FORMAT, "%s: added token \"%s\" is given twice", path,
                         content);
    /* AddedToken's defaults: normalized unless special */
    static const char *keys[] = {"special", "normalized", "lstrip", "rstrip", "single_word"};
    bool f[5] = {special, normalized};
    for (int k = 0; k < 5; k++) {
        aspo_status st = cfg_bool(flags, path, keys[k], k == 1 ? f[1] && !f[0] : f[k], &f[k]);
        if (st) return st;
    }
    added_token *a = realloc(t->added, (size_t)(t->n_added + 1) * sizeof *a);
    if (!a) return aspo_fail(ASPO_ERR_OOM, OOM);
    t->added = a;
    a += t->n_added;
    *a = (added_token){.id = (int32_t)id, .special = f[0] || special, .normalized = f[1],
                       .lstrip = f[2], .rstrip = f[3], .single_word = f[4]};
    if (!(a->content = strdup(content))) return aspo_fail(ASPO_ERR_OOM, OOM);
    aspo_status st = cpstr_from(content, &a->cps);
    if (!st) st = tok_strmap_put(&t->added_map, content, strlen(content), t->n_added);
    t->n_added++;
    if (a->id >= t->vocab_size) t->vocab_size = a->id + 1;
    return st;
}

/* A JSON number that is a whole id. */
static bool json_id(const json_t *v, int64_t *id)
{
    double d = json_number_value(v);
    if (!json_is_number(v) || !(d >= 0 && d < TOK_MAX_ID)) return false;
    *id = (int64_t)d;
    return (double)*id == d;
}

/* added_tokens_decoder: {"30522": {"content": "[DEC]", "lstrip": false, ...}, ...} */
static aspo_status read_added_decoder(bert_tokenizer *t, const json_t *dec, const char *path)
{
    if (!json_is_object(dec)) return bad_type(path, "added_tokens_decoder", "an object", dec);
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)dec, key, v) {
        char *end;
        long long id = strtoll(key, &end, 10);
        const json_t *c = json_object_get(v, "content");
        if (!*key || *end || !json_is_string(c))
            return aspo_fail(ASPO_ERR_FORMAT, "%s: added_tokens_decoder \"%s\": expected an "
                             "id and {\"content\": \"...\", ...}", path, key);
        aspo_status st = add_token(t, path, json_string_value(c), id, v, false, true);
        if (st) return st;
    }
    return ASPO_OK;
}

/* The legacy added_tokens.json: {"[DEC]": 30522}; special when it names a special token. */
static aspo_status read_added_json(bert_tokenizer *t, const char *dir, const special_spec *sp)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/added_tokens.json", dir);
    json_t *obj;
    aspo_status st = read_json(path, &obj);
    const char *key;
    json_t *v;
    if (obj) json_object_foreach(obj, key, v) {
        int64_t id;
        if (!json_id(v, &id)) {
            st = aspo_fail(ASPO_ERR_FORMAT, "%s: \"%s\": the id must be a whole number in "
                           "[0, %d)", path, key, TOK_MAX_ID);
            break;
        }
        bool special = false;
        for (int k = 0; k < SP_KEYS + sp->n_additional; k++)
            special = special || (sp->content[k] && !strcmp(sp->content[k], key));
        if ((st = add_token(t, path, key, id, NULL, special, !special))) break;
    }
    json_decref(obj);
    return st;
}

static aspo_status push_cpstr(cpstr **list, int *n, const cpstr *s)
{
    cpstr *l = realloc(*list, (size_t)(*n + 1) * sizeof *l);
    if (!l) return aspo_fail(ASPO_ERR_OOM, OOM);
    *list = l;
    l[*n] = (cpstr){malloc(((size_t)s->n + 1) * sizeof *s->c), s->n};
    if (!l[*n].c) return aspo_fail(ASPO_ERR_OOM, OOM);
    memcpy(l[*n].c, s->c, (size_t)s->n * sizeof *s->c);
    (*n)++;
    return ASPO_OK;
}

/* HF's len(get_vocab()): vocab.txt's tokens and the added ones not among them. */
static int32_t distinct_tokens(const bert_tokenizer *t)
{
    int32_t n = t->n_lines;
    for (int i = 0; i < t->n_added; i++)
        n += tok_strmap_get(&t->vocab, t->added[i].content, strlen(t->added[i].content)) < 0;
    return n;
}

/* Specials not yet added tokens become ones, with their vocab.txt id (HF's init does this).
 * One missing from vocab.txt HF appends with the next id; so do we, but for [UNK], [CLS]
 * and [SEP]: without them the vocabulary is not a BERT one. */
static aspo_status add_specials(bert_tokenizer *t, const char *dir, const special_spec *sp)
{
    for (int k = 0; k < SP_KEYS + sp->n_additional; k++) {
        const char *s = sp->content[k];
        if (!s) continue;
        size_t len = strlen(s);
        int32_t a = tok_strmap_get(&t->added_map, s, len), id;
        aspo_status st = ASPO_OK;
        if (a < 0) {
            bool needed = k == SP_UNK || k == SP_CLS || k == SP_SEP;
            if ((id = tok_strmap_get(&t->vocab, s, len)) < 0 && needed)
                return aspo_fail(ASPO_ERR_FORMAT, "%s: %s \"%s\" is neither a line of "
                                 "%s/vocab.txt nor an added token", sp->file[k],
                                 SPECIAL_KEYS[k], s, dir);
            if (id < 0) id = distinct_tokens(t);
            if ((st = add_token(t, sp->file[k], s, id, sp->flags[k], true, false))) return st;
            a = t->n_added - 1;
        }
        bool seen = false;
        for (int j = 0; j < t->n_specials && !seen; j++)
            seen = t->specials[j].n == t->added[a].cps.n &&
                   cps_at(t->specials[j].c, t->specials[j].n, &t->added[a].cps);
        if (!seen && (st = push_cpstr(&t->specials, &t->n_specials, &t->added[a].cps)))
            return st;
    }
    /* the lower-casing pass leaves these alone: all specials, then non-special normalized */
    for (int j = 0; j < t->n_specials; j++) {
        aspo_status st = push_cpstr(&t->protect, &t->n_protect, &t->specials[j]);
        if (st) return st;
    }
    for (int i = 0; i < t->n_added; i++) {
        aspo_status st = ASPO_OK;
        if (!t->added[i].special && t->added[i].normalized)
            st = push_cpstr(&t->protect, &t->n_protect, &t->added[i].cps);
        if (st) return st;
    }
    return ASPO_OK;
}

static aspo_status read_options(bert_tokenizer *t, const json_t *cfg, const char *path)
{
    aspo_status st;
    bool split_special;
    if ((st = cfg_bool(cfg, path, "do_lower_case", true, &t->lower)) ||
        (st = cfg_bool(cfg, path, "do_basic_tokenize", true, &t->basic)) ||
        (st = cfg_bool(cfg, path, "tokenize_chinese_chars", true, &t->chinese)) ||
        (st = cfg_bool(cfg, path, "split_special_tokens", false, &split_special)))
        return st;
    if (split_special)
        return aspo_fail(ASPO_ERR_UNSUPPORTED, "%s: split_special_tokens is not supported", path);
    const json_t *v = cfg ? json_object_get(cfg, "strip_accents") : NULL;
    t->strip_accents = !v || json_is_null(v) ? -1 : json_is_true(v);
    if (v && !json_is_boolean(v) && !json_is_null(v))
        return bad_type(path, "strip_accents", "true, false or null", v);
    t->side = BERT_TRUNCATE_RIGHT;
    if ((v = cfg ? json_object_get(cfg, "truncation_side") : NULL)) {
        const char *s = json_string_value(v);
        if (!s || (strcmp(s, "left") && strcmp(s, "right")))
            return aspo_fail(ASPO_ERR_FORMAT, "%s: \"truncation_side\" must be \"left\" or "
                             "\"right\"", path);
        t->side = !strcmp(s, "left") ? BERT_TRUNCATE_LEFT : BERT_TRUNCATE_RIGHT;
    }
    t->model_max_length = INT64_MAX;
    if ((v = cfg ? json_object_get(cfg, "model_max_length") : NULL) && !json_is_null(v)) {
        double d = json_number_value(v);
        if (!json_is_number(v) || d < 1)
            return bad_type(path, "model_max_length", "a number >= 1", v);
        if (d < 9e18) t->model_max_length = (int64_t)d;
    }
    if ((v = cfg ? json_object_get(cfg, "never_split") : NULL) && !json_is_null(v)) {
        if (!json_is_array(v)) return bad_type(path, "never_split", "an array of strings", v);
        size_t i;
        const json_t *s;
        json_array_foreach(v, i, s) {
            if (!json_is_string(s)) return bad_type(path, "never_split", "strings", s);
            if ((st = tok_strmap_put(&t->never_split, json_string_value(s),
                                     json_string_length(s), 0)))
                return st;
        }
    }
    return ASPO_OK;
}

static aspo_status special_id(const bert_tokenizer *t, const special_spec *sp, int k,
                              int32_t *id)
{
    *id = -1;
    if (!sp->content[k]) {
        if (k == SP_PAD) return ASPO_OK;
        return aspo_fail(ASPO_ERR_FORMAT, "%s: %s is null; BERT needs [UNK], [CLS] and [SEP]",
                         sp->file[k], SPECIAL_KEYS[k]);
    }
    *id = bert_token_id(t, sp->content[k], strlen(sp->content[k]));
    return ASPO_OK;
}

aspo_status bert_tokenizer_load(const char *dir, bert_tokenizer **out)
{
    *out = NULL;
    if (!dir) return aspo_fail(ASPO_ERR_USAGE, "bert_tokenizer_load: no directory");
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return aspo_fail(ASPO_ERR_IO, "%s: not a directory; expected a BERT tokenizer "
                         "directory (qformer_tokenizer/) holding vocab.txt", dir);
    bert_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return aspo_fail(ASPO_ERR_OOM, OOM);
    char cfg_path[4200], map_path[4200], path[4200];
    snprintf(path, sizeof path, "%s/vocab.txt", dir);
    snprintf(cfg_path, sizeof cfg_path, "%s/tokenizer_config.json", dir);
    snprintf(map_path, sizeof map_path, "%s/special_tokens_map.json", dir);
    json_t *cfg = NULL, *map = NULL;
    special_spec sp = {0};
    aspo_status st = load_vocab(t, path);
    t->vocab_size = t->n_lines;
    if (!st) st = read_json(cfg_path, &cfg);
    if (!st) st = read_options(t, cfg, cfg_path);
    if (!st) st = read_specials(cfg, cfg_path, &sp, true);
    const json_t *dec = cfg ? json_object_get(cfg, "added_tokens_decoder") : NULL;
    if (!st && dec) {
        st = read_added_decoder(t, dec, cfg_path);
    } else if (!st) { /* legacy: the map overrides the config, added_tokens.json adds */
        st = read_json(map_path, &map);
        if (!st) st = read_specials(map, map_path, &sp, false);
        if (!st) st = read_added_json(t, dir, &sp);
    }
    if (!st) st = add_specials(t, dir, &sp);
    if (!st) st = special_id(t, &sp, SP_UNK, &t->unk);
    if (!st) st = special_id(t, &sp, SP_CLS, &t->cls);
    if (!st) st = special_id(t, &sp, SP_SEP, &t->sep);
    if (!st) st = special_id(t, &sp, SP_PAD, &t->pad);
    json_decref(cfg);
    json_decref(map);
    if (st) {
        bert_tokenizer_free(t);
        return st;
    }
    *out = t;
    return ASPO_OK;
}

static void cpstr_list_free(cpstr *l, int n)
{
    for (int i = 0; i < n; i++) free(l[i].c);
    free(l);
}

void bert_tokenizer_free(bert_tokenizer *t)
{
    if (!t) return;
    tok_strmap_free(&t->vocab);
    tok_strmap_free(&t->added_map);
    tok_strmap_free(&t->never_split);
    free(t->vocab_text);
    free(t->lines);
    for (int i = 0; i < t->n_added; i++) {
        free(t->added[i].content);
        free(t->added[i].cps.c);
    }
    free(t->added);
    cpstr_list_free(t->specials, t->n_specials);
    cpstr_list_free(t->protect, t->n_protect);
    free(t);
}

bert_side bert_tokenizer_truncation_side(const bert_tokenizer *t) { return t->side; }
void bert_tokenizer_set_truncation_side(bert_tokenizer *t, bert_side side) { t->side = side; }
int64_t bert_tokenizer_model_max_length(const bert_tokenizer *t) { return t->model_max_length; }
int32_t bert_tokenizer_cls_id(const bert_tokenizer *t) { return t->cls; }
int32_t bert_tokenizer_sep_id(const bert_tokenizer *t) { return t->sep; }
int32_t bert_tokenizer_pad_id(const bert_tokenizer *t) { return t->pad; }
int32_t bert_tokenizer_unk_id(const bert_tokenizer *t) { return t->unk; }
int32_t bert_tokenizer_vocab_size(const bert_tokenizer *t) { return t->vocab_size; }

const char *bert_tokenizer_id_to_token(const bert_tokenizer *t, int32_t id)
{
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].id == id) return t->added[i].content;
    return id >= 0 && id < t->n_lines ? t->lines[id] : NULL;
}
