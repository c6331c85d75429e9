# Test suites for the data part (aspo_test + add_test).
