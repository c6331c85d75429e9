# `aspo run --dry-run` (the memory plan; the plan backend itself is backends/plan/plan.cmake).
list(APPEND ASPO_SOURCES aspo/dry_run.c)
