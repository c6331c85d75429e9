# End-to-end tests of the command line: bash scripts that train a tiny random LLaMA with
# `aspo run` (see tests/cli/*.sh); each prints "N passed, N failed" and exits non-zero on
# a failure. Arguments: the aspo binary and the fixtures directory.
add_test(NAME cli_run COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cli/run.sh $<TARGET_FILE:aspo> ${CMAKE_CURRENT_SOURCE_DIR}/fixtures)
add_test(NAME cli_bad_input COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cli/bad_input.sh $<TARGET_FILE:aspo> ${CMAKE_CURRENT_SOURCE_DIR}/fixtures)
add_test(NAME cli_nan COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cli/nan.sh $<TARGET_FILE:aspo> ${CMAKE_CURRENT_SOURCE_DIR}/fixtures)
add_test(NAME cli_lifecycle COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cli/lifecycle.sh $<TARGET_FILE:aspo> ${CMAKE_CURRENT_SOURCE_DIR}/fixtures)
add_test(NAME cli_resume COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cli/resume.sh $<TARGET_FILE:aspo> ${CMAKE_CURRENT_SOURCE_DIR}/fixtures)
add_test(NAME cli_llava COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cli/llava.sh $<TARGET_FILE:aspo> ${CMAKE_CURRENT_SOURCE_DIR}/fixtures)
add_test(NAME cli_mixed_precision COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cli/mixed_precision.sh $<TARGET_FILE:aspo> ${CMAKE_CURRENT_SOURCE_DIR}/fixtures)
add_test(NAME cli_instructblip COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cli/instructblip.sh $<TARGET_FILE:aspo> ${CMAKE_CURRENT_SOURCE_DIR}/fixtures)
