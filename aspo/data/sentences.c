/* Sentence splitting and token-to-unit mapping for ASPO. Works on bytes: every multi-byte
 * character we recognise (closing quotes, CJK stops) is matched as its UTF-8 sequence, and
 * everything else passes through untouched, so spans stay valid byte offsets. */
#include "aspo/data/sentences.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

const char *aspo_unit_level_name(aspo_unit_level level)
{
    switch (level) {
    case ASPO_UNIT_SENTENCE: return "sentence";
    case ASPO_UNIT_RESPONSE: return "response";
    case ASPO_UNIT_TOKEN: return "token";
    }
    return "?";
}

static bool is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static bool is_alpha(unsigned char c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }
static bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

/* Length of the UTF-8 sequence `seq` if text[i..] starts with it, else 0. */
static size_t match(const unsigned char *t, size_t len, size_t i, const char *seq)
{
    size_t n = strlen(seq);
    return i + n <= len && memcmp(t + i, seq, n) == 0 ? n : 0;
}

/* Closing quote or bracket at i: its length in bytes, else 0. */
static size_t closer_at(const unsigned char *t, size_t len, size_t i)
{
    static const char *const multi[] = {"\xE2\x80\x9D" /* ” */, "\xE2\x80\x99" /* ’ */,
                                        "\xC2\xBB" /* » */, "\xE3\x80\x8D" /* 」 */,
                                        "\xE3\x80\x8F" /* 』 */, "\xEF\xBC\x89" /* ） */};
    if (t[i] && strchr("\"')]}", t[i])) return 1;
    for (size_t k = 0; k < sizeof multi / sizeof multi[0]; k++) {
        size_t n = match(t, len, i, multi[k]);
        if (n) return n;
    }
    return 0;
}

/* Full-width stops end a sentence with no space after them (CJK text has none). */
static size_t cjk_stop_at(const unsigned char *t, size_t len, size_t i)
{
    size_t n = match(t, len, i, "\xE3\x80\x82"); /* 。 */
    if (!n) n = match(t, len, i, "\xEF\xBC\x81"); /* ！ */
    if (!n) n = match(t, len, i, "\xEF\xBC\x9F"); /* ？ */
    return n;
}

/* The word right before a '.' at i (letters, digits and inner dots) is an abbreviation:
 * one of a fixed list, or single letters joined by dots ("e.g", "i.e", "U.S", "a.m"). */
static bool abbreviation_before(const unsigned char *t, size_t i)
{
    static const char *const words[] = {"mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st",
                                        "vs", "etc", "cf", "approx", "fig"};
    size_t b = i;
    while (b > 0 && (is_alpha(t[b - 1]) || is_digit(t[b - 1]) || t[b - 1] == '.')) b--;
    size_t n = i - b;
    if (n == 0 || n > 8) return false;
    char w[9];
    for (size_t k = 0; k < n; k++) w[k] = (char)(is_alpha(t[b + k]) ? t[b + k] | 0x20 : t[b + k]);
    w[n] = 0;
    for (size_t k = 0; k < sizeof words / sizeof words[0]; k++)
        if (strcmp(w, words[k]) == 0) return true;
    if (n >= 3 && n % 2 == 1) { /* x.y or x.y.z */
        bool dotted = true;
        for (size_t k = 0; k < n && dotted; k++)
            dotted = k % 2 == 0 ? is_alpha((unsigned char)w[k]) : w[k] == '.';
        if (dotted) return true;
    }
    return false;
}

/* The sentence so far (from `start`, spaces skipped) is a list marker like "1" or "b". */
static bool list_marker(const unsigned char *t, size_t start, size_t i)
{
    while (start < i && is_space(t[start])) start++;
    size_t n = i - start;
    if (n == 1 && is_alpha(t[start])) return true;
    if (n == 0 || n > 3) return false;
    for (size_t k = start; k < i; k++)
        if (!is_digit(t[k])) return false;
    return true;
}

/* If a sentence ends at the run of terminators starting at i, returns the end of the
 * sentence (after the run and any closers); else 0. *run_end is where the run stops, so
 * the dots of an ellipsis are judged once, together. */
static size_t sentence_end_at(const unsigned char *t, size_t len, size_t start, size_t i,
                              size_t *run_end)
{
    size_t j = i, dots = 0, others = 0;
    bool cjk = false;
    for (;;) { /* run of ASCII and full-width stops */
        size_t n;
        if (j < len && (t[j] == '.' || t[j] == '!' || t[j] == '?')) {
            if (t[j] == '.') dots++;
            else others++;
            j++;
        } else if ((n = cjk_stop_at(t, len, j))) {
            others++;
            cjk = true;
            j += n;
        } else {
            break;
        }
    }
    *run_end = j;
    for (size_t n; j < len && (n = closer_at(t, len, j));) j += n;
    if (cjk) return j; /* no space needed after '。' */
    if (j < len && !is_space(t[j])) return 0; /* 3.5, e.g.,, "what?yes" */
    if (others == 0 && dots >= 2) return 0;   /* ellipsis */
    if (others == 0 && dots == 1 &&
        (abbreviation_before(t, i) || list_marker(t, start, i)))
        return 0;
    return j;
}

/* Appends text[b, e) trimmed, unless it is whitespace only. */
static void emit(const unsigned char *t, size_t b, size_t e, aspo_span *spans, int cap,
                 int *count)
{
    while (b < e && is_space(t[b])) b++;
    while (e > b && is_space(t[e - 1])) e--;
    if (b == e) return;
    if (*count < cap) spans[*count] = (aspo_span){(int64_t)b, (int64_t)e};
    (*count)++;
}

aspo_status aspo_split_sentences(const char *text, size_t len, aspo_span *spans, int cap,
                                 int *count)
{
    *count = 0;
    if (len > 0 && !text) return aspo_fail(ASPO_ERR_USAGE, "response text is NULL");
    const unsigned char *t = (const unsigned char *)text;
    size_t start = 0;
    for (size_t i = 0; i < len;) {
        size_t end = 0, next = i + 1;
        if (t[i] == '\n')
            end = i + 1; /* a line break always ends a unit: list items, paragraphs */
        else if (t[i] == '.' || t[i] == '!' || t[i] == '?' || cjk_stop_at(t, len, i))
            end = sentence_end_at(t, len, start, i, &next);
        if (end) {
            emit(t, start, end, spans, cap, count);
            start = i = end;
        } else {
            i = next;
        }
    }
    emit(t, start, len, spans, cap, count);
    return ASPO_OK;
}

/* Token k's span, or {-1, -1}. */
typedef struct token_spans {
    const int64_t *begin, *end;
} token_spans;

static aspo_span span_of(token_spans ts, int64_t k)
{
    return ts.begin ? (aspo_span){ts.begin[k], ts.end[k]} : (aspo_span){-1, -1};
}

static aspo_status check_token_spans(token_spans ts, int64_t n, size_t len)
{
    if (!ts.begin != !ts.end)
        return aspo_fail(ASPO_ERR_USAGE, "token spans: begin and end must both be given or "
                         "both be NULL");
    for (int64_t k = 0; k < n; k++) {
        aspo_span s = span_of(ts, k);
        if (s.begin == -1 && s.end == -1) continue;
        if (s.begin < 0 || s.end < s.begin || (uint64_t)s.end > len)
            return aspo_fail(ASPO_ERR_USAGE,
                             "token %" PRId64 ": span [%" PRId64 ", %" PRId64 ") does not lie "
                             "in the response text (%zu bytes); use -1, -1 for a token "
                             "without text", k, s.begin, s.end, len);
    }
    return ASPO_OK;
}

/* First non-space byte of the token, or -1 (whitespace only or no span). */
static int64_t first_char(const unsigned char *t, aspo_span s)
{
    for (int64_t p = s.begin; p >= 0 && p < s.end; p++)
        if (!is_space(t[p])) return p;
    return -1;
}

/* Sentence level; see the header for the rules. */
static aspo_status sentence_units(const unsigned char *t, size_t len, token_spans ts,
                                  int64_t n_tokens, aspo_span *unit_spans, int32_t *unit_of,
                                  int *n_units)
{
    int n_sent = 0;
    aspo_status s = aspo_split_sentences((const char *)t, len, NULL, 0, &n_sent);
    if (s) return s;
    if (n_sent == 0) { /* nothing but whitespace: one empty unit holds every token */
        unit_spans[0] = (aspo_span){0, 0};
        for (int64_t k = 0; k < n_tokens; k++) unit_of[k] = 0;
        *n_units = 1;
        return ASPO_OK;
    }
    aspo_span *sent = malloc((size_t)n_sent * sizeof *sent);
    int32_t *renumber = malloc((size_t)n_sent * sizeof *renumber);
    if (!sent || !renumber) {
        free(sent);
        free(renumber);
        return aspo_fail(ASPO_ERR_OOM, "sentence units: out of host memory (%d sentences)",
                         n_sent);
    }
    aspo_split_sentences((const char *)t, len, sent, n_sent, &n_sent);

    /* Tokens with text: the sentence of the first non-space byte (sentences are sorted and
     * every non-space byte lies in exactly one). -1 marks the rest for later. */
    for (int j = 0; j < n_sent; j++) renumber[j] = -1;
    int u = 0;
    for (int64_t k = 0; k < n_tokens; k++) {
        int64_t p = first_char(t, span_of(ts, k));
        unit_of[k] = -1;
        if (p < 0) continue;
        while (u > 0 && p < sent[u].begin) u--; /* tokens are usually in order: walk */
        while (u < n_sent - 1 && p >= sent[u].end) u++;
        ASPO_ASSERT(p >= sent[u].begin && p < sent[u].end);
        unit_of[k] = u;
        renumber[u] = 0; /* owns a token */
    }

    /* Merge sentences that own no token into a neighbour, then renumber. */
    int n = 0;
    int64_t pending_begin = -1;
    for (int j = 0; j < n_sent; j++) {
        if (renumber[j] < 0) {
            if (n > 0) {
                unit_spans[n - 1].end = sent[j].end;
                renumber[j] = n - 1;
            } else if (pending_begin < 0) {
                pending_begin = sent[j].begin;
            }
            continue;
        }
        unit_spans[n] = sent[j];
        if (pending_begin >= 0) unit_spans[n].begin = pending_begin;
        pending_begin = -1;
        renumber[j] = n++;
    }
    if (n == 0) { /* no token has text: one unit over all sentences */
        unit_spans[0] = (aspo_span){sent[0].begin, sent[n_sent - 1].end};
        n = 1;
    }
    for (int64_t k = 0; k < n_tokens; k++)
        if (unit_of[k] >= 0) unit_of[k] = renumber[unit_of[k]];

    /* Whitespace-only tokens: the next token with text, else the previous; no span: last. */
    int32_t next = -1;
    for (int64_t k = n_tokens - 1; k >= 0; k--) {
        if (unit_of[k] >= 0) next = unit_of[k];
        else if (span_of(ts, k).begin < 0) unit_of[k] = n - 1;
        else unit_of[k] = next; /* stays -1 when nothing with text follows */
    }
    int32_t prev = -1;
    for (int64_t k = 0; k < n_tokens; k++) {
        if (unit_of[k] < 0) unit_of[k] = prev >= 0 ? prev : n - 1;
        else if (span_of(ts, k).begin >= 0) prev = unit_of[k];
    }
    *n_units = n;
    free(sent);
    free(renumber);
    return ASPO_OK;
}

aspo_status aspo_response_units(aspo_unit_level level, const char *text, size_t len,
                                const int64_t *token_begin, const int64_t *token_end,
                                int64_t n_tokens, aspo_span *unit_spans,
                                int32_t *unit_of_token, int *n_units)
{
    *n_units = 0;
    if (n_tokens < 1 || n_tokens > INT32_MAX)
        return aspo_fail(ASPO_ERR_USAGE, "response has %" PRId64 " tokens: need at least the "
                         "end-of-sequence token and fewer than 2^31", n_tokens);
    if (len > 0 && !text) return aspo_fail(ASPO_ERR_USAGE, "response text is NULL");
    token_spans ts = {token_begin, token_end};
    aspo_status s = check_token_spans(ts, n_tokens, len);
    if (s) return s;
    const unsigned char *t = (const unsigned char *)text;

    switch (level) {
    case ASPO_UNIT_SENTENCE:
        return sentence_units(t, len, ts, n_tokens, unit_spans, unit_of_token, n_units);
    case ASPO_UNIT_RESPONSE: {
        size_t b = 0, e = len;
        while (b < e && is_space(t[b])) b++;
        while (e > b && is_space(t[e - 1])) e--;
        unit_spans[0] = (aspo_span){(int64_t)b, (int64_t)e};
        if (b == e) unit_spans[0] = (aspo_span){0, 0};
        for (int64_t k = 0; k < n_tokens; k++) unit_of_token[k] = 0;
        *n_units = 1;
        return ASPO_OK;
    }
    case ASPO_UNIT_TOKEN:
        for (int64_t k = 0; k < n_tokens; k++) {
            aspo_span sp = span_of(ts, k);
            unit_spans[k] = sp.begin >= 0 ? sp : (aspo_span){(int64_t)len, (int64_t)len};
            unit_of_token[k] = (int32_t)k;
        }
        *n_units = (int)n_tokens;
        return ASPO_OK;
    }
    return aspo_fail(ASPO_ERR_USAGE, "unknown unit level %d", (int)level);
}
