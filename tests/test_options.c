/* The flag table parser: flags, --config JSON files, precedence and every usage error. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aspo/cli/options.h"
#include "tests/check.h"

typedef struct flags {
    const char *loss;
    long batch_size;
    double lr;
    bool rslora;
} flags;

static const char *const LOSSES[] = {"aspo", "dpo", NULL};

static const option_spec SPECS[] = {
    {"config", OPT_STRING, 0, "JSON file of flags", NULL, 0, 0},
    {"loss", OPT_STRING, offsetof(flags, loss), "loss", LOSSES, 0, 0},
    {"batch-size", OPT_INT, offsetof(flags, batch_size), "pairs per step", NULL, 1, 1024},
    {"lr", OPT_FLOAT, offsetof(flags, lr), "learning rate", NULL, 0, 1},
    {"rslora", OPT_BOOL, offsetof(flags, rslora), "rank-stabilised scaling", NULL, 0, 0},
    {NULL},
};

/* Parses a space-separated command line; returns the status. */
static aspo_status parse(const char *line, flags *f)
{
    static char buf[512];
    char *argv[32];
    int argc = 0;
    snprintf(buf, sizeof buf, "%s", line);
    for (char *tok = strtok(buf, " "); tok && argc < 32; tok = strtok(NULL, " ")) argv[argc++] = tok;
    *f = (flags){"aspo", 8, 1e-5, false};
    bool help;
    options_source src;
    aspo_status s = options_parse(SPECS, f, argc, argv, &help, &src);
    if (s == ASPO_OK && f->loss && strcmp(f->loss, "aspo") && strcmp(f->loss, "dpo")) s = ASPO_ERR_USAGE;
    /* strings from the config die with src: copy what the test looks at */
    static char loss[16];
    if (f->loss) snprintf(loss, sizeof loss, "%s", f->loss), f->loss = loss;
    options_release(&src);
    return s;
}

static const char *write_config(const char *text)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/aspo_options_%d.json", (int)getpid());
    FILE *fp = fopen(path, "w");
    fputs(text, fp);
    fclose(fp);
    return path;
}

int main(void)
{
    flags f;
    CHECK(parse("--loss dpo --batch-size=4 --lr 2e-6 --rslora", &f) == ASPO_OK, "%s", aspo_error_message());
    CHECK(!strcmp(f.loss, "dpo") && f.batch_size == 4 && f.lr == 2e-6 && f.rslora, "values");

    char line[256];
    const char *path = write_config("{\"loss\": \"dpo\", \"batch-size\": 10, \"lr\": 1e-6, \"rslora\": true}");
    snprintf(line, sizeof line, "--config %s --batch-size 3", path);
    CHECK(parse(line, &f) == ASPO_OK, "%s", aspo_error_message());
    CHECK(!strcmp(f.loss, "dpo") && f.batch_size == 3 && f.lr == 1e-6 && f.rslora,
          "config applied, flag wins");

    struct { const char *args, *config, *needle; } bad[] = {
        {"--bogus 1", NULL, "unknown flag '--bogus'"},
        {"--loss ipo", NULL, "not one of: aspo, dpo"},
        {"--batch-size 0", NULL, "--batch-size: '0'"},
        {"--batch-size 2x", NULL, "--batch-size: '2x'"},
        {"--lr", NULL, "--lr needs a value"},
        {"--lr nan", NULL, "--lr: 'nan'"},
        {"positional", NULL, "unexpected argument"},
        {NULL, "{\"batch_size\": 3}", "unknown field \"batch_size\""},
        {NULL, "{\"lr\": \"0.1\"}", "field \"lr\": expected a number"},
        {NULL, "{\"loss\": 3}", "field \"loss\": expected a string"},
        {NULL, "{\"lr\": [1]}", "expected a string, number or boolean"},
        {NULL, "{\"lr\": 1e-5,\n \"loss\": }", "line 2"},
        {NULL, "[1, 2]", "one JSON object"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (bad[i].config) snprintf(line, sizeof line, "--config %s", write_config(bad[i].config));
        else snprintf(line, sizeof line, "%s", bad[i].args);
        aspo_error_clear();
        aspo_status s = parse(line, &f);
        CHECK(s == ASPO_ERR_USAGE && strstr(aspo_error_message(), bad[i].needle),
              "case %zu: status %d, message '%s', want '%s'", i, s, aspo_error_message(), bad[i].needle);
    }
    aspo_error_clear();
    CHECK(parse("--config /nonexistent/x.json", &f) == ASPO_ERR_USAGE &&
              strstr(aspo_error_message(), "/nonexistent/x.json"),
          "missing config names the file: %s", aspo_error_message());
    unlink(path);
    return check_summary("options");
}
