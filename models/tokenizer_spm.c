/* tokenizer.model (SentencePiece ModelProto, parsed with protobuf-c) loader. It builds the
 * tokenizer transformers' LlamaConverter (4.44) makes from the same file, so encoding
 * matches LlamaTokenizerFast loaded from a directory holding only tokenizer.model:
 *   - vocab: the pieces by id; the scores of ids 0..2 read as 0; a piece given twice is an
 *     error (SentencePiece refuses such a model too: "... is already defined");
 *   - merges (generate_merges): for each piece, every split into two pieces that are both
 *     in the vocabulary, ordered by the two ids; then all of them stably sorted by score,
 *     then left length, then right length (in characters), all descending;
 *   - BPE with unk_token = trainer_spec.unk_piece, fuse_unk, byte_fallback;
 *   - CONTROL pieces become special added tokens, USER_DEFINED ones plain added tokens;
 *   - normalizer/pre-tokenizer/decoder as LlamaConverter, legacy or not per the config.
 * Only BPE models are supported; a unigram model is an error that names its type. */
#include "models/tokenizer_internal.h"
#include "models/sentencepiece_model.pb-c.h"

#include <stdlib.h>
#include <string.h>

typedef struct merge_cand {
    int32_t left, right, seq;
    int32_t left_chars, right_chars;
    float score;
} merge_cand;

static int cmp_cand(const void *pa, const void *pb)
{
    const merge_cand *a = pa, *b = pb;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    if (a->left_chars != b->left_chars) return a->left_chars > b->left_chars ? -1 : 1;
    if (a->right_chars != b->right_chars) return a->right_chars > b->right_chars ? -1 : 1;
    return (a->seq > b->seq) - (a->seq < b->seq); /* Python's sort is stable */
}

static int cmp_local(const void *pa, const void *pb)
{
    const merge_cand *a = pa, *b = pb;
    if (a->left != b->left) return a->left < b->left ? -1 : 1;
    return (a->right > b->right) - (a->right < b->right);
}

static int count_chars(const char *s, size_t n)
{
    int c = 0;
    for (size_t i = 0; i < n; i++) c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

static aspo_status build_merges(tokenizer *t, const Sentencepiece__ModelProto *m)
{
    size_t cap = 1024, n = 0;
    merge_cand *c = malloc(cap * sizeof *c);
    if (!c) return aspo_fail(ASPO_ERR_OOM, "%s: out of memory", t->source);
    aspo_status s = ASPO_OK;
    for (size_t i = 0; i < m->n_pieces && !s; i++) {
        const char *p = m->pieces[i]->piece;
        size_t len = strlen(p), first = n; /* pieces are unique: tok_add_piece refused repeats */
        float score = i < 3 ? 0.0f : m->pieces[i]->score;
        for (size_t k = 1; k < len; k++) {
            if (((unsigned char)p[k] & 0xC0) == 0x80) continue; /* split at characters */
            int32_t l = tok_strmap_get(&t->vocab, p, k), r = tok_strmap_get(&t->vocab, p + k, len - k);
            if (l < 0 || r < 0) continue;
            if (n == cap) {
                merge_cand *q = realloc(c, 2 * cap * sizeof *q);
                if (!q) {
                    s = aspo_fail(ASPO_ERR_OOM, "%s: out of memory", t->source);
                    break;
                }
                c = q, cap *= 2;
            }
            c[n++] = (merge_cand){.left = l, .right = r, .score = score,
                                  .left_chars = count_chars(p, k),
                                  .right_chars = count_chars(p + k, len - k)};
        }
        qsort(c + first, n - first, sizeof *c, cmp_local);
    }
    for (size_t i = 0; i < n; i++) c[i].seq = (int32_t)i;
    qsort(c, n, sizeof *c, cmp_cand);
    for (size_t i = 0; i < n && !s; i++) {
        const char *l = t->pieces[c[i].left], *r = t->pieces[c[i].right];
        s = tok_add_merge(t, l, strlen(l), r, strlen(r), (int32_t)i, (int)i);
    }
    free(c);
    return s;
}

static bool cfg_flag(json_t *cfg, const char *key, bool dflt)
{
    json_t *v = cfg ? json_object_get(cfg, key) : NULL;
    return json_is_boolean(v) ? json_is_true(v) : dflt; /* absent or null: the default */
}

static aspo_status read_file(const char *path, uint8_t **data, size_t *size)
{
    uint64_t bytes = 0;
    FILE *f = tok_file_open(path, &bytes);
    if (!f) return aspo_error_status();
    uint8_t *buf = malloc(bytes ? (size_t)bytes : 1);
    size_t n = buf ? fread(buf, 1, (size_t)bytes, f) : 0;
    bool err = ferror(f);
    fclose(f);
    if (!buf) return aspo_fail(ASPO_ERR_OOM, "%s: out of memory reading the file", path);
    if (err || n != bytes) {
        free(buf);
        return aspo_fail(ASPO_ERR_IO, "%s: read %zu of its %llu bytes%s", path, n,
                         (unsigned long long)bytes, err ? " (read error)" : " (it shrank)");
    }
    *data = buf, *size = n;
    return ASPO_OK;
}

aspo_status tok_load_spm(const char *path, json_t *cfg, tokenizer **out)
{
    *out = NULL;
    uint8_t *data = NULL;
    size_t size = 0;
    aspo_status s = read_file(path, &data, &size);
    if (s) return s;
    Sentencepiece__ModelProto *m = sentencepiece__model_proto__unpack(NULL, size, data);
    free(data);
    if (!m)
        return aspo_fail(ASPO_ERR_FORMAT, "%s: not a SentencePiece model: the protobuf does not "
                         "parse (%zu bytes; truncated or corrupt?)", path, size);
    tokenizer *t = tok_new(path);
    if (!t) s = aspo_fail(ASPO_ERR_OOM, "%s: out of memory", path);
    else if (m->n_pieces == 0) s = aspo_fail(ASPO_ERR_FORMAT, "%s: the model has no pieces", path);
    else if (!m->trainer_spec)
        s = aspo_fail(ASPO_ERR_FORMAT, "%s: the model has no trainer_spec (truncated?)", path);
    else if (m->trainer_spec->model_type != SENTENCEPIECE__TRAINER_SPEC__MODEL_TYPE__BPE) {
        int type = (int)m->trainer_spec->model_type;
        const char *names[] = {"?", "UNIGRAM", "BPE", "WORD", "CHAR"};
        s = aspo_fail(ASPO_ERR_UNSUPPORTED, "%s: SentencePiece model type %s (%d) is not "
                      "supported; only BPE models (LLaMA's) are", path,
                      type >= 1 && type <= 4 ? names[type] : "unknown", type);
    }
    for (size_t i = 0; i < (s ? 0 : m->n_pieces) && !s; i++) {
        const char *p = m->pieces[i]->piece;
        if (!p || !*p)
            s = aspo_fail(ASPO_ERR_FORMAT, "%s: pieces[%zu] has an empty piece", path, i);
        else s = tok_add_piece(t, p, strlen(p), (int32_t)i);
    }
    if (!s) s = build_merges(t, m);
    if (!s) {
        t->unk_token = strdup(m->trainer_spec->unk_piece ? m->trainer_spec->unk_piece : "<unk>");
        if (!t->unk_token) s = aspo_fail(ASPO_ERR_OOM, "%s: out of memory", path);
        t->fuse_unk = t->byte_fallback = true;
    }
    if (!s) s = tok_set_llama_pipeline(t, cfg_flag(cfg, "legacy", true),
                                       cfg_flag(cfg, "add_prefix_space", true));
    for (size_t i = 0; i < (s ? 0 : m->n_pieces) && !s; i++) {
        int type = m->pieces[i]->type;
        if (type == SENTENCEPIECE__MODEL_PROTO__SENTENCE_PIECE__TYPE__CONTROL ||
            type == SENTENCEPIECE__MODEL_PROTO__SENTENCE_PIECE__TYPE__USER_DEFINED) {
            const char *p = m->pieces[i]->piece;
            s = tok_add_token(t, p, strlen(p),
                              type == SENTENCEPIECE__MODEL_PROTO__SENTENCE_PIECE__TYPE__CONTROL,
                              false, false, false, false);
        }
    }
    sentencepiece__model_proto__free_unpacked(m, NULL);
    if (s) {
        tokenizer_free(t);
        return s;
    }
    *out = t;
    return ASPO_OK;
}
