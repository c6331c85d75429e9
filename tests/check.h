/* A tiny test harness: CHECK records a failure and continues; each test binary ends with
 * check_summary(), which prints "N passed, N failed" and returns the exit code. */
#ifndef ASPO_CHECK_H
#define ASPO_CHECK_H

#include <math.h>
#include <stdio.h>
#include <string.h>

static int check_passed, check_failed;

#define CHECK(cond, ...)                                                                  \
    do {                                                                                  \
        if (cond) {                                                                       \
            check_passed++;                                                               \
        } else {                                                                          \
            check_failed++;                                                               \
            fprintf(stderr, "%s:%d: FAIL: %s: ", __FILE__, __LINE__, #cond);              \
            fprintf(stderr, __VA_ARGS__);                                                 \
            fputc('\n', stderr);                                                          \
        }                                                                                 \
    } while (0)

/* |a-b| <= tol * max(1, |b|): relative for large values, absolute near zero. */
#define CHECK_CLOSE(a, b, tol, what)                                                      \
    do {                                                                                  \
        double check_a_ = (a), check_b_ = (b);                                            \
        CHECK(fabs(check_a_ - check_b_) <= (tol) * fmax(1.0, fabs(check_b_)),             \
              "%s: got %.9g, want %.9g (tol %g)", what, check_a_, check_b_, (double)(tol)); \
    } while (0)

static inline int check_summary(const char *suite)
{
    printf("%s: %d passed, %d failed\n", suite, check_passed, check_failed);
    return check_failed ? 1 : 0;
}

#endif
