# Test suites for the method part (aspo_test + add_test).
# Sentence units, ASPO worked examples, k branches, finite differences, TRL parity.
aspo_test(test_method test_method.c)
add_test(NAME method COMMAND test_method ${CMAKE_CURRENT_SOURCE_DIR}/fixtures/method)
