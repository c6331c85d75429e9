/* Preference rows -> token ids as TRL 0.14.0's DPOTrainer.tokenize_row and the max_length
 * cut of its concatenated_forward (per sequence). See pair_tokens.h and docs/DATA.md. */
#define _GNU_SOURCE /* memmem */
#include "aspo/data/pair_tokens.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "models/tokenizer.h"

aspo_status truncation_mode_parse(const char *name, truncation_mode *out)
{
    if (name && strcmp(name, "keep_end") == 0) {
        *out = TRUNCATE_KEEP_END;
        return ASPO_OK;
    }
    if (name && strcmp(name, "keep_start") == 0) {
        *out = TRUNCATE_KEEP_START;
        return ASPO_OK;
    }
    return aspo_fail(ASPO_ERR_USAGE, "unknown truncation mode '%s' (known: keep_end, keep_start)",
                     name ? name : "(null)");
}

const char *truncation_mode_name(truncation_mode m)
{
    if (m == TRUNCATE_KEEP_START) return "keep_start";
    return m == TRUNCATE_KEEP_END ? "keep_end" : "unknown";
}

tokenize_options tokenize_options_default(void)
{
    return (tokenize_options){
        .template = CHAT_TEMPLATE_RAW,
        .max_length = 1024,
        .max_prompt_length = 512,
        .max_completion_length = 0,
        .mode = TRUNCATE_KEEP_END,
        .add_bos = true,
    };
}

void tokenized_pair_free(tokenized_pair *p)
{
    if (!p) return;
    free(p->prompt_ids);
    pair_sequence *s[2] = {&p->chosen, &p->rejected};
    for (int i = 0; i < 2; i++) {
        free(s[i]->ids);
        free(s[i]->span_begin);
        free(s[i]->span_end);
    }
    memset(p, 0, sizeof *p);
}

void truncation_counts_format(const truncation_counts *c, char *buf, size_t size)
{
    snprintf(buf, size,
             "%" PRId64 " pairs: %" PRId64 " prompts cut by max_prompt_length, %" PRId64
             " responses cut by max_completion_length, %" PRId64
             " sequences cut by max_length; %" PRId64 " tokens dropped",
             c->pairs, c->prompts_cut, c->responses_cut, c->sequences_cut, c->tokens_dropped);
}

static aspo_status check_options(const tokenize_options *o)
{
    if (!o) return aspo_fail(ASPO_ERR_USAGE, "tokenize: no options given");
    if (o->max_length < 0 || o->max_prompt_length < 0 || o->max_completion_length < 0)
        return aspo_fail(ASPO_ERR_USAGE,
                         "tokenize: negative limit (max_length %" PRId64
                         ", max_prompt_length %" PRId64 ", max_completion_length %" PRId64
                         "); use 0 for no limit",
                         o->max_length, o->max_prompt_length, o->max_completion_length);
    if (o->mode != TRUNCATE_KEEP_END && o->mode != TRUNCATE_KEEP_START)
        return aspo_fail(ASPO_ERR_USAGE, "tokenize: unknown truncation mode %d", (int)o->mode);
    if (o->template != CHAT_TEMPLATE_RAW && o->template != CHAT_TEMPLATE_VICUNA_V1)
        return aspo_fail(ASPO_ERR_USAGE, "tokenize: unknown chat template %d", (int)o->template);
    return ASPO_OK;
}

/* A response after tokenize_row: ids with spans, EOS appended, max_completion_length. */
typedef struct response {
    int32_t *ids;
    int32_t *begin, *end;
    int64_t n;
} response;

static void response_free(response *r)
{
    free(r->ids);
    free(r->begin);
    free(r->end);
}

static aspo_status make_response(const int32_t *ids, const int32_t *begin, const int32_t *end,
                                 int64_t n, bool text_row, int32_t eos_id,
                                 const tokenize_options *o, response *r,
                                 truncation_counts *counts)
{
    int64_t total = n + (text_row ? 1 : 0); /* tokenize_row: completion + [eos] */
    size_t cap = (size_t)(total ? total : 1);
    r->ids = malloc(cap * sizeof *r->ids);
    r->begin = malloc(cap * sizeof *r->begin);
    r->end = malloc(cap * sizeof *r->end);
    if (!r->ids || !r->begin || !r->end)
        return aspo_fail(ASPO_ERR_OOM, "tokenize: out of memory for %" PRId64 " tokens", total);
    for (int64_t i = 0; i < n; i++) {
        r->ids[i] = ids[i];
        r->begin[i] = begin ? begin[i] : -1;
        r->end[i] = end ? end[i] : -1;
    }
    if (text_row) {
        r->ids[n] = eos_id;
        r->begin[n] = r->end[n] = -1; /* EOS has no text */
    }
    r->n = total;
    if (text_row && o->max_completion_length && r->n > o->max_completion_length) {
        counts->responses_cut++;
        counts->tokens_dropped += r->n - o->max_completion_length;
        r->n = o->max_completion_length; /* completion[:max_completion_length] */
    }
    return ASPO_OK;
}

/* prompt + response, cut to max_length per sequence: keep_start keeps the first
 * max_length tokens, keep_end the last (TRL's batch slice, one sequence at a time). */
static aspo_status make_sequence(const int32_t *prompt, int64_t np, const response *r,
                                 const tokenize_options *o, pair_sequence *s,
                                 truncation_counts *counts)
{
    int64_t p0 = 0, r0 = 0, r1 = r->n; /* kept: prompt[p0, np), response[r0, r1) */
    int64_t L = o->max_length;
    if (L && np + r->n > L) {
        int64_t cut = np + r->n - L;
        if (o->mode == TRUNCATE_KEEP_START) {
            r1 = L - np; /* np < L was checked, so at least one response token stays */
        } else {
            p0 = cut < np ? cut : np;
            r0 = cut - p0; /* a response longer than max_length loses its start too */
        }
        counts->sequences_cut++;
        counts->tokens_dropped += cut;
    }
    s->n_prompt = np - p0;
    s->n = s->n_prompt + (r1 - r0);
    s->response_skip = r0;
    int64_t nr = r1 - r0;
    s->ids = malloc((size_t)s->n * sizeof *s->ids);
    s->span_begin = malloc((size_t)(nr ? nr : 1) * sizeof *s->span_begin);
    s->span_end = malloc((size_t)(nr ? nr : 1) * sizeof *s->span_end);
    if (!s->ids || !s->span_begin || !s->span_end)
        return aspo_fail(ASPO_ERR_OOM, "tokenize: out of memory for %" PRId64 " tokens", s->n);
    memcpy(s->ids, prompt + p0, (size_t)s->n_prompt * sizeof *s->ids);
    memcpy(s->ids + s->n_prompt, r->ids + r0, (size_t)nr * sizeof *s->ids);
    memcpy(s->span_begin, r->begin + r0, (size_t)nr * sizeof *s->span_begin);
    memcpy(s->span_end, r->end + r0, (size_t)nr * sizeof *s->span_end);
    return ASPO_OK;
}

aspo_status pair_assemble(const pair_ids *in, bool text_row, int32_t bos_id, int32_t eos_id,
                          const tokenize_options *opt, const char *source, int64_t line,
                          tokenized_pair *out, truncation_counts *counts)
{
    memset(out, 0, sizeof *out);
    aspo_status st = check_options(opt);
    if (st) return st;
    char at[4200]; /* "file:line"; line < 0: source is already "file: entry N" */
    if (!source) source = "<row>";
    if (line >= 0) snprintf(at, sizeof at, "%s:%" PRId64, source, line);
    else snprintf(at, sizeof at, "%s", source);
    /* Counted here and added to *counts only when the pair succeeds. */
    truncation_counts local = {0}, *tc = &local;
    bool add_bos = text_row && opt->add_bos;
    if (add_bos && bos_id < 0)
        return aspo_fail(ASPO_ERR_USAGE, "%s: the tokenizer has no BOS token; "
                         "turn add_bos off", at);
    if (text_row && eos_id < 0)
        return aspo_fail(ASPO_ERR_USAGE, "%s: the tokenizer has no EOS token, "
                         "which ends every response", at);

    /* Prompt: [BOS] + ids, then prompt[-max_prompt_length:] (TRL keeps the end always). */
    int64_t np = in->n_prompt + (add_bos ? 1 : 0);
    int32_t *prompt = malloc((size_t)(np ? np : 1) * sizeof *prompt);
    if (!prompt)
        return aspo_fail(ASPO_ERR_OOM, "tokenize: out of memory for %" PRId64 " tokens", np);
    if (add_bos) prompt[0] = bos_id;
    if (in->n_prompt)
        memcpy(prompt + (add_bos ? 1 : 0), in->prompt, (size_t)in->n_prompt * sizeof *prompt);
    int64_t p0 = 0;
    if (text_row && opt->max_prompt_length && np > opt->max_prompt_length) {
        p0 = np - opt->max_prompt_length;
        tc->prompts_cut++;
        tc->tokens_dropped += p0;
    }
    out->n_prompt_ids = np - p0;
    memmove(prompt, prompt + p0, (size_t)out->n_prompt_ids * sizeof *prompt);
    out->prompt_ids = prompt;

    if (out->n_prompt_ids == 0) {
        /* Nothing would predict the first response token (TRL's collator fails here). */
        tokenized_pair_free(out);
        return aspo_fail(ASPO_ERR_FORMAT, "%s: the prompt has no tokens (empty "
                         "prompt and no BOS); turn add_bos on or give a prompt", at);
    }
    if (opt->max_length && out->n_prompt_ids >= opt->max_length) {
        st = aspo_fail(ASPO_ERR_FORMAT,
                       "%s: the prompt is %" PRId64 " tokens%s but max_length is "
                       "%" PRId64 ", which leaves no room for a response token; set "
                       "max_prompt_length below max_length or raise max_length",
                       at, out->n_prompt_ids,
                       text_row && opt->max_prompt_length ? " after max_prompt_length" : "",
                       opt->max_length);
        tokenized_pair_free(out);
        return st;
    }

    if (!text_row && (in->n_chosen == 0 || in->n_rejected == 0)) { /* text rows get EOS */
        tokenized_pair_free(out);
        return aspo_fail(ASPO_ERR_FORMAT, "%s: the %s response has no tokens", at,
                         in->n_chosen == 0 ? "chosen" : "rejected");
    }
    response rc = {0}, rr = {0};
    if (!(st = make_response(in->chosen, in->chosen_begin, in->chosen_end, in->n_chosen,
                             text_row, eos_id, opt, &rc, tc)) &&
        !(st = make_response(in->rejected, in->rejected_begin, in->rejected_end,
                             in->n_rejected, text_row, eos_id, opt, &rr, tc)) &&
        !(st = make_sequence(out->prompt_ids, out->n_prompt_ids, &rc, opt, &out->chosen, tc)))
        st = make_sequence(out->prompt_ids, out->n_prompt_ids, &rr, opt, &out->rejected, tc);
    for (int k = 0; k < 2 && !st; k++) {
        /* keep_end cut a response longer than max_length together with the whole prompt:
         * nothing would predict its first token. Found here, at load, with the row's place,
         * not at the batch that holds it. */
        const pair_sequence *seq = k ? &out->rejected : &out->chosen;
        const response *r = k ? &rr : &rc;
        if (seq->n_prompt < 1)
            st = aspo_fail(ASPO_ERR_FORMAT, "%s: the %s response is %" PRId64 " tokens, so "
                           "max_length %" PRId64 " (keep_end) cuts the whole %" PRId64
                           "-token prompt off it and no prompt token precedes the response; "
                           "raise --max-length, set --max-completion-length, or shorten the "
                           "response", at, k ? "rejected" : "chosen", r->n, opt->max_length,
                           out->n_prompt_ids);
    }
    response_free(&rc);
    response_free(&rr);
    if (st) {
        tokenized_pair_free(out);
        return st;
    }
    if (counts) {
        counts->pairs++;
        counts->prompts_cut += local.prompts_cut;
        counts->responses_cut += local.responses_cut;
        counts->sequences_cut += local.sequences_cut;
        counts->tokens_dropped += local.tokens_dropped;
    }
    return ASPO_OK;
}

/* encode(text) with no special tokens; spans only when begin/end are wanted. Errors are
 * prefixed with the row's file, line and field. */
static aspo_status encode(const tokenizer *tok, const preference_row *row, const char *field,
                          const char *text, size_t len, int32_t **ids, int32_t **begin,
                          int32_t **end, int64_t *n)
{
    token_list l = {0};
    aspo_status st = tokenizer_encode(tok, text, len, &l);
    if (st) {
        token_list_free(&l);
        return aspo_fail_prefix(st, "%s: field '%s': ",
                                preference_row_where(row), field);
    }
    size_t cap = (size_t)(l.n ? l.n : 1);
    *ids = malloc(cap * sizeof **ids);
    if (begin) *begin = malloc(cap * sizeof **begin);
    if (end) *end = malloc(cap * sizeof **end);
    if (!*ids || (begin && !*begin) || (end && !*end)) {
        token_list_free(&l);
        return aspo_fail(ASPO_ERR_OOM, "tokenize: out of memory for %d tokens", l.n);
    }
    for (int i = 0; i < l.n; i++) {
        (*ids)[i] = l.ids[i];
        if (begin) (*begin)[i] = l.start[i];
        if (end) (*end)[i] = l.end[i];
    }
    *n = l.n;
    token_list_free(&l);
    return ASPO_OK;
}

/* Pre-tokenized ids must exist in the tokenizer's vocabulary (the embedding has no row
 * for the others), or the model's when there is no tokenizer (limit: 0 = none). */
static aspo_status check_vocab(const tokenizer *tok, int64_t limit, const preference_row *row)
{
    int64_t v = tok ? tokenizer_vocab_size(tok) : limit;
    if (v <= 0) return ASPO_OK;
    const int32_t *ids[3] = {row->prompt_ids, row->chosen_ids, row->rejected_ids};
    const int64_t n[3] = {row->n_prompt_ids, row->n_chosen_ids, row->n_rejected_ids};
    static const char *const field[3] = {"prompt_input_ids", "chosen_input_ids",
                                         "rejected_input_ids"};
    for (int f = 0; f < 3; f++)
        for (int64_t i = 0; i < n[f]; i++)
            if (ids[f][i] >= v)
                return aspo_fail(ASPO_ERR_FORMAT,
                                 "%s: field '%s' element %" PRId64 " is %" PRId32
                                 ", outside the %s vocabulary of %" PRId64 " ids",
                                 preference_row_where(row), field[f], i, ids[f][i],
                                 tok ? "tokenizer's" : "model's", v);
    return ASPO_OK;
}

/* Occurrences of id in ids[0..n). */
static int64_t count_id(const int32_t *ids, int64_t n, int32_t id)
{
    int64_t c = 0;
    for (int64_t i = 0; i < n; i++) c += ids[i] == id;
    return c;
}

/* The image placeholder after truncation: one in each sequence's prompt of an image row,
 * none anywhere else. */
static aspo_status check_image_tokens(const preference_row *row, const tokenize_options *opt,
                                      const tokenized_pair *p)
{
    if (!opt->images) return ASPO_OK;
    const char *src = preference_row_where(row);
    int32_t id = opt->image_token;
    int64_t want = row->image ? 1 : 0;
    const pair_sequence *seq[2] = {&p->chosen, &p->rejected};
    for (int k = 0; k < 2; k++) {
        const pair_sequence *s = seq[k];
        if (count_id(s->ids + s->n_prompt, s->n - s->n_prompt, id))
            return aspo_fail(ASPO_ERR_FORMAT, "%s: the %s response holds the image "
                             "token (%" PRId32 "); only the prompt may", src,
                             k ? "rejected" : "chosen", id);
        int64_t have = count_id(s->ids, s->n_prompt, id);
        if (have == want) continue;
        if (!row->image)
            return aspo_fail(ASPO_ERR_FORMAT, "%s: the prompt holds the image token "
                             "(\"<image>\") but the row has no image", src);
        if (have > 1)
            return aspo_fail(ASPO_ERR_FORMAT, "%s: the prompt holds %" PRId64
                             " image tokens; one image per row is supported", src,
                             have);
        return aspo_fail(ASPO_ERR_FORMAT, "%s: truncation cut the image token off "
                         "the %s sequence's prompt (max_prompt_length %" PRId64 ", max_length %"
                         PRId64 "); raise them or shorten the prompt", src,
                         k ? "rejected" : "chosen", opt->max_prompt_length, opt->max_length);
    }
    return ASPO_OK;
}

/* The prompt of an image row with its marker placed: "<image>\n" put in front when it has no
 * "<image>" (LLaVA), or its first "<image>" and the newline after it taken out (image_first). */
static aspo_status image_prompt(const preference_row *row, bool image_first, char **out,
                                size_t *len)
{
    const char *at = memmem(row->prompt, row->prompt_len, "<image>", 7);
    size_t cut = 0, head = 0, before = 0;
    if (image_first && at) {
        before = (size_t)(at - row->prompt);
        cut = 7 + (before + 7 < row->prompt_len && at[7] == '\n');
    } else if (!image_first && !at) {
        head = 8;
    }
    *len = row->prompt_len + head - cut;
    if (!(*out = malloc(*len + 1))) return aspo_fail(ASPO_ERR_OOM, "tokenize: out of memory");
    memcpy(*out, "<image>\n", head);
    memcpy(*out + head, row->prompt, before);
    memcpy(*out + head + before, row->prompt + before + cut, row->prompt_len - before - cut);
    (*out)[*len] = 0;
    return ASPO_OK;
}

aspo_status pair_prompt_text(const preference_row *row, const tokenize_options *opt, char **out,
                             size_t *len)
{
    char *prompt = NULL;
    size_t prompt_len = row->prompt_len;
    aspo_status st = ASPO_OK;
    if (row->image && opt->images && (st = image_prompt(row, opt->image_first, &prompt, &prompt_len)))
        return st;
    st = chat_template_apply(opt->template, prompt ? prompt : row->prompt, prompt_len, out, len);
    free(prompt);
    return st;
}

/* image_first: id in front of every sequence's prompt and of prompt_ids. */
static aspo_status prepend_image(tokenized_pair *p, int32_t id)
{
    int32_t **ids[3] = {&p->prompt_ids, &p->chosen.ids, &p->rejected.ids};
    int64_t *n[3] = {&p->n_prompt_ids, &p->chosen.n, &p->rejected.n};
    for (int k = 0; k < 3; k++) {
        int32_t *grown = malloc(sizeof(int32_t) * (size_t)(*n[k] + 1));
        if (!grown) return aspo_fail(ASPO_ERR_OOM, "tokenize: out of memory");
        grown[0] = id;
        memcpy(grown + 1, *ids[k], sizeof(int32_t) * (size_t)*n[k]);
        free(*ids[k]);
        *ids[k] = grown;
        (*n[k])++;
    }
    p->chosen.n_prompt++;
    p->rejected.n_prompt++;
    return ASPO_OK;
}

/* After pair_assemble: the image token put in front (image_first), then the placement check;
 * out is freed on an error. */
static aspo_status finish_images(const preference_row *row, const tokenize_options *opt,
                                 tokenized_pair *out)
{
    aspo_status st = ASPO_OK;
    if (opt->images && opt->image_first && row->image) st = prepend_image(out, opt->image_token);
    if (!st) st = check_image_tokens(row, opt, out);
    if (st) tokenized_pair_free(out);
    return st;
}

/* The templated prompt of an image row, encoded around its one "<image>": whole when the
 * tokenizer has the token (it must be the model's image_token), else piece by piece with
 * image_token between (LLaVA's tokenizer_image_token). */
static aspo_status encode_image_prompt(const tokenizer *tok, const preference_row *row,
                                       const tokenize_options *opt, const char *text,
                                       size_t len, int32_t **ids, int64_t *n)
{
    const char *src = preference_row_where(row);
    int32_t known = tokenizer_piece_to_id(tok, "<image>");
    if (known >= 0 && known != opt->image_token)
        return aspo_fail(ASPO_ERR_USAGE, "the tokenizer's \"<image>\" is id %" PRId32 " but the "
                         "model's image token is %" PRId32 "; they do not belong together",
                         known, opt->image_token);
    if (known >= 0) return encode(tok, row, "prompt", text, len, ids, NULL, NULL, n);
    const char *at = memmem(text, len, "<image>", 7);
    if (!at || memmem(at + 7, len - (size_t)(at + 7 - text), "<image>", 7))
        return aspo_fail(ASPO_ERR_FORMAT, "%s: the prompt must hold \"<image>\" "
                         "exactly once", src);
    int32_t *a = NULL, *b = NULL;
    int64_t na = 0, nb = 0;
    size_t before = (size_t)(at - text);
    aspo_status st = encode(tok, row, "prompt", text, before, &a, NULL, NULL, &na);
    if (!st) st = encode(tok, row, "prompt", at + 7, len - before - 7, &b, NULL, NULL, &nb);
    if (!st && !(*ids = malloc(sizeof(int32_t) * (size_t)(na + nb + 1))))
        st = aspo_fail(ASPO_ERR_OOM, "tokenize: out of memory");
    if (!st) {
        memcpy(*ids, a, sizeof(int32_t) * (size_t)na);
        (*ids)[na] = opt->image_token;
        memcpy(*ids + na + 1, b, sizeof(int32_t) * (size_t)nb);
        *n = na + nb + 1;
    }
    free(a);
    free(b);
    return st;
}

aspo_status pair_tokenize(const tokenizer *tok, const preference_row *row,
                          const tokenize_options *opt, tokenized_pair *out,
                          truncation_counts *counts)
{
    memset(out, 0, sizeof *out);
    if (!row) return aspo_fail(ASPO_ERR_USAGE, "tokenize: no row given");
    aspo_status st = check_options(opt);
    if (st) return st;
    if (row->image && !opt->images)
        return aspo_fail(ASPO_ERR_USAGE, "%s: the row has an image (%s) but the model takes "
                         "text only; give a model that reads images (LLaVA, InstructBLIP)",
                         preference_row_where(row), row->image);
    if (preference_row_is_tokenized(row)) {
        if ((st = check_vocab(tok, opt->vocab_size, row))) return st;
        pair_ids in = {row->prompt_ids, row->chosen_ids, row->rejected_ids, row->n_prompt_ids,
                       row->n_chosen_ids, row->n_rejected_ids, NULL, NULL, NULL, NULL};
        st = pair_assemble(&in, false, -1, -1, opt, preference_row_where(row), -1, out,
                           counts);
        return st ? st : finish_images(row, opt, out);
    }
    if (!tok)
        return aspo_fail(ASPO_ERR_USAGE, "%s: a text row needs a tokenizer",
                         preference_row_where(row));

    char *text = NULL;
    size_t text_len = 0;
    int32_t *p = NULL, *c = NULL, *r = NULL;
    int32_t *cb = NULL, *ce = NULL, *rb = NULL, *re = NULL;
    pair_ids in = {0};
    bool marker = row->image && !opt->image_first; /* the image token inside the prompt */
    if (!(st = pair_prompt_text(row, opt, &text, &text_len)) &&
        !(st = marker ? encode_image_prompt(tok, row, opt, text, text_len, &p, &in.n_prompt)
                      : encode(tok, row, "prompt", text, text_len, &p, NULL, NULL,
                               &in.n_prompt)) &&
        !(st = encode(tok, row, "chosen", row->chosen, row->chosen_len, &c, &cb, &ce,
                      &in.n_chosen)) &&
        !(st = encode(tok, row, "rejected", row->rejected, row->rejected_len, &r, &rb, &re,
                      &in.n_rejected))) {
        in.prompt = p, in.chosen = c, in.rejected = r;
        in.chosen_begin = cb, in.chosen_end = ce, in.rejected_begin = rb, in.rejected_end = re;
        st = pair_assemble(&in, true, tokenizer_bos_id(tok), tokenizer_eos_id(tok), opt,
                           preference_row_where(row), -1, out, counts);
        if (!st) st = finish_images(row, opt, out);
    }
    free(text);
    free(p), free(c), free(r);
    free(cb), free(ce), free(rb), free(re);
    return st;
}
