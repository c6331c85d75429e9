/* Chat templates: how a row's prompt text becomes the text the tokenizer sees.
 *
 * raw        the prompt as it is.
 * vicuna_v1  LLaVA's conv_vicuna_v1 (SeparatorStyle.TWO, sep " ", sep2 "</s>") with one
 *            user turn and an open assistant turn:
 *              SYSTEM + " " + "USER: " + prompt + " " + "ASSISTANT:"
 *            The text ends at the colon. An empty prompt gives "USER:ASSISTANT:", as
 *            LLaVA's get_prompt() treats an empty message like a missing one.
 *            LLaVA's full conversation continues with " " + answer + "</s>"; here the
 *            answer is tokenized on its own (as TRL does), and a LLaMA SentencePiece
 *            tokenizer's "▁" prefix on its first word is that space, while "</s>" is the
 *            EOS id appended by pair_tokenize.
 *
 * Only the prompt goes through a template; chosen and rejected texts are used as they
 * are. See docs/DATA.md. */
#ifndef ASPO_CHAT_TEMPLATE_H
#define ASPO_CHAT_TEMPLATE_H

#include <stddef.h>

#include "tensor/error.h"

typedef enum chat_template {
    CHAT_TEMPLATE_RAW = 0,
    CHAT_TEMPLATE_VICUNA_V1,
} chat_template;

/* LLaVA's conv_vicuna_v1.system, verbatim. */
#define CHAT_VICUNA_V1_SYSTEM                                                            \
    "A chat between a curious user and an artificial intelligence assistant. "           \
    "The assistant gives helpful, detailed, and polite answers to the user's questions."

/* "raw" or "vicuna_v1" -> *out; anything else is a usage error listing the names. */
aspo_status chat_template_parse(const char *name, chat_template *out);
const char *chat_template_name(chat_template t);

/* Applies template `t` to prompt[0..len) (UTF-8; need not be NUL-terminated). On success
 * *out is a malloc'd NUL-terminated string of *out_len bytes; the caller frees it. */
aspo_status chat_template_apply(chat_template t, const char *prompt, size_t len, char **out,
                                size_t *out_len);

#endif
