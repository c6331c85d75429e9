/* The plan backend: the memory a run would use, without using it (`aspo run --dry-run`).
 *
 * alloc hands out addresses from a reserved, inaccessible range (PROT_NONE: a stray
 * dereference faults at once) and allocates nothing; backend_get("plan") counts the bytes
 * like any backend's (backend_memory_stats). Every kernel slot is filled and does nothing,
 * so models, arenas, parameter stores, LoRA and the optimizer run their real code with the
 * real shapes, only virtually. upload keeps a host copy of small buffers (token ids,
 * masks: under 1 MiB each) and download returns it, so host code that reads its own
 * inputs back (CLIP's pooling at the end token, LLaVA's image positions) sees them;
 * everything else reads as a small positive constant, not zero, so that host checks such
 * as "a CLIP embedding of norm 0 is an error" pass. Values computed "on" the plan backend
 * are meaningless: only the bytes are. */
#ifndef ASPO_PLAN_BACKEND_H
#define ASPO_PLAN_BACKEND_H

#include "../../tensor/backend.h"

backend *plan_backend(void);

#endif
