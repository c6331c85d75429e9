/* Shared by models/bert_tokenizer_load.c (reading the files) and models/bert_tokenizer.c
 * (encoding): the tokenizer's struct and the small helpers both use. Not a public header. */
#ifndef ASPO_BERT_TOKENIZER_INTERNAL_H
#define ASPO_BERT_TOKENIZER_INTERNAL_H

#include "models/bert_tokenizer.h"
#include "models/tokenizer_internal.h"

#include <string.h>

#define BERT_OOM "BERT tokenizer: out of memory"

typedef struct cpstr { /* a string as code points */
    int32_t *c;
    int n;
} cpstr;

typedef struct added_token {
    char *content; /* UTF-8 */
    cpstr cps;     /* the same, as code points */
    int32_t id;
    bool lstrip, rstrip, single_word, normalized, special;
} added_token;

struct bert_tokenizer {
    tok_strmap vocab;     /* vocab.txt line -> its index */
    char *vocab_text;     /* the file, each line NUL-terminated */
    char **lines;         /* id -> vocab.txt line */
    int32_t n_lines;
    added_token *added;   /* added tokens and every special token, in HF's order */
    int n_added;
    tok_strmap added_map; /* content -> index into added */
    cpstr *specials;      /* all_special_tokens */
    int n_specials;
    cpstr *protect;       /* kept out of the lower-casing pass: specials, normalized added */
    int n_protect;
    tok_strmap never_split; /* tokenizer_config.json's never_split */
    int32_t unk, cls, sep, pad, vocab_size;
    bool lower, basic, chinese;
    int strip_accents; /* -1: null (follow do_lower_case), 0 false, 1 true */
    bert_side side;
    int64_t model_max_length;
};

/* Valid UTF-8 s[0..len) as code points into out (len entries suffice); -1 when not valid. */
int bert_utf8_to_cps(const char *s, size_t len, int32_t *out);

/* Does c[0..n) start with s? */
static inline bool cps_at(const int32_t *c, int n, const cpstr *s)
{
    return s->n <= n && memcmp(c, s->c, (size_t)s->n * sizeof *c) == 0;
}

/* A token string -> id as convert_tokens_to_ids: added tokens first, then vocab.txt; -1. */
static inline int32_t bert_token_id(const bert_tokenizer *t, const char *s, size_t len)
{
    int32_t a = tok_strmap_get(&t->added_map, s, len);
    return a >= 0 ? t->added[a].id : tok_strmap_get(&t->vocab, s, len);
}

#endif
