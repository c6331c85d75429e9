/* Shared between the tokenizer's files: the tokenizer struct, hash maps, the normalized
 * string with byte alignments, and the loaders' building steps. Not a public header. */
#ifndef ASPO_TOKENIZER_INTERNAL_H
#define ASPO_TOKENIZER_INTERNAL_H

#include "models/tokenizer.h"

#include <jansson.h>
#include <stdio.h>

/* Token ids at or above this are refused: far above any real vocabulary (LLaMA's 32000,
 * Gemma's 256000), and it keeps the id tables sane. */
#define TOK_MAX_ID (1 << 26)

/* Tokenizer files larger than this are refused before reading. The largest in use are a
 * few tens of MB (Gemma's 256k-piece tokenizer.json, about 33 MB; its tokenizer.model 4 MB;
 * LLaMA's are 1.8 MB and 500 KB), and jansson's or protobuf-c's tree costs several times
 * the file; tokenizer.json itself goes through json_file_load, whose bound this is too. */
#define TOK_FILE_MAX_BYTES ((uint64_t)64 << 20)

/* path opened for reading when it is a regular file within TOK_FILE_MAX_BYTES (a FIFO
 * would block, /dev/zero never ends); NULL otherwise, with the error set. */
FILE *tok_file_open(const char *path, uint64_t *bytes);

/* ---- maps ---------------------------------------------------------------------------- */

/* String -> int32 (open addressing, linear probing). Keys are copies owned by the map. */
typedef struct tok_strmap {
    char **keys;
    uint32_t *lens;
    int32_t *vals;
    size_t cap, n;
} tok_strmap;

int32_t tok_strmap_get(const tok_strmap *m, const char *key, size_t len); /* -1 if absent */
aspo_status tok_strmap_put(tok_strmap *m, const char *key, size_t len, int32_t val);
void tok_strmap_free(tok_strmap *m);

/* BPE merges: pair of ids -> (rank, id of the merged token). */
typedef struct tok_pairmap {
    uint64_t *keys; /* (a << 32 | b) + 1; 0 marks an empty slot */
    int32_t *rank, *merged;
    size_t cap, n;
} tok_pairmap;

bool tok_pairmap_get(const tok_pairmap *m, int32_t a, int32_t b, int32_t *rank, int32_t *merged);
aspo_status tok_pairmap_put(tok_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t merged);
void tok_pairmap_free(tok_pairmap *m);

/* ---- UTF-8 ----------------------------------------------------------------------------- */

/* Length of a valid UTF-8 prefix of s[0..n): n when all of it is valid (Rust's rules:
 * no overlongs, surrogates or code points above U+10FFFF). */
size_t tok_utf8_valid_prefix(const char *s, size_t n);
/* Byte length of the character starting with lead byte c (1 for a stray byte). */
int tok_utf8_len(unsigned char c);
/* Decodes one character of valid UTF-8. */
uint32_t tok_utf8_decode(const char *s, int *len);
int tok_utf8_encode(uint32_t cp, char *out);

/* ---- the pipeline's parts ------------------------------------------------------------ */

enum tok_norm_kind { TOK_NORM_PREPEND, TOK_NORM_REPLACE };
typedef struct tok_norm {
    enum tok_norm_kind kind;
    char *a, *b; /* PREPEND: a = text; REPLACE: a = pattern, b = content */
    size_t a_len, b_len;
} tok_norm;

enum tok_prepend { TOK_PREPEND_ALWAYS, TOK_PREPEND_FIRST, TOK_PREPEND_NEVER };
typedef struct tok_pretok {
    bool metaspace; /* false: no pre-tokenizer */
    char rep[5];    /* replacement character, UTF-8 */
    int rep_len;
    enum tok_prepend prepend;
    bool split;
} tok_pretok;

enum tok_dec_kind {
    TOK_DEC_REPLACE, TOK_DEC_BYTE_FALLBACK, TOK_DEC_FUSE, TOK_DEC_STRIP, TOK_DEC_METASPACE
};
typedef struct tok_dec {
    enum tok_dec_kind kind;
    char *a, *b; /* REPLACE: pattern, content */
    size_t a_len, b_len;
    uint32_t ch; /* STRIP: content; METASPACE: replacement */
    int start, stop; /* STRIP */
    enum tok_prepend prepend; /* METASPACE */
} tok_dec;

typedef struct tok_added {
    char *content; /* as written */
    size_t len;
    char *pattern; /* what is matched: content, passed through the normalizer if normalized */
    size_t pattern_len;
    int32_t id;
    bool single_word, lstrip, rstrip, normalized, special;
} tok_added;

/* A token-matching set: added tokens (normalized or not) bucketed by first byte. */
typedef struct tok_trie {
    int *idx;       /* indices into tokenizer.added, grouped by first byte */
    int first[257]; /* idx[first[c] .. first[c+1]) start with byte c */
} tok_trie;

struct tokenizer {
    char *source; /* the file loaded, for messages */

    /* BPE model */
    tok_strmap vocab;    /* model piece -> id */
    int32_t vocab_count; /* entries in the model vocabulary (HF get_vocab_size) */
    tok_pairmap merges;
    char *unk_token; /* model.unk_token, NULL when none */
    int32_t unk;     /* its id; -1 when none or not in the vocabulary */
    bool fuse_unk, byte_fallback, ignore_merges;
    int32_t byte_ids[256]; /* id of "<0xXX>", -1 when absent */

    /* id -> piece, model and added tokens */
    char **pieces;
    uint32_t *piece_lens;
    bool *special; /* per id: decode(skip_special) drops it */
    int32_t n_ids, cap_ids;

    tok_added *added;
    int n_added, cap_added;
    tok_strmap added_map; /* content -> id */
    tok_trie raw_trie, norm_trie;

    tok_norm *norm;
    int n_norm;
    tok_pretok pretok;
    tok_dec *dec;
    int n_dec;
    bool has_decoder;
    bool cleanup_spaces; /* transformers' clean_up_tokenization_spaces */

    /* special ids found in the tokenizer file itself (-1: not named there) */
    int32_t file_bos, file_eos, file_pad;
    int32_t bos, eos, pad, unk_id;
};

/* ---- building (tokenizer.c) ---------------------------------------------------------- */

tokenizer *tok_new(const char *source);
/* Model vocabulary entry; ids may come in any order. A piece given twice, or an id given
 * to two pieces, is ASPO_ERR_FORMAT naming both. */
aspo_status tok_add_piece(tokenizer *t, const char *piece, size_t len, int32_t id);
/* HF AddedVocabulary::add_tokens for one token: its id is that of an added token or model
 * piece with the same content, else the next free id (ASPO_ERR_FORMAT when a vocabulary
 * piece holds that one: the vocabulary's ids have gaps). Tokens with empty content are
 * ignored; a content already added keeps its first flags. */
aspo_status tok_add_token(tokenizer *t, const char *content, size_t len, bool special,
                          bool normalized, bool lstrip, bool rstrip, bool single_word);
/* Before tok_add_token of a token whose file gives its id (`want`): ASPO_OK when it will get
 * that id. HF tokenizers renumbers it otherwise with only a logged warning, which would
 * change what the id means to the model; here it is ASPO_ERR_FORMAT naming the file, the
 * field, the token, the id and why (empty content, an invalid id, its vocabulary id
 * differs, another piece has it, or it is not the next free one). */
aspo_status tok_check_added_id(const tokenizer *t, const char *file, const char *field,
                               const char *content, size_t len, long long want);
/* After model, added tokens and normalizer are set: byte ids, normalized patterns, tries. */
aspo_status tok_finalize(tokenizer *t);
/* Merge of two pieces (by text); errors name the merges entry. */
aspo_status tok_add_merge(tokenizer *t, const char *a, size_t a_len, const char *b,
                          size_t b_len, int32_t rank, int entry);

/* Appends a normalizer step / decoder (copies the strings; NULL reads as ""). */
aspo_status tok_add_norm(tokenizer *t, enum tok_norm_kind kind, const char *a, const char *b);
aspo_status tok_add_dec(tokenizer *t, tok_dec d, const char *a, const char *b);
/* The normalizer steps of transformers' LlamaConverter (legacy or not), used by the
 * tokenizer.model loader. */
aspo_status tok_set_llama_pipeline(tokenizer *t, bool legacy, bool add_prefix_space);

/* ---- loaders ------------------------------------------------------------------------- */

aspo_status tok_load_json(const char *path, tokenizer **out);
/* cfg: the merged tokenizer_config.json/special_tokens_map.json object (may be NULL); the
 * loader reads legacy and add_prefix_space from it. */
aspo_status tok_load_spm(const char *path, json_t *cfg, tokenizer **out);

/* ---- encoding pieces ----------------------------------------------------------------- */

/* A normalized string: bytes plus, for each byte, the original byte range it came from
 * (absolute offsets in the text being encoded), as HF's NormalizedString alignments. */
typedef struct tok_nstr {
    char *s;
    int32_t *a0, *a1;
    size_t len, cap;
} tok_nstr;

aspo_status tok_nstr_reserve(tok_nstr *n, size_t cap);
void tok_nstr_free(tok_nstr *n);
/* Applies the tokenizer's normalizer steps in place (scratch: a second buffer). */
aspo_status tok_normalize(const tokenizer *t, tok_nstr *n, tok_nstr *scratch);
aspo_status tok_nstr_replace(tok_nstr *n, const char *pat, size_t pat_len, const char *content,
                             size_t content_len, tok_nstr *scratch);
aspo_status tok_nstr_prepend(tok_nstr *n, const char *s, size_t len);

/* Splits s[0..n) on the added tokens of a trie as HF AddedVocabulary::find_matches does.
 * Each segment is [start,end) with the token id or -1. */
typedef struct tok_seg {
    int32_t start, end, id;
} tok_seg;
aspo_status tok_find_added(const tokenizer *t, const tok_trie *trie, const char *s, size_t n,
                           tok_seg **segs, int *n_segs, int *cap_segs);

/* BPE of one word w[0..n): symbols (id, byte length) in order. */
typedef struct tok_sym {
    int32_t id, len, prev, next;
} tok_sym;
typedef struct tok_heap_item {
    int32_t rank, pos, merged;
} tok_heap_item;
typedef struct tok_bpe_scratch {
    tok_sym *syms;
    int n_syms, cap_syms;
    tok_heap_item *heap;
    int n_heap, cap_heap;
} tok_bpe_scratch;
aspo_status tok_bpe_word(const tokenizer *t, const char *w, size_t n, tok_bpe_scratch *sc);
void tok_bpe_scratch_free(tok_bpe_scratch *sc);

#endif
