/* `aspo demo` in its quick mode: the generated tokenizer spells every word of the task as
 * one token, the pairs are distinct with exactly one false sentence, a run writes its files,
 * two runs with one seed agree bit for bit, training lifts the held-out accuracy, and the
 * temporary directory is removed. One thread, so the numbers do not depend on the machine. */
#define _XOPEN_SOURCE 700 /* nftw, mkdtemp, setenv */
#include <cblas.h>
#include <ftw.h>
#include <jansson.h>
#include <omp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "aspo/train/demo.h"
#include "models/weights.h"
#include "aspo/train/demo_task.h"
#include "models/tokenizer.h"
#include "tests/check.h"

static char root[256];

static void path_of(char *dst, size_t cap, const char *rel) { snprintf(dst, cap, "%s/%s", root, rel); }

static bool exists(const char *dir, const char *name)
{
    char p[1024];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return stat(p, &st) == 0 && st.st_size > 0;
}

static char *slurp(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) n = -1;
    fclose(f);
    if (!buf || n < 0) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *size = (size_t)n;
    return buf;
}

static bool same_file(const char *a, const char *b)
{
    size_t na = 0, nb = 0;
    char *x = slurp(a, &na), *y = slurp(b, &nb);
    bool same = x && y && na == nb && !memcmp(x, y, na);
    free(x);
    free(y);
    return same;
}

static void test_tokenizer(void)
{
    char path[512];
    path_of(path, sizeof path, "tokenizer.json");
    int vocab = 0;
    CHECK(demo_task_write_tokenizer(path, &vocab) == ASPO_OK, "%s", aspo_error_message());
    CHECK(vocab > 259 && vocab < 1000, "vocab %d", vocab);
    CHECK(demo_task_check_tokenizer(path) == ASPO_OK, "%s", aspo_error_message());

    tokenizer *tok = NULL;
    if (tokenizer_load(path, &tok)) {
        CHECK(0, "load: %s", aspo_error_message());
        return;
    }
    CHECK(tokenizer_vocab_size(tok) == vocab, "%d vs %d", tokenizer_vocab_size(tok), vocab);
    CHECK(tokenizer_bos_id(tok) == 1 && tokenizer_eos_id(tok) == 2 && tokenizer_unk_id(tok) == 0,
          "specials %d %d %d", tokenizer_bos_id(tok), tokenizer_eos_id(tok), tokenizer_unk_id(tok));
    /* One token per word, one for the full stop, and the text decodes back. */
    const char *text = "The bee has six legs. The bee lives in the hive.";
    static const char *const want[] = {"\xe2\x96\x81The", "\xe2\x96\x81" "bee", "\xe2\x96\x81has",
                                       "\xe2\x96\x81six", "\xe2\x96\x81legs", ".",
                                       "\xe2\x96\x81The", "\xe2\x96\x81" "bee", "\xe2\x96\x81lives",
                                       "\xe2\x96\x81in", "\xe2\x96\x81the", "\xe2\x96\x81hive", "."};
    token_list ids = {0};
    CHECK(tokenizer_encode(tok, text, strlen(text), &ids) == ASPO_OK, "%s", aspo_error_message());
    CHECK(ids.n == 13, "%d tokens", ids.n);
    for (int i = 0; i < ids.n && i < 13; i++)
        CHECK(!strcmp(tokenizer_id_to_piece(tok, ids.ids[i]), want[i]), "token %d: %s, want %s",
              i, tokenizer_id_to_piece(tok, ids.ids[i]), want[i]);
    char *back = NULL;
    CHECK(tokenizer_decode(tok, ids.ids, ids.n, true, &back) == ASPO_OK && back &&
              !strcmp(back, text), "decoded '%s'", back ? back : "(null)");
    free(back);
    /* A word outside the task falls back to bytes: what the check would catch. */
    token_list_clear(&ids);
    CHECK(tokenizer_encode(tok, "zebra", 5, &ids) == ASPO_OK, "%s", aspo_error_message());
    bool bytes = false;
    for (int i = 0; i < ids.n; i++) bytes |= !strncmp(tokenizer_id_to_piece(tok, ids.ids[i]), "<0x", 3);
    CHECK(bytes, "'zebra' should need byte fallback (%d tokens)", ids.n);
    token_list_free(&ids);
    tokenizer_free(tok);
}

/* Count of ". "-separated sentences (the task's sentences end in '.' and are joined by a
 * space). */
static int sentences(const char *s, const char **starts, int cap)
{
    int n = 0;
    for (const char *p = s; *p && n < cap; n++) {
        starts[n] = p;
        const char *dot = strstr(p, ". ");
        p = dot ? dot + 2 : p + strlen(p);
    }
    return n;
}

static void test_data(void)
{
    char a[512], b[512], c[512];
    path_of(a, sizeof a, "a.jsonl");
    path_of(b, sizeof b, "b.jsonl");
    path_of(c, sizeof c, "c.jsonl");
    CHECK(demo_task_write_data(a, 7, 6, 200) == ASPO_OK, "%s", aspo_error_message());
    CHECK(demo_task_write_data(b, 7, 6, 200) == ASPO_OK, "%s", aspo_error_message());
    CHECK(demo_task_write_data(c, 8, 6, 200) == ASPO_OK, "%s", aspo_error_message());
    CHECK(same_file(a, b), "same seed, different pairs");
    CHECK(!same_file(a, c), "different seeds, same pairs");
    CHECK(demo_task_write_data(c, 7, 6, 100000) == ASPO_ERR_USAGE, "too many pairs accepted");
    CHECK(demo_task_write_data(c, 7, demo_task_animals() + 1, 10) == ASPO_ERR_USAGE,
          "too many animals accepted");

    FILE *f = fopen(a, "r");
    char line[1024], seen[200][300];
    int n = 0, bad = 0, dup = 0;
    while (f && fgets(line, sizeof line, f) && n < 200) {
        json_t *row = json_loads(line, 0, NULL);
        const char *ch = json_string_value(json_object_get(row, "chosen"));
        const char *rj = json_string_value(json_object_get(row, "rejected"));
        const char *pr = json_string_value(json_object_get(row, "prompt"));
        const char *sc[4], *sr[4];
        int nc = ch ? sentences(ch, sc, 4) : 0, nr = rj ? sentences(rj, sr, 4) : 0, diff = 0;
        for (int i = 0; i < nc && i < nr; i++) {
            size_t lc = i + 1 < nc ? (size_t)(sc[i + 1] - sc[i]) : strlen(sc[i]);
            size_t lr = i + 1 < nr ? (size_t)(sr[i + 1] - sr[i]) : strlen(sr[i]);
            diff += lc != lr || strncmp(sc[i], sr[i], lc);
        }
        bad += !pr || strncmp(pr, "Tell me about the ", 18) || nc != 3 || nr != 3 || diff != 1;
        snprintf(seen[n], sizeof seen[n], "%s|%s", ch ? ch : "", rj ? rj : "");
        for (int i = 0; i < n; i++) dup += !strcmp(seen[i], seen[n]);
        json_decref(row);
        n++;
    }
    if (f) fclose(f);
    CHECK(n == 200, "%d pairs", n);
    CHECK(bad == 0, "%d pairs without exactly one false sentence out of three", bad);
    CHECK(dup == 0, "%d duplicate pairs", dup);

    char prompt[256], chosen[256], rejected[256];
    CHECK(demo_task_pair(7, 6, 0, prompt, chosen, rejected, sizeof prompt) == ASPO_OK, "pair 0");
    f = fopen(a, "r");
    json_t *first = f && fgets(line, sizeof line, f) ? json_loads(line, 0, NULL) : NULL;
    if (f) fclose(f);
    const char *fc = json_string_value(json_object_get(first, "chosen"));
    CHECK(fc && !strcmp(fc, chosen), "demo_task_pair(0) is not the file's first pair");
    json_decref(first);
}

static demo_options quick(const char *out)
{
    demo_options o = demo_defaults();
    o.out = out;
    o.quick = true;
    o.quiet = true;
    o.threads = 1;
    return o;
}

static void test_run(void)
{
    char one[512], two[512], fa[1024], fb[1024];
    path_of(one, sizeof one, "run1");
    path_of(two, sizeof two, "run2");
    demo_options o = quick(one);
    demo_result r1, r2;
    CHECK(demo_run(&o, &r1) == ASPO_OK, "%s", aspo_error_message());
    static const char *const files[] = {"pairs.jsonl", "model/config.json",
                                        "model/model.safetensors", "model/tokenizer.json",
                                        "adapter/adapter_config.json",
                                        "adapter/adapter_model.safetensors",
                                        "adapter/metrics.jsonl"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        CHECK(exists(one, files[i]), "%s/%s missing", one, files[i]);
    /* Quick mode: 200 pairs, 40 held out. Before training every reward is 0 (LoRA B = 0)
     * and ties count as misses. On one thread seed 42 reaches 0.90-0.95 after the 160
     * steps (it moves with the kernels' rounding; 0.775 with --steps 20), and seeds 1-8
     * reach 0.85-0.975; 0.8 is two pairs below the worst seed and above what a barely
     * trained adapter of this seed gets. */
    CHECK(r1.pairs == 200 && r1.eval_pairs == 40, "%ld pairs, %ld held out", r1.pairs, r1.eval_pairs);
    CHECK(r1.summary.eval_accuracy_before == 0.0, "before %g", r1.summary.eval_accuracy_before);
    CHECK(r1.summary.eval_accuracy_after >= 0.8, "after %g", r1.summary.eval_accuracy_after);
    CHECK(r1.summary.eval_margin_after > r1.summary.eval_margin_before, "margin %g -> %g",
          r1.summary.eval_margin_before, r1.summary.eval_margin_after);
    CHECK(r1.summary.last_loss < r1.summary.first_loss, "loss %g -> %g", r1.summary.first_loss,
          r1.summary.last_loss);
    CHECK(strstr(r1.final_line, "held-out reward accuracy 0.000 -> ") == r1.final_line, "%s",
          r1.final_line);

    /* Same seed, same thread count: the same final line and the same adapter bytes. */
    o.out = two;
    CHECK(demo_run(&o, &r2) == ASPO_OK, "%s", aspo_error_message());
    CHECK(!strcmp(r1.final_line, r2.final_line), "'%s' vs '%s'", r1.final_line, r2.final_line);
    snprintf(fa, sizeof fa, "%s/adapter/adapter_model.safetensors", one);
    snprintf(fb, sizeof fb, "%s/adapter/adapter_model.safetensors", two);
    CHECK(same_file(fa, fb), "adapters differ between two runs of one seed");

    /* DPO runs too (a few steps). */
    o.loss = "dpo";
    o.steps = 4;
    CHECK(demo_run(&o, &r2) == ASPO_OK && r2.summary.steps == 4, "%s", aspo_error_message());
}

static int count_entries(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)path, (void)st, (void)flag;
    return ftw->level > 0; /* stop at the first entry below the top */
}

static void test_temporary_dir(void)
{
    char tmp[512];
    path_of(tmp, sizeof tmp, "tmp");
    mkdir(tmp, 0700);
    setenv("TMPDIR", tmp, 1);
    demo_options o = quick(NULL);
    o.steps = 2;
    CHECK(demo_run(&o, NULL) == ASPO_OK, "%s", aspo_error_message());
    CHECK(nftw(tmp, count_entries, 8, FTW_PHYS) == 0, "the temporary directory was left in %s", tmp);
    o.keep = true;
    CHECK(demo_run(&o, NULL) == ASPO_OK, "%s", aspo_error_message());
    CHECK(nftw(tmp, count_entries, 8, FTW_PHYS) == 1, "--keep removed the directory");

    o.loss = "ipo";
    CHECK(demo_run(&o, NULL) == ASPO_ERR_USAGE, "loss ipo accepted");
    o.loss = "aspo";
    o.backend = "no-such-backend";
    CHECK(demo_run(&o, NULL) == ASPO_ERR_USAGE, "unknown backend accepted");
    unsetenv("TMPDIR");
}

int main(void)
{
    omp_set_num_threads(1);
    openblas_set_num_threads(1);
    const char *tmp = getenv("TMPDIR");
    snprintf(root, sizeof root, "%s/aspo-test-demo-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(root)) {
        perror(root);
        return 1;
    }
    test_tokenizer();
    test_data();
    test_run();
    test_temporary_dir();
    weights_remove_dir(root);
    return check_summary("demo");
}
