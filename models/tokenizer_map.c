/* Hash maps (string -> id, id pair -> merge) and UTF-8 helpers for the tokenizer. */
#include "models/tokenizer_internal.h"

#include <stdlib.h>
#include <string.h>

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

static uint64_t hash_u64(uint64_t x)
{
    x ^= x >> 33; /* murmur3 finalizer */
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

int32_t tok_strmap_get(const tok_strmap *m, const char *key, size_t len)
{
    if (!m->cap) return -1;
    size_t mask = m->cap - 1;
    for (size_t i = hash_bytes(key, len) & mask;; i = (i + 1) & mask) {
        if (!m->keys[i]) return -1;
        if (m->lens[i] == len && memcmp(m->keys[i], key, len) == 0) return m->vals[i];
    }
}

static aspo_status strmap_grow(tok_strmap *m)
{
    size_t cap = m->cap ? m->cap * 2 : 64;
    char **keys = calloc(cap, sizeof *keys);
    uint32_t *lens = malloc(cap * sizeof *lens);
    int32_t *vals = malloc(cap * sizeof *vals);
    if (!keys || !lens || !vals) {
        free(keys), free(lens), free(vals);
        return aspo_fail(ASPO_ERR_OOM, "tokenizer: out of memory growing a map to %zu", cap);
    }
    for (size_t j = 0; j < m->cap; j++) {
        if (!m->keys[j]) continue;
        size_t i = hash_bytes(m->keys[j], m->lens[j]) & (cap - 1);
        while (keys[i]) i = (i + 1) & (cap - 1);
        keys[i] = m->keys[j], lens[i] = m->lens[j], vals[i] = m->vals[j];
    }
    free(m->keys), free(m->lens), free(m->vals);
    m->keys = keys, m->lens = lens, m->vals = vals, m->cap = cap;
    return ASPO_OK;
}

aspo_status tok_strmap_put(tok_strmap *m, const char *key, size_t len, int32_t val)
{
    if (len > UINT32_MAX) return aspo_fail(ASPO_ERR_USAGE, "tokenizer: key too long");
    if ((m->n + 1) * 4 > m->cap * 3) { /* load factor <= 3/4 */
        aspo_status s = strmap_grow(m);
        if (s) return s;
    }
    size_t mask = m->cap - 1, i = hash_bytes(key, len) & mask;
    for (; m->keys[i]; i = (i + 1) & mask) {
        if (m->lens[i] == len && memcmp(m->keys[i], key, len) == 0) {
            m->vals[i] = val; /* a later entry wins, as in a Rust HashMap built from pairs */
            return ASPO_OK;
        }
    }
    char *copy = malloc(len + 1);
    if (!copy) return aspo_fail(ASPO_ERR_OOM, "tokenizer: out of memory");
    memcpy(copy, key, len);
    copy[len] = 0;
    m->keys[i] = copy, m->lens[i] = (uint32_t)len, m->vals[i] = val;
    m->n++;
    return ASPO_OK;
}

void tok_strmap_free(tok_strmap *m)
{
    for (size_t i = 0; i < m->cap; i++) free(m->keys[i]);
    free(m->keys), free(m->lens), free(m->vals);
    memset(m, 0, sizeof *m);
}

static uint64_t pair_key(int32_t a, int32_t b)
{
    return (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
}

bool tok_pairmap_get(const tok_pairmap *m, int32_t a, int32_t b, int32_t *rank, int32_t *merged)
{
    if (!m->cap) return false;
    uint64_t k = pair_key(a, b);
    size_t mask = m->cap - 1;
    for (size_t i = hash_u64(k) & mask;; i = (i + 1) & mask) {
        if (!m->keys[i]) return false;
        if (m->keys[i] == k) {
            *rank = m->rank[i], *merged = m->merged[i];
            return true;
        }
    }
}

aspo_status tok_pairmap_put(tok_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t merged)
{
    if ((m->n + 1) * 4 > m->cap * 3) {
        size_t cap = m->cap ? m->cap * 2 : 256;
        uint64_t *keys = calloc(cap, sizeof *keys);
        int32_t *r = malloc(cap * sizeof *r), *g = malloc(cap * sizeof *g);
        if (!keys || !r || !g) {
            free(keys), free(r), free(g);
            return aspo_fail(ASPO_ERR_OOM, "tokenizer: out of memory growing the merges");
        }
        for (size_t j = 0; j < m->cap; j++) {
            if (!m->keys[j]) continue;
            size_t i = hash_u64(m->keys[j]) & (cap - 1);
            while (keys[i]) i = (i + 1) & (cap - 1);
            keys[i] = m->keys[j], r[i] = m->rank[j], g[i] = m->merged[j];
        }
        free(m->keys), free(m->rank), free(m->merged);
        m->keys = keys, m->rank = r, m->merged = g, m->cap = cap;
    }
    uint64_t k = pair_key(a, b);
    size_t mask = m->cap - 1, i = hash_u64(k) & mask;
    while (m->keys[i] && m->keys[i] != k) i = (i + 1) & mask;
    if (!m->keys[i]) m->n++;
    m->keys[i] = k, m->rank[i] = rank, m->merged[i] = merged; /* a later duplicate wins */
    return ASPO_OK;
}

void tok_pairmap_free(tok_pairmap *m)
{
    free(m->keys), free(m->rank), free(m->merged);
    memset(m, 0, sizeof *m);
}

int tok_utf8_len(unsigned char c)
{
    if (c < 0x80) return 1;
    if ((c & 0xE0) == 0xC0) return 2;
    if ((c & 0xF0) == 0xE0) return 3;
    if ((c & 0xF8) == 0xF0) return 4;
    return 1;
}

size_t tok_utf8_valid_prefix(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        int len = tok_utf8_len(c);
        if (len == 1 || c < 0xC2 || c > 0xF4 || i + len > n) return i;
        uint32_t cp = c & (0x3F >> (len - 1));
        for (int k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return i;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        /* overlong 3/4-byte forms, surrogates, beyond U+10FFFF */
        if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
            return i;
        i += len;
    }
    return n;
}

uint32_t tok_utf8_decode(const char *str, int *len)
{
    const unsigned char *s = (const unsigned char *)str;
    int l = tok_utf8_len(s[0]);
    uint32_t cp = l == 1 ? s[0] : (uint32_t)(s[0] & (0x3F >> (l - 1)));
    for (int k = 1; k < l; k++) cp = cp << 6 | (s[k] & 0x3F);
    *len = l;
    return cp;
}

int tok_utf8_encode(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | cp >> 6), out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12), out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18), out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}
