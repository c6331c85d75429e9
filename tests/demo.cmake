# Test suites for the demo part (aspo_test + add_test).
# test_demo: tokenizer, generated pairs, and quick demo runs (files, same seed -> same
# result, held-out accuracy up, temporary directory removed); a few seconds in Release.
aspo_test(test_demo test_demo.c)
add_test(NAME demo COMMAND test_demo)
# The command line end to end, shortened to 10 steps.
add_test(NAME demo_cli COMMAND aspo demo --quick --steps 10 --threads 1)
set_tests_properties(demo_cli PROPERTIES
  PASS_REGULAR_EXPRESSION "held-out reward accuracy 0\\.000 -> [01]\\.[0-9]+, margin")
