/* Chat templates (raw, vicuna_v1). See chat_template.h for where each space goes. */
#include "aspo/data/chat_template.h"

#include <stdlib.h>
#include <string.h>

aspo_status chat_template_parse(const char *name, chat_template *out)
{
    if (!name) return aspo_fail(ASPO_ERR_USAGE, "chat template: no name given");
    if (strcmp(name, "raw") == 0) {
        *out = CHAT_TEMPLATE_RAW;
        return ASPO_OK;
    }
    if (strcmp(name, "vicuna_v1") == 0) {
        *out = CHAT_TEMPLATE_VICUNA_V1;
        return ASPO_OK;
    }
    return aspo_fail(ASPO_ERR_USAGE, "unknown chat template '%s' (known: raw, vicuna_v1)",
                     name);
}

const char *chat_template_name(chat_template t)
{
    switch (t) {
    case CHAT_TEMPLATE_RAW: return "raw";
    case CHAT_TEMPLATE_VICUNA_V1: return "vicuna_v1";
    }
    return "unknown";
}

/* Concatenates up to three pieces into one malloc'd string. */
static aspo_status join3(const char *a, size_t na, const char *b, size_t nb, const char *c,
                         size_t nc, char **out, size_t *out_len)
{
    size_t n = na + nb + nc;
    char *s = malloc(n + 1);
    if (!s) return aspo_fail(ASPO_ERR_OOM, "chat template: out of memory for %zu bytes", n + 1);
    memcpy(s, a, na);
    memcpy(s + na, b, nb);
    memcpy(s + na + nb, c, nc);
    s[n] = 0;
    *out = s;
    *out_len = n;
    return ASPO_OK;
}

aspo_status chat_template_apply(chat_template t, const char *prompt, size_t len, char **out,
                                size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (!prompt && len) return aspo_fail(ASPO_ERR_USAGE, "chat template: NULL prompt");
    if (!prompt) prompt = "";
    switch (t) {
    case CHAT_TEMPLATE_RAW:
        return join3(prompt, len, "", 0, "", 0, out, out_len);
    case CHAT_TEMPLATE_VICUNA_V1: {
        /* get_prompt() for SeparatorStyle.TWO: system + sep, then "USER: " + message + sep,
         * then the empty assistant turn as "ASSISTANT:" (no trailing space). An empty
         * message is falsy in LLaVA's Python, so it becomes a bare "USER:" with no sep. */
        static const char head[] = CHAT_VICUNA_V1_SYSTEM " USER: ";
        static const char tail[] = " ASSISTANT:";
        static const char empty[] = CHAT_VICUNA_V1_SYSTEM " USER:ASSISTANT:";
        if (len == 0) return join3(empty, sizeof empty - 1, "", 0, "", 0, out, out_len);
        return join3(head, sizeof head - 1, prompt, len, tail, sizeof tail - 1, out, out_len);
    }
    }
    return aspo_fail(ASPO_ERR_USAGE, "chat template: unknown template id %d", (int)t);
}
