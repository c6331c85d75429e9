/* The run's output directory (--out): what a run may find there and how it leaves its
 * final adapter (aspo/train/run_output.c). */
#ifndef ASPO_RUN_OUTPUT_H
#define ASPO_RUN_OUTPUT_H

#include <stdbool.h>

#include "aspo/model/policy.h"

/* Makes --out when missing. One that holds anything is refused (ASPO_ERR_USAGE naming what
 * is there) unless the run resumes, or `overwrite`: then an earlier run's files (adapter,
 * metrics, memory.json, checkpoints) are removed first and other files are left alone;
 * refused when `adapter` (--adapter, NULL when none) is --out itself. */
aspo_status run_output_prepare(const char *out, bool resuming, bool overwrite,
                               const char *adapter);

/* The final adapter into out: written aside, then the old config removed, the weights moved
 * in and the config last, so out never pairs weights and a config of different runs. */
aspo_status run_output_save_adapter(const policy_model *m, const char *out);

#endif
