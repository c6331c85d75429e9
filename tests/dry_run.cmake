# `aspo run --dry-run` (aspo/train/dry_run.h): plans of the tiny LLaMA and LLaVA against the peak
# their real CPU runs measure, and a LLaVA-1.5-7B config planned without weights; then the
# command line (tests/cli/dry_run.sh).
aspo_test(test_dry_run test_dry_run.c)
add_test(NAME dry_run COMMAND test_dry_run ${CMAKE_CURRENT_SOURCE_DIR}/fixtures)
add_test(NAME cli_dry_run COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cli/dry_run.sh $<TARGET_FILE:aspo> ${CMAKE_CURRENT_SOURCE_DIR}/fixtures)
