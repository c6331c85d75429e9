/* `aspo score` and `aspo merge`, called in-process through their command functions:
 * scores against the LLaMA parity fixture (transformers/PEFT) and against a direct
 * llama_forward + log-softmax, batch-size invariance, `aspo run` with the scored file
 * giving the first step of a run without it (DPO and ASPO), merged checkpoints against the
 * adapter's logits, and bad input. argv[1]: tests/fixtures. */
#define _XOPEN_SOURCE 700 /* getline */
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backends/registry.h"
#include "aspo/cli/commands.h"
#include "aspo/model/tiny_llama.h"
#include "aspo/train/trainer.h"
#include "models/llama.h"
#include "tensor/runtime.h"
#include "tensor/safetensors.h"
#include "tensor/tensor_ops.h"
#include "tests/test_support.h"

/* f32 on CPU, the same model code batched (padded, longest first) or run one sequence at
 * a time: GEMM blocking changes the rounding of ~6e-8 per op; sums of up to ~150
 * log-probs of magnitude ~7 then differ by a few 1e-7 relative. Against transformers the
 * LLaMA suite's bound for these sums (tests/test_llama.c SEQ_TOL) holds. */
static const double SCORE_TOL = 1e-5;
/* Logits of a merged f32 checkpoint against PEFT's adapter logits: test_llama's LOGIT_TOL
 * (3 layers of f32 rounding). Merged bf16 weights round each weight by up to 2^-9
 * relative; measured 4.7e-3 relative at the logits, 2e-2 keeps room. */
static const double LOGIT_TOL = 1e-5, BF16_LOGIT_TOL = 2e-2;

static const char *fixtures, *tmp_root;

static const char *fx(const char *name) { return join(fixtures, name); }
static const char *tmp(const char *name) { return join(tmp_root, name); }

/* Runs `aspo score|merge ARGS...` (NULL-terminated) in-process; returns its exit status. */
#define SCORE(...) run_command(cmd_score, (const char *[]){__VA_ARGS__, NULL})
#define MERGE(...) run_command(cmd_merge, (const char *[]){__VA_ARGS__, NULL})
static int run_command(int (*cmd)(int, char **), const char **args)
{
    int n = 0;
    while (args[n]) n++;
    aspo_error_clear();
    /* Its "aspo: error:" lines would read as failures of this test: the checks look at
     * the message instead. */
    fflush(stderr);
    int saved = dup(2), null = open("/dev/null", O_WRONLY);
    if (null >= 0) dup2(null, 2);
    int rc = cmd(n, (char **)args);
    fflush(stderr);
    if (saved >= 0) dup2(saved, 2);
    if (saved >= 0) close(saved);
    if (null >= 0) close(null);
    return rc;
}

/* A string field, "" when absent. */
static const char *str(const json_t *row, const char *key)
{
    const char *s = json_string_value(json_object_get(row, key));
    return s ? s : "";
}

static void write_text(const char *path, const char *text)
{
    CHECK(write_file_text(path, text), "write %s", path);
}

/* Lines of a JSONL file as objects (n <= cap); returns n, -1 when unreadable. */
static int read_jsonl(const char *path, json_t **rows, int cap)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char *line = NULL;
    size_t size = 0;
    int n = 0;
    while (getline(&line, &size, f) > 0 && n < cap) {
        rows[n] = json_loads(line, 0, NULL);
        CHECK(json_is_object(rows[n]), "%s line %d is a JSON object", path, n + 1);
        n++;
    }
    free(line);
    fclose(f);
    return n;
}

static void free_rows(json_t **rows, int n)
{
    for (int i = 0; i < n; i++) json_decref(rows[i]);
}

static double num(const json_t *row, const char *key)
{
    json_t *v = json_object_get(row, key);
    CHECK(json_is_number(v), "row has number %s", key);
    return v ? json_number_value(v) : NAN;
}

/* ---- references ---- */

/* Log-softmax at position t-1 of token ids[t], in double, from one row of logits (T,V). */
static double token_logp(const float *logits, int64_t V, int64_t t, int32_t id)
{
    const float *x = logits + (t - 1) * V;
    double max = x[0], sum = 0;
    for (int64_t v = 1; v < V; v++) max = fmax(max, x[v]);
    for (int64_t v = 0; v < V; v++) sum += exp((double)x[v] - max);
    return (double)x[id] - max - log(sum);
}

/* The response log-probs of one sequence straight from llama_forward (one row, no padding). */
static double direct_logps(llama_model *m, const int32_t *ids, int64_t n, int64_t n_prompt,
                           double *per_token)
{
    int64_t V = m->cfg.vocab_size;
    float *logits = malloc(sizeof(float) * (size_t)(n * V));
    bool prev = autograd_set_enabled(false);
    tensor *out = llama_forward(m, tensor_from_host(DT_I32, DIMS(1, n), ids), NULL, NULL);
    CHECK(out && tensor_to_host_f32(out, logits) == ASPO_OK, "forward: %s", aspo_error_message());
    autograd_set_enabled(prev);
    runtime_step_reset();
    double sum = 0;
    for (int64_t t = n_prompt; t < n; t++) {
        double lp = token_logp(logits, V, t, ids[t]);
        if (per_token) per_token[t - n_prompt] = lp;
        sum += lp;
    }
    free(logits);
    return sum;
}

/* ---- the LLaMA fixture: pre-tokenized pairs built from its two sequences ---- */

typedef struct seq {
    int32_t ids[16];
    int64_t n, n_prompt;
} seq;

static json_t *id_array(const int32_t *ids, int64_t n)
{
    json_t *a = json_array();
    for (int64_t i = 0; i < n; i++) json_array_append_new(a, json_integer(ids[i]));
    return a;
}

/* Pairs (prompt of a, response of a as chosen, response of b as rejected), with b's
 * response moved onto a's prompt; the fixture's rows score a's chosen directly. */
typedef struct fixture_pairs {
    seq chosen[3], rejected[3];
    double fixture_chosen[3]; /* transformers' seq_logprobs (adapter on), NAN = none */
    double fixture_base[3];   /* from its base_logits (adapter off) */
} fixture_pairs;

static seq make_seq(const seq *prompt_of, const seq *response_of, int64_t max_response)
{
    seq s = {.n_prompt = prompt_of->n_prompt};
    memcpy(s.ids, prompt_of->ids, sizeof(int32_t) * (size_t)s.n_prompt);
    int64_t r = response_of->n - response_of->n_prompt;
    if (r > max_response) r = max_response;
    memcpy(s.ids + s.n_prompt, response_of->ids + response_of->n_prompt, sizeof(int32_t) * (size_t)r);
    s.n = s.n_prompt + r;
    return s;
}

static bool fixture_data(fixture_pairs *fp, const char *data_path)
{
    st_model st;
    if (st_open(fx("llama/tiny_outputs.safetensors"), &st)) {
        CHECK(0, "fixture: %s", aspo_error_message());
        return false;
    }
    const st_entry *ids = st_find(&st, "ids"), *logits = st_find(&st, "base_logits");
    const int32_t *id = ids->data, *resp = st_find(&st, "response_mask")->data;
    const float *seq_lp = st_find(&st, "seq_logprobs")->data;
    int64_t T = ids->shape[1], V = logits->shape[2];
    seq row[2];
    double base[2];
    for (int b = 0; b < 2; b++) {
        const int32_t *r = resp + b * T;
        int64_t first = 0, end = 0;
        while (!r[first]) first++;
        for (end = first; end < T && r[end]; end++) {}
        row[b] = (seq){.n = end, .n_prompt = first};
        memcpy(row[b].ids, id + b * T, sizeof(int32_t) * (size_t)end);
        base[b] = 0;
        for (int64_t t = first; t < end; t++)
            base[b] += token_logp((const float *)logits->data + b * T * V, V, t, id[b * T + t]);
    }
    /* line 1: id "p0"; line 2: no id; line 3 blank; line 4: id 7 (a short rejected). */
    *fp = (fixture_pairs){
        .chosen = {row[0], row[1], make_seq(&row[0], &row[1], 99)},
        .rejected = {make_seq(&row[0], &row[1], 99), make_seq(&row[1], &row[0], 99),
                     make_seq(&row[0], &row[0], 2)},
        .fixture_chosen = {seq_lp[0], seq_lp[1], NAN},
        .fixture_base = {base[0], base[1], NAN},
    };
    st_close(&st);
    FILE *f = fopen(data_path, "w");
    for (int i = 0; f && i < 3; i++) {
        const seq *c = &fp->chosen[i], *r = &fp->rejected[i];
        json_t *o = json_object();
        if (i == 0) json_object_set_new(o, "id", json_string("p0"));
        if (i == 2) json_object_set_new(o, "id", json_integer(7));
        json_object_set_new(o, "prompt_input_ids", id_array(c->ids, c->n_prompt));
        json_object_set_new(o, "chosen_input_ids", id_array(c->ids + c->n_prompt, c->n - c->n_prompt));
        json_object_set_new(o, "rejected_input_ids", id_array(r->ids + r->n_prompt, r->n - r->n_prompt));
        char *line = json_dumps(o, JSON_COMPACT);
        fprintf(f, "%s\n%s", line, i == 1 ? "\n" : "");
        free(line);
        json_decref(o);
    }
    CHECK(f && fclose(f) == 0, "write %s", data_path);
    return true;
}

/* One side's scores in `row` against the direct forward of `s`. */
static void check_side(llama_model *m, const json_t *row, const seq *s, const char *side)
{
    char key[64];
    double per[16];
    double want = direct_logps(m, s->ids, s->n, s->n_prompt, per);
    snprintf(key, sizeof key, "ref_%s_logps", side);
    CHECK_CLOSE(num(row, key), want, SCORE_TOL, key);
    snprintf(key, sizeof key, "ref_%s_token_logps", side);
    json_t *a = json_object_get(row, key);
    CHECK((int64_t)json_array_size(a) == s->n - s->n_prompt, "%s has %lld entries", key,
          (long long)(s->n - s->n_prompt));
    for (size_t j = 0; j < json_array_size(a); j++)
        CHECK_CLOSE(json_number_value(json_array_get(a, j)), per[j], SCORE_TOL, key);
}

static void test_fixture(void)
{
    fixture_pairs fp;
    const char *data = tmp("fixture_pairs.jsonl");
    if (!fixture_data(&fp, data)) return;
    for (int adapted = 0; adapted < 2; adapted++) {
        const char *out = tmp(adapted ? "fixture_adapter.jsonl" : "fixture_base.jsonl");
        int rc = adapted ? SCORE("--model", fx("llama/tiny"), "--data", data, "--out", out,
                                 "--adapter", fx("llama/tiny_adapter"), "--token-logps",
                                 "--batch-size", "2", "--quiet")
                         : SCORE("--model", fx("llama/tiny"), "--data", data, "--out", out,
                                 "--token-logps", "--batch-size", "2", "--quiet");
        CHECK(rc == 0, "score (adapter %d): %s", adapted, aspo_error_message());
        json_t *rows[4];
        int n = read_jsonl(out, rows, 4);
        CHECK(n == 3, "%d output rows, want 3", n);
        if (n != 3) continue;
        /* ids in input order; the row without one gets its line number. */
        CHECK(!strcmp(str(rows[0], "id"), "p0") &&
              json_integer_value(json_object_get(rows[1], "id")) == 2 &&
              json_integer_value(json_object_get(rows[2], "id")) == 7, "ids p0, 2, 7");
        const double *want = adapted ? fp.fixture_chosen : fp.fixture_base;
        double worst = 0;
        for (int i = 0; i < 2; i++) {
            CHECK_CLOSE(num(rows[i], "ref_chosen_logps"), want[i], SCORE_TOL,
                        adapted ? "chosen vs transformers+PEFT" : "chosen vs transformers base");
            worst = fmax(worst, fabs(num(rows[i], "ref_chosen_logps") - want[i]) / fabs(want[i]));
        }
        printf("  fixture, %s: sums vs transformers rel err %.2e\n",
               adapted ? "adapter" : "base", worst);
        runtime_init(backend_cpu(), 0);
        llama_options o = llama_defaults();
        o.adapter_dir = adapted ? fx("llama/tiny_adapter") : NULL;
        llama_model m;
        if (llama_open(fx("llama/tiny"), &o, &m) == ASPO_OK) {
            for (int i = 0; i < 3; i++) {
                check_side(&m, rows[i], &fp.chosen[i], "chosen");
                check_side(&m, rows[i], &fp.rejected[i], "rejected");
            }
            llama_close(&m);
        } else {
            CHECK(0, "open: %s", aspo_error_message());
        }
        runtime_shutdown();
        free_rows(rows, n);
    }
}

/* ---- text data on a random model: batch size, aspo run ---- */

static const char *text_model(void)
{
    static bool made;
    const char *dir = tmp("model");
    if (!made) {
        tiny_llama_spec spec = {2, 64, 4, 2, 172, 1000, 2048, 1, 2, -1};
        CHECK(tiny_llama_write(dir, &spec, 7) == ASPO_OK, "init model: %s", aspo_error_message());
        made = true;
    }
    return dir;
}

static void test_batch_size(void)
{
    const char *data = fx("data/rows.jsonl"), *tok = fx("tokenizer/legacy");
    static const char *const sizes[] = {"1", "4", "6"};
    json_t *rows[3][8];
    int n[3];
    for (int k = 0; k < 3; k++) {
        char name[64];
        snprintf(name, sizeof name, "bs%s.jsonl", sizes[k]);
        CHECK(SCORE("--model", text_model(), "--tokenizer", tok, "--data", data, "--out",
                    tmp(name), "--batch-size", sizes[k], "--token-logps", "--quiet") == 0,
              "score bs %s: %s", sizes[k], aspo_error_message());
        n[k] = read_jsonl(tmp(name), rows[k], 8);
    }
    CHECK(n[0] == 6 && n[1] == 6 && n[2] == 6, "6 rows each (%d %d %d)", n[0], n[1], n[2]);
    double worst = 0;
    for (int i = 0; i < 6 && n[0] == 6 && n[1] == 6 && n[2] == 6; i++) {
        CHECK(json_equal(json_object_get(rows[0][i], "id"), json_object_get(rows[1][i], "id")) &&
              json_equal(json_object_get(rows[0][i], "prompt"), json_object_get(rows[2][i], "prompt")),
              "row %d: same id and fields", i);
        for (int k = 1; k < 3; k++)
            for (int side = 0; side < 2; side++) {
                const char *key = side ? "ref_rejected_logps" : "ref_chosen_logps";
                const char *tkey = side ? "ref_rejected_token_logps" : "ref_chosen_token_logps";
                double a = num(rows[0][i], key), b = num(rows[k][i], key), sum = 0;
                CHECK_CLOSE(b, a, SCORE_TOL, key);
                worst = fmax(worst, fabs(a - b) / fabs(a));
                json_t *ta = json_object_get(rows[0][i], tkey), *tb = json_object_get(rows[k][i], tkey);
                CHECK(json_array_size(ta) > 0 && json_array_size(ta) == json_array_size(tb),
                      "row %d %s lengths", i, tkey);
                for (size_t j = 0; j < json_array_size(ta); j++) {
                    CHECK_CLOSE(json_number_value(json_array_get(tb, j)),
                                json_number_value(json_array_get(ta, j)), SCORE_TOL, tkey);
                    sum += json_number_value(json_array_get(ta, j));
                }
                CHECK_CLOSE(sum, a, SCORE_TOL, "per-token sum vs the sum");
            }
    }
    /* rows.jsonl: ids "short" and 2 kept; the rest are their line numbers. */
    if (n[0] == 6)
        CHECK(json_integer_value(json_object_get(rows[0][2], "id")) == 3 &&
              json_integer_value(json_object_get(rows[0][5], "id")) == 6, "line-number ids");
    printf("  batch sizes 1/4/6: worst relative difference of the sums %.2e\n", worst);
    for (int k = 0; k < 3; k++) free_rows(rows[k], n[k] > 0 ? n[k] : 0);
}

static train_config run_config(const char *data, const char *out, const char *loss)
{
    train_config c = train_defaults();
    c.model = text_model();
    c.tokenizer = fx("tokenizer/legacy");
    c.data = data;
    c.out = out;
    c.loss = loss;
    c.alpha = 0;
    c.batch_size = 2;
    c.quiet = true;
    return c;
}

/* The first metrics line of a one-step run from `adapter`. */
static json_t *first_step(const char *data, const char *out, const char *loss, const char *adapter)
{
    train_config c = run_config(data, out, loss);
    c.adapter = adapter;
    c.max_steps = 1;
    aspo_error_clear();
    aspo_status s = train_run(&c, NULL);
    CHECK(s == ASPO_OK, "run %s on %s: %s", loss, data, aspo_error_message());
    json_t *row = NULL;
    if (!s) read_jsonl(join(out, "metrics.jsonl"), &row, 1);
    return row;
}

/* The reference of `aspo run` is the base model, so precomputed refs change nothing. */
static void test_run_equivalence(void)
{
    const char *data = tmp("pairs.jsonl");
    write_text(data,
               "{\"prompt\": \"What colour is the sky?\", \"chosen\": \"The sky is blue. It is "
               "clear today.\", \"rejected\": \"Green.\"}\n"
               "{\"id\": \"b\", \"prompt\": \"Name a fruit.\", \"chosen\": \"An apple.\", "
               "\"rejected\": \"A chair, which is furniture and not a fruit at all.\"}\n"
               "{\"prompt\": \"Count to three.\", \"chosen\": \"One, two, three.\", "
               "\"rejected\": \"One, three.\"}\n"
               "{\"prompt\": \"Say hi.\", \"chosen\": \"Hi! How are you?\", \"rejected\": "
               "\"No.\"}\n");
    /* A policy away from the reference: a few large DPO steps from a fresh adapter. */
    train_config c = run_config(data, tmp("trained"), "dpo");
    c.lr = 1e-2;
    c.warmup_ratio = 0;
    c.max_steps = 3;
    CHECK(train_run(&c, NULL) == ASPO_OK, "train an adapter: %s", aspo_error_message());
    const char *scored = tmp("pairs_scored.jsonl"), *sums = tmp("pairs_sums.jsonl");
    CHECK(SCORE("--model", text_model(), "--tokenizer", fx("tokenizer/legacy"), "--data", data,
                "--out", scored, "--token-logps", "--batch-size", "3", "--quiet") == 0 &&
          SCORE("--model", text_model(), "--tokenizer", fx("tokenizer/legacy"), "--data", data,
                "--out", sums, "--quiet") == 0,
          "score: %s", aspo_error_message());
    static const char *const losses[] = {"dpo", "aspo"};
    for (int l = 0; l < 2; l++) {
        char a[64], b[64];
        snprintf(a, sizeof a, "run_%s_live", losses[l]);
        snprintf(b, sizeof b, "run_%s_scored", losses[l]);
        json_t *live = first_step(data, tmp(a), losses[l], tmp("trained"));
        json_t *pre = first_step(scored, tmp(b), losses[l], tmp("trained"));
        const char *key;
        json_t *v;
        int compared = 0;
        if (live && pre) json_object_foreach(live, key, v)
        {
            if (!json_is_number(v) || !strcmp(key, "tokens_per_s")) continue;
            /* Reference sums move by ~1e-7 relative between batchings (SCORE_TOL), so the
             * rewards (beta * log-ratio, beta 0.1) and the loss move by ~1e-6. */
            CHECK_CLOSE(num(pre, key), json_number_value(v), 1e-5, key);
            compared++;
        }
        CHECK(compared >= 10 && fabs(num(live, "rewards/margins")) > 1e-3,
              "%s: %d metrics compared; margin %g (policy away from the reference)", losses[l],
              compared, live ? num(live, "rewards/margins") : NAN);
        printf("  %s first step, live vs scored reference: loss %.9f vs %.9f\n", losses[l],
               live ? num(live, "loss") : NAN, pre ? num(pre, "loss") : NAN);
        json_decref(live);
        json_decref(pre);
    }
    /* ASPO needs per-token values: with sums alone the reference model runs instead (and
     * a warning says so), so training still works. */
    train_config c2 = run_config(sums, tmp("run_aspo_sums"), "aspo");
    c2.max_steps = 1;
    aspo_status s = train_run(&c2, NULL);
    CHECK(s == ASPO_OK, "ASPO on sums only runs the reference: %s", aspo_error_message());
    aspo_error_clear();
}

/* ---- merge ---- */

/* Logits of dir (no adapter) on the fixture's inputs against its adapter logits. */
static double merged_err(const char *dir, const char *fixture, bool positions, dtype want_dt)
{
    st_model st;
    double e = INFINITY;
    if (st_open(fx(fixture), &st)) {
        CHECK(0, "fixture: %s", aspo_error_message());
        return e;
    }
    const st_entry *ids = st_find(&st, "ids"), *want = st_find(&st, "logits");
    int64_t B = ids->shape[0], T = ids->shape[1], n = B * T * want->shape[2];
    runtime_init(backend_cpu(), 0);
    llama_model m;
    float *got = malloc(sizeof(float) * (size_t)n);
    if (llama_open(dir, NULL, &m) == ASPO_OK) {
        CHECK(!m.has_lora && m.storage_dt == want_dt, "%s: %s weights, no adapter", dir,
              dtype_name(want_dt));
        bool prev = autograd_set_enabled(false);
        tensor *logits = llama_forward(
            &m, tensor_from_host(DT_I32, DIMS(B, T), ids->data),
            tensor_from_host(DT_I32, DIMS(B, T), st_find(&st, "attention_mask")->data),
            positions ? st_find(&st, "position_ids")->data : NULL);
        autograd_set_enabled(prev);
        if (logits && tensor_to_host_f32(logits, got) == ASPO_OK) {
            double d = 0, scale = 1e-30;
            for (int64_t i = 0; i < n; i++) {
                d = fmax(d, fabs((double)got[i] - ((const float *)want->data)[i]));
                scale = fmax(scale, fabs(((const float *)want->data)[i]));
            }
            e = d / scale;
        }
        llama_close(&m);
    } else {
        CHECK(0, "open %s: %s", dir, aspo_error_message());
    }
    free(got);
    runtime_shutdown();
    st_close(&st);
    return e;
}

static bool config_dtype_is(const char *dir, const char *want)
{
    json_t *c = json_load_file(join(dir, "config.json"), 0, NULL);
    bool ok = c && !strcmp(str(c, "torch_dtype"), want);
    json_decref(c);
    return ok;
}

static void test_merge(void)
{
    const char *tiny = tmp("merged_tiny"), *tied = tmp("merged_tied");
    CHECK(MERGE("--model", fx("llama/tiny"), "--adapter", fx("llama/tiny_adapter"), "--out",
                tiny, "--dtype", "f32", "--quiet") == 0, "merge tiny: %s", aspo_error_message());
    double e = merged_err(tiny, "llama/tiny_outputs.safetensors", false, DT_F32);
    printf("  merged tiny (f32): logits rel err %.2e vs PEFT\n", e);
    CHECK(e <= LOGIT_TOL && config_dtype_is(tiny, "float32"), "merged tiny: %g", e);
    /* Default dtype: the model's torch_dtype (bf16 here); the tied lm_head stays tied. */
    CHECK(MERGE("--model", fx("llama/tied"), "--adapter", fx("llama/tied_adapter"), "--out",
                tied, "--quiet") == 0, "merge tied: %s", aspo_error_message());
    e = merged_err(tied, "llama/tied_outputs.safetensors", true, DT_BF16);
    printf("  merged tied (bf16): logits rel err %.2e vs PEFT\n", e);
    CHECK(e <= BF16_LOGIT_TOL && config_dtype_is(tied, "bfloat16") &&
          file_exists(join(tied, "generation_config.json")), "merged tied: %g", e);
    /* Scoring the merged model is scoring the model with its adapter. */
    const char *data = tmp("fixture_pairs.jsonl"), *out = tmp("merged_scores.jsonl");
    CHECK(SCORE("--model", tiny, "--data", data, "--out", out, "--quiet") == 0, "score merged: %s",
          aspo_error_message());
    json_t *a[4], *b[4];
    int na = read_jsonl(out, a, 4), nb = read_jsonl(tmp("fixture_adapter.jsonl"), b, 4);
    CHECK(na == 3 && nb == 3, "rows %d %d", na, nb);
    for (int i = 0; i < na && i < nb; i++) {
        CHECK_CLOSE(num(a[i], "ref_chosen_logps"), num(b[i], "ref_chosen_logps"), SCORE_TOL,
                    "merged vs adapter, chosen");
        CHECK_CLOSE(num(a[i], "ref_rejected_logps"), num(b[i], "ref_rejected_logps"), SCORE_TOL,
                    "merged vs adapter, rejected");
    }
    free_rows(a, na > 0 ? na : 0);
    free_rows(b, nb > 0 ? nb : 0);
}

/* ---- bad input ---- */

static void expect(int rc, int want_rc, const char *what, const char *in_message)
{
    const char *msg = aspo_error_message();
    CHECK(rc == want_rc, "%s: exit %d, want %d (%s)", what, rc, want_rc, msg);
    CHECK(!in_message || strstr(msg, in_message), "%s: message \"%s\" lacks \"%s\"", what, msg,
          in_message);
}

static void test_bad_input(void)
{
    const char *model = fx("llama/tiny"), *data = tmp("fixture_pairs.jsonl");
    const char *out = tmp("bad_out.jsonl");
    expect(SCORE("--data", data, "--out", out), 2, "no --model", "--model");
    expect(SCORE("--model", model, "--out", out), 2, "no --data", "--data");
    expect(SCORE("--model", model, "--data", data), 2, "no --out", "--out");
    expect(SCORE("--model", model, "--data", data, "--out", out, "--lr", "1"), 2, "unknown flag",
           "--lr");
    expect(SCORE("--model", model, "--data", data, "--out", out, "--batch-size", "0"), 2,
           "batch size 0", "--batch-size");
    expect(SCORE("--model", model, "--data", data, "--out", tmp_root), 2, "--out a directory",
           "is a directory");
    expect(SCORE("--model", model, "--data", tmp("none.jsonl"), "--out", out), 1, "no data file",
           "none.jsonl");
    expect(SCORE("--model", text_model(), "--tokenizer", fx("tokenizer/legacy"), "--data",
                 fx("data/rows.jsonl"), "--out", out, "--no-bos"), 1, "empty prompt, no BOS",
           "rows.jsonl:5:");
    /* An adapter of another model: v_proj is (8, r) there, (16, r) here. Nothing is written
     * and an older output survives. */
    write_text(out, "old\n");
    expect(SCORE("--model", model, "--data", data, "--out", out, "--adapter",
                 fx("llama/tied_adapter"), "--quiet"), 1, "adapter that does not fit", "v_proj");
    FILE *f = fopen(out, "r");
    char buf[8] = "";
    CHECK(f && fgets(buf, sizeof buf, f) && !strcmp(buf, "old\n") &&
              !file_exists(join(tmp_root, "bad_out.jsonl.tmp")),
          "old output kept, no temporary left");
    if (f) fclose(f);
    expect(MERGE("--model", model, "--adapter", fx("llama/tied_adapter"), "--out",
                 tmp("bad_merge")), 1, "merge: adapter that does not fit", "v_proj");
    expect(MERGE("--model", model, "--out", tmp("bad_merge")), 2, "merge without --adapter",
           "--adapter");
    /* lora_alpha 4e6 (scaling 1e6) takes the merged weights far beyond f16's 65504: refused,
     * counting the 21 adapted tensors (7 modules, 3 layers), and no weights written; bf16
     * holds them. */
    const char *huge = tmp("huge_adapter");
    mkdir(huge, 0755);
    json_t *cfg = json_load_file(fx("llama/tiny_adapter/adapter_config.json"), 0, NULL);
    CHECK(cfg && !json_object_set_new(cfg, "lora_alpha", json_integer(4000000)) &&
              !json_dump_file(cfg, join(huge, "adapter_config.json"), 0) &&
              copy_file(fx("llama/tiny_adapter/adapter_model.safetensors"),
                        join(huge, "adapter_model.safetensors")),
          "the huge adapter's files");
    json_decref(cfg);
    expect(MERGE("--model", fx("llama/tiny"), "--adapter", huge, "--out", tmp("f16_merge"),
                 "--dtype", "f16", "--quiet"), 2, "merge beyond f16's range",
           "21 tensors hold merged weights beyond f16's range");
    CHECK(!file_exists(join(tmp("f16_merge"), "model.safetensors")), "f16 overflow: no weights");
    CHECK(MERGE("--model", fx("llama/tiny"), "--adapter", huge, "--out", tmp("bf16_merge"),
                "--dtype", "bf16", "--quiet") == 0, "the same merge in bf16: %s",
          aspo_error_message());
    expect(MERGE("--model", model, "--adapter", fx("llama/tiny_adapter"), "--out", model), 2,
           "merge into the model", "--model directory");
    /* The model families without a merge say so; nothing is written. */
    expect(MERGE("--model", fx("llava/tiny_hf"), "--adapter", fx("llava/lora_adapter"), "--out",
                 tmp("llava_merge"), "--quiet"), 1, "merge a LLaVA",
           "into a LLaVA (llava-hf layout) checkpoint is not implemented yet");
    CHECK(!file_exists(tmp("llava_merge")), "merge a LLaVA: no output directory");

    /* A bad line: fatal, or skipped; later rows keep their line numbers as ids. Reference
     * fields already in a row are replaced (and stale per-token arrays dropped). */
    const char *mixed = tmp("mixed.jsonl");
    write_text(mixed, "{\"prompt_input_ids\": [1, 5], \"chosen_input_ids\": [6, 2], "
                      "\"rejected_input_ids\": [7, 2], \"ref_chosen_logps\": 5, "
                      "\"ref_rejected_logps\": 6, \"ref_chosen_token_logps\": [1, 4], "
                      "\"ref_rejected_token_logps\": [2, 4], \"note\": \"kept\"}\n"
                      "{\"prompt_input_ids\": [1, 5], \"chosen_input_ids\": []}\n"
                      "{\"prompt_input_ids\": [1, 9], \"chosen_input_ids\": [6, 2], "
                      "\"rejected_input_ids\": [8, 8, 2], \"id\": null}\n");
    expect(SCORE("--model", model, "--data", mixed, "--out", out, "--quiet"), 1, "bad line",
           ":2:");
    expect(SCORE("--model", model, "--data", mixed, "--out", out, "--skip-bad-lines", "--quiet"),
           0, "skip bad line", NULL);
    json_t *rows[4];
    int n = read_jsonl(out, rows, 4);
    CHECK(n == 2, "2 rows written, got %d", n);
    if (n == 2) {
        CHECK(json_integer_value(json_object_get(rows[0], "id")) == 1 &&
              json_integer_value(json_object_get(rows[1], "id")) == 3, "line-number ids 1, 3");
        CHECK(num(rows[0], "ref_chosen_logps") < 0 && num(rows[0], "ref_rejected_logps") < 0 &&
              !json_object_get(rows[0], "ref_chosen_token_logps") &&
              !strcmp(str(rows[0], "note"), "kept"),
              "old reference fields replaced, other fields kept");
    }
    free_rows(rows, n > 0 ? n : 0);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_score FIXTURES_DIR\n");
        return 2;
    }
    fixtures = argv[1];
    if (!(tmp_root = test_tmp_make("score"))) return 1;
    test_fixture();
    test_batch_size();
    test_run_equivalence();
    test_merge();
    test_bad_input();
    test_tmp_remove();
    return check_summary("score");
}
