/* What a run may find in --out and what it leaves there. A new run refuses an --out that
 * holds anything (an earlier run's adapter beside a new run's empty metrics would look like
 * a finished run), unless it resumes (the files are its own) or --overwrite removes the
 * earlier run's files first. The final adapter's two files are written so that a directory
 * never pairs one run's weights with another's config. */
#define _DEFAULT_SOURCE
#include "aspo/train/run_output.h"

#include <dirent.h>
#include <limits.h>
#include <stdlib.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "models/weights.h"
#include "tensor/file_open.h"

/* A file or directory a run writes into --out. */
static bool is_run_file(const char *name)
{
    static const char *const files[] = {"adapter_config.json", "adapter_model.safetensors",
                                        "metrics.jsonl", "metrics.jsonl.tmp", "memory.json",
                                        ".adapter.tmp", NULL};
    for (const char *const *f = files; *f; f++)
        if (!strcmp(name, *f)) return true;
    long long step;
    char tail;
    return sscanf(name, "checkpoint-%lld%c", &step, &tail) == 1 ||
           sscanf(name, ".checkpoint-%lld.tm%c", &step, &tail) == 2;
}

aspo_status run_output_prepare(const char *out, bool resuming, bool overwrite,
                               const char *adapter)
{
    char a[PATH_MAX], o[PATH_MAX];
    if (overwrite && adapter && realpath(adapter, a) && realpath(out, o) && !strcmp(a, o))
        return aspo_fail(ASPO_ERR_USAGE, "--overwrite would remove the adapter that --adapter %s "
                         "reads: it is --out; copy it elsewhere first", adapter);
    DIR *dir = opendir(out);
    if (!dir) return weights_make_dir(out); /* missing: made; not a directory: said */
    char found[512] = "";
    size_t len = 0;
    int n = 0;
    aspo_status s = ASPO_OK;
    struct dirent *e;
    while ((e = readdir(dir)) && !s) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (overwrite && !resuming && is_run_file(e->d_name)) {
            char path[4400];
            snprintf(path, sizeof path, "%s/%s", out, e->d_name);
            weights_remove_dir(path); /* a file or a whole checkpoint directory */
            struct stat st;
            if (lstat(path, &st) == 0)
                s = aspo_fail(ASPO_ERR_IO, "--overwrite: cannot remove %s", path);
            continue;
        }
        if (n++ < 3 && len < sizeof found)
            len += (size_t)snprintf(found + len, sizeof found - len, "%s%s", n > 1 ? ", " : "",
                                    e->d_name);
    }
    closedir(dir);
    if (s || resuming || !n) return s;
    if (overwrite) return ASPO_OK; /* what is left is not a run's: the user's own files */
    return aspo_fail(ASPO_ERR_USAGE, "--out %s is not empty (it holds %s%s): give --overwrite to "
                     "replace an earlier run there, --resume auto to continue it, or another "
                     "directory", out, found, n > 3 ? ", ..." : "");
}

aspo_status run_output_save_adapter(const policy_model *m, const char *out)
{
    char tmp[4200], from[4300], to[4300];
    snprintf(tmp, sizeof tmp, "%s/.adapter.tmp", out);
    weights_remove_dir(tmp);
    if (mkdir(tmp, 0755) != 0)
        return aspo_fail(ASPO_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    aspo_status s = policy_save_adapter(m, tmp);
    /* adapter_config.json is what makes a directory an adapter (PEFT and aspo read it first):
     * the old one goes first and the new one comes last, so a kill at any point leaves the
     * old pair, weights without a config, or the new pair, never new weights with an old
     * config. */
    snprintf(to, sizeof to, "%s/adapter_config.json", out);
    if (!s && unlink(to) != 0 && errno != ENOENT)
        s = aspo_fail(ASPO_ERR_IO, "%s: cannot replace: %s", to, strerror(errno));
    static const char *const order[] = {"adapter_model.safetensors", "adapter_config.json"};
    for (int i = 0; i < 2 && !s; i++) {
        snprintf(from, sizeof from, "%s/%s", tmp, order[i]);
        snprintf(to, sizeof to, "%s/%s", out, order[i]);
        if (rename(from, to) != 0)
            s = aspo_fail(ASPO_ERR_IO, "cannot rename %s to %s: %s", from, to, strerror(errno));
    }
    weights_remove_dir(tmp);
    if (!s) file_sync_parent(to);
    return s;
}
