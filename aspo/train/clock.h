/* Seconds of a clock: the monotonic wall clock for progress lines, the process CPU clock
 * for benchmarks. */
#ifndef ASPO_CLOCK_H
#define ASPO_CLOCK_H

#include <time.h>

static inline double clock_seconds(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline double now_seconds(void) { return clock_seconds(CLOCK_MONOTONIC); }

#endif
