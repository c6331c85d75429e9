/* `aspo run --dry-run`: the device memory of a run, planned without allocating it.
 *
 * The trainer's own code runs one optimizer step on the plan backend (backends/plan: fake
 * addresses, no-op kernels, bytes counted through the backend like any other): the model
 * opened from its config without reading tensor data, LoRA and AdamW allocated, then one
 * micro-batch (the reference pass, the policy pass with its tape, the backward), gradient
 * clipping and the AdamW update. What the backend was asked for is what a real run on a
 * real backend asks for: frozen weights in their storage dtype, LoRA parameters,
 * gradients, AdamW's m and v, the step arena's buffers, and their peak together.
 *
 * The batch: with --data, the --batch-size longest pairs of the file (train or eval; with
 * their images, and the CLIP similarity pass of ASPO as the real run does it at load
 * time); without --data, a synthetic batch of --batch-size pairs whose sequences are all
 * --plan-seq positions long (default --max-length), each with an image when --plan-image
 * (LLaVA; the image's positions count in --plan-seq). The longest batch bounds every other
 * batch of the run, whose activations grow with the padded length.
 *
 * Not in the plan: each backend's own scratch buffers (cpu_scratch, Vulkan's and CUDA's
 * scratch), host memory, the allocator's rounding on the device, and --vision-cache (the
 * plan always runs the vision tower, which a cache hit skips). Nothing is written: not
 * --out, not the vision cache. */
#ifndef ASPO_DRY_RUN_H
#define ASPO_DRY_RUN_H

#include <stddef.h>

#include "aspo/model/policy.h"
#include "aspo/train/trainer.h"

/* Plans cfg and prints the plan: a table on stderr (unless cfg->quiet) and one JSON line
 * on stdout. A step that would stop for lack of memory (the step arena's chunk limit, the
 * device) is a plan too: it says where it stops and what was live then. summary->memory
 * gets the plan (summary may be NULL). */
aspo_status dry_run(const train_config *cfg, train_summary *summary);

/* The memory of an open model and the runtime now, by what holds it: weights and LoRA from
 * every parameter store (a shared vision tower once), gradients, AdamW's state (twice the
 * gradients: m and v), the step arena's buffers and its most bytes used, and the
 * backend's peak less live_before (what was allocated before the run). */
void train_memory_measure(const policy_model *m, size_t live_before, train_memory *mem);

/* A real run's measurement: the "memory: ..." progress line (unless cfg->quiet) and
 * <out>/memory.json with the same fields as the plan's JSON line. */
aspo_status train_memory_report(const train_config *cfg, const train_memory *mem);

#endif
