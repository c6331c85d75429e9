# The plan backend (memory plans of `aspo run --dry-run`): plain C, always built; tensor/
# backend.c hands it out as "plan".
list(APPEND ASPO_SOURCES backends/plan/plan_backend.c)
