/* Tokenizer public API: finding the files, the model directory's config files (special
 * tokens, flags), the id tables shared by both loaders, accessors and token lists. */
#define _POSIX_C_SOURCE 200809L /* strdup */

#include "models/tokenizer_internal.h"
#include "tensor/file_open.h"
#include "tensor/json_file.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

FILE *tok_file_open(const char *path, uint64_t *bytes)
{
    return file_open_regular(path, "tokenizer file", TOK_FILE_MAX_BYTES, bytes);
}

tokenizer *tok_new(const char *source)
{
    tokenizer *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->source = strdup(source);
    if (!t->source) {
        free(t);
        return NULL;
    }
    t->unk = -1;
    t->file_bos = t->file_eos = t->file_pad = -1;
    t->bos = t->eos = t->pad = t->unk_id = -1;
    return t;
}

void tokenizer_free(tokenizer *t)
{
    if (!t) return;
    tok_strmap_free(&t->vocab);
    tok_strmap_free(&t->added_map);
    tok_pairmap_free(&t->merges);
    for (int32_t i = 0; i < t->n_ids; i++) free(t->pieces[i]);
    free(t->pieces), free(t->piece_lens), free(t->special);
    for (int i = 0; i < t->n_added; i++) free(t->added[i].content), free(t->added[i].pattern);
    free(t->added);
    free(t->raw_trie.idx), free(t->norm_trie.idx);
    for (int i = 0; i < t->n_norm; i++) free(t->norm[i].a), free(t->norm[i].b);
    free(t->norm);
    for (int i = 0; i < t->n_dec; i++) free(t->dec[i].a), free(t->dec[i].b);
    free(t->dec);
    free(t->unk_token);
    free(t->source);
    free(t);
}

/* Sets the piece of id (growing the tables), replacing an earlier one. */
static aspo_status set_piece(tokenizer *t, int32_t id, const char *p, size_t len)
{
    if (id < 0 || id >= INT32_MAX - 1)
        return aspo_fail(ASPO_ERR_FORMAT, "%s: token id %d is out of range", t->source, id);
    if (id >= t->cap_ids) {
        int32_t cap = t->cap_ids ? t->cap_ids : 1024;
        while (cap <= id) cap = cap > INT32_MAX / 2 ? INT32_MAX - 1 : cap * 2;
        char **pieces = realloc(t->pieces, (size_t)cap * sizeof *pieces);
        if (pieces) t->pieces = pieces;
        uint32_t *lens = pieces ? realloc(t->piece_lens, (size_t)cap * sizeof *lens) : NULL;
        if (lens) t->piece_lens = lens;
        bool *special = lens ? realloc(t->special, (size_t)cap * sizeof *special) : NULL;
        if (!special) return aspo_fail(ASPO_ERR_OOM, "%s: out of memory (%d ids)", t->source, cap);
        t->special = special;
        for (int32_t i = t->cap_ids; i < cap; i++)
            t->pieces[i] = NULL, t->piece_lens[i] = 0, t->special[i] = false;
        t->cap_ids = cap;
    }
    char *c = malloc(len + 1);
    if (!c) return aspo_fail(ASPO_ERR_OOM, "%s: out of memory", t->source);
    memcpy(c, p, len);
    c[len] = 0;
    free(t->pieces[id]);
    t->pieces[id] = c, t->piece_lens[id] = (uint32_t)len;
    if (id >= t->n_ids) t->n_ids = id + 1;
    return ASPO_OK;
}

/* The piece that holds id, NULL when none does. */
static const char *piece_at(const tokenizer *t, long long id)
{
    return id >= 0 && id < t->n_ids ? t->pieces[id] : NULL;
}

aspo_status tok_add_piece(tokenizer *t, const char *piece, size_t len, int32_t id)
{
    /* One id per piece and one piece per id: the id table keeps only one of them. */
    int32_t old = tok_strmap_get(&t->vocab, piece, len);
    if (old >= 0)
        return aspo_fail(ASPO_ERR_FORMAT, "%s: vocabulary piece \"%s\" at ids %d and %d; each "
                         "piece may appear once: fix the file", t->source, piece, old, id);
    if (piece_at(t, id))
        return aspo_fail(ASPO_ERR_FORMAT, "%s: vocabulary pieces \"%s\" and \"%s\" both have "
                         "id %d; each id names one piece: fix the file", t->source,
                         t->pieces[id], piece, id);
    aspo_status s = tok_strmap_put(&t->vocab, piece, len, id);
    if (!s) s = set_piece(t, id, piece, len);
    t->vocab_count = (int32_t)t->vocab.n;
    return s;
}

/* The id HF gives content when it is added now: that of an added token or model piece with
 * the same content, else the next after the model vocabulary and the added tokens so far. */
static int32_t added_id(const tokenizer *t, const char *content, size_t len)
{
    int32_t id = tok_strmap_get(&t->added_map, content, len);
    if (id < 0) id = tok_strmap_get(&t->vocab, content, len);
    if (id >= 0) return id;
    int32_t max = -1;
    for (int i = 0; i < t->n_added; i++) max = t->added[i].id > max ? t->added[i].id : max;
    return max >= 0 && (max >= t->vocab_count || t->vocab_count == 0) ? max + 1 : t->vocab_count;
}

aspo_status tok_check_added_id(const tokenizer *t, const char *file, const char *field,
                               const char *content, size_t len, long long want)
{
    if (len == 0) /* HF skips it: the id names nothing */
        return aspo_fail(ASPO_ERR_FORMAT, "%s: %s: a token with empty content (id %lld) is "
                         "never added; remove it", file, field, want);
    char why[160];
    int32_t got = added_id(t, content, len);
    if (got == want) return ASPO_OK;
    if (want < 0 || want >= TOK_MAX_ID)
        snprintf(why, sizeof why, "that is not a token id (0 to %d)", TOK_MAX_ID - 1);
    else if (tok_strmap_get(&t->added_map, content, len) >= 0)
        snprintf(why, sizeof why, "it is already an added token with id %d", got);
    else if (tok_strmap_get(&t->vocab, content, len) >= 0)
        snprintf(why, sizeof why, "the vocabulary has it at id %d", got);
    else if (piece_at(t, want))
        snprintf(why, sizeof why, "id %lld already belongs to \"%.100s\"", want,
                 t->pieces[want]);
    else snprintf(why, sizeof why, "the next free id is %d (added tokens take the ids after "
                  "the vocabulary, in order)", got);
    return aspo_fail(ASPO_ERR_FORMAT, "%s: %s: token \"%s\" has id %lld, but %s; Hugging Face "
                     "would quietly renumber it, so fix the id", file, field, content, want, why);
}

aspo_status tok_add_token(tokenizer *t, const char *content, size_t len, bool special,
                          bool normalized, bool lstrip, bool rstrip, bool single_word)
{
    if (len == 0) return ASPO_OK;
    int32_t id = tok_strmap_get(&t->added_map, content, len);
    if (id >= 0) {
        if (special) t->special[id] = true;
        return ASPO_OK;
    }
    bool in_vocab = tok_strmap_get(&t->vocab, content, len) >= 0;
    id = added_id(t, content, len);
    if (!in_vocab && piece_at(t, id)) /* HF would give both the id */
        return aspo_fail(ASPO_ERR_FORMAT, "%s: added token \"%s\" gets id %d, the next free "
                         "one, but vocabulary piece \"%s\" has it: the vocabulary's ids have a "
                         "gap; number them 0 to %d", t->source, content, id, t->pieces[id],
                         t->vocab_count - 1);
    if (t->n_added == t->cap_added) {
        int cap = t->cap_added ? t->cap_added * 2 : 8;
        tok_added *a = realloc(t->added, (size_t)cap * sizeof *a);
        if (!a) return aspo_fail(ASPO_ERR_OOM, "%s: out of memory", t->source);
        t->added = a, t->cap_added = cap;
    }
    tok_added *a = &t->added[t->n_added];
    *a = (tok_added){.len = len, .id = id, .single_word = single_word, .lstrip = lstrip,
                     .rstrip = rstrip, .normalized = normalized, .special = special};
    a->content = malloc(len + 1);
    if (!a->content) return aspo_fail(ASPO_ERR_OOM, "%s: out of memory", t->source);
    memcpy(a->content, content, len);
    a->content[len] = 0;
    t->n_added++;
    aspo_status s = tok_strmap_put(&t->added_map, content, len, id);
    if (!s) s = set_piece(t, id, content, len);
    if (!s && special) t->special[id] = true;
    return s;
}

static aspo_status build_trie(tokenizer *t, tok_trie *trie, bool normalized)
{
    int count[257] = {0}, n = 0;
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].normalized == normalized) count[(unsigned char)t->added[i].pattern[0]]++, n++;
    trie->idx = malloc((size_t)(n ? n : 1) * sizeof *trie->idx);
    if (!trie->idx) return aspo_fail(ASPO_ERR_OOM, "%s: out of memory", t->source);
    trie->first[0] = 0;
    for (int c = 0; c < 256; c++) trie->first[c + 1] = trie->first[c] + count[c];
    int fill[256];
    memcpy(fill, trie->first, sizeof fill);
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].normalized == normalized)
            trie->idx[fill[(unsigned char)t->added[i].pattern[0]]++] = i;
    return ASPO_OK;
}

aspo_status tok_finalize(tokenizer *t)
{
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        t->byte_ids[b] = tok_strmap_get(&t->vocab, name, 6);
    }
    t->unk = t->unk_token ? tok_strmap_get(&t->vocab, t->unk_token, strlen(t->unk_token)) : -1;
    /* Normalized added tokens are matched in normalized text, as their normalized form. */
    tok_nstr n = {0}, scratch = {0};
    aspo_status s = ASPO_OK;
    for (int i = 0; i < t->n_added && !s; i++) {
        tok_added *a = &t->added[i];
        n.len = 0;
        s = tok_nstr_reserve(&n, a->len);
        if (s) break;
        memcpy(n.s, a->content, a->len);
        for (size_t k = 0; k < a->len; k++) n.a0[k] = 0, n.a1[k] = (int32_t)a->len;
        n.len = a->len;
        if (a->normalized) s = tok_normalize(t, &n, &scratch);
        if (s) break;
        a->pattern = malloc(n.len + 1);
        if (!a->pattern) s = aspo_fail(ASPO_ERR_OOM, "%s: out of memory", t->source);
        else memcpy(a->pattern, n.s, n.len), a->pattern[n.len] = 0, a->pattern_len = n.len;
    }
    tok_nstr_free(&n), tok_nstr_free(&scratch);
    if (!s) s = build_trie(t, &t->raw_trie, false);
    if (!s) s = build_trie(t, &t->norm_trie, true);
    return s;
}

aspo_status tok_add_norm(tokenizer *t, enum tok_norm_kind kind, const char *a, const char *b)
{
    tok_norm *p = realloc(t->norm, (size_t)(t->n_norm + 1) * sizeof *p);
    if (!p) return aspo_fail(ASPO_ERR_OOM, "%s: out of memory", t->source);
    t->norm = p;
    tok_norm *s = &t->norm[t->n_norm++];
    *s = (tok_norm){.kind = kind, .a = strdup(a), .b = strdup(b ? b : ""), .a_len = strlen(a),
                    .b_len = b ? strlen(b) : 0};
    return s->a && s->b ? ASPO_OK : aspo_fail(ASPO_ERR_OOM, "%s: out of memory", t->source);
}

aspo_status tok_add_dec(tokenizer *t, tok_dec d, const char *a, const char *b)
{
    tok_dec *p = realloc(t->dec, (size_t)(t->n_dec + 1) * sizeof *p);
    if (!p) return aspo_fail(ASPO_ERR_OOM, "%s: out of memory", t->source);
    t->dec = p;
    d.a = strdup(a ? a : ""), d.b = strdup(b ? b : "");
    d.a_len = a ? strlen(a) : 0, d.b_len = b ? strlen(b) : 0;
    t->dec[t->n_dec++] = d;
    t->has_decoder = true;
    return d.a && d.b ? ASPO_OK : aspo_fail(ASPO_ERR_OOM, "%s: out of memory", t->source);
}

aspo_status tok_set_llama_pipeline(tokenizer *t, bool legacy, bool add_prefix_space)
{
    static const char meta[] = "\xE2\x96\x81"; /* U+2581 */
    aspo_status s = ASPO_OK;
    if (legacy) { /* transformers' LlamaConverter.normalizer / pre_tokenizer / decoder */
        if (add_prefix_space) s = tok_add_norm(t, TOK_NORM_PREPEND, meta, NULL);
        if (!s) s = tok_add_norm(t, TOK_NORM_REPLACE, " ", meta);
    } else {
        t->pretok = (tok_pretok){.metaspace = true, .rep_len = 3, .split = false,
                                 .prepend = add_prefix_space ? TOK_PREPEND_FIRST
                                                             : TOK_PREPEND_NEVER};
        memcpy(t->pretok.rep, meta, 4);
    }
    if (!s) s = tok_add_dec(t, (tok_dec){.kind = TOK_DEC_REPLACE}, meta, " ");
    if (!s) s = tok_add_dec(t, (tok_dec){.kind = TOK_DEC_BYTE_FALLBACK}, NULL, NULL);
    if (!s) s = tok_add_dec(t, (tok_dec){.kind = TOK_DEC_FUSE}, NULL, NULL);
    if (!s && add_prefix_space)
        s = tok_add_dec(t, (tok_dec){.kind = TOK_DEC_STRIP, .ch = ' ', .start = 1}, NULL, NULL);
    return s;
}

/* ---- model directory ----------------------------------------------------------------- */

/* Anything at p: what is there but not a regular file is refused when opened, not skipped. */
static bool exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* Reads dir/name when it exists into *obj (NULL when absent). HF writes model_max_length's
 * "no limit" as the integer 1e30: numbers are read as reals. */
static aspo_status read_config(const char *dir, const char *name, json_t **obj)
{
    *obj = NULL;
    char *p = join(dir, name);
    if (!p) return aspo_fail(ASPO_ERR_OOM, "tokenizer: out of memory");
    aspo_status s = json_file_load_object_if_present(p, "tokenizer config", TOK_FILE_MAX_BYTES,
                                                     JSON_DECODE_INT_AS_REAL, obj);
    free(p);
    return s;
}

/* A config's token: "text" or {"content": "text", ...}; NULL for null or anything else. */
static const char *cfg_token(json_t *v, json_t **flags)
{
    *flags = json_is_object(v) ? v : NULL;
    if (json_is_string(v)) return json_string_value(v);
    if (json_is_object(v) && json_is_string(json_object_get(v, "content")))
        return json_string_value(json_object_get(v, "content"));
    return NULL;
}

static bool flag(json_t *obj, const char *key, bool dflt)
{
    json_t *v = obj ? json_object_get(obj, key) : NULL;
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

static aspo_status add_cfg_token(tokenizer *t, const char *content, json_t *flags, bool special)
{
    return tok_add_token(t, content, strlen(content), special || flag(flags, "special", false),
                         flag(flags, "normalized", !special), flag(flags, "lstrip", false),
                         flag(flags, "rstrip", false), flag(flags, "single_word", false));
}

typedef struct decoder_entry {
    long id;
    const char *key;
    json_t *value;
} decoder_entry;

static int cmp_ids(const void *a, const void *b)
{
    long x = ((const decoder_entry *)a)->id, y = ((const decoder_entry *)b)->id;
    return (x > y) - (x < y);
}

/* added_tokens_decoder's key: a decimal token id, else -1. */
static long parse_id(const char *key)
{
    char *end;
    errno = 0;
    long id = strtol(key, &end, 10);
    return *key && !*end && !errno && id >= 0 && id < TOK_MAX_ID ? id : -1;
}

/* transformers' fast tokenizer init: the config's added_tokens_decoder (by id) and its
 * special tokens are added when missing; then the special ids are resolved. Each
 * added_tokens_decoder entry must get the id it is listed under (config: the file's path,
 * for messages). */
static aspo_status apply_config(tokenizer *t, json_t *cfg, const char *config)
{
    static const char *const keys[] = {"bos_token", "eos_token", "unk_token", "pad_token",
                                       "sep_token", "cls_token", "mask_token"};
    static const char *const dflt[] = {"<s>", "</s>", "<unk>"}; /* LlamaTokenizerFast */
    aspo_status s = ASPO_OK;
    t->unk = t->unk_token ? tok_strmap_get(&t->vocab, t->unk_token, strlen(t->unk_token)) : -1;
    json_t *dec = cfg ? json_object_get(cfg, "added_tokens_decoder") : NULL;
    if (json_is_object(dec)) {
        size_t n = json_object_size(dec), k = 0;
        decoder_entry *ent = malloc((n ? n : 1) * sizeof *ent);
        if (!ent) return aspo_fail(ASPO_ERR_OOM, "%s: out of memory", t->source);
        const char *key;
        json_t *v;
        json_object_foreach(dec, key, v) {
            ent[k] = (decoder_entry){.id = parse_id(key), .key = key, .value = v};
            if (ent[k++].id < 0 && !s)
                s = aspo_fail(ASPO_ERR_FORMAT, "%s: added_tokens_decoder: key \"%s\" is not a "
                              "token id (0 to %d)", config, key, TOK_MAX_ID - 1);
        }
        if (!s) qsort(ent, n, sizeof *ent, cmp_ids);
        for (k = 0; k < n && !s; k++) {
            json_t *flags;
            const char *c = cfg_token(ent[k].value, &flags);
            if (!c)
                s = aspo_fail(ASPO_ERR_FORMAT, "%s: added_tokens_decoder[\"%s\"]: expected "
                              "{\"content\": \"<text>\", ...}", config, ent[k].key);
            if (!s)
                s = tok_check_added_id(t, config, "added_tokens_decoder", c, strlen(c), ent[k].id);
            if (!s) s = add_cfg_token(t, c, flags, false);
        }
        free(ent);
    }
    for (size_t k = 0; k < sizeof keys / sizeof *keys && !s; k++) {
        json_t *flags, *v = cfg ? json_object_get(cfg, keys[k]) : NULL;
        const char *c = v ? cfg_token(v, &flags) : (k < 3 ? dflt[k] : NULL);
        if (!v && c && tok_strmap_get(&t->vocab, c, strlen(c)) < 0 &&
            tok_strmap_get(&t->added_map, c, strlen(c)) < 0)
            c = NULL; /* a default the vocabulary lacks */
        if (c) s = add_cfg_token(t, c, v ? flags : NULL, true);
    }
    json_t *extra = cfg ? json_object_get(cfg, "additional_special_tokens") : NULL;
    for (size_t k = 0; json_is_array(extra) && k < json_array_size(extra) && !s; k++) {
        json_t *flags;
        const char *c = cfg_token(json_array_get(extra, k), &flags);
        if (c) s = add_cfg_token(t, c, flags, true);
    }
    if (s) return s;
    int32_t *slot[] = {&t->bos, &t->eos, &t->unk_id, &t->pad};
    int32_t from_file[] = {t->file_bos, t->file_eos, t->unk, t->file_pad};
    for (int k = 0; k < 4; k++) {
        json_t *flags, *v = cfg ? json_object_get(cfg, keys[k]) : NULL;
        const char *c = v ? cfg_token(v, &flags) : NULL;
        if (v) *slot[k] = c ? tokenizer_piece_to_id(t, c) : -1;
        else if (from_file[k] >= 0) *slot[k] = from_file[k];
        else *slot[k] = k < 3 ? tokenizer_piece_to_id(t, dflt[k]) : -1;
    }
    json_t *clean = cfg ? json_object_get(cfg, "clean_up_tokenization_spaces") : NULL;
    t->cleanup_spaces = json_is_true(clean);
    return ASPO_OK;
}

aspo_status tokenizer_load(const char *path, tokenizer **out)
{
    if (!path || !out) return aspo_fail(ASPO_ERR_USAGE, "tokenizer_load: NULL argument");
    *out = NULL;
    struct stat st;
    if (stat(path, &st) != 0)
        return aspo_fail(ASPO_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char *dir = NULL, *file = NULL;
    if (S_ISDIR(st.st_mode)) {
        dir = strdup(path);
        file = join(path, "tokenizer.json");
        if (file && !exists(file)) {
            free(file);
            file = join(path, "tokenizer.model");
            if (file && !exists(file)) {
                free(file), free(dir);
                return aspo_fail(ASPO_ERR_IO, "%s: holds neither tokenizer.json nor "
                                 "tokenizer.model", path);
            }
        }
    } else {
        file = strdup(path);
        const char *slash = strrchr(path, '/');
        dir = slash ? strndup(path, (size_t)(slash - path + (slash == path))) : strdup(".");
    }
    if (!dir || !file) {
        free(dir), free(file);
        return aspo_fail(ASPO_ERR_OOM, "tokenizer_load: out of memory");
    }
    json_t *cfg = NULL, *map = NULL;
    aspo_status s = read_config(dir, "tokenizer_config.json", &cfg);
    if (!s) s = read_config(dir, "special_tokens_map.json", &map);
    if (!s && map) { /* special_tokens_map.json wins, as in from_pretrained */
        if (!cfg) cfg = json_incref(map);
        else json_object_update(cfg, map);
    }
    size_t n = strlen(file);
    bool is_json = n >= 5 && strcmp(file + n - 5, ".json") == 0;
    if (!s && !is_json && !(n >= 6 && strcmp(file + n - 6, ".model") == 0)) {
        FILE *f = tok_file_open(file, NULL); /* neither name: a JSON file starts with '{' */
        int c = ' ';
        while (f && (c = fgetc(f)) != EOF && (c == ' ' || c == '\n' || c == '\r' || c == '\t')) {
        }
        is_json = c == '{';
        if (f) fclose(f);
        else s = aspo_error_status();
    }
    char *config = join(dir, "tokenizer_config.json");
    if (!s && !config) s = aspo_fail(ASPO_ERR_OOM, "tokenizer_load: out of memory");
    tokenizer *t = NULL;
    if (!s) s = is_json ? tok_load_json(file, &t) : tok_load_spm(file, cfg, &t);
    if (!s) s = apply_config(t, cfg, config);
    if (!s) s = tok_finalize(t);
    json_decref(cfg), json_decref(map);
    free(dir), free(file), free(config);
    if (s) {
        tokenizer_free(t);
        return s;
    }
    *out = t;
    return ASPO_OK;
}

/* ---- accessors and token lists ------------------------------------------------------- */

int32_t tokenizer_bos_id(const tokenizer *t) { return t ? t->bos : -1; }
int32_t tokenizer_eos_id(const tokenizer *t) { return t ? t->eos : -1; }
int32_t tokenizer_pad_id(const tokenizer *t) { return t ? t->pad : -1; }
int32_t tokenizer_unk_id(const tokenizer *t) { return t ? t->unk_id : -1; }
int32_t tokenizer_vocab_size(const tokenizer *t) { return t ? t->n_ids : 0; }

int32_t tokenizer_piece_to_id(const tokenizer *t, const char *piece)
{
    if (!t || !piece) return -1;
    size_t n = strlen(piece);
    int32_t id = tok_strmap_get(&t->added_map, piece, n);
    return id >= 0 ? id : tok_strmap_get(&t->vocab, piece, n);
}

const char *tokenizer_id_to_piece(const tokenizer *t, int32_t id)
{
    return t && id >= 0 && id < t->n_ids ? t->pieces[id] : NULL;
}

void token_list_clear(token_list *l)
{
    if (l) l->n = 0;
}

void token_list_free(token_list *l)
{
    if (!l) return;
    free(l->ids), free(l->start), free(l->end);
    memset(l, 0, sizeof *l);
}

aspo_status token_list_push(token_list *l, int32_t id, int32_t start, int32_t end)
{
    if (!l) return aspo_fail(ASPO_ERR_USAGE, "token_list_push: NULL list");
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 64;
        int32_t *ids = realloc(l->ids, (size_t)cap * sizeof *ids);
        if (ids) l->ids = ids;
        int32_t *st = ids ? realloc(l->start, (size_t)cap * sizeof *st) : NULL;
        if (st) l->start = st;
        int32_t *en = st ? realloc(l->end, (size_t)cap * sizeof *en) : NULL;
        if (!en) return aspo_fail(ASPO_ERR_OOM, "token_list_push: out of memory (%d tokens)", cap);
        l->end = en, l->cap = cap;
    }
    l->ids[l->n] = id, l->start[l->n] = start, l->end[l->n] = end;
    l->n++;
    return ASPO_OK;
}
