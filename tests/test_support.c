/* The test suites' shared helpers that check nothing themselves (see test_support.h). */
#define _XOPEN_SOURCE 700 /* mkdtemp */
#include "tests/test_support.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "models/weights.h"

/* Every path join made, freed at exit: kept paths never dangle, and LeakSanitizer sees
 * nothing left behind. */
static char **paths;
static int n_paths, cap_paths;

static void free_paths(void)
{
    for (int i = 0; i < n_paths; i++) free(paths[i]);
    free(paths);
    paths = NULL;
    n_paths = cap_paths = 0;
}

const char *join(const char *dir, const char *name)
{
    if (n_paths == cap_paths) {
        int cap = cap_paths ? 2 * cap_paths : 64;
        char **grown = realloc(paths, sizeof *paths * (size_t)cap);
        if (!grown) {
            /* No test can go on without its paths; exit, not abort: nothing is wrong
             * with the code under test. */
            fprintf(stderr, "join: out of memory\n");
            exit(1);
        }
        if (!paths) atexit(free_paths);
        paths = grown;
        cap_paths = cap;
    }
    size_t len = strlen(dir) + strlen(name) + 2;
    char *p = malloc(len);
    if (!p) {
        fprintf(stderr, "join: out of memory\n");
        exit(1);
    }
    snprintf(p, len, "%s/%s", dir, name);
    return paths[n_paths++] = p;
}

static char tmp_root[256];

const char *test_tmp_make(const char *suite)
{
    snprintf(tmp_root, sizeof tmp_root, "/tmp/test_%s_XXXXXX", suite);
    if (!mkdtemp(tmp_root)) {
        perror(tmp_root);
        tmp_root[0] = 0;
        return NULL;
    }
    return tmp_root;
}

void test_tmp_remove(void)
{
    if (tmp_root[0]) weights_remove_dir(tmp_root);
    tmp_root[0] = 0;
}

bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

bool write_file_text(const char *path, const char *text)
{
    return weights_write_file(path, text, strlen(text)) == ASPO_OK;
}

bool copy_file(const char *from, const char *to)
{
    FILE *f = fopen(from, "rb"), *g = fopen(to, "wb");
    bool ok = f && g;
    char buf[65536];
    size_t n;
    while (ok && (n = fread(buf, 1, sizeof buf, f)) > 0) ok = fwrite(buf, 1, n, g) == n;
    if (f && ferror(f)) ok = false;
    if (f) fclose(f);
    if (g && fclose(g)) ok = false;
    return ok;
}

double rel_err(const float *got, const float *want, int64_t n)
{
    double d = 0, scale = 1e-30;
    for (int64_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)got[i] - want[i]));
        scale = fmax(scale, fabs((double)want[i]));
    }
    return d / scale;
}

int test_load_in_child(const char *what, test_load_fn load, const char *path, const char *word)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(5);
#if !defined(__SANITIZE_ADDRESS__)
        long pages = 0;
        FILE *f = fopen("/proc/self/statm", "r");
        if (f && fscanf(f, "%ld", &pages) != 1) pages = 0;
        if (f) fclose(f);
        rlim_t cap = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + ((rlim_t)1 << 30);
        setrlimit(RLIMIT_AS, &(struct rlimit){cap, cap});
#endif
        aspo_status s = load(path);
        const char *msg = aspo_error_message();
        if (s != ASPO_OK && !(strstr(msg, path) && strstr(msg, word))) {
            fprintf(stderr, "%s: message \"%s\" lacks \"%s\"\n", path, msg, word);
            _exit(100);
        }
        _exit((int)s);
    }
    int ws = 0;
    if (pid < 0 || waitpid(pid, &ws, 0) != pid) return -1;
    if (WIFSIGNALED(ws))
        fprintf(stderr, "%s: %s killed by signal %d%s\n", path, what, WTERMSIG(ws),
                WTERMSIG(ws) == SIGALRM ? " (no answer within 5 s)" : "");
    return WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
}

bool write_config_changed(const char *dir, const char *from, const char *key, json_t *value)
{
    weights_make_dir(dir);
    aspo_error_clear();
    json_t *root = json_load_file(from, 0, NULL);
    bool ok = root && (value ? json_object_set_new(root, key, value) == 0
                             : (json_object_del(root, key), true));
    if (!root) json_decref(value);
    ok = ok && json_dump_file(root, join(dir, "config.json"), JSON_INDENT(2)) == 0;
    json_decref(root);
    return ok;
}

bool link_into(const char *dir, const char *name, const char *target)
{
    char *abs = realpath(target, NULL);
    bool ok = abs && symlink(abs, join(dir, name)) == 0;
    free(abs);
    return ok;
}
