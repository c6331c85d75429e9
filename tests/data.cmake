# Test suites for the data part (aspo_test + add_test).
# test_data <fixtures dir>: reads fixtures/data (TRL-made expectations) and
# fixtures/tokenizer (the tokenizer part's tokenizer.json).
aspo_test(test_data test_data.c)
add_test(NAME data COMMAND test_data ${CMAKE_CURRENT_SOURCE_DIR}/fixtures)
