/* Encoding, following HF tokenizers' TokenizerImpl::encode_single_sequence:
 *   1. split the text on added tokens that are not normalized (on the original text),
 *   2. normalize each remaining piece, split it on the normalized added tokens,
 *   3. pre-tokenize each remaining piece (Metaspace) into words,
 *   4. BPE each word; offsets map back to the original text through the alignments.
 * Every normalized byte carries the original byte range it came from, with HF's rules for
 * inserted characters, so offsets agree with HF's (converted from characters to bytes). */
#include "models/tokenizer_internal.h"

#include <stdlib.h>
#include <string.h>

aspo_status tok_nstr_reserve(tok_nstr *n, size_t cap)
{
    if (cap <= n->cap) return ASPO_OK;
    size_t c = n->cap ? n->cap : 64;
    while (c < cap) c *= 2;
    char *s = realloc(n->s, c);
    if (s) n->s = s;
    int32_t *a0 = s ? realloc(n->a0, c * sizeof *a0) : NULL;
    if (a0) n->a0 = a0;
    int32_t *a1 = a0 ? realloc(n->a1, c * sizeof *a1) : NULL;
    if (!a1) return aspo_fail(ASPO_ERR_OOM, "tokenizer: out of memory (%zu bytes of text)", c);
    n->a1 = a1, n->cap = c;
    return ASPO_OK;
}

void tok_nstr_free(tok_nstr *n)
{
    free(n->s), free(n->a0), free(n->a1);
    memset(n, 0, sizeof *n);
}

static aspo_status nstr_append(tok_nstr *n, const char *s, size_t len, int32_t a0, int32_t a1)
{
    aspo_status st = tok_nstr_reserve(n, n->len + len);
    if (st) return st;
    memcpy(n->s + n->len, s, len);
    for (size_t i = 0; i < len; i++) n->a0[n->len + i] = a0, n->a1[n->len + i] = a1;
    n->len += len;
    return ASPO_OK;
}

/* HF NormalizedString::prepend: the prepended text takes the first character's alignment. */
aspo_status tok_nstr_prepend(tok_nstr *n, const char *s, size_t len)
{
    if (n->len == 0 || len == 0) return ASPO_OK;
    aspo_status st = tok_nstr_reserve(n, n->len + len);
    if (st) return st;
    int32_t a0 = n->a0[0], a1 = n->a1[0];
    memmove(n->s + len, n->s, n->len);
    memmove(n->a0 + len, n->a0, n->len * sizeof *n->a0);
    memmove(n->a1 + len, n->a1, n->len * sizeof *n->a1);
    memcpy(n->s, s, len);
    for (size_t i = 0; i < len; i++) n->a0[i] = a0, n->a1[i] = a1;
    n->len += len;
    return ASPO_OK;
}

/* HF NormalizedString::replace with a literal pattern: non-overlapping matches, left to
 * right; the content's characters are "inserted", so they take the alignment of the
 * match's last byte. */
aspo_status tok_nstr_replace(tok_nstr *n, const char *pat, size_t pat_len, const char *content,
                             size_t content_len, tok_nstr *out)
{
    if (pat_len == 0 || n->len < pat_len) return ASPO_OK;
    out->len = 0;
    aspo_status st = tok_nstr_reserve(out, n->len);
    size_t last = 0;
    for (size_t i = 0; !st && i + pat_len <= n->len;) {
        if (memcmp(n->s + i, pat, pat_len) != 0) {
            i++;
            continue;
        }
        size_t keep = i - last;
        st = tok_nstr_reserve(out, out->len + keep + content_len);
        if (st) break;
        memcpy(out->s + out->len, n->s + last, keep);
        memcpy(out->a0 + out->len, n->a0 + last, keep * sizeof *n->a0);
        memcpy(out->a1 + out->len, n->a1 + last, keep * sizeof *n->a1);
        out->len += keep;
        st = nstr_append(out, content, content_len, n->a0[i + pat_len - 1],
                         n->a1[i + pat_len - 1]);
        i += pat_len;
        last = i;
    }
    if (st) return st;
    if (last == 0) return ASPO_OK; /* no match: n is unchanged */
    st = tok_nstr_reserve(out, out->len + n->len - last);
    if (st) return st;
    size_t keep = n->len - last;
    memcpy(out->s + out->len, n->s + last, keep);
    memcpy(out->a0 + out->len, n->a0 + last, keep * sizeof *n->a0);
    memcpy(out->a1 + out->len, n->a1 + last, keep * sizeof *n->a1);
    out->len += keep;
    tok_nstr tmp = *n; /* swap buffers */
    *n = *out;
    *out = tmp;
    return ASPO_OK;
}

aspo_status tok_normalize(const tokenizer *t, tok_nstr *n, tok_nstr *scratch)
{
    aspo_status st = ASPO_OK;
    for (int k = 0; k < t->n_norm && !st; k++) {
        const tok_norm *s = &t->norm[k];
        if (s->kind == TOK_NORM_PREPEND) st = tok_nstr_prepend(n, s->a, s->a_len);
        else st = tok_nstr_replace(n, s->a, s->a_len, s->b, s->b_len, scratch);
    }
    return st;
}

/* Unicode White_Space, as Rust regex's \s. */
static bool is_space(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

/* \w for single_word: ASCII letters, digits and '_' exactly; beyond ASCII an approximation
 * of Unicode's word characters that counts everything as a letter except spaces, common
 * punctuation and symbol blocks and emoji. */
static bool is_word(uint32_t c)
{
    if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
                         (c >= 'A' && c <= 'Z') || c == '_';
    if (is_space(c)) return false;
    if ((c >= 0x80 && c <= 0xBF && c != 0xAA && c != 0xB2 && c != 0xB3 && c != 0xB5 &&
         c != 0xB9 && c != 0xBA) || c == 0xD7 || c == 0xF7)
        return false;
    if ((c >= 0x2000 && c <= 0x2BFF) || (c >= 0x3000 && c <= 0x303F) ||
        (c >= 0xFE30 && c <= 0xFE4F) || (c >= 0xFF00 && c <= 0xFF0F) ||
        (c >= 0x1F000 && c <= 0x1FAFF))
        return c == 0x200C || c == 0x200D; /* join controls are \w */
    return true;
}

static bool ends_with_word(const char *s, size_t n)
{
    if (n == 0) return false;
    size_t i = n - 1;
    while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80) i--;
    int l;
    return is_word(tok_utf8_decode(s + i, &l));
}

static bool starts_with_word(const char *s, size_t n)
{
    int l;
    return n > 0 && is_word(tok_utf8_decode(s, &l));
}

static aspo_status push_seg(tok_seg **segs, int *n, int *cap, int32_t a, int32_t b, int32_t id)
{
    if (*n == *cap) {
        int c = *cap ? *cap * 2 : 16;
        tok_seg *p = realloc(*segs, (size_t)c * sizeof *p);
        if (!p) return aspo_fail(ASPO_ERR_OOM, "tokenizer: out of memory (segments)");
        *segs = p, *cap = c;
    }
    (*segs)[(*n)++] = (tok_seg){a, b, id};
    return ASPO_OK;
}

/* Leftmost-longest, non-overlapping matches (as HF's Aho-Corasick), then single_word,
 * lstrip and rstrip as AddedVocabulary::find_matches applies them. */
aspo_status tok_find_added(const tokenizer *t, const tok_trie *trie, const char *s, size_t n,
                           tok_seg **segs, int *n_segs, int *cap_segs)
{
    *n_segs = 0;
    if (n == 0) return ASPO_OK;
    size_t start_offset = 0, pos = 0;
    bool any = trie->idx && trie->first[256] > 0;
    while (any && pos < n) {
        unsigned char c = (unsigned char)s[pos];
        int best = -1;
        size_t best_len = 0;
        for (int k = trie->first[c]; k < trie->first[c + 1]; k++) {
            const tok_added *a = &t->added[trie->idx[k]];
            if (a->pattern_len > best_len && a->pattern_len <= n - pos &&
                memcmp(s + pos, a->pattern, a->pattern_len) == 0)
                best = trie->idx[k], best_len = a->pattern_len;
        }
        if (best < 0) {
            pos++;
            continue;
        }
        const tok_added *a = &t->added[best];
        size_t start = pos, stop = pos + best_len;
        pos = stop; /* the next match starts after this one, kept or not */
        if (a->single_word && ((start > 0 && ends_with_word(s, start)) ||
                               (stop < n && starts_with_word(s + stop, n - stop))))
            continue;
        if (a->lstrip) {
            size_t k = start; /* back over trailing whitespace of s[..start) */
            while (k > 0) {
                size_t j = k - 1;
                while (j > 0 && ((unsigned char)s[j] & 0xC0) == 0x80) j--;
                int l;
                if (!is_space(tok_utf8_decode(s + j, &l))) break;
                k = j;
            }
            start = k > start_offset ? k : start_offset;
        }
        if (a->rstrip) {
            while (stop < n) {
                int l;
                if (!is_space(tok_utf8_decode(s + stop, &l))) break;
                stop += (size_t)l;
            }
        }
        aspo_status st = ASPO_OK;
        if (start_offset < start)
            st = push_seg(segs, n_segs, cap_segs, (int32_t)start_offset, (int32_t)start, -1);
        if (!st) st = push_seg(segs, n_segs, cap_segs, (int32_t)start, (int32_t)stop, a->id);
        if (st) return st;
        start_offset = stop;
    }
    if (start_offset != n)
        return push_seg(segs, n_segs, cap_segs, (int32_t)start_offset, (int32_t)n, -1);
    return ASPO_OK;
}

typedef struct encode_state {
    tok_nstr piece, scratch, word;
    tok_seg *segs, *subsegs;
    int n_segs, cap_segs, n_sub, cap_sub;
    tok_bpe_scratch bpe;
} encode_state;

/* BPE of n->s[a..b) and the tokens' original offsets. */
static aspo_status model_tokens(const tokenizer *t, encode_state *e, const tok_nstr *n,
                                size_t a, size_t b, token_list *out)
{
    aspo_status st = tok_bpe_word(t, n->s + a, b - a, &e->bpe);
    size_t pos = a;
    for (int k = 0; k < e->bpe.n_syms && !st; k++) {
        size_t end = pos + (size_t)e->bpe.syms[k].len;
        st = token_list_push(out, e->bpe.syms[k].id, n->a0[pos], n->a1[end - 1]);
        pos = end;
    }
    return st;
}

/* Pre-tokenizes n->s[a..b) (one piece between added tokens) and runs the model on it. */
static aspo_status pretokenize(const tokenizer *t, encode_state *e, const tok_nstr *n,
                               size_t a, size_t b, token_list *out)
{
    if (!t->pretok.metaspace) return model_tokens(t, e, n, a, b, out);
    const tok_pretok *p = &t->pretok;
    tok_nstr *w = &e->word;
    w->len = 0;
    aspo_status st = tok_nstr_reserve(w, b - a);
    if (st) return st;
    memcpy(w->s, n->s + a, b - a);
    memcpy(w->a0, n->a0 + a, (b - a) * sizeof *w->a0);
    memcpy(w->a1, n->a1 + a, (b - a) * sizeof *w->a1);
    w->len = b - a;
    int32_t original_start = n->a0[a]; /* HF offsets_original().0 of this split */
    st = tok_nstr_replace(w, " ", 1, p->rep, (size_t)p->rep_len, &e->scratch);
    if (st) return st;
    bool starts = w->len >= (size_t)p->rep_len && memcmp(w->s, p->rep, (size_t)p->rep_len) == 0;
    if (!starts && (p->prepend == TOK_PREPEND_ALWAYS ||
                    (p->prepend == TOK_PREPEND_FIRST && original_start == 0)))
        st = tok_nstr_prepend(w, p->rep, (size_t)p->rep_len);
    if (st || !p->split) return st ? st : model_tokens(t, e, w, 0, w->len, out);
    /* split, MergedWithNext: every replacement character starts a new word */
    size_t word_start = 0;
    for (size_t i = 1; i <= w->len && !st; i++) {
        if (i == w->len || (i + (size_t)p->rep_len <= w->len &&
                            memcmp(w->s + i, p->rep, (size_t)p->rep_len) == 0)) {
            st = model_tokens(t, e, w, word_start, i, out);
            word_start = i;
        }
    }
    return st;
}

static aspo_status encode_piece(const tokenizer *t, encode_state *e, const char *text,
                                size_t a, size_t b, token_list *out)
{
    tok_nstr *n = &e->piece;
    n->len = 0;
    aspo_status st = tok_nstr_reserve(n, b - a);
    if (st) return st;
    for (size_t i = a; i < b;) { /* identity alignment: each byte maps to its character */
        int l = tok_utf8_len((unsigned char)text[i]);
        for (int k = 0; k < l; k++) n->a0[n->len + k] = (int32_t)i, n->a1[n->len + k] = (int32_t)(i + l);
        memcpy(n->s + n->len, text + i, (size_t)l);
        n->len += (size_t)l;
        i += (size_t)l;
    }
    st = tok_normalize(t, n, &e->scratch);
    if (!st) st = tok_find_added(t, &t->norm_trie, n->s, n->len, &e->subsegs, &e->n_sub,
                                 &e->cap_sub);
    for (int k = 0; k < e->n_sub && !st; k++) {
        tok_seg g = e->subsegs[k];
        if (g.end <= g.start) continue; /* HF drops empty splits */
        if (g.id >= 0) st = token_list_push(out, g.id, n->a0[g.start], n->a1[g.end - 1]);
        else st = pretokenize(t, e, n, (size_t)g.start, (size_t)g.end, out);
    }
    return st;
}

aspo_status tokenizer_encode(const tokenizer *t, const char *text, size_t len, token_list *out)
{
    if (!t || !out || (!text && len))
        return aspo_fail(ASPO_ERR_USAGE, "tokenizer_encode: NULL argument");
    if (len > INT32_MAX - 16)
        return aspo_fail(ASPO_ERR_USAGE, "tokenizer_encode: text of %zu bytes is over 2 GiB",
                         len);
    size_t valid = tok_utf8_valid_prefix(text, len);
    if (valid != len)
        return aspo_fail(ASPO_ERR_USAGE, "tokenizer_encode: text is not valid UTF-8 at byte "
                         "%zu (of %zu)", valid, len);
    encode_state e = {0};
    aspo_status st = tok_find_added(t, &t->raw_trie, text, len, &e.segs, &e.n_segs,
                                    &e.cap_segs);
    for (int k = 0; k < e.n_segs && !st; k++) {
        tok_seg g = e.segs[k];
        if (g.end <= g.start) continue;
        if (g.id >= 0) st = token_list_push(out, g.id, g.start, g.end);
        else st = encode_piece(t, &e, text, (size_t)g.start, (size_t)g.end, out);
    }
    tok_nstr_free(&e.piece), tok_nstr_free(&e.scratch), tok_nstr_free(&e.word);
    free(e.segs), free(e.subsegs);
    tok_bpe_scratch_free(&e.bpe);
    return st;
}
