# Test suites for the tokenizer part (aspo_test + add_test).
