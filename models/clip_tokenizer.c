/* CLIP BPE tokenizer: see clip_tokenizer.h for the exact steps (transformers' slow
 * CLIPTokenizer without ftfy). Text is handled as UTF-32 code points; ICU gives categories,
 * lower-casing and NFC. */
#include "models/clip_tokenizer.h"

#include "models/text_unicode.h"
#include "tensor/file_open.h"
#include "tensor/json_file.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unicode/uchar.h>

#define CLIP_MAX_MERGES (49152 - 256 - 2) /* HF reads merges.txt lines [1, 48895) */
/* CLIP's merges.txt is 525 KB; even with longer symbols, the 48894 lines read stay a few MB.
 * (vocab.json goes through json_file_load and its bound.) */
#define CLIP_MERGES_MAX_BYTES ((uint64_t)16 << 20)

static const char BOS[] = "<|startoftext|>";
static const char EOS[] = "<|endoftext|>";

/* ---- string -> int32 map (open addressing) ------------------------------------------- */

typedef struct strmap {
    char **keys;
    int32_t *vals;
    size_t cap, n;
} strmap;

static uint64_t str_hash(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static int32_t strmap_get(const strmap *m, const char *key, size_t len)
{
    if (m->cap == 0) return -1;
    for (size_t i = str_hash(key, len) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        const char *k = m->keys[i];
        if (!k) return -1;
        if (strlen(k) == len && memcmp(k, key, len) == 0) return m->vals[i];
    }
}

/* A key already present gets the new value (Python dict semantics). */
static aspo_status strmap_put(strmap *m, const char *key, size_t len, int32_t val)
{
    if (2 * (m->n + 1) > m->cap) { /* keep load <= 1/2 */
        strmap g = {0};
        g.cap = m->cap ? 2 * m->cap : 1024;
        g.keys = calloc(g.cap, sizeof *g.keys);
        g.vals = calloc(g.cap, sizeof *g.vals);
        if (!g.keys || !g.vals) {
            free(g.keys);
            free(g.vals);
            return aspo_fail(ASPO_ERR_OOM, "clip tokenizer: out of memory");
        }
        for (size_t i = 0; i < m->cap; i++) {
            if (!m->keys[i]) continue;
            size_t j = str_hash(m->keys[i], strlen(m->keys[i])) & (g.cap - 1);
            while (g.keys[j]) j = (j + 1) & (g.cap - 1);
            g.keys[j] = m->keys[i];
            g.vals[j] = m->vals[i];
        }
        g.n = m->n;
        free(m->keys);
        free(m->vals);
        *m = g;
    }
    size_t i = str_hash(key, len) & (m->cap - 1);
    for (; m->keys[i]; i = (i + 1) & (m->cap - 1)) {
        if (strlen(m->keys[i]) == len && memcmp(m->keys[i], key, len) == 0) {
            m->vals[i] = val;
            return ASPO_OK;
        }
    }
    char *k = malloc(len + 1);
    if (!k) return aspo_fail(ASPO_ERR_OOM, "clip tokenizer: out of memory");
    memcpy(k, key, len);
    k[len] = '\0';
    m->keys[i] = k;
    m->vals[i] = val;
    m->n++;
    return ASPO_OK;
}

static void strmap_free(strmap *m)
{
    for (size_t i = 0; i < m->cap; i++) free(m->keys[i]);
    free(m->keys);
    free(m->vals);
    *m = (strmap){0};
}

struct clip_tokenizer {
    strmap vocab;  /* symbol (byte-unicode UTF-8) -> id */
    strmap merges; /* "a b" -> rank */
    int32_t bos, eos, unk, pad, vocab_size;
    char byte_sym[256][3]; /* bytes_to_unicode as UTF-8 (1 or 2 bytes, NUL-terminated) */
};

/* GPT-2/CLIP bytes_to_unicode: printable Latin-1 bytes map to themselves, the other 68 to
 * U+0100.. in byte order. */
static void build_byte_table(clip_tokenizer *t)
{
    int extra = 0;
    for (int b = 0; b < 256; b++) {
        bool keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        int cp = keep ? b : 256 + extra++;
        char *s = t->byte_sym[b];
        if (cp < 0x80) {
            s[0] = (char)cp;
            s[1] = '\0';
        } else {
            s[0] = (char)(0xC0 | (cp >> 6));
            s[1] = (char)(0x80 | (cp & 0x3F));
            s[2] = '\0';
        }
    }
}

/* ---- loading -------------------------------------------------------------------------- */

typedef struct vocab_entry {
    int32_t id;
    const char *token;
} vocab_entry;

static int cmp_vocab_id(const void *a, const void *b)
{
    int32_t x = ((const vocab_entry *)a)->id, y = ((const vocab_entry *)b)->id;
    return (x > y) - (x < y);
}

/* Two tokens on one id: which one the id stands for would be chance (HF's decoder dict
 * keeps the later one). */
static aspo_status check_unique_ids(const char *path, vocab_entry *e, size_t n)
{
    qsort(e, n, sizeof *e, cmp_vocab_id);
    for (size_t i = 1; i < n; i++)
        if (e[i].id == e[i - 1].id)
            return aspo_fail(ASPO_ERR_FORMAT, "%s: tokens \"%s\" and \"%s\" both have id %d; "
                             "each id names one token: fix the file", path, e[i - 1].token,
                             e[i].token, e[i].id);
    return ASPO_OK;
}

static aspo_status load_vocab(clip_tokenizer *t, const char *path)
{
    json_t *root = json_file_load(path, "CLIP vocab.json");
    if (!root) return aspo_error_status();
    aspo_status st = ASPO_OK;
    vocab_entry *ent = NULL;
    size_t n = 0;
    if (!json_is_object(root)) {
        st = aspo_fail(ASPO_ERR_FORMAT, "%s: expected a JSON object of token -> id", path);
        goto done;
    }
    ent = malloc((json_object_size(root) + 1) * sizeof *ent);
    if (!ent) {
        st = aspo_fail(ASPO_ERR_OOM, "clip tokenizer: out of memory");
        goto done;
    }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (!json_is_integer(val) || json_integer_value(val) < 0 ||
            json_integer_value(val) >= INT32_MAX) {
            st = aspo_fail(ASPO_ERR_FORMAT, "%s: token \"%s\": id must be an integer in "
                           "[0, 2^31-1)", path, key);
            goto done;
        }
        int32_t id = (int32_t)json_integer_value(val);
        ent[n++] = (vocab_entry){id, key};
        if ((st = strmap_put(&t->vocab, key, strlen(key), id)) != ASPO_OK) goto done;
        if (id + 1 > t->vocab_size) t->vocab_size = id + 1;
    }
    st = check_unique_ids(path, ent, n);
done:
    free(ent);
    json_decref(root);
    return st;
}

static aspo_status load_merges(clip_tokenizer *t, const char *path)
{
    FILE *f = file_open_regular(path, "CLIP merges.txt", CLIP_MERGES_MAX_BYTES, NULL);
    if (!f) return aspo_error_status();
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    long lineno = 0;
    int32_t rank = 0;
    aspo_status st = ASPO_OK;
    /* HF: read().strip().split("\n")[1:48895]; a blank line still takes a rank. */
    while ((got = getline(&line, &cap, f)) >= 0 && rank < CLIP_MAX_MERGES) {
        lineno++;
        if (lineno == 1) continue; /* "#version: 0.2" header */
        char *a = line, *end = line + got;
        while (end > a && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' ' ||
                           end[-1] == '\t'))
            end--;
        while (a < end && (*a == ' ' || *a == '\t')) a++;
        if (a == end) { /* blank: only trailing blanks are stripped by HF */
            rank++;
            continue;
        }
        char *sp = a;
        while (sp < end && *sp != ' ' && *sp != '\t') sp++;
        char *b = sp;
        while (b < end && (*b == ' ' || *b == '\t')) b++;
        char *bend = b;
        while (bend < end && *bend != ' ' && *bend != '\t') bend++;
        if (b == end || bend != end) {
            st = aspo_fail(ASPO_ERR_FORMAT, "%s:%ld: expected two symbols \"a b\"", path,
                           lineno);
            break;
        }
        /* key "a b" with one space */
        size_t la = (size_t)(sp - a), lb = (size_t)(end - b);
        memmove(a + la + 1, b, lb);
        a[la] = ' ';
        if ((st = strmap_put(&t->merges, a, la + 1 + lb, rank++)) != ASPO_OK) break;
    }
    free(line);
    fclose(f);
    return st;
}

/* pad_token from special_tokens_map.json / tokenizer_config.json, when either exists. */
static aspo_status load_pad(clip_tokenizer *t, const char *dir)
{
    static const char *files[] = {"special_tokens_map.json", "tokenizer_config.json"};
    char path[4096 + 32];
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        struct stat sb;
        if (stat(path, &sb) != 0) continue;
        json_t *root = json_file_load(path, "CLIP tokenizer config");
        if (!root) return aspo_error_status();
        json_t *p = json_object_get(root, "pad_token");
        if (json_is_object(p)) p = json_object_get(p, "content");
        aspo_status st = ASPO_OK;
        bool found = json_is_string(p);
        if (found) {
            int32_t id = strmap_get(&t->vocab, json_string_value(p), json_string_length(p));
            if (id < 0)
                st = aspo_fail(ASPO_ERR_FORMAT, "%s: pad_token \"%s\" is not in vocab.json",
                               path, json_string_value(p));
            t->pad = id;
        }
        json_decref(root);
        if (st != ASPO_OK || found) return st; /* the first file naming it wins */
    }
    return ASPO_OK;
}

aspo_status clip_tokenizer_load(const char *dir_or_files, clip_tokenizer **out)
{
    *out = NULL;
    if (!dir_or_files) return aspo_fail(ASPO_ERR_USAGE, "clip_tokenizer_load: no path");
    char dir[4096], path[4200];
    struct stat sb;
    if (stat(dir_or_files, &sb) != 0)
        return aspo_fail(ASPO_ERR_IO, "%s: no such CLIP tokenizer directory or vocab.json",
                         dir_or_files);
    snprintf(dir, sizeof dir, "%s", dir_or_files);
    if (!S_ISDIR(sb.st_mode)) { /* vocab.json: its directory */
        char *slash = strrchr(dir, '/');
        if (slash) *slash = '\0';
        else snprintf(dir, sizeof dir, ".");
    }
    clip_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return aspo_fail(ASPO_ERR_OOM, "clip tokenizer: out of memory");
    build_byte_table(t);
    aspo_status st;
    if (S_ISDIR(sb.st_mode)) snprintf(path, sizeof path, "%s/vocab.json", dir);
    else snprintf(path, sizeof path, "%s", dir_or_files);
    if ((st = load_vocab(t, path)) != ASPO_OK) goto fail;
    snprintf(path, sizeof path, "%s/merges.txt", dir);
    if ((st = load_merges(t, path)) != ASPO_OK) goto fail;
    t->bos = strmap_get(&t->vocab, BOS, strlen(BOS));
    t->eos = strmap_get(&t->vocab, EOS, strlen(EOS));
    if (t->bos < 0 || t->eos < 0) {
        st = aspo_fail(ASPO_ERR_FORMAT, "%s/vocab.json: CLIP needs %s and %s in the "
                       "vocabulary", dir, BOS, EOS);
        goto fail;
    }
    t->unk = t->eos; /* CLIPTokenizer's unk_token default */
    t->pad = t->eos;
    if ((st = load_pad(t, dir)) != ASPO_OK) goto fail;
    *out = t;
    return ASPO_OK;
fail:
    clip_tokenizer_free(t);
    return st;
}

void clip_tokenizer_free(clip_tokenizer *t)
{
    if (!t) return;
    strmap_free(&t->vocab);
    strmap_free(&t->merges);
    free(t);
}

int32_t clip_tokenizer_bos_id(const clip_tokenizer *t) { return t->bos; }
int32_t clip_tokenizer_eos_id(const clip_tokenizer *t) { return t->eos; }
int32_t clip_tokenizer_pad_id(const clip_tokenizer *t) { return t->pad; }
int32_t clip_tokenizer_vocab_size(const clip_tokenizer *t) { return t->vocab_size; }

void clip_pad(const clip_tokenizer *t, int32_t *ids, int n, int max_len)
{
    for (int i = n; i < max_len; i++) ids[i] = t->pad;
}

/* ---- encoding ------------------------------------------------------------------------- */

/* Output being built: stops once `limit` text tokens are in (truncation). */
typedef struct sink {
    int32_t *ids;
    int n, limit;
} sink;

static bool sink_full(const sink *s) { return s->n >= s->limit; }
static void sink_push(sink *s, int32_t id)
{
    if (s->n < s->limit) s->ids[s->n++] = id;
}

static bool is_cat(UChar32 c, uint32_t mask) { return (U_GET_GC_MASK(c) & mask) != 0; }
static bool is_letter(UChar32 c) { return is_cat(c, U_GC_L_MASK); }
static bool is_number(UChar32 c) { return is_cat(c, U_GC_N_MASK); }

/* BERT's _is_chinese_char ranges. */
static bool is_cjk(UChar32 c)
{
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* [^\s\p{L}\p{N}] under IGNORECASE: a character one of whose case partners is a letter or
 * number (U+0345 -> U+0399) is not in the negated class. */
static bool is_punct(UChar32 c)
{
    if (text_py_isspace(c) || is_letter(c) || is_number(c)) return false;
    UChar32 v[3] = {u_tolower(c), u_toupper(c), u_foldCase(c, U_FOLD_CASE_DEFAULT)};
    for (int i = 0; i < 3; i++)
        if (v[i] != c && (is_letter(v[i]) || is_number(v[i]))) return false;
    return true;
}

/* BPE of one piece given as UTF-8 bytes: byte symbols, "</w>" on the last, merges by
 * rank; pushes vocab ids (unk for a missing symbol). */
static aspo_status bpe_piece(const clip_tokenizer *t, const unsigned char *bytes, size_t nb,
                             sink *s)
{
    /* word = byte-unicode string + "</w>"; symbols are contiguous slices [sym[i], sym[i+1]) */
    size_t wlen = 0;
    char *word = malloc(2 * nb + 5);
    int *sym = malloc((nb + 1) * sizeof *sym), *nsym = malloc((nb + 1) * sizeof *nsym);
    char *key = malloc(4 * nb + 8);
    aspo_status st = ASPO_OK;
    if (!word || !sym || !nsym || !key) {
        st = aspo_fail(ASPO_ERR_OOM, "clip tokenizer: out of memory");
        goto done;
    }
    for (size_t i = 0; i < nb; i++) {
        sym[i] = (int)wlen;
        size_t l = strlen(t->byte_sym[bytes[i]]);
        memcpy(word + wlen, t->byte_sym[bytes[i]], l);
        wlen += l;
    }
    memcpy(word + wlen, "</w>", 4);
    wlen += 4;
    int n = (int)nb;
    sym[n] = (int)wlen;
    for (;;) {
        /* lowest-ranked adjacent pair */
        int32_t best = -1;
        int bi = -1;
        for (int i = 0; i + 1 < n; i++) {
            size_t la = (size_t)(sym[i + 1] - sym[i]), lb = (size_t)(sym[i + 2] - sym[i + 1]);
            memcpy(key, word + sym[i], la);
            key[la] = ' ';
            memcpy(key + la + 1, word + sym[i + 1], lb);
            int32_t r = strmap_get(&t->merges, key, la + 1 + lb);
            if (r >= 0 && (best < 0 || r < best)) {
                best = r;
                bi = i;
            }
        }
        if (bi < 0) break;
        /* merge every occurrence of that pair, left to right */
        const char *fa = word + sym[bi], *fb = word + sym[bi + 1];
        size_t la = (size_t)(sym[bi + 1] - sym[bi]), lb = (size_t)(sym[bi + 2] - sym[bi + 1]);
        int m = 0;
        for (int i = 0; i < n;) {
            nsym[m++] = sym[i];
            if (i + 1 < n && (size_t)(sym[i + 1] - sym[i]) == la &&
                (size_t)(sym[i + 2] - sym[i + 1]) == lb && memcmp(word + sym[i], fa, la) == 0 &&
                memcmp(word + sym[i + 1], fb, lb) == 0)
                i += 2;
            else
                i += 1;
        }
        nsym[m] = (int)wlen;
        memcpy(sym, nsym, (size_t)(m + 1) * sizeof *sym);
        n = m;
    }
    for (int i = 0; i < n; i++) {
        int32_t id = strmap_get(&t->vocab, word + sym[i], (size_t)(sym[i + 1] - sym[i]));
        sink_push(s, id >= 0 ? id : t->unk);
    }
done:
    free(word);
    free(sym);
    free(nsym);
    free(key);
    return st;
}

static size_t utf8_put(unsigned char *o, UChar32 c)
{
    if (c < 0x80) { o[0] = (unsigned char)c; return 1; }
    if (c < 0x800) {
        o[0] = (unsigned char)(0xC0 | (c >> 6));
        o[1] = (unsigned char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (c >> 12));
        o[1] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (c >> 18));
    o[1] = (unsigned char)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (c & 0x3F));
    return 4;
}

static bool cps_start(const UChar32 *w, int n, int i, const char *lit)
{
    int l = (int)strlen(lit);
    if (n - i < l) return false;
    for (int k = 0; k < l; k++)
        if (w[i + k] != (unsigned char)lit[k]) return false;
    return true;
}

/* Length of a contraction at w[i] ('s 't 're 've 'm 'll 'd, IGNORECASE on lowered text:
 * long s U+017F folds to s), 0 if none. */
static int contraction(const UChar32 *w, int n, int i)
{
    if (w[i] != '\'' || i + 1 >= n) return 0;
    UChar32 c = w[i + 1];
    if (c == 's' || c == 0x17F || c == 't' || c == 'm' || c == 'd') return 2;
    if (i + 2 < n && ((c == 'r' && w[i + 2] == 'e') || (c == 'v' && w[i + 2] == 'e') ||
                      (c == 'l' && w[i + 2] == 'l')))
        return 3;
    return 0;
}

/* One lower-cased whitespace-free word: the pattern's pieces, each through BPE. */
static aspo_status encode_word(const clip_tokenizer *t, const UChar32 *w, int n, sink *s,
                               unsigned char *buf)
{
    for (int i = 0; i < n && !sink_full(s);) {
        int j = i;
        if (cps_start(w, n, i, BOS) || cps_start(w, n, i, EOS)) {
            /* bpe() caches these two as themselves: their vocab ids */
            bool bos = cps_start(w, n, i, BOS);
            sink_push(s, bos ? t->bos : t->eos);
            i += (int)strlen(bos ? BOS : EOS);
            continue;
        }
        int c = contraction(w, n, i);
        if (c) j = i + c;
        else if (is_letter(w[i])) while (j < n && is_letter(w[j])) j++;
        else if (is_number(w[i])) j = i + 1;
        else if (is_punct(w[i])) while (j < n && is_punct(w[j])) j++;
        else { /* matched by no alternative: dropped */
            i++;
            continue;
        }
        size_t nb = 0;
        for (int k = i; k < j; k++) nb += utf8_put(buf + nb, w[k]);
        aspo_status st = bpe_piece(t, buf, nb, s);
        if (st != ASPO_OK) return st;
        i = j;
    }
    return ASPO_OK;
}

/* Text between special tokens: BasicTokenizer, then words through the pattern and BPE. */
static aspo_status encode_segment(const clip_tokenizer *t, const UChar32 *cp, int n, sink *s)
{
    UChar32 *clean = malloc((size_t)(3 * n + 1) * sizeof *clean), *nfc = NULL, *low = NULL;
    unsigned char *buf = NULL;
    aspo_status st = ASPO_OK;
    if (!clean) return aspo_fail(ASPO_ERR_OOM, "clip tokenizer: out of memory");
    int m = 0;
    for (int i = 0; i < n; i++) {
        UChar32 c = cp[i];
        bool ws = c == ' ' || c == '\t' || c == '\n' || c == '\r' || is_cat(c, U_GC_ZS_MASK);
        if (c == 0 || c == 0xFFFD || (!ws && is_cat(c, U_GC_C_MASK))) continue;
        if (ws) clean[m++] = ' ';
        else if (is_cjk(c)) {
            clean[m++] = ' ';
            clean[m++] = c;
            clean[m++] = ' ';
        } else clean[m++] = c;
    }
    int nn;
    if ((st = text_map(clean, m, TEXT_NFC, &nfc, &nn, "clip tokenizer")) != ASPO_OK) goto done;
    buf = malloc(4 * (size_t)nn + 4);
    if (!buf) {
        st = aspo_fail(ASPO_ERR_OOM, "clip tokenizer: out of memory");
        goto done;
    }
    for (int i = 0; i < nn && !sink_full(s);) {
        if (text_py_isspace(nfc[i])) {
            i++;
            continue;
        }
        int j = i;
        while (j < nn && !text_py_isspace(nfc[j])) j++;
        int nl;
        st = text_map(nfc + i, j - i, TEXT_LOWER, &low, &nl, "clip tokenizer");
        if (st != ASPO_OK) goto done;
        unsigned char *b2 = realloc(buf, 4 * (size_t)nl + 4);
        if (!b2) {
            st = aspo_fail(ASPO_ERR_OOM, "clip tokenizer: out of memory");
            goto done;
        }
        buf = b2;
        st = encode_word(t, low, nl, s, buf);
        free(low);
        low = NULL;
        if (st != ASPO_OK) goto done;
        i = j;
    }
done:
    free(clean);
    free(nfc);
    free(low);
    free(buf);
    return st;
}

/* Strict UTF-8 decode (no surrogates, no overlongs); -1 on bad input. */
static int utf8_decode(const unsigned char *s, size_t len, UChar32 *out)
{
    int n = 0;
    for (size_t i = 0; i < len;) {
        unsigned c = s[i];
        int extra = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2
                    : (c & 0xF8) == 0xF0 ? 3 : -1;
        if (extra < 0) return -1;
        UChar32 v = extra == 0 ? (UChar32)c : (UChar32)(c & (0x3F >> extra));
        for (int k = 1; k <= extra; k++) {
            if (i + (size_t)k >= len || (s[i + k] & 0xC0) != 0x80) return -1;
            v = (v << 6) | (s[i + k] & 0x3F);
        }
        static const UChar32 min_cp[4] = {0, 0x80, 0x800, 0x10000};
        if (v < min_cp[extra] || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return -1;
        out[n++] = v;
        i += (size_t)extra + 1;
    }
    return n;
}

aspo_status clip_tokenize(const clip_tokenizer *t, const char *text, size_t len, int32_t *ids,
                          int max_len, int *n)
{
    if (n) *n = 0;
    if (!t || !ids || !n || (!text && len))
        return aspo_fail(ASPO_ERR_USAGE, "clip_tokenize: NULL tokenizer, text, ids or n");
    if (max_len < 2)
        return aspo_fail(ASPO_ERR_USAGE, "clip_tokenize: max_len %d leaves no room for "
                         "<|startoftext|> and <|endoftext|> (need >= 2)", max_len);
    if (len >= (size_t)1 << 30)
        return aspo_fail(ASPO_ERR_USAGE, "clip_tokenize: text of %zu bytes is too long", len);
    UChar32 *cp = malloc((len + 1) * sizeof *cp);
    if (!cp) return aspo_fail(ASPO_ERR_OOM, "clip tokenizer: out of memory");
    int ncp = utf8_decode((const unsigned char *)text, len, cp);
    if (ncp < 0) {
        free(cp);
        return aspo_fail(ASPO_ERR_USAGE, "clip_tokenize: text is not valid UTF-8");
    }
    /* text tokens go to ids[1..max_len-1); HF truncation keeps the first max_len-2 */
    ids[0] = t->bos;
    sink s = {ids + 1, 0, max_len - 2};
    aspo_status st = ASPO_OK;
    int seg = 0;
    /* literal special tokens in the raw text split it (HF's added-token trie) */
    for (int i = 0; i <= ncp && st == ASPO_OK && !sink_full(&s); i++) {
        bool b = i < ncp && cps_start(cp, ncp, i, BOS), e = i < ncp && cps_start(cp, ncp, i, EOS);
        if (i < ncp && !b && !e) continue;
        if (i > seg) st = encode_segment(t, cp + seg, i - seg, &s);
        if (st != ASPO_OK || i == ncp) break;
        sink_push(&s, b ? t->bos : t->eos);
        seg = i + (int)strlen(b ? BOS : EOS);
        i = seg - 1;
    }
    free(cp);
    if (st != ASPO_OK) return st;
    ids[1 + s.n] = t->eos;
    *n = s.n + 2;
    return ASPO_OK;
}
