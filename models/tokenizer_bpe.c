/* BPE of one pre-tokenized word, as HF tokenizers' BPE::merge_word + Word::merge_all: start
 * from one symbol per character (or one per byte through "<0xXX>" pieces when the character
 * is not in the vocabulary and byte_fallback is on, else <unk>), then repeatedly apply the
 * lowest-rank merge present, leftmost first, with a binary heap: O(n log n) per word. */
#include "models/tokenizer_internal.h"

#include <stdlib.h>
#include <string.h>

aspo_status tok_add_merge(tokenizer *t, const char *a, size_t a_len, const char *b,
                          size_t b_len, int32_t rank, int entry)
{
    int32_t ia = tok_strmap_get(&t->vocab, a, a_len), ib = tok_strmap_get(&t->vocab, b, b_len);
    if (ia < 0 || ib < 0) {
        const char *bad = ia < 0 ? a : b;
        int bad_len = (int)(ia < 0 ? a_len : b_len);
        return aspo_fail(ASPO_ERR_FORMAT,
                         "%s: model.merges[%d] names '%.*s', which is not in model.vocab",
                         t->source, entry, bad_len, bad);
    }
    char stack[256], *joined = a_len + b_len <= sizeof stack ? stack : malloc(a_len + b_len);
    if (!joined) return aspo_fail(ASPO_ERR_OOM, "%s: out of memory", t->source);
    memcpy(joined, a, a_len);
    memcpy(joined + a_len, b, b_len);
    int32_t merged = tok_strmap_get(&t->vocab, joined, a_len + b_len);
    aspo_status s = ASPO_OK;
    if (merged < 0)
        s = aspo_fail(ASPO_ERR_FORMAT,
                      "%s: model.merges[%d] ('%.*s' '%.*s') makes '%.*s', which is not in "
                      "model.vocab", t->source, entry, (int)a_len, a, (int)b_len, b,
                      (int)(a_len + b_len), joined);
    if (joined != stack) free(joined);
    return s ? s : tok_pairmap_put(&t->merges, ia, ib, rank, merged);
}

static aspo_status add_sym(tok_bpe_scratch *sc, int32_t id, int32_t len)
{
    if (sc->n_syms == sc->cap_syms) {
        int cap = sc->cap_syms ? sc->cap_syms * 2 : 64;
        tok_sym *p = realloc(sc->syms, (size_t)cap * sizeof *p);
        if (!p) return aspo_fail(ASPO_ERR_OOM, "tokenizer: out of memory (BPE symbols)");
        sc->syms = p, sc->cap_syms = cap;
    }
    int i = sc->n_syms++;
    sc->syms[i] = (tok_sym){.id = id, .len = len, .prev = i - 1, .next = -1};
    if (i > 0) sc->syms[i - 1].next = i;
    return ASPO_OK;
}

/* Min-heap on (rank, pos), the order HF's Merge implements for its BinaryHeap. */
static bool heap_less(tok_heap_item x, tok_heap_item y)
{
    return x.rank != y.rank ? x.rank < y.rank : x.pos < y.pos;
}

static aspo_status heap_push(tok_bpe_scratch *sc, tok_heap_item it)
{
    if (sc->n_heap == sc->cap_heap) {
        int cap = sc->cap_heap ? sc->cap_heap * 2 : 64;
        tok_heap_item *p = realloc(sc->heap, (size_t)cap * sizeof *p);
        if (!p) return aspo_fail(ASPO_ERR_OOM, "tokenizer: out of memory (BPE heap)");
        sc->heap = p, sc->cap_heap = cap;
    }
    int i = sc->n_heap++;
    while (i > 0 && heap_less(it, sc->heap[(i - 1) / 2])) {
        sc->heap[i] = sc->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    sc->heap[i] = it;
    return ASPO_OK;
}

static tok_heap_item heap_pop(tok_bpe_scratch *sc)
{
    tok_heap_item top = sc->heap[0], last = sc->heap[--sc->n_heap];
    int i = 0, n = sc->n_heap;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && heap_less(sc->heap[c + 1], sc->heap[c])) c++;
        if (!heap_less(sc->heap[c], last)) break;
        sc->heap[i] = sc->heap[c];
        i = c;
    }
    if (n > 0) sc->heap[i] = last;
    return top;
}

static aspo_status push_pair(const tokenizer *t, tok_bpe_scratch *sc, int pos)
{
    int next = sc->syms[pos].next;
    int32_t rank, merged;
    if (next < 0 || !tok_pairmap_get(&t->merges, sc->syms[pos].id, sc->syms[next].id, &rank,
                                     &merged))
        return ASPO_OK;
    return heap_push(sc, (tok_heap_item){.rank = rank, .pos = pos, .merged = merged});
}

static aspo_status merge_all(const tokenizer *t, tok_bpe_scratch *sc)
{
    aspo_status s = ASPO_OK;
    sc->n_heap = 0;
    for (int i = 0; i + 1 < sc->n_syms && !s; i++) s = push_pair(t, sc, i);
    while (!s && sc->n_heap > 0) {
        tok_heap_item top = heap_pop(sc);
        tok_sym *cur = &sc->syms[top.pos];
        if (cur->len == 0 || cur->next < 0) continue; /* merged away, or last symbol */
        tok_sym *right = &sc->syms[cur->next];
        int32_t rank, merged;
        /* An entry is stale when the pair at pos no longer merges into the same token. */
        if (!tok_pairmap_get(&t->merges, cur->id, right->id, &rank, &merged) ||
            merged != top.merged)
            continue;
        cur->id = top.merged;
        cur->len += right->len;
        cur->next = right->next;
        right->len = 0;
        if (cur->next >= 0) sc->syms[cur->next].prev = top.pos;
        if (cur->prev >= 0) s = push_pair(t, sc, cur->prev);
        if (!s) s = push_pair(t, sc, top.pos);
    }
    int k = 0; /* keep the live symbols, in order */
    for (int i = 0; i < sc->n_syms; i++)
        if (sc->syms[i].len) sc->syms[k++] = sc->syms[i];
    sc->n_syms = k;
    return s;
}

aspo_status tok_bpe_word(const tokenizer *t, const char *w, size_t n, tok_bpe_scratch *sc)
{
    sc->n_syms = 0;
    if (n == 0) return ASPO_OK;
    if (t->ignore_merges) {
        int32_t id = tok_strmap_get(&t->vocab, w, n);
        if (id >= 0) return add_sym(sc, id, (int32_t)n);
    }
    aspo_status s = ASPO_OK;
    bool unk_pending = false;
    int32_t unk_len = 0;
    for (size_t i = 0; i < n && !s;) {
        int len = tok_utf8_len((unsigned char)w[i]);
        int32_t id = tok_strmap_get(&t->vocab, w + i, (size_t)len);
        if (id >= 0) {
            if (unk_pending) s = add_sym(sc, t->unk, unk_len);
            unk_pending = false;
            if (!s) s = add_sym(sc, id, len);
            i += (size_t)len;
            continue;
        }
        if (t->byte_fallback) {
            bool all = true;
            for (int k = 0; k < len; k++) all = all && t->byte_ids[(unsigned char)w[i + k]] >= 0;
            if (all) {
                /* HF adds the byte pieces before any pending <unk>, which comes later. */
                for (int k = 0; k < len && !s; k++)
                    s = add_sym(sc, t->byte_ids[(unsigned char)w[i + k]], 1);
                i += (size_t)len;
                continue;
            }
        }
        if (t->unk_token) { /* without an unk token HF drops the character */
            if (t->unk < 0)
                return aspo_fail(ASPO_ERR_FORMAT, "%s: model.unk_token '%s' is not in the "
                                 "vocabulary, and the text needs it", t->source, t->unk_token);
            if (unk_pending && t->fuse_unk) {
                unk_len += len;
            } else {
                if (unk_pending) s = add_sym(sc, t->unk, unk_len);
                unk_pending = true;
                unk_len = len;
            }
        }
        i += (size_t)len;
    }
    if (!s && unk_pending) s = add_sym(sc, t->unk, unk_len);
    return s ? s : merge_all(t, sc);
}

void tok_bpe_scratch_free(tok_bpe_scratch *sc)
{
    free(sc->syms);
    free(sc->heap);
    memset(sc, 0, sizeof *sc);
}
