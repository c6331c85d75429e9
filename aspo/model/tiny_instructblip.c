#include "aspo/model/tiny_instructblip.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/weights.h"


typedef struct writer {
    tiny_weights *w;
    uint64_t seed;
    aspo_status s; /* the first failure; later adds do nothing */
} writer;

/* <name>.weight and <name>.bias (tiny_weights_add_linear): a linear, or with cols 0 a
 * LayerNorm. */
static void add_module(writer *wr, int64_t rows, int64_t cols, const char *fmt, ...)
{
    char name[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    if (!wr->s) wr->s = tiny_weights_add_linear(wr->w, name, rows, cols, wr->seed);
}

/* One tensor of normal(0, TINY_STD) values. */
static void add_normal(writer *wr, const char *name, int ndim, const int64_t *shape)
{
    if (!wr->s) wr->s = tiny_weights_add(wr->w, name, ndim, shape, TINY_STD, 0, wr->seed);
}

/* vision_model.*: the names and shapes blip_vision_declare reads. */
static void add_vision(writer *wr, const tiny_instructblip_spec *s)
{
    int64_t C = s->vision_dim, F = s->vision_ffn, P = s->patch_size, g = s->image_size / P;
    add_normal(wr, "vision_model.embeddings.class_embedding", 3, (int64_t[]){1, 1, C});
    add_normal(wr, "vision_model.embeddings.patch_embedding.weight", 4, (int64_t[]){C, 3, P, P});
    if (!wr->s) wr->s = tiny_weights_add(wr->w, "vision_model.embeddings.patch_embedding.bias", 1,
                                         (int64_t[]){C}, 0, 0.0f, wr->seed);
    add_normal(wr, "vision_model.embeddings.position_embedding", 3, (int64_t[]){1, g * g + 1, C});
    for (int64_t l = 0; l < s->vision_layers; l++) {
        const struct { const char *part; int64_t rows, cols; } parts[] = {
            {"self_attn.qkv", 3 * C, C}, {"self_attn.projection", C, C}, {"mlp.fc1", F, C},
            {"mlp.fc2", C, F},           {"layer_norm1", C, 0},          {"layer_norm2", C, 0},
        };
        for (size_t p = 0; p < sizeof parts / sizeof *parts; p++)
            add_module(wr, parts[p].rows, parts[p].cols, "vision_model.encoder.layers.%lld.%s",
                       (long long)l, parts[p].part);
    }
    add_module(wr, C, 0, "vision_model.post_layernorm");
}

/* qformer.*: the names and shapes qformer_declare reads; cross-attention (keys and values
 * from the vision width) on the even layers. */
static void add_qformer(writer *wr, const tiny_instructblip_spec *s)
{
    int64_t C = s->qformer_dim, F = s->qformer_ffn, Cv = s->vision_dim;
    add_normal(wr, "qformer.embeddings.word_embeddings.weight", 2,
               (int64_t[]){TINY_INSTRUCTBLIP_QFORMER_VOCAB, C});
    add_normal(wr, "qformer.embeddings.position_embeddings.weight", 2, (int64_t[]){512, C});
    add_module(wr, C, 0, "qformer.embeddings.layernorm");
    for (int64_t l = 0; l < s->qformer_layers; l++) {
        for (int cross = 0; cross <= (l % 2 == 0); cross++) {
            const char *a = cross ? "crossattention" : "attention";
            int64_t in = cross ? Cv : C;
            add_module(wr, C, C, "qformer.encoder.layer.%lld.%s.attention.query", (long long)l, a);
            add_module(wr, C, in, "qformer.encoder.layer.%lld.%s.attention.key", (long long)l, a);
            add_module(wr, C, in, "qformer.encoder.layer.%lld.%s.attention.value", (long long)l,
                       a);
            add_module(wr, C, C, "qformer.encoder.layer.%lld.%s.output.dense", (long long)l, a);
            add_module(wr, C, 0, "qformer.encoder.layer.%lld.%s.output.LayerNorm", (long long)l,
                       a);
        }
        for (int query = 0; query <= 1; query++) { /* the text's and the queries' FFN */
            const char *q = query ? "_query" : "";
            add_module(wr, F, C, "qformer.encoder.layer.%lld.intermediate%s.dense", (long long)l,
                       q);
            add_module(wr, C, F, "qformer.encoder.layer.%lld.output%s.dense", (long long)l, q);
            add_module(wr, C, 0, "qformer.encoder.layer.%lld.output%s.LayerNorm", (long long)l, q);
        }
    }
}

static json_t *instructblip_config(const tiny_instructblip_spec *s)
{
    json_t *vision = json_pack(
        "{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:s, s:f, s:b}", "model_type",
        "instructblip_vision_model", "hidden_size", (json_int_t)s->vision_dim,
        "intermediate_size", (json_int_t)s->vision_ffn,
        "num_hidden_layers", (json_int_t)s->vision_layers,
        "num_attention_heads", (json_int_t)s->vision_heads,
        "image_size", (json_int_t)s->image_size, "patch_size", (json_int_t)s->patch_size,
        "hidden_act", "gelu", "layer_norm_eps", 1e-6, "qkv_bias", 1);
    json_t *qformer = json_pack(
        "{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:s, s:f, s:I}", "model_type",
        "instructblip_qformer", "vocab_size", (json_int_t)TINY_INSTRUCTBLIP_QFORMER_VOCAB,
        "hidden_size", (json_int_t)s->qformer_dim, "intermediate_size", (json_int_t)s->qformer_ffn,
        "num_hidden_layers", (json_int_t)s->qformer_layers,
        "num_attention_heads", (json_int_t)s->qformer_heads, "max_position_embeddings",
        (json_int_t)512, "cross_attention_frequency", (json_int_t)2, "encoder_hidden_size",
        (json_int_t)s->vision_dim, "hidden_act", "gelu", "layer_norm_eps", 1e-12,
        "pad_token_id", (json_int_t)0);
    json_t *text = tiny_llama_config(&s->text);
    if (!vision || !qformer || !text) {
        json_decref(vision);
        json_decref(qformer);
        json_decref(text);
        return NULL;
    }
    /* "o" steals the three references, also when json_pack fails. */
    return json_pack("{s:[s], s:s, s:I, s:b, s:o, s:o, s:o, s:s}", "architectures",
                     "InstructBlipForConditionalGeneration", "model_type", "instructblip",
                     "num_query_tokens", (json_int_t)s->queries,
                     "use_decoder_only_language_model", 1, "vision_config", vision,
                     "qformer_config", qformer, "text_config", text, "torch_dtype", "float32");
}

/* BlipImageProcessor as InstructBLIP ships it (OpenAI CLIP's mean and std), at image_size. */
static json_t *preprocessor_config(const tiny_instructblip_spec *s)
{
    json_int_t S = (json_int_t)s->image_size;
    return json_pack("{s:b, s:b, s:b, s:b, s:[f,f,f], s:[f,f,f], s:s, s:I, s:f, s:{s:I, s:I}}",
                     "do_convert_rgb", 1, "do_normalize", 1, "do_rescale", 1, "do_resize", 1,
                     "image_mean", 0.48145466, 0.4578275, 0.40821073,
                     "image_std", 0.26862954, 0.26130258, 0.27577711,
                     "image_processor_type", "BlipImageProcessor", "resample", (json_int_t)3,
                     "rescale_factor", 1.0 / 255.0, "size", "height", S, "width", S);
}

/* qformer_tokenizer/: BERT's specials, a few words, each letter and digit alone and as a
 * ## continuation (81 lines), uncased as the released bert-base-uncased. */
static aspo_status write_qformer_tokenizer(const char *dir)
{
    char sub[4200];
    snprintf(sub, sizeof sub, "%s/qformer_tokenizer", dir);
    aspo_status s = weights_make_dir(sub);
    if (s) return s;
    /* BERT's specials at its ids (pad 0), then the benchmark instruction's words */
    const char *words[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
                           "describe", "the", "image", "."};
    const char *chars = "abcdefghijklmnopqrstuvwxyz0123456789";
    char *vocab = malloc(1024), *at = vocab;
    if (!vocab) return aspo_fail(ASPO_ERR_OOM, "tiny instructblip: no memory for a vocabulary");
    for (size_t i = 0; i < sizeof words / sizeof *words; i++) at += sprintf(at, "%s\n", words[i]);
    for (const char *c = chars; *c; c++) at += sprintf(at, "%c\n", *c);
    for (const char *c = chars; *c; c++) at += sprintf(at, "##%c\n", *c);
    char path[4400]; /* sub may be near 4096 bytes of model path */
    snprintf(path, sizeof path, "%s/vocab.txt", sub);
    s = weights_write_file(path, vocab, (size_t)(at - vocab));
    free(vocab);
    if (!s)
        s = tiny_write_json(sub, "tokenizer_config.json",
                            json_pack("{s:s, s:b, s:s, s:s, s:s, s:s, s:s}", "tokenizer_class",
                                      "BertTokenizer", "do_lower_case", 1, "unk_token", "[UNK]",
                                      "sep_token", "[SEP]", "pad_token", "[PAD]", "cls_token",
                                      "[CLS]", "mask_token", "[MASK]"));
    return s;
}

static aspo_status check_spec(const tiny_instructblip_spec *s)
{
    if (s->vision_dim < 1 || s->vision_heads < 1 || s->vision_dim % s->vision_heads ||
        s->vision_layers < 1 || s->vision_ffn < 1)
        return aspo_fail(ASPO_ERR_USAGE, "tiny instructblip: vision dim %lld, heads %lld, layers "
                         "%lld, ffn %lld do not fit (dim divisible by heads, at least one layer)",
                         (long long)s->vision_dim, (long long)s->vision_heads,
                         (long long)s->vision_layers, (long long)s->vision_ffn);
    if (s->qformer_dim < 1 || s->qformer_heads < 1 || s->qformer_dim % s->qformer_heads ||
        s->qformer_layers < 1 || s->qformer_ffn < 1 || s->queries < 1)
        return aspo_fail(ASPO_ERR_USAGE, "tiny instructblip: Q-Former dim %lld, heads %lld, "
                         "layers %lld, ffn %lld, queries %lld do not fit (dim divisible by heads, "
                         "at least one layer and one query)", (long long)s->qformer_dim,
                         (long long)s->qformer_heads, (long long)s->qformer_layers,
                         (long long)s->qformer_ffn, (long long)s->queries);
    if (s->patch_size < 1 || s->image_size < s->patch_size || s->image_size % s->patch_size)
        return aspo_fail(ASPO_ERR_USAGE, "tiny instructblip: image size %lld is not a positive "
                         "multiple of patch size %lld", (long long)s->image_size,
                         (long long)s->patch_size);
    return ASPO_OK;
}

aspo_status tiny_instructblip_write(const char *dir, const tiny_instructblip_spec *s,
                                    uint64_t seed)
{
    aspo_status st = check_spec(s);
    if (st) return st;
    writer wr = {tiny_weights_new(), seed, ASPO_OK};
    if (!wr.w) return aspo_fail(ASPO_ERR_OOM, "tiny instructblip: no memory");
    wr.s = tiny_llama_add_weights(wr.w, "language_model.", &s->text, seed);
    add_vision(&wr, s);
    add_qformer(&wr, s);
    add_normal(&wr, "query_tokens", 3, (int64_t[]){1, s->queries, s->qformer_dim});
    add_module(&wr, s->text.dim, s->qformer_dim, "language_projection");
    st = wr.s ? wr.s : weights_make_dir(dir);
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (!st) st = tiny_weights_write(wr.w, path);
    tiny_weights_free(wr.w);
    if (!st) st = tiny_write_json(dir, "config.json", instructblip_config(s));
    if (!st) st = tiny_write_json(dir, "preprocessor_config.json", preprocessor_config(s));
    if (!st) st = write_qformer_tokenizer(dir);
    return st;
}
