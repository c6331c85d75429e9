/* Bad model, adapter and JSON files (issue 12): every one is refused with a message that
 * names the file, the key and the value, before any arithmetic on it. Each config is a small
 * valid one with one field changed, written into the suite's scratch directory. Also
 * cpu_expf on inputs far outside exp's range (no signed overflow under UBSan). */
#define _GNU_SOURCE /* mkfifo, ftruncate */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "backends/cpu/cpu_math.h"
#include "backends/registry.h"
#include "models/clip.h"
#include "models/llama.h"
#include "models/llava.h"
#include "models/peft_adapter.h"
#include "tensor/json_file.h"
#include "tests/test_support.h"

static const char *tmp_root;

/* tmp_root/name, made if needed. */
static const char *scratch_dir(const char *name)
{
    const char *dir = join(tmp_root, name);
    mkdir(dir, 0755);
    return dir;
}

/* base with the keys of `change` (a JSON object text) replaced, written to dir/file; the
 * file's path. Takes base. */
static const char *write_changed(const char *dir, const char *file, json_t *base,
                                 const char *change)
{
    json_t *c = change ? json_loads(change, 0, NULL) : json_object();
    CHECK(c && json_object_update(base, c) == 0, "change %s", change ? change : "(none)");
    char *text = json_dumps(base, JSON_INDENT(1));
    const char *path = join(dir, file);
    CHECK(text && write_file_text(path, text), "write %s", path);
    free(text);
    json_decref(c);
    json_decref(base);
    return path;
}

/* ---- LLaMA ---- */

static json_t *llama_base(void)
{
    return json_pack("{s:i, s:i, s:i, s:i, s:i, s:f, s:s}", "hidden_size", 64,
                     "intermediate_size", 128, "num_hidden_layers", 2, "num_attention_heads", 4,
                     "vocab_size", 100, "rms_norm_eps", 1e-6, "model_type", "llama");
}

static const struct bad_field {
    const char *change, *key, *value;
} bad_llama[] = {
    /* Each of these divided by zero (SIGFPE) or overflowed before the sizes were checked. */
    {"{\"num_attention_heads\": 0}", "num_attention_heads", "0"},
    {"{\"hidden_size\": -9223372036854775808, \"num_attention_heads\": -1}", "hidden_size",
     "-9223372036854775808"},
    {"{\"hidden_size\": 1000000000000}", "hidden_size", "1000000000000"},
    {"{\"intermediate_size\": 0}", "intermediate_size", "0"},
    {"{\"intermediate_size\": 2097152}", "intermediate_size", "2097152"},
    {"{\"num_hidden_layers\": 0}", "num_hidden_layers", "0"},
    {"{\"num_hidden_layers\": 5000}", "num_hidden_layers", "5000"},
    {"{\"vocab_size\": 0}", "vocab_size", "0"},
    {"{\"vocab_size\": 16777217}", "vocab_size", "16777217"},
    {"{\"num_key_value_heads\": 0}", "num_key_value_heads", "0"},
    {"{\"num_key_value_heads\": 3}", "num_key_value_heads", "3"},
    {"{\"head_dim\": 0}", "head_dim", "0"},
    {"{\"head_dim\": 1048576}", "head_dim", "1048576"}, /* 4 heads: q is 4 * 2^20 wide */
    {"{\"hidden_size\": 30}", "hidden_size", "30"},     /* 4 heads do not divide it */
    {"{\"max_position_embeddings\": 0}", "max_position_embeddings", "0"},
    {"{\"max_position_embeddings\": -5}", "max_position_embeddings", "-5"},
    {"{\"bos_token_id\": 100}", "bos_token_id", "100"},
    {"{\"bos_token_id\": -1}", "bos_token_id", "-1"},
    {"{\"pad_token_id\": -7}", "pad_token_id", "-7"},
    {"{\"pad_token_id\": 4294967296}", "pad_token_id", "4294967296"},
    {"{\"eos_token_id\": [2, 4294967298]}", "eos_token_id", "4294967298"},
    {"{\"eos_token_id\": [1, 2, 3, 4, 5, 6, 7, 8, 9]}", "eos_token_id", "9"},
    /* LlamaConfig's default eos 2 is not a token of a 2-token vocabulary. */
    {"{\"vocab_size\": 2}", "eos_token_id", "2"},
};

static void test_llama_bad(void)
{
    const char *dir = scratch_dir("llama");
    for (size_t i = 0; i < sizeof bad_llama / sizeof *bad_llama; i++) {
        const struct bad_field *b = &bad_llama[i];
        const char *path = write_changed(dir, "config.json", llama_base(), b->change);
        llama_config c;
        expect_error(llama_config_load(path, &c), ASPO_ERR_FORMAT, b->change, path, b->key,
                     b->value);
    }
}

static void test_llama_good(void)
{
    const char *dir = scratch_dir("llama_good");
    const char *path = write_changed(dir, "config.json", llama_base(),
                                     "{\"pad_token_id\": -1, \"eos_token_id\": [1, 99], "
                                     "\"num_key_value_heads\": 2, \"bos_token_id\": null, "
                                     "\"max_position_embeddings\": 2147483647}");
    llama_config c;
    CHECK(llama_config_load(path, &c) == ASPO_OK, "good config: %s", aspo_error_message());
    /* pad -1: old converted LLaMA configs write it for "none". */
    CHECK(c.head_dim == 16 && c.num_kv_heads == 2 && c.pad_token_id == -1 &&
              c.bos_token_id == -1 && c.n_eos == 2 && c.eos_token_ids[1] == 99,
          "good config's fields");
    /* The largest sizes within the bounds are still a config (nothing is allocated). */
    path = write_changed(dir, "config.json", llama_base(),
                         "{\"hidden_size\": 1048576, \"num_attention_heads\": 8, "
                         "\"intermediate_size\": 1048576, \"num_hidden_layers\": 4096, "
                         "\"vocab_size\": 16777216}");
    CHECK(llama_config_load(path, &c) == ASPO_OK && c.head_dim == 131072, "largest: %s",
          aspo_error_message());
    aspo_error_clear();
}

/* ---- LLaVA (llava-hf layout) ---- */

/* LLaVA's text model: the LLaMA above with room for the image token in its vocabulary, and
 * `change` (NULL: none). */
static json_t *llava_text(const char *change)
{
    json_t *text = llama_base(), *c = json_loads(change ? change : "{}", 0, NULL);
    json_object_set_new(text, "vocab_size", json_integer(1024));
    json_object_update(text, c);
    json_decref(c);
    return text;
}

static json_t *llava_base(void)
{
    return json_pack("{s:s, s:i, s:o, s:{s:s, s:i, s:i, s:i, s:i, s:i, s:i}, s:s}",
                     "model_type", "llava", "image_token_index", 1000, "text_config",
                     llava_text(NULL), "vision_config", "model_type", "clip_vision_model",
                     "hidden_size", 32, "intermediate_size", 64, "num_attention_heads", 4,
                     "num_hidden_layers", 3, "image_size", 32, "patch_size", 8, "torch_dtype",
                     "float32");
}

static aspo_status open_llava(const char *dir)
{
    llava_options o = llava_defaults();
    o.lm.skip_weights = true; /* the config alone */
    o.lm.lora.r = 0;
    llava_model m;
    aspo_status s = llava_open(dir, &o, &m);
    llava_close(&m);
    return s;
}

static void test_llava(void)
{
    const char *dir = scratch_dir("llava");
    const char *path = write_changed(dir, "config.json", llava_base(), NULL);
    CHECK(open_llava(dir) == ASPO_OK, "good LLaVA config: %s", aspo_error_message());
    aspo_error_clear();
    static const struct bad_field cases[] = {
        {"{\"num_attention_heads\": 0}", "num_attention_heads", "0"},
        {"{\"hidden_size\": -9223372036854775808, \"num_attention_heads\": -1}", "hidden_size",
         "-9223372036854775808"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        json_t *base = llava_base();
        json_object_set_new(base, "text_config", llava_text(cases[i].change));
        write_changed(dir, "config.json", base, NULL);
        expect_error(open_llava(dir), ASPO_ERR_FORMAT, cases[i].change, path, "text_config",
                     cases[i].key, cases[i].value);
    }
    json_t *no_text = llava_base();
    json_object_del(no_text, "text_config");
    write_changed(dir, "config.json", no_text, NULL);
    expect_error(open_llava(dir), ASPO_ERR_FORMAT, "no text_config", path, "text_config");
    write_changed(dir, "config.json", llava_base(), "{\"text_config\": null}");
    expect_error(open_llava(dir), ASPO_ERR_FORMAT, "text_config null", path, "text_config");
    static const struct bad_field tokens[] = {
        {"{\"image_token_index\": 1024}", "image_token_index", "1024"},
        {"{\"image_token_index\": -1}", "image_token_index", "-1"},
        {"{\"image_token_index\": 9223372036854775807}", "image_token_index",
         "9223372036854775807"},
    };
    for (size_t i = 0; i < sizeof tokens / sizeof *tokens; i++) {
        write_changed(dir, "config.json", llava_base(), tokens[i].change);
        expect_error(open_llava(dir), ASPO_ERR_FORMAT, tokens[i].change, path, tokens[i].key,
                     tokens[i].value);
    }
    write_changed(dir, "config.json", llava_base(),
                  "{\"vision_config\": {\"num_attention_heads\": 0}}");
    expect_error(open_llava(dir), ASPO_ERR_FORMAT, "vision heads 0", path, "vision_config",
                 "num_attention_heads", "0");
}

/* ---- CLIP ---- */

static json_t *clip_base(void)
{
    return json_pack("{s:{s:i, s:i, s:i, s:i, s:i, s:i}, s:{s:i, s:i, s:i, s:i, s:i, s:i, s:i},"
                     " s:i}",
                     "vision_config", "hidden_size", 32, "intermediate_size", 64,
                     "num_attention_heads", 4, "num_hidden_layers", 2, "image_size", 32,
                     "patch_size", 8, "text_config", "hidden_size", 32, "intermediate_size", 64,
                     "num_attention_heads", 4, "num_hidden_layers", 2, "vocab_size", 100,
                     "bos_token_id", 98, "eos_token_id", 99, "projection_dim", 16);
}

static void test_clip(void)
{
    const char *dir = scratch_dir("clip");
    const char *path = write_changed(dir, "config.json", clip_base(), NULL);
    clip_config c;
    CHECK(clip_config_load(path, &c) == ASPO_OK, "good CLIP config: %s", aspo_error_message());
    aspo_error_clear();
    static const struct bad_field cases[] = {
        {"{\"vision_config\": {\"num_attention_heads\": 0}}", "num_attention_heads", "0"},
        {"{\"vision_config\": {\"hidden_size\": -9223372036854775808, "
         "\"num_attention_heads\": -1}}", "hidden_size", "-9223372036854775808"},
        {"{\"vision_config\": {\"hidden_size\": 1000000000000}}", "hidden_size",
         "1000000000000"},
        {"{\"vision_config\": {\"intermediate_size\": 0}}", "intermediate_size", "0"},
        {"{\"vision_config\": {\"num_hidden_layers\": 5000}}", "num_hidden_layers", "5000"},
        {"{\"vision_config\": {\"num_hidden_layers\": 0}}", "num_hidden_layers", "0"},
        {"{\"vision_config\": {\"image_size\": 1000000000000}}", "image_size", "1000000000000"},
        {"{\"vision_config\": {\"patch_size\": 0}}", "patch_size", "0"},
        {"{\"vision_config\": {\"patch_size\": 7}}", "patch_size", "7"},
        {"{\"vision_config\": {\"num_channels\": 0}}", "num_channels", "0"},
        {"{\"vision_config\": {\"layer_norm_eps\": -1}}", "layer_norm_eps", "-1"},
        {"{\"text_config\": {\"vocab_size\": 0}}", "vocab_size", "0"},
        {"{\"text_config\": {\"vocab_size\": 100000000}}", "vocab_size", "100000000"},
        {"{\"text_config\": {\"max_position_embeddings\": 0}}", "max_position_embeddings", "0"},
        {"{\"text_config\": {\"max_position_embeddings\": 4194304}}",
         "max_position_embeddings", "4194304"},
        {"{\"text_config\": {\"eos_token_id\": 100}}", "eos_token_id", "100"},
        {"{\"text_config\": {\"eos_token_id\": null}}", "eos_token_id", "null"},
        {"{\"text_config\": {\"bos_token_id\": -2}}", "bos_token_id", "-2"},
        {"{\"text_config\": {\"pad_token_id\": 4294967297}}", "pad_token_id", "4294967297"},
        {"{\"projection_dim\": 0}", "projection_dim", "0"},
        {"{\"projection_dim\": 2097152}", "projection_dim", "2097152"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        /* json_object_update replaces a whole tower: start from the good one. */
        json_t *base = clip_base(), *change = json_loads(cases[i].change, 0, NULL);
        const char *tower;
        json_t *v;
        json_object_foreach(change, tower, v) {
            if (json_is_object(v)) json_object_update(json_object_get(base, tower), v);
            else json_object_set(base, tower, v);
        }
        json_decref(change);
        write_changed(dir, "config.json", base, NULL);
        expect_error(clip_config_load(path, &c), ASPO_ERR_FORMAT, cases[i].change, path,
                     cases[i].key, cases[i].value);
    }
}

/* ---- adapter_config.json: r and lora_alpha ---- */

static void test_adapter(void)
{
    const char *dir = scratch_dir("adapter");
    const char *path = join(dir, "adapter_config.json");
    static const struct bad_field cases[] = {
        /* (int)1e30 was converted before the range check refused it. */
        {"{\"r\": 1e30}", "\"r\"", "1e+30"},
        {"{\"r\": -1e30}", "\"r\"", "-1e+30"},
        {"{\"r\": 0}", "\"r\"", "0"},
        {"{\"r\": 1048577}", "\"r\"", "1048577"},
        {"{\"r\": 2.5}", "\"r\"", "2.5"},
        {"{\"lora_alpha\": 1e300}", "lora_alpha", "1e+300"},
        {"{\"lora_alpha\": -1e39}", "lora_alpha", "-1e+39"},
    };
    peft_config pc;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        json_t *base = json_pack("{s:s, s:i, s:i, s:[s]}", "peft_type", "LORA", "r", 8,
                                 "lora_alpha", 16, "target_modules", "q_proj");
        write_changed(dir, "adapter_config.json", base, cases[i].change);
        expect_error(peft_config_load(dir, &pc), ASPO_ERR_FORMAT, cases[i].change, path,
                     cases[i].key, cases[i].value);
    }
    json_t *base = json_pack("{s:s, s:i, s:i, s:[s]}", "peft_type", "LORA", "r", 1 << 20,
                             "lora_alpha", 16, "target_modules", "q_proj");
    write_changed(dir, "adapter_config.json", base, NULL);
    CHECK(peft_config_load(dir, &pc) == ASPO_OK && pc.lora.r == 1 << 20, "r = 2^20: %s",
          aspo_error_message());
    peft_config_free(&pc);
    aspo_error_clear();

    /* target_modules regexes that glibc's regcomp takes seconds to gigabytes to compile:
     * the first took 2.4 GB, the second 12 s (tests/fuzz/fuzz_adapter_config.c found both),
     * the third over 30 s. */
    char many_lazy[3 * 300 + 1] = "";
    for (int i = 0; i < 300; i++) strcat(many_lazy, "a*?");
    const char *const too_big[] = {
        "a++++++++++++++++++++++++++++++++++ll-linear",
        "a);+++++++++*+++++ll-linear",
        "(.*|.*|.*|.*|.*|.*){255}",
        "(a{1000}){1000}",
        "((a{,255}){,255}){,255}",
        "((((((((((((((((((a+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)+",
        "a*++",
        many_lazy,
    };
    for (size_t i = 0; i < sizeof too_big / sizeof *too_big; i++) {
        json_t *b = json_pack("{s:s, s:i, s:i, s:s}", "peft_type", "LORA", "r", 8, "lora_alpha",
                              16, "target_modules", too_big[i]);
        write_changed(dir, "adapter_config.json", b, NULL);
        expect_error(peft_config_load(dir, &pc), ASPO_ERR_UNSUPPORTED, too_big[i], path,
                     "to compile safely");
    }
    /* What PEFT users write, and repeats that stay small, still load. */
    static const char *const fine[] = {
        ".*\\.(q_proj|v_proj)",
        "model\\.layers\\.[0-9]+\\.self_attn\\.(q|k|v|o)_proj",
        ".*[.](gate|up|down)_proj",
        "x{100}",
        "[{]+q_proj",
        ".*?q_proj",
        "(layers\\.[0-9]+\\.)*q_proj",
        "a*+",
    };
    for (size_t i = 0; i < sizeof fine / sizeof *fine; i++) {
        json_t *b = json_pack("{s:s, s:i, s:i, s:s}", "peft_type", "LORA", "r", 8, "lora_alpha",
                              16, "target_modules", fine[i]);
        write_changed(dir, "adapter_config.json", b, NULL);
        CHECK(peft_config_load(dir, &pc) == ASPO_OK, "target_modules %s: %s", fine[i],
              aspo_error_message());
        peft_config_free(&pc);
        aspo_error_clear();
    }
}

/* ---- JSON files ---- */

static void test_duplicate_keys(void)
{
    const char *dir = scratch_dir("dupkeys");
    const char *path = join(dir, "config.json");
    CHECK(write_file_text(path, "{\"hidden_size\": 64, \"intermediate_size\": 128,\n"
                                " \"hidden_size\": 32}"), "write");
    llama_config lc;
    expect_error(llama_config_load(path, &lc), ASPO_ERR_FORMAT, "llama duplicate", path,
                 "duplicate", "\"hidden_size\"", "line 2");
    clip_config cc;
    expect_error(clip_config_load(path, &cc), ASPO_ERR_FORMAT, "clip duplicate", path,
                 "duplicate", "\"hidden_size\"", "line 2");
    const char *adapter = join(dir, "adapter_config.json");
    CHECK(write_file_text(adapter, "{\"r\": 8, \"r\": 4096}"), "write");
    peft_config pc;
    expect_error(peft_config_load(dir, &pc), ASPO_ERR_FORMAT, "adapter duplicate", adapter,
                 "duplicate", "\"r\"", "line 1");
}

/* Only regular files within JSON_FILE_MAX_BYTES are read: a FIFO would block the open (the
 * suite's alarm turns that into a failure), a directory is not a file. */
static void test_not_regular(void)
{
    llama_config c;
    const char *fifo = join(scratch_dir("fifo"), "config.json");
    CHECK(mkfifo(fifo, 0600) == 0, "mkfifo %s", fifo);
    expect_error(llama_config_load(fifo, &c), ASPO_ERR_IO, "FIFO", fifo, "FIFO");
    const char *dir = join(scratch_dir("dir"), "config.json");
    mkdir(dir, 0755);
    expect_error(llama_config_load(dir, &c), ASPO_ERR_IO, "directory", dir, "directory");
    const char *big = join(scratch_dir("big"), "config.json");
    FILE *f = fopen(big, "wb");
    CHECK(f && ftruncate(fileno(f), (off_t)JSON_FILE_MAX_BYTES + 1) == 0, "sparse %s", big);
    if (f) fclose(f);
    expect_error(llama_config_load(big, &c), ASPO_ERR_FORMAT, "over the limit", big, "limit");
}

/* ---- cpu_expf far outside exp's range ---- */

static void test_expf_extremes(void)
{
    /* -8.7e6 > x > -1.7e7 made x * log2(e) + 1.5 * 2^23 a small negative float, whose bits
     * minus the magic's overflowed int32 (UBSan). */
    static const struct { float x, want; } cases[] = {
        {-1e7f, 0.0f},      {-9e6f, 0.0f},       {-1.5e7f, 0.0f},     {-1.7e7f, 0.0f},
        {1e30f, INFINITY},  {-1e30f, 0.0f},      {FLT_MAX, INFINITY}, {-FLT_MAX, 0.0f},
        {INFINITY, INFINITY}, {-INFINITY, 0.0f}, {-104.0f, 0.0f},     {89.0f, INFINITY},
        {0.0f, 1.0f},       {-0.0f, 1.0f},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        float y = cpu_expf(cases[i].x);
        CHECK(y == cases[i].want, "cpu_expf(%g) = %g, want %g", (double)cases[i].x, (double)y,
              (double)cases[i].want);
    }
    CHECK(isnan(cpu_expf(NAN)) && isnan(cpu_expf(-NAN)), "cpu_expf(NaN) is NaN");
    /* Within range: exp's documented 1.5 ulp (2 allowed for expf's own rounding) over
     * every 1021st float of [-87, 88], both signs. */
    int bad = 0;
    for (int32_t b = 0; b <= cpu_float_bits(88.0f); b += 1021)
        for (int sign = 0; sign < 2; sign++) {
            float x = sign ? -cpu_bits_float(b) : cpu_bits_float(b);
            float y = cpu_expf(x), want = expf(x);
            bad += x >= -87.0f && !(fabsf(y - want) <= 2 * (nextafterf(want, INFINITY) - want));
        }
    CHECK(bad == 0, "cpu_expf within 2 ulp of expf: %d outside", bad);
}

int main(void)
{
    alarm(120); /* a FIFO opened for reading would block forever: fail instead */
    if (!(tmp_root = test_tmp_make("config"))) return 1;
    runtime_init(backend_cpu(), 0);
    test_llama_bad();
    test_llama_good();
    test_llava();
    test_clip();
    test_adapter();
    test_duplicate_keys();
    test_not_regular();
    test_expf_extremes();
    test_tmp_remove();
    return check_summary("config");
}
