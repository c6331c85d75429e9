/* The ASPO method on the host: sentence units, token mapping, the worked examples of
 * shared/ASPO_METHOD.md (fixtures/method/aspo_cases.json), degenerate normalisation, both
 * k branches, gradients by finite differences, and DPO + metrics against TRL 0.13.0
 * (fixtures/method/trl_dpo.json from tests/parity/make_method_trl.py).
 * Usage: test_method FIXTURE_DIR */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aspo/train/preference_loss.h"
#include "aspo/data/sentences.h"
#include "check.h"

enum { MAXT = 64 };

/* ---- sentence splitting ------------------------------------------------------------ */

/* Expected sentences joined by '|'; "" for none. */
static const struct split_case {
    const char *text, *want;
} split_cases[] = {
    {"The cat sat. It purred.", "The cat sat.|It purred."},
    {"Is it red?! Yes!!! Sure.", "Is it red?!|Yes!!!|Sure."},
    {"It costs 3.5 dollars. Then 4.25.", "It costs 3.5 dollars.|Then 4.25."},
    {"version 2.0.1 is out.", "version 2.0.1 is out."},
    {"Fruits, e.g. apples, i.e. red ones. Done.", "Fruits, e.g. apples, i.e. red ones.|Done."},
    {"Some fruits (e.g., apples) are red. Ok.", "Some fruits (e.g., apples) are red.|Ok."},
    {"Mr. Smith met Dr. Jones. They talked.", "Mr. Smith met Dr. Jones.|They talked."},
    {"Cats, dogs, etc. are pets. Yes.", "Cats, dogs, etc. are pets.|Yes."},
    {"The U.S. flag waves. Red.", "The U.S. flag waves.|Red."},
    {"Wait... he left. Then... nothing", "Wait... he left.|Then... nothing"},
    {"Is it \xE2\x80\xA6really? Yes.", "Is it \xE2\x80\xA6really?|Yes."},
    {"He said \"Stop.\" Then he left.", "He said \"Stop.\"|Then he left."},
    {"(See above.) Next one.", "(See above.)|Next one."},
    {"Smart: \xE2\x80\x9CHello.\xE2\x80\x9D Next.", "Smart: \xE2\x80\x9CHello.\xE2\x80\x9D|Next."},
    {"Items:\n1. Red apple\n2. Green pear\n- Blue sky",
     "Items:|1. Red apple|2. Green pear|- Blue sky"},
    {"a. first item. b. second", "a. first item.|b. second"},
    {"Line one\nLine two", "Line one|Line two"},
    {"Paragraph one.\n\nParagraph two.", "Paragraph one.|Paragraph two."},
    {"\tTabbed. \r\nCRLF line.", "Tabbed.|CRLF line."},
    {"No final punctuation here", "No final punctuation here"},
    {"What?yes", "What?yes"},
    {"Ends with an abbreviation etc.", "Ends with an abbreviation etc."},
    {"Trailing spaces.   \n\n  ", "Trailing spaces."},
    {"   \n\t ", ""},
    {"", ""},
    /* CJK stops count: they end a sentence with no space after them. */
    {"\xE7\x8C\xAB\xE3\x80\x82\xE7\x8B\x97\xEF\xBC\x81\xE5\x90\x97\xEF\xBC\x9F",
     "\xE7\x8C\xAB\xE3\x80\x82|\xE7\x8B\x97\xEF\xBC\x81|\xE5\x90\x97\xEF\xBC\x9F"},
    {"Mixed \xE7\x8C\xAB\xE3\x80\x82 English.", "Mixed \xE7\x8C\xAB\xE3\x80\x82|English."},
};

static void join_spans(const char *text, const aspo_span *s, int n, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = 0;
    for (int i = 0; i < n; i++)
        o += (size_t)snprintf(out + o, cap - o, "%s%.*s", i ? "|" : "",
                              (int)(s[i].end - s[i].begin), text + s[i].begin);
}

static void test_split(void)
{
    for (size_t c = 0; c < sizeof split_cases / sizeof split_cases[0]; c++) {
        const struct split_case *k = &split_cases[c];
        aspo_span spans[16];
        int n = -1;
        CHECK(aspo_split_sentences(k->text, strlen(k->text), spans, 16, &n) == ASPO_OK,
              "%s", aspo_error_message());
        char got[512];
        join_spans(k->text, spans, n, got, sizeof got);
        CHECK(strcmp(got, k->want) == 0, "split \"%s\": got \"%s\", want \"%s\"", k->text, got,
              k->want);
    }
    /* The count is returned past cap, as snprintf does. */
    aspo_span one[1];
    int n = 0;
    CHECK(aspo_split_sentences("Red. Blue. Tan.", 15, one, 1, &n) == ASPO_OK && n == 3 &&
              one[0].end == 4,
          "capped split: n %d", n);
}

/* ---- token to unit mapping ----------------------------------------------------------- */

/* Tokens as consecutive pieces of the text; NULL entries are spanless (EOS). */
typedef struct map_case {
    const char *text;
    const char *tokens[12];
    int n_tokens;
    int want_units[12];
    const char *want_texts; /* unit texts joined by '|' */
} map_case;

static const map_case map_cases[] = {
    {"The cat sat. It purred.",
     {"The", " cat", " sat", ".", " It", " pur", "red", ".", NULL}, 9,
     {0, 0, 0, 0, 1, 1, 1, 1, 1}, "The cat sat.|It purred."},
    /* whitespace-only tokens take the next token's unit */
    {"Hi.\n\nBye.", {"Hi", ".", "\n", "\n", "Bye", ".", NULL}, 7, {0, 0, 1, 1, 1, 1, 1},
     "Hi.|Bye."},
    /* trailing whitespace: nothing follows, so the previous unit */
    {"Hi. Bye.  ", {"Hi", ".", " Bye", ".", "  ", NULL}, 6, {0, 0, 1, 1, 1, 1}, "Hi.|Bye."},
    /* "No." lies inside a token that starts in "Yes.": merged into the unit before */
    {"Yes. No. Maybe.", {"Yes", ". No.", " Maybe", ".", NULL}, 5, {0, 0, 1, 1, 1},
     "Yes. No.|Maybe."},
    /* byte-fallback tokens split the UTF-8 of 'é' */
    {"Caf\xC3\xA9. Ok.", {"Caf", "\xC3", "\xA9", ".", " Ok", ".", NULL}, 7,
     {0, 0, 0, 0, 1, 1, 1}, "Caf\xC3\xA9.|Ok."},
    /* no text at all: one empty unit */
    {"   ", {"   ", NULL}, 2, {0, 0}, ""},
};

static void token_spans(const map_case *m, int64_t *begin, int64_t *end)
{
    int64_t pos = 0;
    for (int k = 0; k < m->n_tokens; k++) {
        begin[k] = end[k] = -1;
        if (!m->tokens[k]) continue;
        begin[k] = pos;
        end[k] = pos += (int64_t)strlen(m->tokens[k]);
    }
}

static void test_mapping(void)
{
    for (size_t c = 0; c < sizeof map_cases / sizeof map_cases[0]; c++) {
        const map_case *m = &map_cases[c];
        aspo_span units[12];
        int64_t begin[12], end[12];
        int32_t unit_of[12];
        int n_tok = m->n_tokens, n_units = 0;
        token_spans(m, begin, end);
        aspo_status s = aspo_response_units(ASPO_UNIT_SENTENCE, m->text, strlen(m->text),
                                            begin, end, n_tok, units, unit_of, &n_units);
        CHECK(s == ASPO_OK, "map \"%s\": %s", m->text, aspo_error_message());
        for (int k = 0; k < n_tok; k++)
            CHECK(unit_of[k] == m->want_units[k], "map \"%s\": token %d in unit %d, want %d",
                  m->text, k, (int)unit_of[k], m->want_units[k]);
        char got[256];
        join_spans(m->text, units, n_units, got, sizeof got);
        CHECK(strcmp(got, m->want_texts) == 0, "map \"%s\": units \"%s\", want \"%s\"", m->text,
              got, m->want_texts);
    }

    /* Spans need not cover the text: here the first sentence owns no token and is merged
     * into the one after it. */
    const char *text = " Red. Blue. ";
    int64_t b1[2] = {5, -1}, e1[2] = {11, -1};
    aspo_span units[4];
    int32_t unit_of[4];
    int n = 0;
    CHECK(aspo_response_units(ASPO_UNIT_SENTENCE, text, 12, b1, e1, 2, units, unit_of, &n) == 0 &&
              n == 1 && units[0].begin == 1 && units[0].end == 11 && unit_of[1] == 0,
          "leading sentence without tokens: n %d", n);
    /* Pre-tokenized rows have no spans: one unit, ASPO falls back to DPO for them. */
    CHECK(aspo_response_units(ASPO_UNIT_SENTENCE, text, 12, NULL, NULL, 3, units, unit_of,
                              &n) == 0 && n == 1 && unit_of[0] == 0 && unit_of[2] == 0,
          "no spans: n %d", n);

    /* Response and token levels. */
    int64_t b4[4] = {0, 4, 5, -1}, e4[4] = {4, 5, 12, -1};
    CHECK(aspo_response_units(ASPO_UNIT_RESPONSE, text, 12, b4, e4, 4, units, unit_of, &n) == 0 &&
              n == 1 && units[0].begin == 1 && units[0].end == 11 && unit_of[3] == 0,
          "response level: n %d", n);
    CHECK(aspo_response_units(ASPO_UNIT_TOKEN, text, 12, b4, e4, 4, units, unit_of, &n) == 0 &&
              n == 4 && unit_of[2] == 2 && units[2].begin == 5 && units[3].begin == 12 &&
              units[3].end == 12,
          "token level: n %d", n);

    /* Bad input is an error with a message, not an abort. */
    int64_t bb[2] = {0, -1}, be[2] = {20, -1};
    aspo_error_clear();
    CHECK(aspo_response_units(ASPO_UNIT_SENTENCE, text, 12, bb, be, 2, units, unit_of, &n) ==
              ASPO_ERR_USAGE && strstr(aspo_error_message(), "token 0"),
          "span past the text: %s", aspo_error_message());
    aspo_error_clear();
    CHECK(aspo_response_units(ASPO_UNIT_SENTENCE, text, 12, b4, e4, 0, units, unit_of, &n) ==
              ASPO_ERR_USAGE, "no tokens");
    aspo_error_clear();
}

/* ---- ASPO worked examples ------------------------------------------------------------ */

static json_t *load(const char *dir, const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    json_error_t err;
    json_t *j = json_load_file(path, 0, &err);
    CHECK(j != NULL, "%s: %s (line %d)", path, err.text, err.line);
    return j;
}

/* A JSON array of at most MAXT numbers into f32. */
static int floats(json_t *arr, float *out)
{
    size_t i;
    json_t *v;
    CHECK(json_array_size(arr) <= MAXT, "fixture array of %zu values", json_array_size(arr));
    json_array_foreach(arr, i, v) if (i < MAXT) out[i] = (float)json_number_value(v);
    return json_array_size(arr) <= MAXT ? (int)json_array_size(arr) : MAXT;
}

static void check_array(const char *what, const char *name, json_t *want, const double *got,
                        double tol)
{
    size_t i;
    json_t *v;
    char label[256];
    json_array_foreach(want, i, v) {
        snprintf(label, sizeof label, "%s: %s[%zu]", name, what, i);
        CHECK_CLOSE(got[i], json_number_value(v), tol, label);
    }
}

/* Every input and expected value is a double in the file; inputs pass through f32 (the
 * trainer's log-probs are f32), a relative rounding of 6e-8 that differences like
 * r_i = beta (logp - logp_ref) and the ratio k amplify to a few 1e-7 at most. */
#define CASE_TOL 2e-6

static void test_worked_examples(const char *dir)
{
    json_t *root = load(dir, "aspo_cases.json");
    if (!root) return;
    size_t c;
    json_t *cs;
    CHECK(json_array_size(json_object_get(root, "cases")) == 5, "five worked examples");
    json_array_foreach(json_object_get(root, "cases"), c, cs) {
        const char *name = json_string_value(json_object_get(cs, "name"));
        json_t *in = json_object_get(cs, "inputs"), *out = json_object_get(cs, "outputs");
        float pc[MAXT], rc[MAXT], pr[MAXT], rr[MAXT], S[MAXT];
        int32_t unit_of[MAXT];
        int nc = floats(json_object_get(in, "policy_logps_chosen"), pc);
        floats(json_object_get(in, "ref_logps_chosen"), rc);
        int nr = floats(json_object_get(in, "policy_logps_rejected"), pr);
        floats(json_object_get(in, "ref_logps_rejected"), rr);
        int nu = floats(json_object_get(in, "S_per_unit"), S);
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(in, "unit_of_chosen_token"), i, v)
            if (i < MAXT) unit_of[i] = (int32_t)json_integer_value(v);

        double ppl[MAXT], sn[MAXT], pn[MAXT], w[MAXT], ru[MAXT], coef[MAXT];
        float gc[MAXT], gr[MAXT];
        aspo_pair_trace tr = {.ppl = ppl, .s_norm = sn, .ppl_norm = pn, .w = w,
                              .reward_unit = ru, .coef_chosen = coef};
        aspo_pair p = {.n_chosen = nc, .n_rejected = nr, .policy_chosen = pc, .ref_chosen = rc,
                       .policy_rejected = pr, .ref_rejected = rr, .n_units = nu,
                       .unit_of_chosen = unit_of, .similarity = S, .grad_chosen = gc,
                       .grad_rejected = gr, .trace = &tr};
        aspo_loss_options o = aspo_loss_defaults(ASPO_LOSS_ASPO);
        o.beta = json_number_value(json_object_get(cs, "beta"));
        o.alpha = json_number_value(json_object_get(cs, "alpha"));
        double loss = 0;
        aspo_loss_stats st;
        CHECK(aspo_preference_loss(&o, &p, 1, &loss, &st) == ASPO_OK, "%s: %s", name,
              aspo_error_message());

        check_array("PPL_per_unit", name, json_object_get(out, "PPL_per_unit"), ppl, CASE_TOL);
        check_array("S_norm", name, json_object_get(out, "S_norm"), sn, CASE_TOL);
        check_array("PPL_norm", name, json_object_get(out, "PPL_norm"), pn, CASE_TOL);
        check_array("w", name, json_object_get(out, "w"), w, CASE_TOL);
        check_array("r_per_unit", name, json_object_get(out, "r_per_unit"), ru, CASE_TOL);
        check_array("coef_chosen", name, json_object_get(out, "coef_chosen"), coef, CASE_TOL);
        double g[MAXT];
        for (int t = 0; t < nc; t++) g[t] = gc[t];
        check_array("dloss_dpolicy_logp_chosen", name,
                    json_object_get(out, "dloss_dpolicy_logp_chosen"), g, CASE_TOL);
        for (int t = 0; t < nr; t++) g[t] = gr[t];
        check_array("dloss_dpolicy_logp_rejected", name,
                    json_object_get(out, "dloss_dpolicy_logp_rejected"), g, CASE_TOL);
        json_array_foreach(json_object_get(out, "coef_rejected"), i, v)
            CHECK_CLOSE(-o.beta, json_number_value(v), 1e-15, "coef_rejected");

        struct { const char *key; double got; } scalars[] = {
            {"R_c", tr.units_reward}, {"R_c_star", tr.units_reward_star}, {"k", tr.k},
            {"reward_rejected", tr.reward_rejected}, {"M_star", tr.margin}, {"loss", loss}};
        for (size_t k = 0; k < sizeof scalars / sizeof scalars[0]; k++) {
            char label[256];
            snprintf(label, sizeof label, "%s: %s", name, scalars[k].key);
            CHECK_CLOSE(scalars[k].got, json_number_value(json_object_get(out, scalars[k].key)),
                        CASE_TOL, label);
        }
        const char *branch = json_string_value(json_object_get(out, "k_branch"));
        aspo_k_branch want = strcmp(branch, "reward_ratio") == 0 ? ASPO_K_REWARD_RATIO
                                                                 : ASPO_K_TOKEN_COUNT;
        CHECK(tr.k_branch == want, "%s: k branch %d, want %s", name, (int)tr.k_branch, branch);
        CHECK(st.k_reward_ratio == (want == ASPO_K_REWARD_RATIO) &&
                  st.k_token_count == (want == ASPO_K_TOKEN_COUNT) && st.n_units == nu,
              "%s: branch counts %d/%d units %d", name, st.k_reward_ratio, st.k_token_count,
              st.n_units);

        /* Where the ratio is taken, ASPO's loss value is DPO's. */
        if (want == ASPO_K_REWARD_RATIO) {
            aspo_loss_options d = aspo_loss_defaults(ASPO_LOSS_DPO);
            d.beta = o.beta;
            aspo_pair q = p;
            q.grad_chosen = q.grad_rejected = NULL;
            q.trace = NULL;
            double dpo = 0;
            CHECK(aspo_preference_loss(&d, &q, 1, &dpo, NULL) == ASPO_OK, "dpo");
            CHECK_CLOSE(loss, dpo, 1e-12, "ASPO loss equals DPO's (ratio branch)");
        }
    }
    json_decref(root);
}

/* ---- gradients, degenerate cases, options ---------------------------------------------- */

typedef struct test_pair {
    float pc[MAXT], rc[MAXT], pr[MAXT], rr[MAXT], S[MAXT];
    int32_t unit_of[MAXT];
    int nc, nr, nu;
    float gc[MAXT], gr[MAXT];
    double w[MAXT], sn[MAXT], pn[MAXT];
    aspo_pair_trace tr;
} test_pair;

/* Chosen tokens split over nu units (contiguous), reference log-probs ref, policy = ref +
 * delta; rejected side fixed. */
static void make(test_pair *f, int nc, int nu, const double *ref, const double *delta)
{
    memset(f, 0, sizeof *f);
    f->nc = nc;
    f->nu = nu;
    f->nr = 3;
    for (int t = 0; t < nc; t++) {
        f->rc[t] = (float)ref[t];
        f->pc[t] = (float)(ref[t] + delta[t]);
        f->unit_of[t] = (int32_t)(t * nu / nc);
    }
    const float pr[3] = {-1.5f, -0.8f, -2.1f}, rr[3] = {-1.4f, -0.9f, -1.8f};
    memcpy(f->pr, pr, sizeof pr);
    memcpy(f->rr, rr, sizeof rr);
    for (int u = 0; u < nu; u++) f->S[u] = 0.2f + 0.05f * (float)((u * 7) % 5);
}

static aspo_pair as_pair(test_pair *f)
{
    f->tr = (aspo_pair_trace){.w = f->w, .s_norm = f->sn, .ppl_norm = f->pn};
    return (aspo_pair){.n_chosen = f->nc, .n_rejected = f->nr, .policy_chosen = f->pc,
                       .ref_chosen = f->rc, .policy_rejected = f->pr, .ref_rejected = f->rr,
                       .n_units = f->nu, .unit_of_chosen = f->unit_of, .similarity = f->S,
                       .grad_chosen = f->gc, .grad_rejected = f->gr, .trace = &f->tr};
}

static double run(const aspo_loss_options *o, test_pair *f)
{
    aspo_pair p = as_pair(f);
    double loss = NAN;
    CHECK(aspo_preference_loss(o, &p, 1, &loss, NULL) == ASPO_OK, "%s", aspo_error_message());
    return loss;
}

/* Central difference of the library's own loss in one policy log-prob. The step is
 * applied in f32 and the actual step divides, so input rounding does not bias it. */
static double fd(const aspo_loss_options *o, test_pair *f, float *x, double h)
{
    test_pair g = *f;
    float keep = *x, up = (float)(keep + h), down = (float)(keep - h);
    *x = up;
    double lu = run(o, f);
    *x = down;
    double ld = run(o, f);
    *x = keep;
    *f = g;
    return (lu - ld) / ((double)up - (double)down);
}

static const double REF[7] = {-1.5, -0.6, -2.2, -0.5, -1.0, -1.9, -0.4};
static const double POS[7] = {0.3, 0.2, 0.2, 0.2, 0.1, 0.4, 0.2};      /* all r_i > 0 */
static const double MIX[7] = {0.6, 0.5, -0.4, -0.6, -0.5, 0.1, 0.05};  /* k out of range */

/* Gradients are f32 outputs (relative 6e-8) of values ~0.05; the f64 central difference
 * of a loss that is smooth in each log-prob (curvature ~beta^2) with h = 1e-2 is exact to
 * ~1e-8. */
#define FD_TOL 1e-6

static void test_gradients(void)
{
    aspo_loss_options dpo = aspo_loss_defaults(ASPO_LOSS_DPO);
    aspo_loss_options as = aspo_loss_defaults(ASPO_LOSS_ASPO);
    dpo.label_smoothing = as.label_smoothing = 0.1;
    test_pair f, d;

    /* DPO: the library's gradient is the derivative of its loss. */
    make(&d, 7, 3, REF, POS);
    run(&dpo, &d);
    for (int t = 0; t < d.nc; t++)
        CHECK_CLOSE(d.gc[t], fd(&dpo, &d, &d.pc[t], 1e-2), FD_TOL, "DPO d/dlogp chosen");
    for (int t = 0; t < d.nr; t++)
        CHECK_CLOSE(d.gr[t], fd(&dpo, &d, &d.pr[t], 1e-2), FD_TOL, "DPO d/dlogp rejected");

    /* ASPO, ratio branch: the value is DPO's (finite differences through an undetached k
     * give DPO's gradient back), while the detached-k gradient of token t is DPO's scaled
     * by k (1 + w_unit(t)). Reference PPL keeps w fixed under the perturbation. */
    as.ppl_source = ASPO_PPL_REFERENCE;
    make(&f, 7, 3, REF, POS);
    CHECK_CLOSE(run(&as, &f), run(&dpo, &d), 1e-12, "ASPO value = DPO value");
    run(&as, &f);
    CHECK(f.tr.k_branch == ASPO_K_REWARD_RATIO && f.tr.k >= 0.5 && f.tr.k < 1, "k %g", f.tr.k);
    for (int t = 0; t < f.nc; t++) {
        double scale = f.tr.k * (1 + f.w[f.unit_of[t]]);
        CHECK_CLOSE(fd(&as, &f, &f.pc[t], 1e-2), d.gc[t], FD_TOL, "undetached k gives DPO");
        CHECK_CLOSE(f.gc[t], scale * d.gc[t], FD_TOL, "gradient scaled by k(1+w_i)");
    }
    CHECK(f.w[0] != f.w[1] || f.w[1] != f.w[2], "weights differ between units");

    /* ASPO, token-count branch with reference PPL: k and w do not depend on the policy, so
     * the library's loss is the detached one and finite differences check the gradient. */
    make(&f, 7, 3, REF, MIX);
    run(&as, &f);
    CHECK(f.tr.k_branch == ASPO_K_TOKEN_COUNT, "mixed rewards take the token-count branch");
    double dldm = f.gr[0] / -as.beta; /* rejected tokens carry -beta dL/dM */
    for (int t = 0; t < f.nc; t++) {
        CHECK_CLOSE(f.gc[t], fd(&as, &f, &f.pc[t], 1e-2), FD_TOL, "ASPO token-count d/dlogp");
        CHECK_CLOSE(f.gc[t], dldm * as.beta * f.tr.k * (1 + f.w[f.unit_of[t]]), 1e-7,
                    "token-count gradient scaled by k(1+w_i)");
    }
    for (int t = 0; t < f.nr; t++)
        CHECK_CLOSE(f.gr[t], fd(&as, &f, &f.pr[t], 1e-2), FD_TOL, "ASPO d/dlogp rejected");

    /* Policy PPL (the default): w moves with the policy but is detached; the gradient is
     * that of M* with w and k frozen at their values, which the test evaluates itself. */
    as.ppl_source = ASPO_PPL_POLICY;
    make(&f, 7, 3, REF, POS);
    run(&as, &f);
    double r_rej = 0;
    for (int t = 0; t < f.nr; t++) r_rej += as.beta * ((double)f.pr[t] - f.rr[t]);
    for (int t = 0; t < f.nc; t++) {
        double m[2], h = 1e-3;
        for (int side = 0; side < 2; side++) {
            double x = 0;
            for (int j = 0; j < f.nc; j++)
                x += (1 + f.w[f.unit_of[j]]) *
                     ((double)f.pc[j] + (j == t ? (side ? -h : h) : 0) - f.rc[j]);
            double M = f.tr.k * as.beta * x - r_rej, e = as.label_smoothing;
            m[side] = (1 - e) * log1p(exp(-M)) + e * log1p(exp(M));
        }
        CHECK_CLOSE(f.gc[t], (m[0] - m[1]) / (2 * h), FD_TOL, "frozen-w,k finite difference");
    }
}

static void test_degenerate(void)
{
    aspo_loss_options as = aspo_loss_defaults(ASPO_LOSS_ASPO);
    aspo_loss_options dpo = aspo_loss_defaults(ASPO_LOSS_DPO);
    test_pair f, d;

    /* One unit: w = 0, k = 1, ASPO is DPO in value and gradient. */
    make(&f, 5, 1, REF, POS);
    make(&d, 5, 1, REF, POS);
    CHECK_CLOSE(run(&as, &f), run(&dpo, &d), 1e-12, "one unit: DPO value");
    CHECK(f.w[0] == 0 && f.sn[0] == 0 && f.pn[0] == 0 && f.tr.k == 1, "one unit: w %g k %g",
          f.w[0], f.tr.k);
    for (int t = 0; t < 5; t++) CHECK_CLOSE(f.gc[t], d.gc[t], 1e-9, "one unit: DPO gradient");

    /* Equal similarities and equal perplexities: every normalised value is 0. */
    const double flat_ref[4] = {-1, -1, -1, -1}, flat_delta[4] = {0.1, 0.1, 0.1, 0.1};
    make(&f, 4, 2, flat_ref, flat_delta);
    f.S[0] = f.S[1] = 0.25f;
    run(&as, &f);
    CHECK(f.sn[0] == 0 && f.sn[1] == 0 && f.pn[0] == 0 && f.pn[1] == 0 && f.w[1] == 0 &&
              f.tr.k == 1, "max == min: zeros");

    /* Step 0 (policy = reference): every r_i is 0, token-count k, loss log 2. */
    const double zero[7] = {0};
    make(&f, 7, 3, REF, zero);
    memcpy(f.rr, f.pr, sizeof f.rr);
    run(&as, &f);
    double weighted = 0;
    for (int t = 0; t < 7; t++) weighted += 1 + f.w[f.unit_of[t]];
    CHECK(f.tr.k_branch == ASPO_K_TOKEN_COUNT && fabs(f.tr.k - 7 / weighted) < 1e-15 &&
              fabs(f.tr.loss - log(2.0)) < 1e-15, "step 0: k %g loss %g", f.tr.k, f.tr.loss);

    /* Token level: unit t is token t, PPL_t = exp(-logp_t). */
    as.level = ASPO_UNIT_TOKEN;
    make(&f, 4, 4, REF, POS);
    double ppl[4];
    f.tr.ppl = ppl;
    aspo_pair p = as_pair(&f);
    p.trace->ppl = ppl;
    double loss;
    CHECK(aspo_preference_loss(&as, &p, 1, &loss, NULL) == ASPO_OK, "token level");
    CHECK_CLOSE(ppl[2], exp(-(double)f.pc[2]), 1e-12, "token-level PPL");

    /* Response level: min-max over the responses of the batch. With a k per pair,
     * k (1 + w) = 1 exactly, so ASPO is DPO; a batch-wide k makes it differ. */
    as.level = ASPO_UNIT_RESPONSE;
    test_pair b[3], c[3];
    aspo_pair bp[3], cp[3];
    const double scale[3] = {1.0, 0.5, 2.0};
    for (int i = 0; i < 3; i++) {
        double delta[7];
        for (int t = 0; t < 7; t++) delta[t] = POS[t] * scale[i] - 0.05 * i;
        make(&b[i], 6 - i, 1, REF, delta);
        b[i].S[0] = 0.2f + 0.1f * (float)i;
        bp[i] = as_pair(&b[i]);
        make(&c[i], 6 - i, 1, REF, delta);
        cp[i] = as_pair(&c[i]);
    }
    double la, ld;
    aspo_loss_stats st;
    CHECK(aspo_preference_loss(&as, bp, 3, &la, &st) == ASPO_OK, "%s", aspo_error_message());
    CHECK(aspo_preference_loss(&dpo, cp, 3, &ld, NULL) == ASPO_OK, "%s", aspo_error_message());
    CHECK(b[0].sn[0] == 0 && b[2].sn[0] == 1 && fabs(b[1].sn[0] - 0.5) < 1e-6,
          "response level: S' over the batch %g %g %g", b[0].sn[0], b[1].sn[0], b[2].sn[0]);
    CHECK(st.w_max > 0 && st.n_units == 3, "response level: w_max %g", st.w_max);
    CHECK_CLOSE(la, ld, 1e-12, "response level, pair k: DPO loss");
    for (int i = 0; i < 3; i++)
        for (int t = 0; t < b[i].nc; t++)
            CHECK_CLOSE(b[i].gc[t], c[i].gc[t], 1e-9, "response level, pair k: DPO gradient");
    as.k_scope = ASPO_K_BATCH;
    CHECK(aspo_preference_loss(&as, bp, 3, &la, &st) == ASPO_OK, "%s", aspo_error_message());
    CHECK(b[0].tr.k == b[2].tr.k && st.k_reward_ratio + st.k_token_count == 1 &&
              fabs(la - ld) > 1e-6, "batch k: k %g, %d decisions, loss %g vs %g", b[0].tr.k,
          st.k_reward_ratio + st.k_token_count, la, ld);
    /* A batch of one response: nothing to normalise against. */
    as.k_scope = ASPO_K_PAIR;
    CHECK(aspo_preference_loss(&as, bp, 1, &la, NULL) == ASPO_OK && b[0].w[0] == 0, "one response");
}

static void expect_fail(const aspo_loss_options *o, aspo_pair *p, int n, aspo_status want,
                        const char *needle, const char *what)
{
    double loss = 0;
    aspo_error_clear();
    aspo_status s = aspo_preference_loss(o, p, n, &loss, NULL);
    CHECK(s == want && strstr(aspo_error_message(), needle), "%s: status %s, message \"%s\"",
          what, aspo_status_name(s), aspo_error_message());
    aspo_error_clear();
}

static void test_options_and_errors(void)
{
    aspo_loss_options o = aspo_loss_defaults(ASPO_LOSS_ASPO);
    test_pair f;
    make(&f, 7, 3, REF, POS);
    aspo_pair p = as_pair(&f);

    /* Text-only data: no S, so alpha must be 0 (or P-only weights). */
    p.similarity = NULL;
    expect_fail(&o, &p, 1, ASPO_ERR_USAGE, "text-only", "alpha 0.5 without S");
    o.weights = ASPO_WEIGHTS_S;
    expect_fail(&o, &p, 1, ASPO_ERR_USAGE, "S-only", "S-only weights without S");
    o.weights = ASPO_WEIGHTS_P;
    double loss;
    aspo_loss_stats st;
    CHECK(aspo_preference_loss(&o, &p, 1, &loss, &st) == ASPO_OK && isnan(st.s_norm_mean) &&
              st.w_max == 1, "P-only on text-only data");
    o.weights = ASPO_WEIGHTS_SP;
    o.alpha = 0;
    CHECK(aspo_preference_loss(&o, &p, 1, &loss, NULL) == ASPO_OK, "alpha 0 on text-only");
    p.similarity = f.S;
    o.weights = ASPO_WEIGHTS_S; /* S only: w = S' */
    CHECK(aspo_preference_loss(&o, &p, 1, &loss, NULL) == ASPO_OK &&
              f.w[0] == f.sn[0] && f.w[2] == f.sn[2], "S-only weights are S'");
    o = aspo_loss_defaults(ASPO_LOSS_ASPO);

    o.beta = 0;
    expect_fail(&o, &p, 1, ASPO_ERR_USAGE, "beta", "beta 0");
    o.beta = 0.1;
    o.label_smoothing = 0.7;
    expect_fail(&o, &p, 1, ASPO_ERR_USAGE, "label smoothing", "eps 0.7");
    o.label_smoothing = 0;
    o.alpha = 1.5;
    expect_fail(&o, &p, 1, ASPO_ERR_USAGE, "alpha", "alpha 1.5");
    o.alpha = 0.5;
    expect_fail(&o, &p, 0, ASPO_ERR_USAGE, "0 pairs", "empty batch");
    f.unit_of[6] = 3;
    expect_fail(&o, &p, 1, ASPO_ERR_USAGE, "unit 3", "unit out of range");
    f.unit_of[4] = f.unit_of[5] = f.unit_of[6] = 1; /* unit 2 owns nothing */
    expect_fail(&o, &p, 1, ASPO_ERR_USAGE, "unit 2 owns no", "empty unit");
    make(&f, 7, 3, REF, POS);
    p = as_pair(&f);
    f.rc[2] = NAN;
    expect_fail(&o, &p, 1, ASPO_ERR_NUMERIC, "token 2", "NaN log-prob");
    make(&f, 7, 3, REF, POS);
    p = as_pair(&f);
    o.level = ASPO_UNIT_RESPONSE;
    expect_fail(&o, &p, 1, ASPO_ERR_USAGE, "response-level", "3 units at response level");

    /* The metric list: TRL's eight names, then aspo/... for ASPO only. */
    aspo_metric m[32];
    o = aspo_loss_defaults(ASPO_LOSS_ASPO);
    CHECK(aspo_preference_loss(&o, &p, 1, &loss, &st) == ASPO_OK, "metrics run");
    int n = aspo_loss_metrics(&o, &st, m, 32);
    CHECK(n == 30 && strcmp(m[0].name, "rewards/chosen") == 0 &&
              strcmp(m[7].name, "logits/rejected") == 0 && strcmp(m[14].name, "aspo/units") == 0 &&
              m[14].value == 3, "ASPO metrics: %d", n);
    o.kind = ASPO_LOSS_DPO;
    CHECK(aspo_loss_metrics(&o, &st, m, 4) == 8, "DPO metrics: 8 names");
}

/* ---- DPO and TRL's metrics ----------------------------------------------------------- */

/* Per-token log-probs (|x| up to ~6) pass through f32: sums of up to 6 tokens move by
 * ~2e-6 and beta up to 2 doubles that in the rewards; everything else is f64. */
#define TRL_TOL 1e-5

static void test_trl(const char *dir)
{
    json_t *root = load(dir, "trl_dpo.json");
    if (!root) return;
    size_t c;
    json_t *cs;
    CHECK(json_array_size(json_object_get(root, "cases")) == 3, "three TRL cases");
    json_array_foreach(json_object_get(root, "cases"), c, cs) {
        const char *name = json_string_value(json_object_get(cs, "name"));
        json_t *pairs = json_object_get(cs, "pairs"), *exp = json_object_get(cs, "expected");
        int n = (int)json_array_size(pairs);
        float buf[8][4][MAXT], grads[8][2][MAXT];
        aspo_pair p[8];
        CHECK(n <= 8, "%s: %d pairs", name, n);
        for (int i = 0; i < n && i < 8; i++) {
            json_t *j = json_array_get(pairs, (size_t)i);
            p[i] = (aspo_pair){
                .n_chosen = floats(json_object_get(j, "policy_chosen"), buf[i][0]),
                .n_rejected = floats(json_object_get(j, "policy_rejected"), buf[i][2]),
                .policy_chosen = buf[i][0], .ref_chosen = buf[i][1],
                .policy_rejected = buf[i][2], .ref_rejected = buf[i][3],
                .logits_sum_chosen = json_number_value(json_object_get(j, "logits_sum_chosen")),
                .logits_sum_rejected = json_number_value(json_object_get(j, "logits_sum_rejected")),
                .logits_count_chosen =
                    json_integer_value(json_object_get(j, "logits_count_chosen")),
                .logits_count_rejected =
                    json_integer_value(json_object_get(j, "logits_count_rejected")),
                .grad_chosen = grads[i][0], .grad_rejected = grads[i][1]};
            floats(json_object_get(j, "ref_chosen"), buf[i][1]);
            floats(json_object_get(j, "ref_rejected"), buf[i][3]);
        }
        aspo_loss_options o = aspo_loss_defaults(ASPO_LOSS_DPO);
        o.beta = json_number_value(json_object_get(cs, "beta"));
        o.label_smoothing = json_number_value(json_object_get(cs, "label_smoothing"));
        double loss = 0;
        aspo_loss_stats st;
        CHECK(aspo_preference_loss(&o, p, n, &loss, &st) == ASPO_OK, "%s: %s", name,
              aspo_error_message());
        char label[256];
        snprintf(label, sizeof label, "%s: loss", name);
        CHECK_CLOSE(loss, json_number_value(json_object_get(exp, "loss")), TRL_TOL, label);
        aspo_metric m[32];
        int nm = aspo_loss_metrics(&o, &st, m, 32);
        json_t *want = json_object_get(exp, "metrics");
        CHECK(nm == (int)json_object_size(want), "%s: %d metrics, TRL logs %zu", name, nm,
              json_object_size(want));
        for (int k = 0; k < nm; k++) {
            json_t *v = json_object_get(want, m[k].name);
            snprintf(label, sizeof label, "%s: %s", name, m[k].name);
            CHECK(v != NULL, "%s missing from TRL's metrics", label);
            if (v) CHECK_CLOSE(m[k].value, json_number_value(v), TRL_TOL, label);
        }
        for (int i = 0; i < n; i++) {
            json_t *jc = json_object_get(exp, "grad_pair_chosen");
            json_t *jr = json_object_get(exp, "grad_pair_rejected");
            double gc = json_number_value(json_array_get(jc, (size_t)i));
            double gr = json_number_value(json_array_get(jr, (size_t)i));
            snprintf(label, sizeof label, "%s: pair %d gradient", name, i);
            for (int t = 0; t < p[i].n_chosen; t++)
                CHECK_CLOSE(grads[i][0][t], gc, TRL_TOL, label);
            for (int t = 0; t < p[i].n_rejected; t++)
                CHECK_CLOSE(grads[i][1][t], gr, TRL_TOL, label);
        }
    }
    json_decref(root);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FIXTURE_DIR (tests/fixtures/method)\n", argv[0]);
        return 2;
    }
    test_split();
    test_mapping();
    test_worked_examples(argv[1]);
    test_gradients();
    test_degenerate();
    test_options_and_errors();
    test_trl(argv[1]);
    return check_summary("method");
}
