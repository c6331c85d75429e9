/* Failed allocations inside jansson, made safe and visible. jansson 2.14 does not handle
 * all of them: while parsing, a string whose buffer cannot grow loses that character ("What
 * colour is the sky?" read as "What colour isthe sky?") or stops the process at an
 * assertion in its lexer (lex_unget_unsave), and a NULL from json_real() or json_string()
 * given to json_object_set_new leaves the field out, a return value code that builds
 * objects rarely checks. Both found by tests/fault/alloc_faults.c.
 *
 * So every allocation jansson makes goes through an allocator that, when malloc fails,
 * gives back a reserve of address space (RLIMIT_AS is what makes malloc fail on Linux)
 * and tries once more, so that jansson itself never sees the failure when it can be
 * helped; and counts the failure, for code that parses or builds JSON to check:
 *
 *     uint64_t mark = json_guard_mark();
 *     json_t *o = json_loadb(...);                      // or build an object, dump it
 *     if ((s = json_guard_check(mark, path))) ...       // ASPO_ERR_OOM naming path
 *
 * A request larger than the reserve still reaches jansson as NULL. */
#ifndef ASPO_JSON_GUARD_H
#define ASPO_JSON_GUARD_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The number of jansson's failed allocations so far; the first call installs the
 * allocator, and each re-arms the reserve when it was given back. */
uint64_t json_guard_mark(void);
/* ASPO_OK when no jansson allocation failed since mark; else ASPO_ERR_OOM with a message
 * naming `what` (the file or the record being read or written). */
aspo_status json_guard_check(uint64_t mark, const char *what);

#ifdef __cplusplus
}
#endif

#endif
