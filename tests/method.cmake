# Test suites for the method part (aspo_test + add_test).
