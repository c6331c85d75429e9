/* Decoding, following HF tokenizers' Tokenizer::decode: ids -> pieces (ids without a piece
 * are dropped, special tokens too when asked), each decoder of the chain maps the list of
 * strings to a new list, the result is joined (with " " when there is no decoder), then
 * transformers' clean_up_tokenization when the config asks for it. */
#include "models/tokenizer_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct str {
    char *p;
    size_t n;
} str;

typedef struct strlist {
    str *v;
    int n, cap;
} strlist;

static void list_free(strlist *l)
{
    for (int i = 0; i < l->n; i++) free(l->v[i].p);
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* Appends a copy of p[0..n) (owned by the list). */
static aspo_status list_push(strlist *l, const char *p, size_t n)
{
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 16;
        str *v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) return aspo_fail(ASPO_ERR_OOM, "tokenizer_decode: out of memory");
        l->v = v, l->cap = cap;
    }
    char *c = malloc(n + 1);
    if (!c) return aspo_fail(ASPO_ERR_OOM, "tokenizer_decode: out of memory");
    if (n) memcpy(c, p, n);
    c[n] = 0;
    l->v[l->n++] = (str){c, n};
    return ASPO_OK;
}

/* A growing byte buffer. */
typedef struct buf {
    char *p;
    size_t n, cap;
} buf;

static aspo_status buf_add(buf *b, const char *p, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1) cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) return aspo_fail(ASPO_ERR_OOM, "tokenizer_decode: out of memory");
        b->p = q, b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, p, n);
    b->n += n;
    b->p[b->n] = 0;
    return ASPO_OK;
}

static aspo_status replace_into(buf *b, const str *s, const char *pat, size_t pat_len,
                                const char *content, size_t content_len)
{
    b->n = 0;
    aspo_status st = buf_add(b, "", 0);
    size_t last = 0;
    for (size_t i = 0; !st && pat_len && i + pat_len <= s->n;) {
        if (memcmp(s->p + i, pat, pat_len) != 0) {
            i++;
            continue;
        }
        st = buf_add(b, s->p + last, i - last);
        if (!st) st = buf_add(b, content, content_len);
        i += pat_len;
        last = i;
    }
    return st ? st : buf_add(b, s->p + last, s->n - last);
}

/* "<0xHH>" as HF's ByteFallback reads it (u8::from_str_radix, which takes a leading '+'). */
static int byte_token(const str *s)
{
    if (s->n != 6 || memcmp(s->p, "<0x", 3) != 0 || s->p[5] != '>') return -1;
    int v = 0;
    for (int k = 3; k < 5; k++) {
        char c = s->p[k];
        if (k == 3 && c == '+') continue;
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

static aspo_status flush_bytes(strlist *out, buf *bytes)
{
    aspo_status st = ASPO_OK;
    if (bytes->n == 0) return st;
    if (tok_utf8_valid_prefix(bytes->p, bytes->n) == bytes->n) {
        st = list_push(out, bytes->p, bytes->n);
    } else { /* one U+FFFD per byte token */
        for (size_t i = 0; i < bytes->n && !st; i++) st = list_push(out, "\xEF\xBF\xBD", 3);
    }
    bytes->n = 0;
    return st;
}

static aspo_status apply(const tok_dec *d, strlist *in, strlist *out)
{
    aspo_status st = ASPO_OK;
    buf b = {0};
    char u[4];
    switch (d->kind) {
    case TOK_DEC_REPLACE:
        for (int i = 0; i < in->n && !st; i++) {
            st = replace_into(&b, &in->v[i], d->a, d->a_len, d->b, d->b_len);
            if (!st) st = list_push(out, b.p, b.n);
        }
        break;
    case TOK_DEC_BYTE_FALLBACK:
        for (int i = 0; i < in->n && !st; i++) {
            int v = byte_token(&in->v[i]);
            if (v >= 0) {
                char c = (char)v;
                st = buf_add(&b, &c, 1);
                continue;
            }
            st = flush_bytes(out, &b);
            if (!st) st = list_push(out, in->v[i].p, in->v[i].n);
        }
        if (!st) st = flush_bytes(out, &b);
        break;
    case TOK_DEC_FUSE:
        st = buf_add(&b, "", 0);
        for (int i = 0; i < in->n && !st; i++) st = buf_add(&b, in->v[i].p, in->v[i].n);
        if (!st) st = list_push(out, b.p, b.n);
        break;
    case TOK_DEC_STRIP:
        for (int i = 0; i < in->n && !st; i++) {
            const str *s = &in->v[i];
            size_t a = 0, z = s->n; /* byte range kept */
            for (int k = 0; k < d->start && a < z; k++) {
                int l;
                if (tok_utf8_decode(s->p + a, &l) != d->ch) break;
                a += (size_t)l;
            }
            for (int k = 0; k < d->stop && z > a; k++) {
                size_t j = z - 1;
                while (j > a && ((unsigned char)s->p[j] & 0xC0) == 0x80) j--;
                int l;
                if (tok_utf8_decode(s->p + j, &l) != d->ch) break;
                z = j;
            }
            st = list_push(out, s->p + a, z - a);
        }
        break;
    case TOK_DEC_METASPACE: {
        int rl = tok_utf8_encode(d->ch, u);
        for (int i = 0; i < in->n && !st; i++) {
            /* In the first token HF drops every replacement character (unless "never"). */
            bool drop = i == 0 && d->prepend != TOK_PREPEND_NEVER;
            st = replace_into(&b, &in->v[i], u, (size_t)rl, " ", drop ? 0 : 1);
            if (!st) st = list_push(out, b.p, b.n);
        }
        break;
    }
    }
    free(b.p);
    return st;
}

/* transformers' PreTrainedTokenizerBase.clean_up_tokenization. */
static aspo_status clean_up(buf *b)
{
    static const char *const from[] = {" .", " ?", " !", " ,", " ' ", " n't", " 'm", " 's",
                                       " 've", " 're"};
    static const char *const to[] = {".", "?", "!", ",", "'", "n't", "'m", "'s", "'ve", "'re"};
    buf out = {0};
    aspo_status st = ASPO_OK;
    for (size_t k = 0; k < sizeof from / sizeof *from && !st; k++) {
        str s = {b->p, b->n};
        st = replace_into(&out, &s, from[k], strlen(from[k]), to[k], strlen(to[k]));
        if (!st) {
            buf tmp = *b;
            *b = out;
            out = tmp;
        }
    }
    free(out.p);
    return st;
}

aspo_status tokenizer_decode(const tokenizer *t, const int32_t *ids, int n, bool skip_special,
                             char **text)
{
    if (!t || !text || (n > 0 && !ids))
        return aspo_fail(ASPO_ERR_USAGE, "tokenizer_decode: NULL argument");
    *text = NULL;
    strlist cur = {0}, next = {0};
    aspo_status st = ASPO_OK;
    for (int i = 0; i < n && !st; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= t->n_ids || !t->pieces[id]) continue;
        if (skip_special && t->special[id]) continue;
        st = list_push(&cur, t->pieces[id], t->piece_lens[id]);
    }
    for (int k = 0; k < t->n_dec && !st; k++) {
        st = apply(&t->dec[k], &cur, &next);
        list_free(&cur);
        cur = next;
        memset(&next, 0, sizeof next);
    }
    buf b = {0};
    if (!st) st = buf_add(&b, "", 0);
    for (int i = 0; i < cur.n && !st; i++) {
        if (i > 0 && !t->has_decoder) st = buf_add(&b, " ", 1);
        if (!st) st = buf_add(&b, cur.v[i].p, cur.v[i].n);
    }
    if (!st && t->cleanup_spaces) st = clean_up(&b);
    list_free(&cur);
    list_free(&next);
    if (st) {
        free(b.p);
        return st;
    }
    *text = b.p;
    return ASPO_OK;
}
