/* What the C test suites share: paths under a fixture or scratch directory, the suite's
 * scratch directory, small file helpers, expected errors, fixture tensors read from a
 * safetensors file, and the relative error the parity tests bound.
 *
 * check.h's tally is static to each suite's file, so the helpers that CHECK are static
 * inline here and count in the suite that calls them; test_support.c holds the rest and
 * checks nothing. */
#ifndef ASPO_TEST_SUPPORT_H
#define ASPO_TEST_SUPPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "tensor/error.h"
#include "tensor/runtime.h"
#include "tensor/safetensors.h"
#include "tensor/tensor.h"
#include "tests/check.h"

struct json_t;

/* ---- test_support.c ---- */

/* "dir/name", valid until the process exits: a caller may take several in one call and
 * keep them (options and configs hold the pointers). */
const char *join(const char *dir, const char *name);

/* Makes /tmp/test_<suite>_XXXXXX, the suite's scratch directory; NULL, with the reason on
 * stderr, when it cannot. test_tmp_remove deletes it with everything below it. */
const char *test_tmp_make(const char *suite);
void test_tmp_remove(void);

bool file_exists(const char *path);
/* text to path (through "<path>.tmp": never half written); false on failure. */
bool write_file_text(const char *path, const char *text);
/* A byte copy; false when either side fails. */
bool copy_file(const char *from, const char *to);

/* load(path) in a forked child that must answer within 5 s and, outside ASan (whose shadow
 * mappings go over any cap), with 1 GiB more address space than it has: a regression that
 * blocks on a FIFO or reads /dev/zero until memory runs out fails the suite instead of
 * hanging it. Returns the child's exit code: load's status, 100 when its message lacks path
 * or word; -1 when it was killed (SIGALRM: no answer in time). `what` names load. */
typedef aspo_status (*test_load_fn)(const char *path);
int test_load_in_child(const char *what, test_load_fn load, const char *path, const char *word);

/* from's JSON with `key` set to value (NULL: removed; value is stolen), written as
 * dir/config.json, dir made first: a fixture's config with one field changed. */
bool write_config_changed(const char *dir, const char *from, const char *key,
                          struct json_t *value);
/* dir/name as a symbolic link to target's absolute path (a fixture's weights shared). */
bool link_into(const char *dir, const char *name, const char *target);

/* max |got - want| / max |want| over n values: one scale per tensor, so near-zero
 * entries do not blow up. */
double rel_err(const float *got, const float *want, int64_t n);

/* ---- helpers that CHECK ---- */

/* Expects `got` to be the failure `want`, with a message holding every one of the strings
 * that follow `what` (NULL alone: any message); clears the error. One CHECK for the
 * status, one per string. */
#define expect_error(got, want, what, ...)                                                \
    expect_error_parts((got), (want), (what), (const char *const[]){__VA_ARGS__, NULL})

static inline void expect_error_parts(aspo_status got, aspo_status want, const char *what,
                                      const char *const *parts)
{
    const char *msg = aspo_error_message();
    CHECK(got == want, "%s: status %s, want %s (%s)", what, aspo_status_name(got),
          aspo_status_name(want), msg);
    for (int i = 0; parts[i]; i++)
        CHECK(strstr(msg, parts[i]) != NULL, "%s: message \"%s\" lacks \"%s\"", what, msg,
              parts[i]);
    aspo_error_clear();
}

/* The entry `key` of a fixture file; NULL and a failed CHECK when it is not there. */
static inline const st_entry *fx_entry(const st_model *st, const char *key)
{
    const st_entry *e = st_find(st, key);
    CHECK(e != NULL, "fixture has %s", key);
    return e;
}

/* The entry `key` as a tensor of the step; NULL when it is not there. */
static inline tensor *fx_tensor(const st_model *st, const char *key)
{
    const st_entry *e = fx_entry(st, key);
    return e ? tensor_from_host(e->dt, e->ndim, e->shape, e->data) : NULL;
}

/* The f32 values of entry `key`, numel of them (numel < 0: any count); NULL and a failed
 * CHECK when the fixture holds something else. */
static inline const float *fx_f32(const st_model *st, const char *key, int64_t numel)
{
    const st_entry *e = st_find(st, key);
    int64_t n = 1;
    for (int i = 0; e && i < e->ndim; i++) n *= e->shape[i];
    bool ok = e && e->dt == DT_F32 && (numel < 0 || n == numel);
    CHECK(ok, "fixture has %s: f32, %lld values (-1: any count)", key, (long long)numel);
    return ok ? e->data : NULL;
}

/* Ends a step of the runtime: the arena's guards must be intact (no kernel wrote past its
 * output), then it is reset. */
static inline void end_step(void)
{
    CHECK(arena_check_guards(&runtime_current()->data) == ASPO_OK, "guards: %s",
          aspo_error_message());
    runtime_step_reset();
}

#endif
