# Test suites for the llama part (aspo_test + add_test).
