/* `aspo run --dry-run` against real runs. The plan of the tiny LLaMA (with and without
 * gradient checkpointing) and of the tiny LLaVA (ASPO with CLIP similarities) must predict
 * the peak that the same run measures on the CPU backend within 15% (the bound;
 * the plan runs the same code, so it is exact in practice), and the parts must add up.
 * A LLaVA-1.5-7B config without weights must plan with small host memory, with the known
 * parameter counts, and fit 80 GB with gradient checkpointing. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "backends/registry.h"
#include "aspo/cli/commands.h"
#include "aspo/model/tiny_llama.h"
#include "aspo/train/trainer.h"
#include "models/weights.h"
#include "tensor/backend.h"
#include "tests/test_support.h"

static const char *fixtures, *tmp_root;

static double rel_diff(size_t a, size_t b)
{
    return b ? ((double)a - (double)b) / (double)b : (a ? 1.0 : 0.0);
}

/* Real run (measured) then --dry-run (planned) of cfg; `what` names it in messages. */
static void compare(train_config cfg, const char *what)
{
    train_summary real, plan;
    cfg.quiet = true;
    aspo_status s = train_run(&cfg, &real);
    CHECK(s == ASPO_OK, "%s: real run: %s", what, aspo_error_message());
    if (s) return;
    CHECK(file_exists(join(cfg.out, "memory.json")), "%s: the real run writes memory.json", what);
    cfg.dry_run = true;
    cfg.out = join(tmp_root, "never_made");
    s = train_run(&cfg, &plan);
    CHECK(s == ASPO_OK, "%s: plan: %s", what, aspo_error_message());
    if (s) return;
    CHECK(!file_exists(cfg.out), "%s: the plan writes nothing, not even --out", what);
    const train_memory *r = &real.memory, *p = &plan.memory;
    /* The parameter stores are the same code and shapes either way: equal to the byte. */
    CHECK(p->weights == r->weights && p->weights > 0, "%s: weights %zu planned, %zu measured",
          what, p->weights, r->weights);
    CHECK(p->lora == r->lora && p->lora > 0, "%s: LoRA %zu planned, %zu measured", what, p->lora,
          r->lora);
    CHECK(p->gradients == r->gradients && p->optimizer == r->optimizer &&
              p->optimizer == 2 * p->gradients,
          "%s: gradients %zu/%zu, optimizer %zu/%zu (planned/measured)", what, p->gradients,
          r->gradients, p->optimizer, r->optimizer);
    /* The plan's batch is the run's longest, so the arena's use matches the worst step. */
    CHECK(fabs(rel_diff(p->activations_used, r->activations_used)) <= 0.15,
          "%s: activations used %zu planned, %zu measured", what, p->activations_used,
          r->activations_used);
    CHECK(fabs(rel_diff(p->peak, r->peak)) <= 0.15, "%s: peak %zu planned, %zu measured (%+.1f%%)",
          what, p->peak, r->peak, 100 * rel_diff(p->peak, r->peak));
    /* Nothing else goes through the backend: the parts are the peak, in both. */
    for (int k = 0; k < 2; k++) {
        const train_memory *m = k ? p : r;
        size_t sum = m->weights + m->lora + m->gradients + m->optimizer + m->activations;
        CHECK(sum == m->peak, "%s (%s): parts add to %zu, peak %zu", what,
              k ? "plan" : "measured", sum, m->peak);
    }
}

static void test_llama(void)
{
    const char *model = join(tmp_root, "llama");
    tiny_llama_spec spec = {2, 64, 4, 2, 172, 1000, 2048, 1, 2, -1};
    CHECK(tiny_llama_write(model, &spec, 0) == ASPO_OK, "tiny llama: %s", aspo_error_message());
    train_config c = train_defaults();
    c.model = model;
    c.tokenizer = join(fixtures, "tokenizer/legacy");
    c.data = join(fixtures, "cli/text.jsonl");
    c.batch_size = 2;
    c.lr = 1e-3;
    c.out = join(tmp_root, "llama_out");
    compare(c, "tiny LLaMA");
    c.gradient_checkpointing = true;
    c.out = join(tmp_root, "llama_gc_out");
    c.loss = "dpo";
    compare(c, "tiny LLaMA, DPO, gradient checkpointing");
}

/* ASPO with S on the committed image pairs, LoRA r 4: one step of all 8 pairs, so that the
 * plan's batch (the costliest pairs) is the step's. A packed batch costs the sum of its
 * pairs, so two steps mixing other pairs would measure less than the plan. */
static train_config image_run(const char *model, const char *out)
{
    train_config c = train_defaults();
    c.model = join(fixtures, model);
    c.clip_model = join(fixtures, "llava/clip");
    c.data = join(fixtures, "llava_data/pairs.jsonl");
    c.image_root = join(fixtures, "llava_data/images");
    c.batch_size = 8;
    c.max_steps = 1;
    c.lora_r = 4;
    c.lr = 1e-3;
    c.out = join(tmp_root, out);
    return c;
}

static void test_llava(void)
{
    compare(image_run("llava/tiny_hf", "llava_out"), "tiny LLaVA, ASPO with S");
}

static void test_instructblip(void)
{
    train_config c = image_run("instructblip/tiny", "instructblip_out");
    c.lora_targets = "q_proj,k_proj,v_proj";
    compare(c, "tiny InstructBLIP, ASPO with S");
}

/* InstructBLIP-Vicuna-13B as transformers' conversion script builds its config: EVA ViT-g at
 * 224 (InstructBlipVisionConfig's defaults), the Q-Former with BERT's vocabulary and [DEC]
 * (30523), LLaMA-13B with the added pad token (vocab 32001). */
static const char INSTRUCTBLIP_13B[] =
    "{\"architectures\": [\"InstructBlipForConditionalGeneration\"],\n"
    " \"model_type\": \"instructblip\", \"num_query_tokens\": 32,\n"
    " \"qformer_config\": {\"model_type\": \"instructblip_qformer\", \"vocab_size\": 30523},\n"
    " \"text_config\": {\"model_type\": \"llama\", \"hidden_size\": 5120,\n"
    "   \"intermediate_size\": 13824, \"num_attention_heads\": 40, \"num_hidden_layers\": 40,\n"
    "   \"max_position_embeddings\": 2048, \"rms_norm_eps\": 1e-06, \"vocab_size\": 32001},\n"
    " \"vision_config\": {\"model_type\": \"instructblip_vision_model\"},\n"
    " \"torch_dtype\": \"float32\"}\n";

static void test_instructblip_13b(void)
{
    const char *dir = join(tmp_root, "instructblip-13b");
    CHECK(weights_make_dir(dir) == ASPO_OK &&
              weights_write_file(join(dir, "config.json"), INSTRUCTBLIP_13B,
                                 strlen(INSTRUCTBLIP_13B)) == ASPO_OK,
          "write config: %s", aspo_error_message());
    /* The paper's run: LoRA r 64 on q, k, v, batch 1. */
    train_config c = train_defaults();
    c.model = dir;
    c.dry_run = true;
    c.quiet = true;
    c.backend = "cuda";
    c.dtype = "bf16";
    c.lora_r = 64;
    c.lora_alpha = 16;
    c.lora_targets = "q_proj,k_proj,v_proj";
    c.batch_size = 1;
    c.plan_seq = 1024;
    c.plan_image = true;
    c.alpha = 0; /* S needs --clip-model's weights and tokenizer files */
    c.plan_memory_gib = 80;
    c.gradient_checkpointing = true;
    train_summary sum;
    aspo_status s = train_run(&c, &sum);
    CHECK(s == ASPO_OK, "13B plan: %s", aspo_error_message());
    if (s) return;
    const train_memory *m = &sum.memory;
    /* LoRA r 64 on 3 square 5120 linears of 40 layers, f32. */
    size_t lora = 40 * 3 * (size_t)64 * (5120 + 5120) * 4;
    CHECK(m->lora == lora && m->gradients == lora && m->optimizer == 2 * lora,
          "13B LoRA %zu (want %zu), gradients %zu, optimizer %zu", m->lora, lora, m->gradients,
          m->optimizer);
    /* About 14.2 B parameters in bf16: 13.0 B of LLaMA, 1.0 B of ViT-g, 0.19 B of Q-Former. */
    CHECK(m->weights > 2 * 14000000000ull && m->weights < 2 * 14400000000ull,
          "13B weights: %zu bytes", m->weights);
    CHECK(m->peak < (size_t)40 << 30, "13B with checkpointing fits 40 GB: peak %zu", m->peak);
}

/* LLaVA-1.5-7B (llava-hf/llava-1.5-7b-hf's shapes: vicuna-7b + CLIP ViT-L/14-336). */
static const char LLAVA_7B[] =
    "{\"architectures\": [\"LlavaForConditionalGeneration\"], \"model_type\": \"llava\",\n"
    " \"image_token_index\": 32000, \"pad_token_id\": 32001, \"projector_hidden_act\": \"gelu\",\n"
    " \"text_config\": {\"model_type\": \"llama\", \"hidden_size\": 4096,\n"
    "   \"intermediate_size\": 11008, \"num_attention_heads\": 32, \"num_hidden_layers\": 32,\n"
    "   \"num_key_value_heads\": 32, \"max_position_embeddings\": 4096,\n"
    "   \"rms_norm_eps\": 1e-05, \"vocab_size\": 32064},\n"
    " \"vision_config\": {\"model_type\": \"clip_vision_model\", \"hidden_size\": 1024,\n"
    "   \"image_size\": 336, \"intermediate_size\": 4096, \"num_attention_heads\": 16,\n"
    "   \"num_hidden_layers\": 24, \"patch_size\": 14, \"projection_dim\": 768},\n"
    " \"torch_dtype\": \"float16\", \"vision_feature_layer\": -2,\n"
    " \"vision_feature_select_strategy\": \"default\", \"vocab_size\": 32064}\n";

static void test_llava_7b(void)
{
    const char *dir = join(tmp_root, "llava-7b");
    CHECK(weights_make_dir(dir) == ASPO_OK &&
              weights_write_file(join(dir, "config.json"), LLAVA_7B, strlen(LLAVA_7B)) == ASPO_OK,
          "write config: %s", aspo_error_message());
    train_config c = train_defaults();
    c.model = dir;
    c.dry_run = true;
    c.quiet = true;
    c.backend = "cuda"; /* planned, whether or not this build has it */
    c.dtype = "bf16";
    c.lora_r = 1024;
    c.lora_targets = "all-linear";
    c.batch_size = 1;
    c.plan_seq = 2048;
    c.plan_image = true;
    c.alpha = 0; /* llava-hf's tower has no text side for S */
    c.plan_memory_gib = 80;
    struct rusage before, after;
    getrusage(RUSAGE_SELF, &before);
    for (int gc = 0; gc < 2; gc++) {
        c.gradient_checkpointing = gc;
        train_summary sum;
        aspo_status s = train_run(&c, &sum);
        CHECK(s == ASPO_OK, "7B plan (checkpointing %d): %s", gc, aspo_error_message());
        if (s) continue;
        const train_memory *m = &sum.memory;
        /* 7,063,427,072 parameters in bf16; each tensor starts 64-byte aligned. */
        CHECK(m->weights >= 2 * 7063427072ull && m->weights < 2 * 7063427072ull + (1 << 20),
              "7B weights: %zu bytes", m->weights);
        /* LoRA r on the 7 linears of 32 layers: r * (in + out) f32 each. */
        size_t r = 1024, per_layer = r * (4 * (4096 + 4096) + 2 * (4096 + 11008) + (11008 + 4096));
        CHECK(m->lora == 32 * per_layer * 4, "7B LoRA: %zu bytes, want %zu", m->lora,
              32 * per_layer * 4);
        CHECK(m->gradients == m->lora && m->optimizer == 2 * m->lora,
              "7B gradients %zu, optimizer %zu", m->gradients, m->optimizer);
        CHECK(m->peak >= m->weights + m->lora + m->gradients + m->optimizer,
              "7B peak %zu holds at least the persistent bytes", m->peak);
        /* The target: with checkpointing the step fits an 80 GB card (weights, LoRA, grads
         * and AdamW are 51.3 GiB; a layer's intermediates are freed as it ends). */
        if (gc)
            CHECK(m->peak < (size_t)80 << 30 && sum.memory.activations < (size_t)10 << 30,
                  "7B with checkpointing: peak %zu, activations %zu", m->peak, m->activations);
    }
    getrusage(RUSAGE_SELF, &after);
    /* Nothing of the ~60 GB was allocated on the host (ru_maxrss is in KiB). */
    CHECK(after.ru_maxrss < 512 * 1024, "7B plans: peak RSS %ld MiB", after.ru_maxrss / 1024);
    CHECK(backend_memory_stats(backend_get("plan")).live == 0, "the plan frees what it counted");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_dry_run FIXTURES_DIR\n");
        return 2;
    }
    fixtures = argv[1];
    command_set_threads(1); /* ctest runs suites side by side on few cores */
    if (!(tmp_root = test_tmp_make("dry_run"))) return 1;
    test_llava_7b();
    test_instructblip();
    test_instructblip_13b(); /* first: the RSS check wants no earlier real run in the process */
    test_llama();
    test_llava();
    test_tmp_remove();
    return check_summary("dry_run");
}
