/* See text_unicode.h: Python's and transformers' character classes, and ICU round trips. */
#include "models/text_unicode.h"

#include <stdlib.h>
#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>

bool text_py_isspace(int32_t c)
{
    if (c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F) || c == 0x85)
        return true;
    if (c < 0x80) return false;
    int bidi = u_charDirection(c);
    return (U_GET_GC_MASK(c) & U_GC_ZS_MASK) != 0 || bidi == U_WHITE_SPACE_NEUTRAL ||
           bidi == U_BLOCK_SEPARATOR || bidi == U_SEGMENT_SEPARATOR;
}

bool text_is_cjk(int32_t c)
{
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* Through ICU's UTF-16. Unicode bounds the growth there at 3x for NFC, 4x for NFD and 3x
 * for full lower-casing, so an output of 4x the UTF-16 input always fits. */
aspo_status text_map(const int32_t *in, int n, text_form form, int32_t **out, int *nout,
                     const char *who)
{
    static const char *names[] = {"NFC", "NFD", "lower-casing"};
    UErrorCode e = U_ZERO_ERROR;
    int32_t n16 = 0, cap = 2 * n + 16, cap_out = 4 * cap;
    UChar *a = malloc((size_t)cap * sizeof *a), *b = malloc((size_t)cap_out * sizeof *b);
    UChar32 *r = malloc((size_t)cap_out * sizeof *r);
    aspo_status st = ASPO_OK;
    if (!a || !b || !r) {
        st = aspo_fail(ASPO_ERR_OOM, "%s: out of memory", who);
        goto done;
    }
    u_strFromUTF32(a, cap, &n16, in, n, &e);
    int32_t nb = 0;
    if (U_SUCCESS(e)) {
        if (form == TEXT_LOWER) {
            nb = u_strToLower(b, cap_out, a, n16, "", &e);
        } else {
            const UNormalizer2 *nz = form == TEXT_NFC ? unorm2_getNFCInstance(&e)
                                                      : unorm2_getNFDInstance(&e);
            if (U_SUCCESS(e)) nb = unorm2_normalize(nz, a, n16, b, cap_out, &e);
        }
    }
    int32_t n32 = 0;
    if (U_SUCCESS(e)) u_strToUTF32(r, cap_out, &n32, b, nb, &e);
    if (U_FAILURE(e)) {
        st = aspo_fail(ASPO_ERR_UNSUPPORTED, "%s: ICU %s failed: %s", who, names[form],
                       u_errorName(e));
        goto done;
    }
    *out = r;
    *nout = n32;
    r = NULL;
done:
    free(a);
    free(b);
    free(r);
    return st;
}
