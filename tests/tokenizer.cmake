# Test suites for the tokenizer part (aspo_test + add_test).
aspo_test(test_tokenizer test_tokenizer.c)
add_test(NAME tokenizer COMMAND test_tokenizer ${CMAKE_CURRENT_SOURCE_DIR}/fixtures/tokenizer)
