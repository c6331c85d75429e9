# Test suites for the score part (aspo_test + add_test).
# `aspo score` / `aspo merge` through their command functions, against the LLaMA parity
# fixtures (transformers 4.44.2 + PEFT 0.12.0), the trainer and bad input.
aspo_test(test_score test_score.c ${PROJECT_SOURCE_DIR}/aspo/cli/cmd_score.c
          ${PROJECT_SOURCE_DIR}/aspo/cli/cmd_merge.c)
add_test(NAME score COMMAND test_score ${CMAKE_CURRENT_SOURCE_DIR}/fixtures)
