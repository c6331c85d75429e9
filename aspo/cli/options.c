#include "aspo/cli/options.h"
#include "tensor/json_file.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const option_spec *find(const option_spec *specs, const char *name, size_t len)
{
    for (const option_spec *s = specs; s->name; s++)
        if (strlen(s->name) == len && strncmp(s->name, name, len) == 0) return s;
    return NULL;
}

/* Stores `text` (from a flag, or a config value rendered as text) into the field. `where`
 * says where it came from for messages: "--lr" or "config.json: key \"lr\"". */
static aspo_status store(const option_spec *s, void *values, const char *text, const char *where)
{
    char *field = (char *)values + s->offset;
    char *end;
    errno = 0;
    switch (s->kind) {
    case OPT_STRING:
        if (s->choices) {
            bool ok = false;
            for (const char *const *c = s->choices; *c && !ok; c++) ok = strcmp(*c, text) == 0;
            if (!ok) {
                char list[256] = "";
                for (const char *const *c = s->choices; *c; c++)
                    snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
                             c == s->choices ? "" : ", ", *c);
                return aspo_fail(ASPO_ERR_USAGE, "%s: '%s' is not one of: %s", where, text, list);
            }
        }
        *(const char **)field = text;
        return ASPO_OK;
    case OPT_INT: {
        long v = strtol(text, &end, 10);
        if (errno || end == text || *end || v < s->min || v > s->max)
            return aspo_fail(ASPO_ERR_USAGE, "%s: '%s' is not a whole number in [%.0f, %.0f]",
                             where, text, s->min, s->max);
        *(long *)field = v;
        return ASPO_OK;
    }
    case OPT_FLOAT: {
        double v = strtod(text, &end);
        if (errno || end == text || *end || !isfinite(v) || v < s->min || v > s->max)
            return aspo_fail(ASPO_ERR_USAGE, "%s: '%s' is not a number in [%g, %g]", where,
                             text, s->min, s->max);
        *(double *)field = v;
        return ASPO_OK;
    }
    case OPT_BOOL:
        if (!strcmp(text, "true") || !strcmp(text, "1")) *(bool *)field = true;
        else if (!strcmp(text, "false") || !strcmp(text, "0")) *(bool *)field = false;
        else return aspo_fail(ASPO_ERR_USAGE, "%s: '%s' is not true or false", where, text);
        return ASPO_OK;
    }
    return ASPO_OK;
}

static void mark_given(const option_spec *specs, const option_spec *s, options_source *src)
{
    size_t k = (size_t)(s - specs);
    if (k < 128) src->given[k / 64] |= 1ull << (k % 64);
}

bool options_given(const option_spec *specs, const options_source *src, const char *name)
{
    const option_spec *s = find(specs, name, strlen(name));
    size_t k = s ? (size_t)(s - specs) : 128;
    return k < 128 && (src->given[k / 64] >> (k % 64) & 1);
}

static aspo_status apply_config(const option_spec *specs, void *values, const char *path,
                                options_source *src)
{
    json_t *root = json_file_load(path, "--config file");
    if (!root) return aspo_fail_prefix(ASPO_ERR_USAGE, "--config: ");
    src->config = root;
    if (!json_is_object(root))
        return aspo_fail(ASPO_ERR_USAGE, "--config %s: the file must hold one JSON object", path);
    const char *key;
    json_t *value;
    json_object_foreach(root, key, value)
    {
        const option_spec *s = find(specs, key, strlen(key));
        if (!s || !strcmp(key, "config"))
            return aspo_fail(ASPO_ERR_USAGE, "--config %s: unknown field \"%s\"", path, key);
        char where[512], text[64];
        snprintf(where, sizeof where, "--config %s: field \"%s\"", path, key);
        const char *rendered = text;
        if (json_is_string(value)) rendered = json_string_value(value);
        else if (json_is_true(value)) rendered = "true";
        else if (json_is_false(value)) rendered = "false";
        else if (json_is_integer(value)) snprintf(text, sizeof text, "%lld", (long long)json_integer_value(value));
        else if (json_is_real(value)) snprintf(text, sizeof text, "%.17g", json_real_value(value));
        else return aspo_fail(ASPO_ERR_USAGE, "%s: expected a string, number or boolean", where);
        bool is_text = json_is_string(value);
        if ((s->kind == OPT_STRING) != is_text)
            return aspo_fail(ASPO_ERR_USAGE, "%s: expected %s", where,
                             s->kind == OPT_STRING ? "a string" : "a number or boolean, not a string");
        aspo_status st = store(s, values, rendered, where);
        if (st) return st;
        mark_given(specs, s, src);
    }
    return ASPO_OK;
}

aspo_status options_parse(const option_spec *specs, void *values, int argc, char **argv,
                          bool *help, options_source *src)
{
    *help = false;
    src->config = NULL;
    src->given[0] = src->given[1] = 0;
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            *help = true;
            return ASPO_OK;
        }
    /* The config file first, so that flags override it; one file only (a second would
     * be ignored or merged in some order the user did not choose). */
    const char *config = NULL;
    for (int i = 0; i < argc; i++) {
        const char *path = NULL;
        if (!strcmp(argv[i], "--config")) {
            if (i + 1 >= argc) return aspo_fail(ASPO_ERR_USAGE, "--config needs a file");
            path = argv[++i];
        } else if (!strncmp(argv[i], "--config=", 9)) {
            path = argv[i] + 9;
        }
        if (!path) continue;
        if (!find(specs, "config", 6)) return aspo_fail(ASPO_ERR_USAGE, "this command takes no --config");
        if (config)
            return aspo_fail(ASPO_ERR_USAGE, "--config given twice (%s and %s); give one file",
                             config, path);
        config = path;
    }
    if (config) {
        aspo_status s = apply_config(specs, values, config, src);
        if (s) return s;
    }
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (strncmp(arg, "--", 2) != 0)
            return aspo_fail(ASPO_ERR_USAGE, "unexpected argument '%s' (flags start with --)", arg);
        const char *name = arg + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const option_spec *s = find(specs, name, len);
        if (!s) return aspo_fail(ASPO_ERR_USAGE, "unknown flag '%s'", arg);
        const char *value;
        if (eq) value = eq + 1;
        else if (s->kind == OPT_BOOL) value = "true";
        else if (i + 1 < argc) value = argv[++i];
        else return aspo_fail(ASPO_ERR_USAGE, "--%s needs a value", s->name);
        if (!strcmp(s->name, "config")) continue; /* applied above */
        char where[96];
        snprintf(where, sizeof where, "--%s", s->name);
        aspo_status st = store(s, values, value, where);
        if (st) return st;
        mark_given(specs, s, src);
    }
    return ASPO_OK;
}

void options_release(options_source *src)
{
    if (src->config) json_decref(src->config);
    src->config = NULL;
}

void options_print(FILE *f, const option_spec *specs, const void *defaults)
{
    fputs("flags:\n", f);
    for (const option_spec *s = specs; s->name; s++) {
        const char *field = (const char *)defaults + s->offset;
        char flag[64], def[96] = "";
        snprintf(flag, sizeof flag, "--%s%s", s->name,
                 s->kind == OPT_BOOL ? "" : s->kind == OPT_STRING ? " S" : " N");
        switch (s->kind) {
        case OPT_STRING:
            if (*(const char *const *)field) snprintf(def, sizeof def, " (default %s)", *(const char *const *)field);
            break;
        case OPT_INT: snprintf(def, sizeof def, " (default %ld)", *(const long *)field); break;
        case OPT_FLOAT: snprintf(def, sizeof def, " (default %g)", *(const double *)field); break;
        case OPT_BOOL: break;
        }
        fprintf(f, "  %-26s %s%s\n", flag, s->help, def);
        if (s->choices) {
            fprintf(f, "  %-26s one of:", "");
            for (const char *const *c = s->choices; *c; c++) fprintf(f, " %s", *c);
            fputc('\n', f);
        }
    }
}
