/* PEFT adapter_config.json + adapter_model.safetensors in and out, and LoRA merging. */
#define _POSIX_C_SOURCE 200809L /* strdup, regex */
#include "peft_adapter.h"
#include "tensor/json_file.h"
#include "tensor/json_guard.h"

#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <jansson.h>

#include "models/weights.h"
#include "tensor/safetensors.h"

static const char KEY_PREFIX[] = "base_model.model.";

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static bool is_lora_name(const char *name)
{
    return ends_with(name, ".lora_A.weight") || ends_with(name, ".lora_B.weight");
}

void peft_config_free(peft_config *c)
{
    for (int i = 0; i < c->n_targets; i++) free(c->targets[i]);
    free(c->targets);
    free(c->target_regex);
    free(c->layers);
    memset(c, 0, sizeof *c);
}

static aspo_status add_target(peft_config *c, const char *name, size_t len, const char *where)
{
    if (len == 0)
        return aspo_fail(ASPO_ERR_USAGE, "%s: empty module name in the LoRA targets", where);
    char **t = realloc(c->targets, sizeof *t * (size_t)(c->n_targets + 1));
    if (!t) return aspo_fail(ASPO_ERR_OOM, "%s: out of memory", where);
    c->targets = t;
    if (!(t[c->n_targets] = strndup(name, len)))
        return aspo_fail(ASPO_ERR_OOM, "%s: out of memory", where);
    c->n_targets++;
    return ASPO_OK;
}

/* target_modules regexes are small (".*\\.(q_proj|v_proj)"); these bounds refuse only the
 * pathological, whose compilation by glibc's regcomp takes minutes or gigabytes. regcomp
 * copies a repeated piece once per repetition ("a{3}" becomes "aaa", "a+" becomes "aa*"),
 * so nested repeats multiply, and its closure of empty-matching pieces grows faster than
 * their square: "a*+++++" took 12 s, "a+" with 34 '+' over 2 GB (tests/fuzz found both).
 * Within the bounds the worst of those measured takes 0.04 s. */
enum {
    REGEX_MAX_PIECES = 1 << 16, /* atoms, once repeats are expanded */
    REGEX_MAX_REPEATS = 128,    /* repeat operators, once repeats are expanded */
    REGEX_MAX_NESTING = 2,      /* a repeat of a repeat (".*?", "(a+)*"), not of a third */
};

/* A regular expression's cost to regcomp (POSIX extended syntax), counted as it expands
 * it; also the cost of one atom or group within it. */
typedef struct regex_cost {
    double pieces, repeats;
    int nesting;
} regex_cost;

static void regex_cost_add(regex_cost *to, regex_cost c)
{
    to->pieces += c.pieces;
    to->repeats += c.repeats;
    if (c.nesting > to->nesting) to->nesting = c.nesting;
}

/* The count of a repeat at p ("*", "+", "?", "{m}", "{m,}", "{m,n}", "{,n}"): the copies
 * regcomp makes of its atom, and *end its last character; 0 when p is no repeat (a '{'
 * without a count is a literal). */
static double repeat_copies(const char *p, const char **end)
{
    *end = p;
    if (*p == '*' || *p == '?') return 1;
    if (*p == '+') return 2;
    if (*p != '{') return 0;
    char *num;
    const char *q = p + 1;
    bool has_lo = isdigit((unsigned char)*q);
    double lo = has_lo ? (double)strtol(q, &num, 10) : 0, hi = lo;
    if (has_lo) q = num;
    if (*q == ',') {
        if (isdigit((unsigned char)*++q)) hi = (double)strtol(q, &num, 10), q = num;
    } else if (!has_lo) {
        return 0;
    }
    if (*q != '}') return 0;
    *end = q;
    return (hi > lo ? hi : lo) + 1;
}

/* The end of the bracket expression that starts at p ("[a-z]", "[^]x]", "[[:digit:]]"): its
 * ']'; NULL when it has none (regcomp refuses it). */
static const char *bracket_end(const char *p)
{
    const char *q = p + 1;
    if (*q == '^') q++;
    if (*q == ']') q++;
    for (; *q && *q != ']'; q++)
        if (*q == '[' && (q[1] == ':' || q[1] == '.' || q[1] == '=')) {
            char kind = q[1];
            for (q += 2; *q && !(*q == kind && q[1] == ']'); q++) {}
            if (!*q) return NULL;
            q++;
        }
    return *q ? q : NULL;
}

static regex_cost regex_cost_of(const char *re)
{
    enum { MAX_DEPTH = 64 };
    regex_cost group[MAX_DEPTH], last[MAX_DEPTH]; /* per open group: it so far, its last atom */
    int depth = 0;
    group[0] = last[0] = (regex_cost){0, 0, 0};
    for (const char *p = re; *p; p++) {
        const char *end;
        double copies = repeat_copies(p, &end);
        if (copies > 0) { /* repeats the last atom: its copies join the group */
            regex_cost *a = &last[depth], *g = &group[depth];
            g->pieces += a->pieces * (copies - 1);
            g->repeats += a->repeats * (copies - 1) + 1;
            a->pieces *= copies;
            a->repeats = a->repeats * copies + 1;
            if (++a->nesting > g->nesting) g->nesting = a->nesting;
            p = end;
            continue;
        }
        regex_cost atom = {1, 0, 0};
        if (*p == '(') {
            if (++depth == MAX_DEPTH) return (regex_cost){INFINITY, INFINITY, MAX_DEPTH};
            group[depth] = last[depth] = (regex_cost){0, 0, 0};
            continue;
        } else if (*p == ')' && depth > 0) {
            atom = group[depth--];
            atom.pieces += 1;
        } else if (*p == '|') {
            group[depth].pieces += 1;
            last[depth] = (regex_cost){0, 0, 0};
            continue;
        } else if (*p == '[') {
            if (!(end = bracket_end(p))) break;
            p = end;
        } else if (*p == '\\' && p[1]) {
            p++;
        }
        regex_cost_add(&group[depth], atom);
        last[depth] = atom;
    }
    for (; depth > 0; depth--) regex_cost_add(&group[depth - 1], group[depth]); /* unclosed */
    return group[0];
}

/* Checks that a target_modules string compiles as a whole-name regular expression. */
static aspo_status check_regex(const char *re, const char *where)
{
    regex_cost c = regex_cost_of(re);
    const char *why = c.pieces > REGEX_MAX_PIECES   ? "expands to too many pieces"
                    : c.repeats > REGEX_MAX_REPEATS ? "expands to too many repeats"
                    : c.nesting > REGEX_MAX_NESTING ? "nests repeats too deep"
                                                    : NULL;
    if (why)
        return aspo_fail(ASPO_ERR_UNSUPPORTED, "%s: target_modules \"%.60s%s\" %s to compile "
                         "safely (%.3g pieces, limit %d; %.3g repeat operators, limit %d; "
                         "repeats nested %d deep, limit %d)", where, re,
                         strlen(re) > 60 ? "..." : "", why, c.pieces, REGEX_MAX_PIECES,
                         c.repeats, REGEX_MAX_REPEATS, c.nesting, REGEX_MAX_NESTING);
    size_t len = strlen(re) + 5;
    char *anchored = malloc(len);
    if (!anchored) return aspo_fail(ASPO_ERR_OOM, "%s: out of memory", where);
    snprintf(anchored, len, "^(%s)$", re);
    regex_t rx;
    int rc = regcomp(&rx, anchored, REG_EXTENDED | REG_NOSUB);
    free(anchored);
    if (rc != 0)
        return aspo_fail(ASPO_ERR_UNSUPPORTED, "%s: target_modules \"%s\" is not a regular "
                         "expression aspo can match (POSIX extended syntax)", where, re);
    regfree(&rx);
    return ASPO_OK;
}

aspo_status peft_config_init(peft_config *c, const lora_config *lora, const char *targets)
{
    memset(c, 0, sizeof *c);
    c->lora = *lora;
    snprintf(c->task_type, sizeof c->task_type, "CAUSAL_LM");
    aspo_status s = lora_config_check(lora, "--lora options");
    if (s) return s;
    if (!targets) targets = "q_proj,v_proj";
    if (strcasecmp(targets, "all-linear") == 0) {
        c->all_linear = true;
        return ASPO_OK;
    }
    for (const char *p = targets; !s;) {
        while (*p == ' ') p++;
        size_t len = strcspn(p, ",");
        size_t trimmed = len;
        while (trimmed > 0 && p[trimmed - 1] == ' ') trimmed--;
        s = add_target(c, p, trimmed, "--lora-targets");
        if (!p[len]) break;
        p += len + 1;
    }
    if (s) peft_config_free(c);
    return s;
}

/* ---- reading adapter_config.json ---- */

static aspo_status need_number(json_t *root, const char *key, const char *path, double *out)
{
    json_t *v = json_object_get(root, key);
    if (!v) return aspo_fail(ASPO_ERR_FORMAT, "%s: missing required key \"%s\"", path, key);
    if (!json_is_number(v))
        return aspo_fail(ASPO_ERR_FORMAT, "%s: \"%s\" must be a number", path, key);
    *out = json_number_value(v);
    return ASPO_OK;
}

/* Keys that must be absent, null, false, empty or a given string for plain LoRA. */
static aspo_status check_plain(json_t *root, const char *path)
{
    static const char *const empty_keys[] = {"rank_pattern", "alpha_pattern", "modules_to_save",
                                             "layer_replication", "use_dora", "fan_in_fan_out"};
    for (size_t i = 0; i < sizeof empty_keys / sizeof *empty_keys; i++) {
        json_t *v = json_object_get(root, empty_keys[i]);
        bool empty = !v || json_is_null(v) || json_is_false(v) ||
                     (json_is_object(v) && json_object_size(v) == 0) ||
                     (json_is_array(v) && json_array_size(v) == 0);
        if (!empty)
            return aspo_fail(ASPO_ERR_UNSUPPORTED, "%s: \"%s\" is set; aspo supports plain LoRA "
                             "adapters only", path, empty_keys[i]);
    }
    json_t *type = json_object_get(root, "peft_type");
    if (!json_is_string(type) || strcmp(json_string_value(type), "LORA") != 0)
        return aspo_fail(ASPO_ERR_UNSUPPORTED, "%s: \"peft_type\" must be \"LORA\"", path);
    json_t *bias = json_object_get(root, "bias");
    if (bias && !(json_is_string(bias) && strcmp(json_string_value(bias), "none") == 0))
        return aspo_fail(ASPO_ERR_UNSUPPORTED, "%s: \"bias\" must be \"none\"", path);
    json_t *pattern = json_object_get(root, "layers_pattern");
    if (json_is_array(pattern) && json_array_size(pattern) == 1)
        pattern = json_array_get(pattern, 0);
    if (pattern && !json_is_null(pattern) && !(json_is_array(pattern) && !json_array_size(pattern)) &&
        !(json_is_string(pattern) && (!strcmp(json_string_value(pattern), "layers") ||
                                      !*json_string_value(pattern))))
        return aspo_fail(ASPO_ERR_UNSUPPORTED, "%s: \"layers_pattern\" other than \"layers\"",
                         path);
    return ASPO_OK;
}

static aspo_status read_targets(json_t *root, const char *path, peft_config *c)
{
    json_t *t = json_object_get(root, "target_modules");
    if (!t || json_is_null(t))
        return aspo_fail(ASPO_ERR_FORMAT, "%s: missing required key \"target_modules\"", path);
    if (json_is_string(t)) {
        const char *re = json_string_value(t);
        if (strcasecmp(re, "all-linear") == 0) {
            c->all_linear = true;
            return ASPO_OK;
        }
        aspo_status s = check_regex(re, path);
        if (s) return s;
        c->target_regex = strdup(re);
        return c->target_regex ? ASPO_OK : aspo_fail(ASPO_ERR_OOM, "%s: out of memory", path);
    }
    if (!json_is_array(t) || json_array_size(t) == 0)
        return aspo_fail(ASPO_ERR_FORMAT, "%s: \"target_modules\" must be a non-empty list of "
                         "module names or a string", path);
    size_t i;
    json_t *v;
    json_array_foreach(t, i, v) {
        if (!json_is_string(v))
            return aspo_fail(ASPO_ERR_FORMAT, "%s: \"target_modules\"[%zu] is not a string",
                             path, i);
        aspo_status s = add_target(c, json_string_value(v), strlen(json_string_value(v)), path);
        if (s) return s;
    }
    return ASPO_OK;
}

static aspo_status read_layers(json_t *root, const char *path, peft_config *c)
{
    json_t *l = json_object_get(root, "layers_to_transform");
    if (!l || json_is_null(l)) return ASPO_OK;
    size_t n = json_is_array(l) ? json_array_size(l) : 1;
    if (!(c->layers = malloc(sizeof(int) * (n ? n : 1))))
        return aspo_fail(ASPO_ERR_OOM, "%s: out of memory", path);
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_is_array(l) ? json_array_get(l, i) : l;
        if (!json_is_integer(v))
            return aspo_fail(ASPO_ERR_FORMAT, "%s: \"layers_to_transform\" must be an integer "
                             "or a list of integers", path);
        c->layers[c->n_layers++] = (int)json_integer_value(v);
    }
    return ASPO_OK;
}

aspo_status peft_config_load(const char *dir, peft_config *c)
{
    memset(c, 0, sizeof *c);
    char path[4096];
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    json_t *root = json_file_load(path, "adapter config");
    if (!root) return aspo_error_status();
    aspo_status s = json_is_object(root) ? check_plain(root, path)
                                         : aspo_fail(ASPO_ERR_FORMAT, "%s: not a JSON object", path);
    double r = 0, alpha = 0, dropout = 0;
    if (!s) s = need_number(root, "r", path, &r);
    if (!s) s = need_number(root, "lora_alpha", path, &alpha);
    json_t *d = json_object_get(root, "lora_dropout");
    if (!s && d && !json_is_number(d))
        s = aspo_fail(ASPO_ERR_FORMAT, "%s: \"lora_dropout\" must be a number", path);
    if (!s && d) dropout = json_number_value(d);
    /* Checked before the conversions: (int) of an out-of-range double is undefined, and an
     * alpha beyond float's range would become inf. */
    if (!s && (r != floor(r) || r < 1 || r > 1 << 20))
        s = aspo_fail(ASPO_ERR_FORMAT, "%s: \"r\" = %.15g must be an integer in [1, %d]", path,
                      r, 1 << 20);
    if (!s && !(fabs(alpha) <= FLT_MAX))
        s = aspo_fail(ASPO_ERR_FORMAT, "%s: \"lora_alpha\" = %.15g is beyond a float's range "
                      "(3.4e38)", path, alpha);
    json_t *task = json_object_get(root, "task_type");
    snprintf(c->task_type, sizeof c->task_type, "%s",
             json_is_string(task) ? json_string_value(task) : "CAUSAL_LM");
    if (!s)
        c->lora = (lora_config){.r = (int)r, .alpha = (float)alpha, .dropout = (float)dropout,
                                .rslora = json_is_true(json_object_get(root, "use_rslora"))};
    if (!s) s = lora_config_check(&c->lora, path);
    if (!s) s = read_targets(root, path, c);
    if (!s) s = read_layers(root, path, c);
    json_decref(root);
    if (s) peft_config_free(c);
    return s;
}

/* ---- target matching (PEFT's check_target_module_exists) ---- */

static bool regex_matches(const char *re, const char *name)
{
    size_t len = strlen(re) + 5;
    char *anchored = malloc(len);
    if (!anchored) return false;
    snprintf(anchored, len, "^(%s)$", re);
    regex_t rx;
    bool hit = false;
    if (regcomp(&rx, anchored, REG_EXTENDED | REG_NOSUB) == 0) {
        hit = regexec(&rx, name, 0, NULL, 0) == 0;
        regfree(&rx);
    }
    free(anchored);
    return hit;
}

/* The layer index as PEFT's r".*\.[^.]*\.(\d+)\." finds it: the last ".<digits>." that
 * follows a dotted component; -1 when there is none. */
static long layer_index(const char *name)
{
    long found = -1;
    for (const char *p = strchr(name, '.'); p; p = strchr(p + 1, '.')) {
        const char *q = p + 1;
        while (*q >= '0' && *q <= '9') q++;
        if (q == p + 1 || *q != '.') continue;
        /* `.*\.[^.]*\.` before the digits: some dot must precede this one. */
        const char *first_dot = strchr(name, '.');
        if (first_dot < p) found = strtol(p + 1, NULL, 10);
    }
    return found;
}

bool peft_targets_module(const peft_config *c, const char *name, bool is_output)
{
    if (c->target_regex) return regex_matches(c->target_regex, name);
    bool found = false;
    for (int i = 0; i < c->n_targets && !found; i++)
        if (strcmp(name, c->targets[i]) == 0) return true; /* a full name: no layer filter */
    if (c->all_linear) {
        found = !is_output;
    } else {
        for (int i = 0; i < c->n_targets && !found; i++) {
            size_t n = strlen(name), k = strlen(c->targets[i]);
            found = n > k && name[n - k - 1] == '.' && strcmp(name + n - k, c->targets[i]) == 0;
        }
    }
    if (found && c->layers) {
        long idx = layer_index(name);
        found = false;
        for (int i = 0; i < c->n_layers && !found; i++) found = idx >= 0 && idx == c->layers[i];
    }
    return found;
}

/* ---- saving ---- */

/* The float as the shortest decimal that reads back to it (0.05f -> 0.05), as a double. */
static double shortest(float v)
{
    char buf[32];
    for (int p = 1; p <= 9; p++) {
        snprintf(buf, sizeof buf, "%.*g", p, (double)v);
        if ((float)strtod(buf, NULL) == v) break;
    }
    return strtod(buf, NULL);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* target_modules as written: the list or string given, or for all-linear the module names
 * PEFT expands it to (last name components of the adapted modules, sorted). NULL when out
 * of memory. */
static json_t *targets_json(const param_store *ps, const peft_config *c)
{
    if (c->target_regex) return json_string(c->target_regex);
    json_t *list = json_array();
    if (!list || !c->all_linear) {
        for (int i = 0; list && i < c->n_targets; i++) json_array_append_new(list, json_string(c->targets[i]));
        return list;
    }
    const char **names = calloc((size_t)ps->n + 1, sizeof *names);
    char **owned = calloc((size_t)ps->n + 1, sizeof *owned);
    bool ok = names && owned;
    int n = 0;
    for (int i = 0; ok && i < ps->n; i++) {
        const char *p = ps->items[i]->name;
        if (!ends_with(p, ".lora_A.weight")) continue;
        size_t end = strlen(p) - strlen(".lora_A.weight"), start = end;
        while (start > 0 && p[start - 1] != '.') start--;
        owned[n] = strndup(p + start, end - start);
        names[n] = owned[n];
        ok = owned[n++] != NULL;
    }
    if (ok) qsort(names, (size_t)n, sizeof *names, cmp_str);
    for (int i = 0; ok && i < n; i++)
        if (i == 0 || strcmp(names[i], names[i - 1]) != 0)
            json_array_append_new(list, json_string(names[i]));
    for (int i = 0; owned && i < n; i++) free(owned[i]);
    free(owned);
    free(names);
    if (!ok) json_decref(list);
    return ok ? list : NULL;
}

/* adapter_config.json's text; NULL when out of memory (a field would be missing). */
static char *config_text(const param_store *ps, const peft_config *c, const char *base_model)
{
    uint64_t mark = json_guard_mark(); /* a failed json_string() would drop its field */
    json_t *targets = targets_json(ps, c);
    if (!targets) return NULL;
    json_t *root = json_object();
    float a = c->lora.alpha;
    json_t *layers = json_null();
    if (c->layers) {
        layers = json_array();
        for (int i = 0; i < c->n_layers; i++) json_array_append_new(layers, json_integer(c->layers[i]));
    }
    /* The keys and defaults LoraConfig of PEFT 0.12 writes. */
    json_object_set_new(root, "alpha_pattern", json_object());
    json_object_set_new(root, "auto_mapping", json_null());
    json_object_set_new(root, "base_model_name_or_path", base_model ? json_string(base_model) : json_null());
    json_object_set_new(root, "bias", json_string("none"));
    json_object_set_new(root, "fan_in_fan_out", json_false());
    json_object_set_new(root, "inference_mode", json_true());
    json_object_set_new(root, "init_lora_weights", json_true());
    json_object_set_new(root, "layer_replication", json_null());
    json_object_set_new(root, "layers_pattern", json_null());
    json_object_set_new(root, "layers_to_transform", layers);
    json_object_set_new(root, "loftq_config", json_object());
    json_object_set_new(root, "lora_alpha", a == floorf(a) && fabsf(a) < 1e9f
                                                ? json_integer((json_int_t)a)
                                                : json_real(shortest(a)));
    json_object_set_new(root, "lora_dropout", json_real(shortest(c->lora.dropout)));
    json_object_set_new(root, "megatron_config", json_null());
    json_object_set_new(root, "megatron_core", json_string("megatron.core"));
    json_object_set_new(root, "modules_to_save", json_null());
    json_object_set_new(root, "peft_type", json_string("LORA"));
    json_object_set_new(root, "r", json_integer(c->lora.r));
    json_object_set_new(root, "rank_pattern", json_object());
    json_object_set_new(root, "revision", json_null());
    json_object_set_new(root, "target_modules", targets);
    /* "" is PEFT's None: a model PEFT wraps as a plain PeftModel (InstructBLIP, whose
     * forward takes no inputs_embeds as PeftModelForCausalLM passes them). */
    json_object_set_new(root, "task_type",
                        c->task_type[0] ? json_string(c->task_type) : json_null());
    json_object_set_new(root, "use_dora", json_false());
    json_object_set_new(root, "use_rslora", json_boolean(c->lora.rslora));
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(9));
    json_decref(root);
    if (json_guard_check(mark, "adapter_config.json")) {
        free(text);
        return NULL;
    }
    return text;
}

static aspo_status path_in(char *buf, size_t size, const char *dir, const char *name)
{
    int n = snprintf(buf, size, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= size)
        return aspo_fail(ASPO_ERR_USAGE, "%s: directory name too long", dir);
    return ASPO_OK;
}

aspo_status peft_adapter_save(const param_store *ps, const peft_config *c,
                              const char *base_model, const char *dir)
{
    aspo_status s = weights_make_dir(dir);
    if (s) return s;
    int n = 0;
    for (int i = 0; i < ps->n; i++) n += is_lora_name(ps->items[i]->name);
    if (n == 0) return aspo_fail(ASPO_ERR_USAGE, "%s: the model has no LoRA adapter to save", dir);
    st_write_entry *entries = calloc((size_t)n, sizeof *entries);
    char **names = calloc((size_t)n, sizeof *names);
    float **data = calloc((size_t)n, sizeof *data);
    char *text = NULL;
    char st_path[4096], cfg_path[4096], st_new[4096], cfg_new[4096];
    if (!entries || !names || !data) s = aspo_fail(ASPO_ERR_OOM, "%s: out of memory", dir);
    for (int i = 0, k = 0; !s && i < ps->n; i++) {
        const tensor *t = ps->items[i];
        if (!is_lora_name(t->name)) continue;
        size_t len = strlen(KEY_PREFIX) + strlen(t->name) + 1;
        names[k] = malloc(len);
        data[k] = malloc(sizeof(float) * (size_t)tensor_numel(t));
        if (!names[k] || !data[k]) {
            s = aspo_fail(ASPO_ERR_OOM, "%s: out of memory for %s", dir, t->name);
            break;
        }
        snprintf(names[k], len, "%s%s", KEY_PREFIX, t->name);
        s = weights_read(t, DT_F32, data[k]);
        entries[k] = (st_write_entry){names[k], DT_F32, t->ndim, t->shape, data[k]};
        k++;
    }
    if (!s && !(text = config_text(ps, c, base_model)))
        s = aspo_fail(ASPO_ERR_OOM, "%s: out of memory for adapter_config.json", dir);
    if (!s) s = path_in(st_path, sizeof st_path, dir, "adapter_model.safetensors");
    if (!s) s = path_in(cfg_path, sizeof cfg_path, dir, "adapter_config.json");
    if (!s) s = path_in(st_new, sizeof st_new, dir, "adapter_model.safetensors.new");
    if (!s) s = path_in(cfg_new, sizeof cfg_new, dir, "adapter_config.json.new");
    /* Both files complete under new names first; then two renames swap them in. */
    const char *keys[] = {"format"}, *values[] = {"pt"};
    if (!s) s = st_write(st_new, entries, n, keys, values, 1);
    if (!s) s = weights_write_file(cfg_new, text, strlen(text));
    if (!s && rename(st_new, st_path) != 0)
        s = aspo_fail(ASPO_ERR_IO, "%s: cannot rename %s over it: %s", st_path, st_new,
                      strerror(errno));
    if (!s && rename(cfg_new, cfg_path) != 0)
        s = aspo_fail(ASPO_ERR_IO, "%s: cannot rename %s over it: %s", cfg_path, cfg_new,
                      strerror(errno));
    if (s) {
        unlink(st_new);
        unlink(cfg_new);
    }
    free(text);
    for (int k = 0; k < n && names && data; k++) {
        free(names[k]);
        free(data[k]);
    }
    free(names);
    free(data);
    free(entries);
    return s;
}

/* ---- loading ---- */

aspo_status peft_adapter_load(param_store *ps, const char *dir)
{
    char path[4096];
    aspo_status s = path_in(path, sizeof path, dir, "adapter_model.safetensors");
    if (s) return s;
    if (access(path, F_OK) != 0) {
        char bin[4096];
        if (!path_in(bin, sizeof bin, dir, "adapter_model.bin") && access(bin, F_OK) == 0)
            return aspo_fail(ASPO_ERR_UNSUPPORTED, "%s: aspo reads adapters in safetensors only; "
                             "save it with PEFT's safe_serialization=True", bin);
    }
    st_model st;
    if ((s = st_open(path, &st))) return s;
    bool *loaded = calloc((size_t)ps->n + 1, sizeof *loaded);
    if (!loaded) s = aspo_fail(ASPO_ERR_OOM, "%s: out of memory", path);
    size_t plen = strlen(KEY_PREFIX);
    for (int i = 0; !s && i < st.n_entries; i++) {
        const st_entry *e = &st.entries[i];
        const char *name = strncmp(e->name, KEY_PREFIX, plen) == 0 ? e->name + plen : NULL;
        if (!name || !is_lora_name(name)) {
            s = aspo_fail(ASPO_ERR_UNSUPPORTED, "%s: key %s is not a LoRA A/B weight under "
                          "%s; aspo loads plain LoRA adapters (no modules_to_save, DoRA or "
                          "embedding adapters)", path, e->name, KEY_PREFIX);
            break;
        }
        int at = -1;
        for (int k = 0; k < ps->n && at < 0; k++)
            if (strcmp(ps->items[k]->name, name) == 0) at = k;
        if (at < 0) {
            s = aspo_fail(ASPO_ERR_SHAPE, "%s: key %s has no LoRA tensor in the model: the "
                          "adapter targets a module the model was not given an adapter for",
                          path, e->name);
            break;
        }
        s = weights_copy_entry(ps->items[at], &st, e);
        loaded[at] = true;
    }
    for (int k = 0; !s && k < ps->n; k++)
        if (is_lora_name(ps->items[k]->name) && !loaded[k])
            s = aspo_fail(ASPO_ERR_FORMAT, "%s: no key %s%s; the adapter does not cover every "
                          "module the model has a LoRA tensor for", path, KEY_PREFIX,
                          ps->items[k]->name);
    free(loaded);
    st_close(&st);
    return s;
}

/* ---- merging ---- */

typedef struct merge_ctx {
    const param_store *ps;
    const weights_item *items;
    int *param_of;      /* item -> parameter index */
    float scaling;
} merge_ctx;

static tensor *find_suffixed(const param_store *ps, const char *weight_name, const char *suffix)
{
    size_t base = strlen(weight_name) - strlen("weight");
    char name[512];
    if (base + strlen(suffix) + 1 > sizeof name) return NULL;
    memcpy(name, weight_name, base);
    strcpy(name + base, suffix);
    return param_find(ps, name);
}

/* The adapter's A of item's weight, NULL when it has none. */
static const tensor *item_lora_a(const merge_ctx *c, const tensor *W)
{
    return ends_with(W->name, ".weight") ? find_suffixed(c->ps, W->name, "lora_A.weight") : NULL;
}

/* Item's weight as f32 into w (its numel floats), the adapter merged in when it has one. */
static aspo_status merged_f32(const merge_ctx *c, int item, float *w)
{
    const tensor *W = c->ps->items[c->param_of[item]];
    const tensor *A = item_lora_a(c, W);
    const tensor *Bm = A ? find_suffixed(c->ps, W->name, "lora_B.weight") : NULL;
    float *a = A ? malloc(sizeof(float) * (size_t)tensor_numel(A)) : NULL;
    float *b = Bm ? malloc(sizeof(float) * (size_t)tensor_numel(Bm)) : NULL;
    aspo_status s = !A || (a && b) ? weights_read(W, DT_F32, w)
                                   : aspo_fail(ASPO_ERR_OOM, "no host memory to merge %s", W->name);
    if (!s && A) s = weights_read(A, DT_F32, a);
    if (!s && A) s = weights_read(Bm, DT_F32, b);
    if (!s && A) {
        /* W (out,in) += scaling * B (out,r) @ A (r,in), accumulated in double. */
        int64_t out = W->shape[0], in = W->shape[1], r = A->shape[0];
#pragma omp parallel for schedule(static)
        for (int64_t o = 0; o < out; o++)
            for (int64_t i = 0; i < in; i++) {
                double acc = 0;
                for (int64_t k = 0; k < r; k++) acc += (double)b[o * r + k] * a[k * in + i];
                w[o * in + i] = (float)((double)w[o * in + i] + (double)c->scaling * acc);
            }
    }
    free(a);
    free(b);
    return s;
}

/* Whether item is written from merged_f32 (converted or merged), not copied as it is. */
static bool item_is_computed(const merge_ctx *c, int item)
{
    const tensor *W = c->ps->items[c->param_of[item]];
    return item_lora_a(c, W) || (c->items[item].dt != W->dt && dtype_is_float(W->dt));
}

static aspo_status merge_fill(void *vctx, int item, void *host)
{
    merge_ctx *c = vctx;
    const tensor *W = c->ps->items[c->param_of[item]];
    dtype out_dt = c->items[item].dt;
    int64_t n = tensor_numel(W);
    if (!item_is_computed(c, item)) return weights_read(W, W->dt, host);
    float *w = malloc(sizeof(float) * (size_t)n);
    aspo_status s = w ? merged_f32(c, item, w)
                      : aspo_fail(ASPO_ERR_OOM, "no host memory to merge %s", W->name);
    for (int64_t i = 0; !s && i < n; i++) dtype_store(host, out_dt, i, w[i]);
    free(w);
    return s;
}

/* f16 holds at most 65504: a merged weight beyond it would be written as infinity (bf16
 * has f32's range). Every computed f16 item is checked before anything is written, so a
 * refused merge leaves no file; the message counts the tensors and names the worst. */
static aspo_status check_f16_range(const merge_ctx *c, int n, const char *dir)
{
    int bad_tensors = 0;
    int64_t bad_values = 0;
    float worst = 0;
    const char *worst_name = NULL;
    aspo_status s = ASPO_OK;
    for (int k = 0; k < n && !s; k++) {
        if (c->items[k].dt != DT_F16 || !item_is_computed(c, k)) continue;
        const tensor *W = c->ps->items[c->param_of[k]];
        int64_t numel = tensor_numel(W), over = 0;
        float *w = malloc(sizeof(float) * (size_t)numel);
        s = w ? merged_f32(c, k, w)
              : aspo_fail(ASPO_ERR_OOM, "no host memory to check %s", W->name);
        for (int64_t i = 0; !s && i < numel; i++) {
            uint16_t h;
            dtype_store(&h, DT_F16, 0, w[i]);
            if (isfinite(w[i]) && !isfinite(dtype_load(&h, DT_F16, 0))) {
                over++;
                if (fabsf(w[i]) > worst) worst = fabsf(w[i]), worst_name = W->name;
            }
        }
        free(w);
        bad_tensors += over > 0;
        bad_values += over;
    }
    if (s || !bad_tensors) return s;
    return aspo_fail(ASPO_ERR_USAGE, "%s: %d tensor%s hold%s merged weights beyond f16's range "
                     "(65504), %lld values in all, up to %g in %s; f16 would store them as "
                     "infinity: merge with --dtype bf16 or f32", dir, bad_tensors,
                     bad_tensors == 1 ? "" : "s", bad_tensors == 1 ? "s" : "",
                     (long long)bad_values, worst, worst_name);
}

aspo_status peft_merge_save(const param_store *ps, float scaling, const char *dir,
                            dtype out_dt, size_t max_shard_bytes,
                            bool (*skip)(const tensor *param, void *ctx), void *skip_ctx)
{
    if (!dtype_is_float(out_dt))
        return aspo_fail(ASPO_ERR_USAGE, "%s: merged weights must be f32, bf16 or f16", dir);
    weights_item *items = calloc((size_t)ps->n + 1, sizeof *items);
    int *param_of = calloc((size_t)ps->n + 1, sizeof *param_of);
    aspo_status s = items && param_of ? ASPO_OK : aspo_fail(ASPO_ERR_OOM, "%s: out of memory", dir);
    int n = 0;
    for (int i = 0; !s && i < ps->n; i++) {
        const tensor *t = ps->items[i];
        if (ends_with(t->name, ".lora_A.weight")) {
            /* Every adapter needs its base weight in the store to merge into. */
            char base[512];
            size_t len = strlen(t->name) - strlen("lora_A.weight");
            snprintf(base, sizeof base, "%.*sweight", (int)len, t->name);
            const tensor *W = param_find(ps, base);
            if (!W || W->ndim != 2 || (skip && skip(W, skip_ctx)))
                s = aspo_fail(ASPO_ERR_UNSUPPORTED, "%s: cannot merge %s: no separate weight "
                              "%s to merge it into (a tied lm_head?)", dir, t->name, base);
            continue;
        }
        if (is_lora_name(t->name) || (skip && skip(t, skip_ctx))) continue;
        items[n] = (weights_item){.name = t->name,
                                  .dt = dtype_is_float(t->dt) ? out_dt : t->dt,
                                  .ndim = t->ndim};
        memcpy(items[n].shape, t->shape, sizeof t->shape);
        param_of[n++] = i;
    }
    merge_ctx ctx = {ps, items, param_of, scaling};
    if (!s && out_dt == DT_F16) s = check_f16_range(&ctx, n, dir);
    if (!s) s = weights_save(dir, "model", items, n, max_shard_bytes, merge_fill, &ctx);
    free(items);
    free(param_of);
    return s;
}
