/* ASPO's CLIP similarities: unit texts through CLIP's text tower, images through its vision
 * tower, cosine on the host in double. */
#include "aspo/train/similarity.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/runtime.h"
#include "tensor/tensor_ops.h"

enum { DEFAULT_MAX_BATCH = 32 };

static int64_t batch_size(const clip_scorer *s)
{
    return s->max_batch > 0 ? s->max_batch : DEFAULT_MAX_BATCH;
}

int64_t clip_scorer_dim(const clip_scorer *s)
{
    return s && s->clip && s->clip->cfg.has_text ? s->clip->text_projection.out_features : 0;
}

/* The tokenizer's ids must be rows of the token table, and the model must pool where the
 * tokenizer puts the end token; a mismatch would otherwise surface as "no end token" or an
 * out-of-vocabulary id deep inside the forward pass. */
static aspo_status check_text_tower(const clip_scorer *s)
{
    if (!s->clip || !s->tok)
        return aspo_fail(ASPO_ERR_USAGE, "CLIP similarities: no CLIP model or tokenizer given");
    const clip_model *m = s->clip;
    if (!m->cfg.has_text)
        return aspo_fail(ASPO_ERR_USAGE,
                         "CLIP similarities need a full CLIPModel (text tower and projections), "
                         "but this CLIP has no text tower (a bare CLIPVisionConfig, as a LLaVA "
                         "vision tower directory has); give a CLIP checkpoint such as "
                         "openai/clip-vit-large-patch14-336");
    const clip_tower_config *c = &m->cfg.text;
    int32_t vocab = clip_tokenizer_vocab_size(s->tok), eos = clip_tokenizer_eos_id(s->tok);
    if (vocab > c->vocab_size)
        return aspo_fail(ASPO_ERR_USAGE,
                         "CLIP similarities: the tokenizer has %d tokens but the CLIP text "
                         "tower only %lld; vocab.json and merges.txt must be the model's own",
                         vocab, (long long)c->vocab_size);
    /* Legacy configs (eos_token_id 2) pool at the largest id: right only when the end
     * token is the tokenizer's largest id, as in CLIP's real vocabulary. */
    bool legacy = c->eos_token_id == 2;
    if (legacy ? eos != vocab - 1 : eos != c->eos_token_id)
        return aspo_fail(ASPO_ERR_USAGE,
                         "CLIP similarities: the tokenizer's end token is id %d but the CLIP "
                         "text tower pools at %s %d; vocab.json and merges.txt must be the "
                         "model's own", eos, legacy ? "the largest id, here" : "eos_token_id",
                         legacy ? vocab - 1 : c->eos_token_id);
    if (c->max_position_embeddings < 2)
        return aspo_fail(ASPO_ERR_USAGE, "CLIP similarities: the text tower has %lld "
                         "positions; it needs at least 2 (start and end tokens)",
                         (long long)c->max_position_embeddings);
    return ASPO_OK;
}

/* ||x|| in double; 0 (an error for the caller) when x has a non-finite entry. */
static double norm_of(const float *x, int64_t E)
{
    double ss = 0;
    for (int64_t e = 0; e < E; e++) {
        if (!isfinite(x[e])) return 0;
        ss += (double)x[e] * x[e];
    }
    return sqrt(ss);
}

/* Buffers for one batch of B <= mb texts. */
typedef struct text_batch {
    int32_t *ids;    /* (mb,L): each text tokenized on its own */
    int32_t *packed; /* (B,T): the batch padded to its longest text */
    int *n;          /* (mb) token counts */
    float *features; /* (mb,E) */
} text_batch;

/* Text features of texts[first .. first+B) into b->features (B,E). */
static aspo_status text_features(const clip_scorer *s, const char *const *texts,
                                 const size_t *lens, int64_t first, int64_t B, int L,
                                 int64_t E, text_batch *b)
{
    int T = 0;
    for (int64_t r = 0; r < B; r++) {
        aspo_status st = clip_tokenize(s->tok, texts[first + r], lens[first + r], b->ids + r * L,
                                       L, &b->n[r]);
        if (st) return aspo_fail_prefix(st, "CLIP similarities, unit %lld: ",
                                        (long long)(first + r));
        if (b->n[r] > T) T = b->n[r];
    }
    for (int64_t r = 0; r < B; r++) {
        memcpy(b->packed + r * T, b->ids + r * L, sizeof(int32_t) * (size_t)b->n[r]);
        clip_pad(s->tok, b->packed + r * T, b->n[r], T);
    }
    /* No key mask: attention is causal and pooling is at the first end token, so the pad
     * tokens after it never reach the pooled position (transformers pools the same way). */
    tensor *ids = tensor_from_host(DT_I32, DIMS(B, T), b->packed);          /* (B,T) */
    tensor *f = clip_text_forward(s->clip, ids, NULL);                      /* (B,E) */
    if (!f)
        return aspo_fail_prefix(aspo_error_status(), "CLIP similarities, units %lld..%lld: ",
                                (long long)first, (long long)(first + B - 1));
    ASPO_ASSERT(f->ndim == 2 && f->shape[0] == B && f->shape[1] == E);
    return tensor_to_host_f32(f, b->features);
}

aspo_status clip_similarities(const clip_scorer *s, int64_t n, const char *const *texts,
                              const size_t *lens, const float *image_embed, int64_t E,
                              float *S)
{
    if (n <= 0) return ASPO_OK;
    aspo_status st = check_text_tower(s);
    if (st) return st;
    int64_t want_E = clip_scorer_dim(s);
    if (E != want_E)
        return aspo_fail(ASPO_ERR_SHAPE, "CLIP similarities: the image embedding has %lld "
                         "values but the CLIP model's embedding space has %lld; it must come "
                         "from the same CLIP", (long long)E, (long long)want_E);
    double image_norm = norm_of(image_embed, E);
    if (!(image_norm > 0))
        return aspo_fail(ASPO_ERR_NUMERIC, "CLIP similarities: the image embedding is zero or "
                         "not finite, so its cosine with a text is undefined");
    int L = (int)(s->clip->cfg.text.max_position_embeddings < CLIP_CONTEXT_LENGTH
                      ? s->clip->cfg.text.max_position_embeddings : CLIP_CONTEXT_LENGTH);
    int64_t mb = batch_size(s);
    if (mb > n) mb = n;
    text_batch b = {
        .ids = malloc(sizeof(int32_t) * (size_t)(mb * L)),
        .packed = malloc(sizeof(int32_t) * (size_t)(mb * L)),
        .n = malloc(sizeof(int) * (size_t)mb),
        .features = malloc(sizeof(float) * (size_t)(mb * E)),
    };
    if (!b.ids || !b.packed || !b.n || !b.features)
        st = aspo_fail(ASPO_ERR_OOM, "CLIP similarities: no host memory for a batch of %lld "
                       "texts", (long long)mb);
    bool prev = autograd_set_enabled(false);
    for (int64_t first = 0; first < n && !st; first += mb) {
        int64_t B = n - first < mb ? n - first : mb;
        st = text_features(s, texts, lens, first, B, L, E, &b);
        for (int64_t r = 0; r < B && !st; r++) {
            const float *t = b.features + r * E;
            double dot = 0, tn = norm_of(t, E);
            if (!(tn > 0)) {
                st = aspo_fail(ASPO_ERR_NUMERIC, "CLIP similarities, unit %lld: the text "
                               "embedding is zero or not finite", (long long)(first + r));
                break;
            }
            for (int64_t e = 0; e < E; e++) dot += (double)t[e] * image_embed[e];
            S[first + r] = (float)(dot / (tn * image_norm));
        }
        runtime_step_reset(); /* one batch's activations at a time */
    }
    autograd_set_enabled(prev);
    runtime_step_reset();
    free(b.ids);
    free(b.packed);
    free(b.n);
    free(b.features);
    return st;
}

aspo_status clip_image_embedding(const clip_scorer *s, int64_t n, const float *pixels,
                                 float *embeds)
{
    if (n <= 0) return ASPO_OK;
    clip_model *m = s->clip;
    if (!m) return aspo_fail(ASPO_ERR_USAGE, "CLIP image embedding: no CLIP model given");
    if (!m->has_visual_projection)
        return aspo_fail(ASPO_ERR_USAGE,
                         "CLIP image embedding: the CLIP model has no visual_projection, so "
                         "its image features are not in the text embedding space; give a "
                         "full CLIPModel checkpoint");
    const clip_tower_config *c = &m->cfg.vision;
    int64_t ch = c->num_channels, S = c->image_size, per = ch * S * S,
            E = m->visual_projection.out_features, mb = batch_size(s);
    aspo_status st = ASPO_OK;
    bool prev = autograd_set_enabled(false);
    for (int64_t first = 0; first < n && !st; first += mb) {
        int64_t B = n - first < mb ? n - first : mb;
        tensor *px = tensor_from_host(DT_F32, DIMS(B, ch, S, S), pixels + first * per);
        tensor *f = clip_vision_forward(m, px, -1, NULL);                   /* (B,E) */
        if (!f) {
            st = aspo_fail_prefix(aspo_error_status(), "CLIP image embedding, images "
                                  "%lld..%lld: ", (long long)first, (long long)(first + B - 1));
        } else {
            ASPO_ASSERT(f->ndim == 2 && f->shape[0] == B && f->shape[1] == E);
            st = tensor_to_host_f32(f, embeds + first * E);
        }
        runtime_step_reset();
    }
    autograd_set_enabled(prev);
    return st;
}
