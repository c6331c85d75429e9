/* Checks of user-supplied indices shared by every backend's kernels, so a bad token id
 * gives the same message whichever backend runs: each kernel brings the ids to the host
 * (the CPU's are there already) and calls these before writing any output. */
#ifndef ASPO_OP_CHECKS_H
#define ASPO_OP_CHECKS_H

#include <stdint.h>

#include "tensor.h"

#ifdef __cplusplus
extern "C" { /* the CUDA/HIP kernels include this header too */
#endif

/* Embedding ids outside [0,V): an error naming the first by position and value. host_ids
 * holds ids' elements in row-major order. */
aspo_status op_check_ids(const tensor *ids, const int32_t *host_ids, int64_t V);

/* Targets index the vocabulary [0,V) unless they are ignore_index: an error naming the
 * first bad row. op names the op in the message. */
aspo_status op_check_targets(const char *op, const int32_t *ids, int64_t N, int64_t V,
                             int64_t ignore_index);

/* The kind in c->p.i[0] (a unary or binary kind; `what` names it) is one of the `count`
 * this build knows: else an error naming it and the op's backend, never a computation
 * picked by a default branch. */
aspo_status op_check_kind(const op_call *c, const char *what, int count);

#ifdef __cplusplus
}
#endif

#endif
