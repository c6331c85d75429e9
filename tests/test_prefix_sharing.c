/* Prefix sharing (aspo/data/pair_pack.c) against the padded rows it replaces: the packed
 * layout of a hand-made batch, then the response log-probs and the LoRA gradients of a
 * LLaMA, a LLaVA and an InstructBLIP policy computed both ways on the backend under test,
 * with prompts shared, answers that begin alike, prompts that differ (keep_end cuts) and
 * a pair whose answers are the same; whole batches in one row and one pair per row. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aspo/data/pair_batch.h"
#include "aspo/model/policy.h"
#include "aspo/model/tiny_llama.h"
#include "backends/registry.h"
#include "nn/lora.h"
#include "nn/modules.h"
#include "tensor/autograd.h"
#include "tensor/tensor_ops.h"
#include "test_support.h"

/* Both ways compute the same f32 values in other orders: attention sums over other key
 * blocks (a packed block starts at its first visible key), GEMMs over other row counts, the
 * gradient of a shared prompt position one sum of both answers' instead of two. Rounding is
 * ~6e-8 relative per operation, through 2 layers and a log-softmax over 1000+ logits:
 * measured on the CPU, log-probs <= 1e-7 (0 in one row) and gradients <= 6e-7 of their
 * largest entry. 1e-5 leaves ~20x room and is far below what a token that sees its sibling
 * answer or has a wrong position gives (~1e-2). */
static const double LOGP_TOL = 1e-5, GRAD_TOL = 1e-5;

static const char *fixtures, *tmp_root;

enum { PAIRS = 5 };

static int32_t *ids_of(const int32_t *v, int64_t n)
{
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)n);
    memcpy(ids, v, sizeof(int32_t) * (size_t)n);
    return ids;
}

/* A sequence: prompt then response; image (>= 0) is placed at image_at in the prompt. */
static pair_sequence sequence(const int32_t *prompt, int64_t np, const int32_t *resp, int64_t nr)
{
    int32_t all[64];
    memcpy(all, prompt, sizeof(int32_t) * (size_t)np);
    memcpy(all + np, resp, sizeof(int32_t) * (size_t)nr);
    return (pair_sequence){.ids = ids_of(all, np + nr), .n = np + nr, .n_prompt = np};
}

/* The test pairs, ids below 900 (every model's vocabulary); `image` >= 0: each of pairs 0,
 * 2 and 4 has that placeholder at image_at of its prompt.
 *   0: a prompt shared, answers of 4 and 6 tokens;
 *   1: answers that begin with the same two tokens (shared past the prompt);
 *   2: prompts that differ from their first token (keep_end cut one more from rejected);
 *   3: the same answer twice (everything shared);
 *   4: a long prompt, one-token answers. */
static void make_pairs(tokenized_pair *p, int32_t image, int image_at)
{
    int32_t prompt[24], a[8], b[8];
    for (int i = 0; i < 24; i++) prompt[i] = (int32_t)(5 + (i * 37) % 800);
    for (int i = 0; i < 8; i++) {
        a[i] = (int32_t)(100 + i * 11);
        b[i] = (int32_t)(300 + i * 13);
    }
    bool img[PAIRS] = {true, false, true, false, true};
    int64_t np[PAIRS] = {6, 4, 7, 3, 20};
    for (int k = 0; k < PAIRS; k++) {
        int32_t pr[24];
        memcpy(pr, prompt + k, sizeof(int32_t) * (size_t)np[k]);
        pr[0] = 1; /* BOS */
        if (image >= 0 && img[k]) pr[image_at] = image;
        int32_t ra[8], rb[8];
        memcpy(ra, a, sizeof ra);
        memcpy(rb, b, sizeof rb);
        int64_t nc = 4, nr = 6;
        if (k == 1) rb[0] = ra[0], rb[1] = ra[1], nc = 3, nr = 5;
        if (k == 3) memcpy(rb, ra, sizeof rb), nc = nr = 5;
        if (k == 4) nc = nr = 1;
        p[k].chosen = sequence(pr, np[k], ra, nc);
        p[k].rejected = k == 2 ? sequence(pr + 1, np[k] - 1, rb, nr) : sequence(pr, np[k], rb, nr);
    }
}

static void free_pairs(tokenized_pair *p)
{
    for (int k = 0; k < PAIRS; k++) {
        free(p[k].chosen.ids);
        free(p[k].rejected.ids);
    }
}

/* The packed rows say, for every real cell of the padded view, the same token at the same
 * position; the shared prefix is one place for both rows; the answers see their prefix and
 * not each other; nothing is computed twice. */
static void test_layout(void)
{
    tokenized_pair p[PAIRS];
    make_pairs(p, 900, 1);
    const tokenized_pair *pp[PAIRS];
    for (int k = 0; k < PAIRS; k++) pp[k] = &p[k];
    pair_batch_images img = {900, 3, false};
    static const int budgets[] = {0, 30, 1000};
    for (int k = 0; k < 3; k++) {
        int budget = budgets[k];
        pair_batch b;
        CHECK(pair_batch_build(pp, PAIRS, 0, &img, &b) == ASPO_OK, "build: %s",
              aspo_error_message());
        CHECK(pair_batch_pack(&b, 0, budget) == ASPO_OK, "pack: %s", aspo_error_message());
        int64_t W = b.packed.width, real = 0;
        bool same = true, ordered = true;
        for (int64_t c = 0; c < 2 * PAIRS * b.T; c++) {
            int32_t at = b.packed.at[c];
            if (b.mask[c] == 0) {
                same &= at == -1;
                continue;
            }
            real++;
            int64_t row = at / W, w = at % W;
            same &= b.packed.ids[at] == b.ids[c] && b.packed.positions[at] == c % b.T &&
                    b.packed.feature_row[at] == b.feature_row[c] && row < b.packed.rows;
            /* the segment: one's own answer, or the prefix it shares */
            const int32_t *layout = b.packed.layout + row * 2 * W;
            ordered &= layout[w] >= 0 && (layout[w] == layout[W + w] || layout[w] % 3 != 0);
        }
        CHECK(same && ordered, "budget %d: every real cell is its packed token", budget);
        /* pair 0: 6 + 2 image positions shared, then 4 and 6 answer tokens */
        CHECK(b.packed.at[0] == b.packed.at[PAIRS * b.T] &&
                  b.packed.at[7] == b.packed.at[PAIRS * b.T + 7] &&
                  b.packed.at[8] != b.packed.at[PAIRS * b.T + 8],
              "budget %d: pair 0 shares its 8 prompt positions only", budget);
        /* pair 1 shares 4 + 2, pair 2 nothing, pair 3 everything */
        CHECK(b.packed.at[1 * b.T + 5] == b.packed.at[(PAIRS + 1) * b.T + 5] &&
                  b.packed.at[1 * b.T + 6] != b.packed.at[(PAIRS + 1) * b.T + 6],
              "budget %d: pair 1 shares its answers' common start", budget);
        CHECK(b.packed.at[2 * b.T] != b.packed.at[(PAIRS + 2) * b.T],
              "budget %d: pair 2's prompts differ: nothing shared", budget);
        CHECK(b.packed.at[3 * b.T + 7] == b.packed.at[(PAIRS + 3) * b.T + 7],
              "budget %d: pair 3 is computed once", budget);
        /* units: lc + lr - shared, image placeholders as 3 positions */
        int64_t want = (12 + 14 - 8) + (7 + 9 - 6) + (13 + 14 - 0) + (8 + 8 - 8) + (23 + 23 - 22);
        CHECK(b.packed.computed == want && real > want,
              "budget %d: %lld positions computed, want %lld (of %lld padded-view tokens)",
              budget, (long long)b.packed.computed, (long long)want, (long long)real);
        /* First fit. 0 is the largest pair's 27: {0: 18, 3: 8}, {1: 10}, {2: 27}, {4: 24};
         * 30: {0: 18, 1: 10}, {2: 27}, {3: 8} (8 fits no earlier row), {4: 24} (nor 24);
         * 1000: one row of all 87. */
        int want_rows = budget == 1000 ? 1 : 4, want_width = budget == 1000 ? 87 : budget ? 28 : 27;
        CHECK(b.packed.rows == want_rows && b.packed.width == want_width,
              "budget %d: %d rows of %lld, want %d of %d", budget, b.packed.rows,
              (long long)b.packed.width, want_rows, want_width);
        pair_batch_free(&b);
    }
    free_pairs(p);
}

/* Response log-probs (2P,T) of the pairs on p, padded or packed (budget), and the
 * gradients of sum(g * logp) over every trainable parameter, concatenated on the host. */
static float *logps_and_grads(policy_model *p, const tokenized_pair *pairs, bool packed,
                              int64_t budget, const float *vision, float **grads, int64_t *n_logp,
                              int64_t *n_grad)
{
    const tokenized_pair *pp[PAIRS];
    for (int k = 0; k < PAIRS; k++) pp[k] = &pairs[k];
    pair_batch_images img;
    bool images = policy_images(p, &img);
    pair_batch b;
    if (pair_batch_make(pp, PAIRS, 0, images ? &img : NULL, !packed, budget, &b)) return NULL;
    param_store *ps = &p->lm->ps;
    param_store_zero_grad(ps);
    tensor *logp = policy_logprobs(p, &b, vision, NULL);                   /* (2P,T) */
    int64_t cells = 2 * PAIRS * b.T;
    float *host = malloc(sizeof(float) * (size_t)cells), *g = malloc(sizeof(float) * (size_t)cells);
    for (int64_t c = 0; c < cells; c++) g[c] = (float)((c * 7919) % 13) / 13.0f - 0.4f;
    aspo_status s = logp ? tensor_to_host_f32(logp, host) : aspo_error_status();
    if (!s) s = tensor_backward(tensor_sum_all(tensor_mul(logp, tensor_from_host(DT_F32, DIMS(2 * PAIRS, b.T), g))));
    int64_t total = 0;
    for (int i = 0; i < ps->n; i++) total += ps->grads[i] ? tensor_numel(ps->grads[i]) : 0;
    *grads = malloc(sizeof(float) * (size_t)(total ? total : 1));
    for (int i = 0, at = 0; !s && i < ps->n; i++)
        if (ps->grads[i]) {
            s = tensor_to_host_f32(ps->grads[i], *grads + at);
            at += (int)tensor_numel(ps->grads[i]);
        }
    runtime_step_reset();
    pair_batch_free(&b);
    free(g);
    *n_logp = cells;
    *n_grad = total;
    if (s) {
        free(host);
        free(*grads);
        return NULL;
    }
    return host;
}

/* The policy in model_dir, LoRA r 4 on every linear (B non-zero, so every adapter's
 * gradients are too), padded against packed in one row and one pair per row. */
static void compare_model(const char *what, const char *model_dir, int32_t image, int image_at)
{
    policy_options o = policy_defaults();
    o.model = model_dir;
    o.activation_dtype = DT_F32;
    o.lora = (lora_config){.r = 4, .alpha = 8.0f};
    o.lora_targets = "all-linear";
    o.lora_seed = 3;
    policy_model p;
    if (policy_open(&o, &p)) {
        CHECK(0, "%s: open: %s", what, aspo_error_message());
        return;
    }
    param_store *ps = &p.lm->ps;
    for (int i = 0; i < ps->n; i++)
        if (strstr(ps->items[i]->name, ".lora_B.")) tensor_fill(ps->items[i], 0.05f);
    tokenized_pair pairs[PAIRS];
    make_pairs(pairs, image, image_at);
    size_t per = policy_feature_floats(&p);
    float *vision = malloc(sizeof(float) * (per * 3 + 1)); /* pairs 0, 2, 4 have images */
    for (size_t i = 0; i < per * 3; i++) vision[i] = (float)sin((double)i * 0.37) * 0.5f;
    bool training = nn_set_training(false);
    int64_t n_logp, n_grad, n2, g2;
    float *grad_pad, *grad_pack;
    float *pad = logps_and_grads(&p, pairs, false, 0, image >= 0 ? vision : NULL, &grad_pad,
                                 &n_logp, &n_grad);
    CHECK(pad != NULL, "%s: padded: %s", what, aspo_error_message());
    static const int64_t budgets[] = {100000, 0, 1}; /* one row; the default; a row per pair */
    static const char *const budget_names[] = {"one row", "rows of the largest pair",
                                               "a row per pair"};
    for (int k = 0; pad && k < 3; k++) {
        int64_t budget = budgets[k];
        float *pack = logps_and_grads(&p, pairs, true, budget, image >= 0 ? vision : NULL,
                                      &grad_pack, &n2, &g2);
        CHECK(pack != NULL, "%s: packed: %s", what, aspo_error_message());
        if (!pack) break;
        double e = rel_err(pack, pad, n_logp), eg = rel_err(grad_pack, grad_pad, n_grad);
        CHECK(n2 == n_logp && e <= LOGP_TOL, "%s, %s: log-probs differ by %.2e (bound %.0e)",
              what, budget_names[k], e, LOGP_TOL);
        CHECK(g2 == n_grad && n_grad > 0 && eg <= GRAD_TOL,
              "%s, %s: LoRA gradients differ by %.2e (bound %.0e)", what, budget_names[k], eg,
              GRAD_TOL);
        if (getenv("ASPO_TEST_VERBOSE"))
            printf("%s, %s: log-probs %.2e, gradients %.2e\n", what, budget_names[k], e, eg);
        free(pack);
        free(grad_pack);
    }
    nn_set_training(training);
    free(pad);
    free(grad_pad);
    free(vision);
    free_pairs(pairs);
    policy_close(&p);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_prefix_sharing FIXTURE_DIR [BACKEND]\n");
        return 2;
    }
    fixtures = argv[1];
    backend *be = argc > 2 ? backend_get(argv[2]) : backend_cpu();
    if (!be) {
        printf("SKIP: %s\n", aspo_error_message());
        return 77;
    }
    if (!(tmp_root = test_tmp_make("prefix_sharing"))) return 1;
    runtime_init(be, 0);
    test_layout();
    const char *llama = join(tmp_root, "llama");
    tiny_llama_spec spec = {2, 64, 4, 2, 96, 1000, 256, 1, 2, -1};
    CHECK(tiny_llama_write(llama, &spec, 5) == ASPO_OK, "tiny LLaMA: %s", aspo_error_message());
    compare_model("LLaMA", llama, -1, 0);
    compare_model("LLaVA", join(fixtures, "llava/tiny_hf"), 1000, 1);
    compare_model("InstructBLIP", join(fixtures, "instructblip/tiny"), 1024, 0);
    runtime_shutdown();
    test_tmp_remove();
    return check_summary("prefix_sharing");
}
