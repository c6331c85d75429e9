/* tokenizer.json loader (HF tokenizers' serialization, version "1.0"). Every problem in the
 * file is an error naming the file and the field; JSON syntax errors give line and column.
 * Parts that encoding does not use (truncation, padding other than its pad token) are
 * ignored; a component type this tokenizer does not implement is ASPO_ERR_UNSUPPORTED. */
#include "models/tokenizer_internal.h"
#include "tensor/json_file.h"

#include <errno.h>
#include <string.h>

static aspo_status bad(const tokenizer *t, const char *field, const char *what)
{
    return aspo_fail(ASPO_ERR_FORMAT, "%s: %s: %s", t->source, field, what);
}

static const char *type_of(json_t *obj)
{
    json_t *v = json_object_get(obj, "type");
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* An optional boolean: absent or null keeps *out. */
static aspo_status get_bool(const tokenizer *t, json_t *obj, const char *key, const char *field,
                            bool *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return ASPO_OK;
    if (!json_is_boolean(v))
        return aspo_fail(ASPO_ERR_FORMAT, "%s: %s.%s: expected true or false", t->source, field,
                         key);
    *out = json_is_true(v);
    return ASPO_OK;
}

/* A one-character string (Metaspace replacement, Strip content). */
static aspo_status get_char(const tokenizer *t, json_t *obj, const char *key, const char *field,
                            uint32_t *out)
{
    json_t *v = json_object_get(obj, key);
    const char *s = json_string_value(v);
    int len = 0;
    if (s && *s) *out = tok_utf8_decode(s, &len);
    if (!s || !*s || s[len] != 0)
        return aspo_fail(ASPO_ERR_FORMAT, "%s: %s.%s: expected a one-character string",
                         t->source, field, key);
    return ASPO_OK;
}

/* Replace's pattern: {"String": "..."}; regex patterns are not supported. */
static aspo_status get_pattern(const tokenizer *t, json_t *obj, const char *field,
                               const char **out)
{
    json_t *p = json_object_get(obj, "pattern");
    json_t *str = json_is_object(p) ? json_object_get(p, "String") : NULL;
    if (json_is_object(p) && json_object_get(p, "Regex"))
        return aspo_fail(ASPO_ERR_UNSUPPORTED, "%s: %s.pattern: Regex patterns are not "
                         "supported (LLaMA files use {\"String\": ...})", t->source, field);
    if (!json_is_string(str) || json_string_length(str) == 0)
        return bad(t, field, "pattern must be {\"String\": \"<non-empty text>\"}");
    if (!json_is_string(json_object_get(obj, "content")))
        return bad(t, field, "content must be a string");
    *out = json_string_value(str);
    return ASPO_OK;
}

static aspo_status get_prepend(const tokenizer *t, json_t *obj, const char *field,
                               enum tok_prepend *out)
{
    json_t *scheme = json_object_get(obj, "prepend_scheme");
    *out = TOK_PREPEND_ALWAYS; /* HF's default when the field is absent */
    if (json_is_string(scheme)) {
        const char *s = json_string_value(scheme);
        if (!strcmp(s, "always")) *out = TOK_PREPEND_ALWAYS;
        else if (!strcmp(s, "first")) *out = TOK_PREPEND_FIRST;
        else if (!strcmp(s, "never")) *out = TOK_PREPEND_NEVER;
        else return bad(t, field, "prepend_scheme must be \"always\", \"first\" or \"never\"");
    } else if (scheme && !json_is_null(scheme)) {
        return bad(t, field, "prepend_scheme must be a string");
    }
    /* The older form: add_prefix_space false must come with "never"; HF rejects it
     * otherwise, also when prepend_scheme is absent (its default is "always"). */
    bool add = true;
    aspo_status s = get_bool(t, obj, "add_prefix_space", field, &add);
    if (!s && !add && *out != TOK_PREPEND_NEVER)
        s = bad(t, field, "add_prefix_space false does not match prepend_scheme (HF rejects "
                "it too; use \"prepend_scheme\": \"never\")");
    return s;
}

static aspo_status parse_normalizer(tokenizer *t, json_t *n, int depth)
{
    const char *field = "normalizer";
    if (!n || json_is_null(n)) return ASPO_OK;
    const char *type = json_is_object(n) ? type_of(n) : NULL;
    if (!type || depth > 8) return bad(t, field, "expected an object with a \"type\"");
    if (!strcmp(type, "Sequence")) {
        json_t *list = json_object_get(n, "normalizers");
        if (!json_is_array(list)) return bad(t, field, "Sequence needs a \"normalizers\" array");
        aspo_status s = ASPO_OK;
        for (size_t i = 0; i < json_array_size(list) && !s; i++)
            s = parse_normalizer(t, json_array_get(list, i), depth + 1);
        return s;
    }
    if (!strcmp(type, "Prepend")) {
        json_t *p = json_object_get(n, "prepend");
        if (!json_is_string(p)) return bad(t, field, "Prepend needs a \"prepend\" string");
        return json_string_length(p) ? tok_add_norm(t, TOK_NORM_PREPEND, json_string_value(p), NULL)
                                     : ASPO_OK;
    }
    if (!strcmp(type, "Replace")) {
        const char *pat;
        aspo_status s = get_pattern(t, n, field, &pat);
        return s ? s : tok_add_norm(t, TOK_NORM_REPLACE, pat,
                                    json_string_value(json_object_get(n, "content")));
    }
    return aspo_fail(ASPO_ERR_UNSUPPORTED, "%s: normalizer type '%s' is not supported "
                     "(supported: Sequence, Prepend, Replace)", t->source, type);
}

static aspo_status parse_pretokenizer(tokenizer *t, json_t *p)
{
    const char *field = "pre_tokenizer";
    if (!p || json_is_null(p)) return ASPO_OK;
    const char *type = json_is_object(p) ? type_of(p) : NULL;
    if (!type) return bad(t, field, "expected an object with a \"type\"");
    if (!strcmp(type, "Sequence")) { /* a Sequence of one Metaspace is that Metaspace */
        json_t *list = json_object_get(p, "pretokenizers");
        if (json_is_array(list) && json_array_size(list) == 0) return ASPO_OK;
        if (json_is_array(list) && json_array_size(list) == 1)
            return parse_pretokenizer(t, json_array_get(list, 0));
        return aspo_fail(ASPO_ERR_UNSUPPORTED, "%s: pre_tokenizer: only a Sequence of one "
                         "Metaspace is supported", t->source);
    }
    if (strcmp(type, "Metaspace") != 0)
        return aspo_fail(ASPO_ERR_UNSUPPORTED, "%s: pre_tokenizer type '%s' is not supported "
                         "(supported: Metaspace)", t->source, type);
    uint32_t rep = 0;
    aspo_status s = get_char(t, p, "replacement", field, &rep);
    if (!s) s = get_prepend(t, p, field, &t->pretok.prepend);
    t->pretok.split = true; /* HF's default */
    if (!s) s = get_bool(t, p, "split", field, &t->pretok.split);
    if (s) return s;
    t->pretok.metaspace = true;
    t->pretok.rep_len = tok_utf8_encode(rep, t->pretok.rep);
    return ASPO_OK;
}

static aspo_status parse_decoder(tokenizer *t, json_t *d, int depth)
{
    const char *field = "decoder";
    if (!d || json_is_null(d)) return ASPO_OK;
    const char *type = json_is_object(d) ? type_of(d) : NULL;
    if (!type || depth > 8) return bad(t, field, "expected an object with a \"type\"");
    aspo_status s = ASPO_OK;
    if (!strcmp(type, "Sequence")) {
        json_t *list = json_object_get(d, "decoders");
        if (!json_is_array(list)) return bad(t, field, "Sequence needs a \"decoders\" array");
        t->has_decoder = true; /* even when empty: tokens are joined without spaces */
        for (size_t i = 0; i < json_array_size(list) && !s; i++)
            s = parse_decoder(t, json_array_get(list, i), depth + 1);
        return s;
    }
    if (!strcmp(type, "Replace")) {
        const char *pat;
        s = get_pattern(t, d, field, &pat);
        return s ? s : tok_add_dec(t, (tok_dec){.kind = TOK_DEC_REPLACE}, pat,
                                   json_string_value(json_object_get(d, "content")));
    }
    if (!strcmp(type, "ByteFallback"))
        return tok_add_dec(t, (tok_dec){.kind = TOK_DEC_BYTE_FALLBACK}, NULL, NULL);
    if (!strcmp(type, "Fuse")) return tok_add_dec(t, (tok_dec){.kind = TOK_DEC_FUSE}, NULL, NULL);
    if (!strcmp(type, "Strip")) {
        tok_dec x = {.kind = TOK_DEC_STRIP};
        s = get_char(t, d, "content", field, &x.ch);
        json_t *a = json_object_get(d, "start"), *b = json_object_get(d, "stop");
        if (!s && (!json_is_integer(a) || !json_is_integer(b) || json_integer_value(a) < 0 ||
                   json_integer_value(b) < 0 || json_integer_value(a) > 1000000 ||
                   json_integer_value(b) > 1000000))
            s = bad(t, field, "Strip needs non-negative integers \"start\" and \"stop\"");
        if (s) return s;
        x.start = (int)json_integer_value(a), x.stop = (int)json_integer_value(b);
        return tok_add_dec(t, x, NULL, NULL);
    }
    if (!strcmp(type, "Metaspace")) {
        tok_dec x = {.kind = TOK_DEC_METASPACE};
        s = get_char(t, d, "replacement", field, &x.ch);
        if (!s) s = get_prepend(t, d, field, &x.prepend);
        return s ? s : tok_add_dec(t, x, NULL, NULL);
    }
    return aspo_fail(ASPO_ERR_UNSUPPORTED, "%s: decoder type '%s' is not supported (supported: "
                     "Sequence, Replace, ByteFallback, Fuse, Strip, Metaspace)", t->source, type);
}

static aspo_status parse_model(tokenizer *t, json_t *m)
{
    if (!json_is_object(m)) return bad(t, "model", "missing or not an object");
    const char *type = type_of(m);
    if (type && strcmp(type, "BPE") != 0)
        return aspo_fail(ASPO_ERR_UNSUPPORTED, "%s: model.type '%s' is not supported (this "
                         "tokenizer implements BPE, as LLaMA files use)", t->source, type);
    json_t *vocab = json_object_get(m, "vocab"), *merges = json_object_get(m, "merges");
    if (!json_is_object(vocab)) return bad(t, "model.vocab", "missing or not an object");
    if (!json_is_array(merges)) return bad(t, "model.merges", "missing or not an array");
    json_t *v = json_object_get(m, "dropout");
    if (v && !json_is_null(v) && !(json_is_number(v) && json_number_value(v) == 0))
        return aspo_fail(ASPO_ERR_UNSUPPORTED, "%s: model.dropout: BPE dropout is not "
                         "supported (it makes encoding random)", t->source);
    const char *affix[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int k = 0; k < 2; k++) {
        v = json_object_get(m, affix[k]);
        if (v && !json_is_null(v) && !(json_is_string(v) && json_string_length(v) == 0))
            return aspo_fail(ASPO_ERR_UNSUPPORTED, "%s: model.%s is not supported", t->source,
                             affix[k]);
    }
    v = json_object_get(m, "unk_token");
    if (json_is_string(v)) {
        t->unk_token = strdup(json_string_value(v));
        if (!t->unk_token) return aspo_fail(ASPO_ERR_OOM, "%s: out of memory", t->source);
    } else if (v && !json_is_null(v)) {
        return bad(t, "model.unk_token", "expected a string or null");
    }
    aspo_status s = get_bool(t, m, "fuse_unk", "model", &t->fuse_unk);
    if (!s) s = get_bool(t, m, "byte_fallback", "model", &t->byte_fallback);
    if (!s) s = get_bool(t, m, "ignore_merges", "model", &t->ignore_merges);
    const char *key;
    json_object_foreach(vocab, key, v) {
        if (s) break;
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= TOK_MAX_ID)
            return aspo_fail(ASPO_ERR_FORMAT, "%s: model.vocab[\"%s\"]: expected an id in "
                             "[0, %d)", t->source, key, TOK_MAX_ID);
        s = tok_add_piece(t, key, strlen(key), (int32_t)json_integer_value(v));
    }
    int32_t rank = 0;
    for (size_t i = 0; i < json_array_size(merges) && !s; i++) {
        json_t *e = json_array_get(merges, i);
        char field[48];
        snprintf(field, sizeof field, "model.merges[%zu]", i);
        if (json_is_string(e)) { /* "a b": exactly one space */
            const char *str = json_string_value(e), *sp = strchr(str, ' ');
            if (!strncmp(str, "#version", 8)) continue;
            if (!sp || strchr(sp + 1, ' '))
                return bad(t, field, "expected \"<piece> <piece>\" with one space");
            s = tok_add_merge(t, str, (size_t)(sp - str), sp + 1, strlen(sp + 1), rank++, (int)i);
        } else if (json_is_array(e) && json_array_size(e) == 2 &&
                   json_is_string(json_array_get(e, 0)) && json_is_string(json_array_get(e, 1))) {
            json_t *a = json_array_get(e, 0), *b = json_array_get(e, 1);
            s = tok_add_merge(t, json_string_value(a), json_string_length(a),
                              json_string_value(b), json_string_length(b), rank++, (int)i);
        } else {
            return bad(t, field, "expected \"a b\" or [\"a\", \"b\"]");
        }
    }
    return s;
}

static aspo_status parse_added(tokenizer *t, json_t *list)
{
    if (!list || json_is_null(list)) return ASPO_OK;
    if (!json_is_array(list)) return bad(t, "added_tokens", "expected an array");
    aspo_status s = ASPO_OK;
    for (size_t i = 0; i < json_array_size(list) && !s; i++) {
        json_t *e = json_array_get(list, i), *c = json_object_get(e, "content");
        json_t *id = json_object_get(e, "id");
        char field[48];
        snprintf(field, sizeof field, "added_tokens[%zu]", i);
        if (!json_is_string(c)) return bad(t, field, "needs a \"content\" string");
        if (!json_is_integer(id)) return bad(t, field, "needs an integer \"id\" (HF requires it)");
        bool special = false, normalized, lstrip = false, rstrip = false, single_word = false;
        s = get_bool(t, e, "special", field, &special);
        normalized = !special; /* HF AddedToken's default */
        if (!s) s = get_bool(t, e, "normalized", field, &normalized);
        if (!s) s = get_bool(t, e, "lstrip", field, &lstrip);
        if (!s) s = get_bool(t, e, "rstrip", field, &rstrip);
        if (!s) s = get_bool(t, e, "single_word", field, &single_word);
        if (!s) s = tok_check_added_id(t, t->source, field, json_string_value(c),
                                       json_string_length(c), json_integer_value(id));
        if (!s) s = tok_add_token(t, json_string_value(c), json_string_length(c), special,
                                  normalized, lstrip, rstrip, single_word);
    }
    return s;
}

/* BOS/EOS: the special tokens that TemplateProcessing puts around a single sequence. */
static void parse_post_processor(tokenizer *t, json_t *p)
{
    const char *type = json_is_object(p) ? type_of(p) : NULL;
    if (type && !strcmp(type, "Sequence")) {
        json_t *list = json_object_get(p, "processors");
        for (size_t i = 0; i < json_array_size(list); i++)
            parse_post_processor(t, json_array_get(list, i));
        return;
    }
    if (!type || strcmp(type, "TemplateProcessing") != 0) return;
    json_t *single = json_object_get(p, "single"), *specials = json_object_get(p, "special_tokens");
    size_t n = json_array_size(single);
    for (int end = 0; end < 2 && n > 1; end++) {
        json_t *sp = json_object_get(json_array_get(single, end ? n - 1 : 0), "SpecialToken");
        json_t *name = json_object_get(sp, "id");
        json_t *ids = json_object_get(json_object_get(specials, json_string_value(name)), "ids");
        if (!json_is_string(name) || json_array_size(ids) != 1) continue;
        json_int_t id = json_integer_value(json_array_get(ids, 0));
        if (id >= 0 && id < TOK_MAX_ID) *(end ? &t->file_eos : &t->file_bos) = (int32_t)id;
    }
}

aspo_status tok_load_json(const char *path, tokenizer **out)
{
    *out = NULL;
    json_t *root = json_file_load(path, "tokenizer");
    if (!root) return aspo_error_status();
    tokenizer *t = tok_new(path);
    aspo_status s = t ? ASPO_OK : aspo_fail(ASPO_ERR_OOM, "%s: out of memory", path);
    json_t *version = json_object_get(root, "version");
    if (!s && !json_is_object(root)) s = aspo_fail(ASPO_ERR_FORMAT, "%s: expected a JSON "
                                                   "object at the top level", path);
    if (!s && version && (!json_is_string(version) ||
                          strcmp(json_string_value(version), "1.0") != 0))
        s = bad(t, "version", "unknown tokenizer.json version (expected \"1.0\")");
    if (!s) s = parse_model(t, json_object_get(root, "model"));
    if (!s) s = parse_normalizer(t, json_object_get(root, "normalizer"), 0);
    if (!s) s = parse_pretokenizer(t, json_object_get(root, "pre_tokenizer"));
    if (!s) s = parse_decoder(t, json_object_get(root, "decoder"), 0);
    if (!s) s = parse_added(t, json_object_get(root, "added_tokens"));
    if (!s) {
        parse_post_processor(t, json_object_get(root, "post_processor"));
        json_t *pad = json_object_get(json_object_get(root, "padding"), "pad_token");
        if (json_is_string(pad)) t->file_pad = tokenizer_piece_to_id(t, json_string_value(pad));
    }
    json_decref(root);
    if (s) {
        tokenizer_free(t);
        return s;
    }
    *out = t;
    return ASPO_OK;
}
