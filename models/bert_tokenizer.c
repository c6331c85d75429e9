/* BERT WordPiece encoding: see bert_tokenizer.h for the exact steps (transformers 4.44's
 * slow BertTokenizer). Text is handled as UTF-32 code points; ICU gives categories and
 * mappings; vocab.txt lines and added tokens are looked up as UTF-8. Loading is in
 * bert_tokenizer_load.c. */
#include "models/bert_tokenizer_internal.h"

#include "models/text_unicode.h"

#include <stdlib.h>
#include <unicode/uchar.h>

#define BERT_MAX_WORD_CHARS 100         /* WordpieceTokenizer.max_input_chars_per_word */
#define BERT_MAX_TEXT ((size_t)4 << 20) /* bytes of one text: an instruction is far shorter */

static const char OOM[] = BERT_OOM;

/* ---- growable int32 arrays: code points and ids --------------------------------------- */

typedef struct ivec {
    int32_t *v;
    int n, cap;
} ivec;

static aspo_status ivec_add(ivec *a, const int32_t *x, int n)
{
    if (n == 0) return ASPO_OK;
    if (a->n + n > a->cap) {
        int cap = a->cap ? a->cap : 64;
        while (cap < a->n + n) cap *= 2;
        int32_t *v = realloc(a->v, (size_t)cap * sizeof *v);
        if (!v) return aspo_fail(ASPO_ERR_OOM, OOM);
        a->v = v;
        a->cap = cap;
    }
    memcpy(a->v + a->n, x, (size_t)n * sizeof *x);
    a->n += n;
    return ASPO_OK;
}

static aspo_status ivec_push(ivec *a, int32_t x) { return ivec_add(a, &x, 1); }

/* ---- strings --------------------------------------------------------------------------- */

int bert_utf8_to_cps(const char *s, size_t len, int32_t *out)
{
    if (tok_utf8_valid_prefix(s, len) != len) return -1;
    int n = 0;
    for (size_t i = 0; i < len;) {
        int l;
        out[n++] = (int32_t)tok_utf8_decode(s + i, &l);
        i += (size_t)l;
    }
    return n;
}

static size_t cps_to_utf8(const int32_t *c, int n, char *out)
{
    size_t k = 0;
    for (int i = 0; i < n; i++) k += (size_t)tok_utf8_encode((uint32_t)c[i], out + k);
    out[k] = '\0';
    return k;
}

/* The added token spelled exactly c[0..n), or -1. */
static int added_find(const bert_tokenizer *t, const int32_t *c, int n)
{
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].cps.n == n && cps_at(c, n, &t->added[i].cps)) return i;
    return -1;
}

/* ---- encoding -------------------------------------------------------------------------- */

static bool has_cat(int32_t c, uint32_t mask) { return (U_GET_GC_MASK(c) & mask) != 0; }

/* BERT's punctuation: all non-alphanumeric printable ASCII, and category P*. */
static bool is_punct(int32_t c)
{
    if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
        (c >= 123 && c <= 126))
        return true;
    return has_cat(c, U_GC_P_MASK);
}

/* Python's str.lower of one character: the full mapping, which differs from the simple one
 * only for U+0130; no final sigma, as one character has no context. */
static aspo_status lower_char(int32_t c, ivec *o)
{
    if (c == 0x130) return ivec_add(o, (const int32_t[]){'i', 0x307}, 2);
    return ivec_push(o, u_tolower(c));
}

/* PreTrainedTokenizer.tokenize's pass: each character lower-cased, protected tokens kept. */
static aspo_status lower_pass(const bert_tokenizer *t, const int32_t *c, int n, ivec *o)
{
    for (int i = 0; i < n;) {
        int m = 0;
        for (int k = 0; k < t->n_protect && !m; k++)
            if (t->protect[k].n && cps_at(c + i, n - i, &t->protect[k])) m = t->protect[k].n;
        aspo_status st = m ? ivec_add(o, c + i, m) : lower_char(c[i], o);
        if (st) return st;
        i += m ? m : 1;
    }
    return ASPO_OK;
}

/* Ids of one word by greedy longest-match-first WordPiece. */
static aspo_status wordpiece(const bert_tokenizer *t, const int32_t *w, int n, ivec *ids)
{
    if (n > BERT_MAX_WORD_CHARS) return ivec_push(ids, t->unk);
    char utf8[4 * BERT_MAX_WORD_CHARS + 1], key[4 * BERT_MAX_WORD_CHARS + 3];
    int off[BERT_MAX_WORD_CHARS + 1];
    off[0] = 0;
    for (int i = 0; i < n; i++)
        off[i + 1] = off[i] + tok_utf8_encode((uint32_t)w[i], utf8 + off[i]);
    int first = ids->n;
    for (int start = 0; start < n;) {
        int end = n, k = start ? 2 : 0;
        size_t len = 0;
        for (; end > start; end--) { /* "##" + the piece, or the piece at the start */
            memcpy(key, "##", 2);
            memcpy(key + k, utf8 + off[start], (size_t)(off[end] - off[start]));
            len = (size_t)(k + off[end] - off[start]);
            if (tok_strmap_get(&t->vocab, key, len) >= 0) break;
        }
        if (end == start) { /* no piece fits: the whole word is [UNK] */
            ids->n = first;
            return ivec_push(ids, t->unk);
        }
        aspo_status st = ivec_push(ids, bert_token_id(t, key, len));
        if (st) return st;
        start = end;
    }
    return ASPO_OK;
}

static bool in_never_split(const bert_tokenizer *t, const int32_t *w, int n, bool specials)
{
    for (int k = 0; specials && k < t->n_specials; k++)
        if (t->specials[k].n == n && cps_at(w, n, &t->specials[k])) return true;
    char buf[4 * 256 + 1];
    return n <= 256 && t->never_split.n &&
           tok_strmap_get(&t->never_split, buf, cps_to_utf8(w, n, buf)) >= 0;
}

/* One whitespace-free word of BasicTokenizer: lower-case, strip accents, split off
 * punctuation; each piece to WordPiece (or as it is when never_split names it). */
static aspo_status basic_word(const bert_tokenizer *t, const int32_t *w, int n, ivec *ids)
{
    int32_t *low = NULL, *nfd = NULL;
    const int32_t *x = w;
    int nx = n, nl;
    aspo_status st = ASPO_OK;
    bool keep = in_never_split(t, w, n, true);
    bool strip = t->lower ? t->strip_accents != 0 : t->strip_accents == 1;
    if (!keep && t->lower) {
        if ((st = text_map(x, nx, TEXT_LOWER, &low, &nl, "BERT tokenizer"))) goto done;
        x = low, nx = nl;
    }
    if (!keep && strip) {
        if ((st = text_map(x, nx, TEXT_NFD, &nfd, &nl, "BERT tokenizer"))) goto done;
        int m = 0;
        for (int i = 0; i < nl; i++)
            if (!has_cat(nfd[i], U_GC_MN_MASK)) nfd[m++] = nfd[i];
        x = nfd, nx = m;
    }
    keep = keep || in_never_split(t, x, nx, true);
    for (int i = 0; i < nx && !st;) {
        int j = i + 1;
        if (!keep && !is_punct(x[i]))
            while (j < nx && !is_punct(x[j])) j++;
        if (keep) j = nx;
        if (in_never_split(t, x + i, j - i, false)) { /* kept as a token, not WordPiece'd */
            char buf[4 * 256 + 1];
            int32_t id = bert_token_id(t, buf, cps_to_utf8(x + i, j - i, buf));
            st = ivec_push(ids, id >= 0 ? id : t->unk);
        } else {
            st = wordpiece(t, x + i, j - i, ids);
        }
        i = j;
    }
done:
    free(low);
    free(nfd);
    return st;
}

/* Text between added tokens: BasicTokenizer (clean, CJK, NFC, split) and WordPiece. */
static aspo_status encode_text(const bert_tokenizer *t, const int32_t *c, int n, ivec *ids)
{
    int32_t *clean = malloc(((size_t)3 * n + 1) * sizeof *clean), *nfc = NULL;
    if (!clean) return aspo_fail(ASPO_ERR_OOM, OOM);
    int m = 0, nn = n;
    aspo_status st = ASPO_OK;
    for (int i = 0; i < n && t->basic; i++) {
        int32_t ch = c[i];
        bool ws = ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' ||
                  has_cat(ch, U_GC_ZS_MASK);
        if (ch == 0 || ch == 0xFFFD || (!ws && has_cat(ch, U_GC_C_MASK))) continue;
        bool cjk = t->chinese && text_is_cjk(ch);
        if (cjk) clean[m++] = ' ';
        clean[m++] = ws ? ' ' : ch;
        if (cjk) clean[m++] = ' ';
    }
    const int32_t *x = c;
    if (t->basic) {
        if ((st = text_map(clean, m, TEXT_NFC, &nfc, &nn, "BERT tokenizer"))) goto done;
        x = nfc;
    }
    for (int i = 0; i < nn && !st;) {
        if (text_py_isspace(x[i])) {
            i++;
            continue;
        }
        int j = i;
        while (j < nn && !text_py_isspace(x[j])) j++;
        st = t->basic ? basic_word(t, x + i, j - i, ids) : wordpiece(t, x + i, j - i, ids);
        i = j;
    }
done:
    free(clean);
    free(nfc);
    return st;
}

static void strip_left(ivec *s)
{
    int k = 0;
    while (k < s->n && text_py_isspace(s->v[k])) k++;
    memmove(s->v, s->v + k, (size_t)(s->n - k) * sizeof *s->v);
    s->n -= k;
}

static void strip_right(ivec *s)
{
    while (s->n > 0 && text_py_isspace(s->v[s->n - 1])) s->n--;
}

/* tokens_trie.split: leftmost-longest added tokens cut the text into segments. */
static aspo_status split_added(const bert_tokenizer *t, const int32_t *c, int n, ivec **out,
                               int *nseg)
{
    ivec *s = calloc((size_t)2 * n + 1, sizeof *s);
    if (!s) return aspo_fail(ASPO_ERR_OOM, OOM);
    int k = 0, from = 0;
    aspo_status st = ASPO_OK;
    for (int i = 0; i <= n && !st;) {
        int best = 0;
        for (int a = 0; i < n && a < t->n_added; a++)
            if (t->added[a].cps.n > best && cps_at(c + i, n - i, &t->added[a].cps))
                best = t->added[a].cps.n;
        if (i < n && !best) {
            i++;
            continue;
        }
        if (i > from) st = ivec_add(&s[k++], c + from, i - from);
        if (best && !st) st = ivec_add(&s[k++], c + i, best);
        from = i += best ? best : 1;
    }
    *out = s;
    *nseg = k;
    return st;
}

/* The added-token flags on the neighbours, then each segment to ids (tokenize()). */
static aspo_status encode_segments(const bert_tokenizer *t, ivec *s, int k, ivec *ids)
{
    aspo_status st = ASPO_OK;
    for (int i = 0; i < k && !st; i++) {
        int a = added_find(t, s[i].v, s[i].n);
        if (a < 0) continue;
        const added_token *tok = &t->added[a];
        ivec *left = i > 0 ? &s[i - 1] : NULL, *right = i + 1 < k ? &s[i + 1] : NULL;
        /* single_word looks at the neighbours as they were before the stripping */
        int32_t before = left && left->n ? left->v[left->n - 1] : ' ';
        int32_t after = right && right->n ? right->v[0] : ' ';
        if (tok->rstrip && right && right->n) strip_left(right);
        if (tok->lstrip && left && left->n) strip_right(left);
        if (tok->single_word && before != ' ') {
            st = ivec_add(left, s[i].v, s[i].n);
            s[i].n = 0;
        } else if (tok->single_word && after != ' ') {
            if (!(st = ivec_add(&s[i], right->v, right->n))) { /* token + right */
                ivec tmp = *right;
                *right = s[i];
                s[i] = tmp;
                s[i].n = 0;
            }
        }
    }
    for (int i = 0; i < k && !st; i++) {
        if (!s[i].n) continue;
        int a = added_find(t, s[i].v, s[i].n);
        st = a >= 0 ? ivec_push(ids, t->added[a].id) : encode_text(t, s[i].v, s[i].n, ids);
    }
    return st;
}

aspo_status bert_encode(const bert_tokenizer *t, const char *text, size_t len, bool specials,
                        int32_t *ids, int max_len, int *n)
{
    if (n) *n = 0;
    if (!t || !ids || !n || (!text && len))
        return aspo_fail(ASPO_ERR_USAGE, "bert_encode: NULL tokenizer, text, ids or n");
    if (max_len < (specials ? 2 : 1))
        return aspo_fail(ASPO_ERR_USAGE, "bert_encode: max_len %d leaves no room%s (need >= %d)",
                         max_len, specials ? " for [CLS] and [SEP]" : "", specials ? 2 : 1);
    if (len > BERT_MAX_TEXT)
        return aspo_fail(ASPO_ERR_USAGE, "bert_encode: text of %zu bytes is too long (at most "
                         "%zu)", len, BERT_MAX_TEXT);
    int32_t *cp = malloc((len + 1) * sizeof *cp);
    if (!cp) return aspo_fail(ASPO_ERR_OOM, OOM);
    int ncp = bert_utf8_to_cps(text ? text : "", len, cp);
    if (ncp < 0) {
        free(cp);
        return aspo_fail(ASPO_ERR_USAGE, "bert_encode: text is not valid UTF-8 (byte %zu)",
                         tok_utf8_valid_prefix(text, len));
    }
    ivec low = {0}, out = {0}, *seg = NULL;
    int nseg = 0;
    aspo_status st = t->lower ? lower_pass(t, cp, ncp, &low) : ivec_add(&low, cp, ncp);
    if (!st) st = split_added(t, low.v, low.n, &seg, &nseg);
    if (!st) st = encode_segments(t, seg, nseg, &out);
    if (!st) { /* truncation: drop text tokens on the truncation side */
        int room = max_len - (specials ? 2 : 0), keep = out.n < room ? out.n : room;
        int from = t->side == BERT_TRUNCATE_LEFT ? out.n - keep : 0, k = 0;
        if (specials) ids[k++] = t->cls;
        if (keep) memcpy(ids + k, out.v + from, (size_t)keep * sizeof *ids);
        k += keep;
        if (specials) ids[k++] = t->sep;
        *n = k;
    }
    for (int i = 0; i < nseg; i++) free(seg[i].v);
    free(seg);
    free(low.v);
    free(out.v);
    free(cp);
    return st;
}
